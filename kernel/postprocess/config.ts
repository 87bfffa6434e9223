/**
 * Config validation, done once here for every consumer (API, magics, CLI). One message shape:
 * `Expected <what> for <field> but received <value>`; TypeError for wrong types, RangeError for
 * values out of range. The validated config is then turned into the native params struct once.
 */
import { closest } from "../args";
import { PRESET_NAMES, PostprocessConfig, PresetName, presets } from "./presets";

export class ConfigError extends Error {
  readonly code = "ERR_RK_CONFIG";
}

export function describe(v: unknown): string {
  if (v === undefined) return "undefined";
  if (v === null) return "null";
  if (typeof v === "string") return JSON.stringify(v);
  if (typeof v === "number" || typeof v === "boolean" || typeof v === "bigint") return String(v);
  if (Array.isArray(v)) return `[${v.map(describe).join(", ")}]`;
  if (ArrayBuffer.isView(v)) return `${v.constructor.name}(${(v as unknown as { length: number }).length})`;
  if (typeof v === "function") return "a function";
  try {
    return JSON.stringify(v) ?? String(v);
  } catch {
    return Object.prototype.toString.call(v);
  }
}

function typeError(field: string, expected: string, v: unknown): TypeError {
  return Object.assign(new TypeError(`Expected ${expected} for ${field} but received ${describe(v)}`), { code: "ERR_RK_CONFIG", field });
}

function rangeError(field: string, expected: string, v: unknown): RangeError {
  return Object.assign(new RangeError(`Expected ${expected} for ${field} but received ${describe(v)}`), { code: "ERR_RK_CONFIG", field });
}

function num(field: string, v: unknown, lo: number, hi: number, what = `a number in [${lo}, ${hi}]`): number {
  if (typeof v !== "number") throw typeError(field, what, v);
  if (!(v >= lo && v <= hi)) throw rangeError(field, what, v);
  return v;
}

function int(field: string, v: unknown, lo: number, hi: number): number {
  const what = `an integer in [${lo}, ${hi}]`;
  if (typeof v !== "number") throw typeError(field, what, v);
  if (!Number.isInteger(v) || v < lo || v > hi) throw rangeError(field, what, v);
  return v;
}

function oneOf<T extends string>(field: string, v: unknown, options: readonly T[]): T {
  const what = `one of ${options.map((o) => JSON.stringify(o)).join(", ")}`;
  if (typeof v !== "string") throw typeError(field, what, v);
  if (!(options as readonly string[]).includes(v)) throw rangeError(field, what, v);
  return v as T;
}

function bool(field: string, v: unknown): boolean {
  if (typeof v !== "boolean") throw typeError(field, "a boolean", v);
  return v;
}

function positiveList(field: string, v: unknown, max: number): number[] {
  if (!Array.isArray(v)) throw typeError(field, `an array of 1..${max} numbers > 0`, v);
  if (v.length < 1 || v.length > max) throw rangeError(field, `an array of 1..${max} numbers > 0`, v);
  return v.map((x, i) => num(`${field}[${i}]`, x, Number.MIN_VALUE, Number.MAX_VALUE, "a finite number > 0"));
}

/** score_thresh_per_class: null, an array of numbers in [0, 1], or a map from labels (integers >= 0) to them. */
function perClass(v: unknown): number[] | Record<string, number> | null {
  const field = "score_thresh_per_class";
  const what = "null, an array of numbers in [0, 1] (one per class), or a map from labels to numbers in [0, 1]";
  if (v === null || v === undefined) return null;
  if (Array.isArray(v)) {
    if (v.length < 1 || v.length > 100000) throw rangeError(field, "1..100000 thresholds (one per class)", v.length > 8 ? `an array of ${v.length}` : v);
    return v.map((x, i) => num(`${field}[${i}]`, x, 0, 1));
  }
  if (typeof v !== "object") throw typeError(field, what, v);
  const entries = Object.entries(v as Record<string, unknown>);
  if (entries.length < 1) throw rangeError(field, "at least one label: threshold entry", v);
  const out: Record<string, number> = {};
  for (const [label, t] of entries) {
    if (!/^\d+$/.test(label) || Number(label) > 99999) throw rangeError(field, "labels that are integers in [0, 99999]", JSON.stringify(label));
    out[String(Number(label))] = num(`${field}[${label}]`, t, 0, 1);
  }
  return out;
}

/**
 * The threshold of each of K classes, f32-rounded: score_thresh_per_class resolved against K (an
 * array must have K entries; a map's labels must be < K; other classes take score_thresh), or
 * undefined when every class uses score_thresh.
 */
export function classThresholds(c: PostprocessConfig, numClasses: number): Float32Array | undefined {
  const v = c.score_thresh_per_class;
  if (v === null || v === undefined) return undefined;
  const field = "score_thresh_per_class";
  if (Array.isArray(v)) {
    if (v.length !== numClasses) throw Object.assign(new RangeError(`Expected ${numClasses} thresholds (one per class of the data) for ${field} but received ${v.length}`), { code: "ERR_RK_CONFIG", field });
    return Float32Array.from(v);
  }
  const out = new Float32Array(numClasses).fill(Math.fround(c.score_thresh));
  for (const [label, t] of Object.entries(v)) {
    if (Number(label) >= numClasses) throw rangeError(field, `labels in [0, ${numClasses - 1}] (the data has ${numClasses} classes)`, `label ${label}`);
    out[Number(label)] = t;
  }
  return out;
}

export const CONFIG_KEYS = Object.keys(presets.torchvision) as (keyof PostprocessConfig)[];

/**
 * A full, validated config from a partial one: the preset's defaults (torchvision unless `preset`
 * says otherwise) overlaid by the given fields. Unknown keys are errors that name the closest key.
 */
export function resolveConfig(partial: Partial<PostprocessConfig> | Record<string, unknown> = {}): PostprocessConfig {
  if (partial === null || typeof partial !== "object" || Array.isArray(partial)) {
    throw typeError("config", "an object of post-processing settings", partial);
  }
  const given = partial as Record<string, unknown>;
  for (const key of Object.keys(given)) {
    if (!(CONFIG_KEYS as string[]).includes(key)) {
      const near = closest(key, CONFIG_KEYS as string[]);
      throw Object.assign(new RangeError(`Expected a config key (${near ? `did you mean ${near}?` : CONFIG_KEYS.join(", ")}) but received ${JSON.stringify(key)}`), {
        code: "ERR_RK_CONFIG",
        field: key,
      });
    }
  }
  const preset = given.preset === undefined ? "torchvision" : oneOf("preset", given.preset, PRESET_NAMES);
  const merged = { ...presets[preset as PresetName], ...given } as Record<string, unknown>;
  return validateConfig(merged);
}

/** Checks every field of a full config; returns a fresh copy (arrays copied). */
export function validateConfig(c: Record<string, unknown>): PostprocessConfig {
  const preset = oneOf("preset", c.preset, PRESET_NAMES);
  const num_classes = c.num_classes === null ? null : int("num_classes", c.num_classes, 1, 100000);
  const score_thresh = num("score_thresh", c.score_thresh, 0, 1);
  const score_thresh_per_class = perClass(c.score_thresh_per_class);
  const nms_thresh = num("nms_thresh", c.nms_thresh, 0, 1);
  const topk_candidates = int("topk_candidates", c.topk_candidates, 1, 100000);
  const detections_per_img = int("detections_per_img", c.detections_per_img, 1, 100000);
  if (!Array.isArray(c.anchor_sizes)) throw typeError("anchor_sizes", "an array of per-level size arrays", c.anchor_sizes);
  if (c.anchor_sizes.length < 1 || c.anchor_sizes.length > 8) throw rangeError("anchor_sizes", "1..8 levels", c.anchor_sizes);
  const anchor_sizes = c.anchor_sizes.map((lv: unknown, l: number) => positiveList(`anchor_sizes[${l}]`, lv, 8));
  for (let l = 1; l < anchor_sizes.length; l++) {
    if (anchor_sizes[l].length !== anchor_sizes[0].length) {
      throw rangeError(`anchor_sizes[${l}]`, `${anchor_sizes[0].length} sizes, as on level 0`, anchor_sizes[l]);
    }
  }
  const aspect_ratios = positiveList("aspect_ratios", c.aspect_ratios, 8);
  const anchor_cell = oneOf("anchor_cell", c.anchor_cell, ["torchvision", "detectron2", "odtk"] as const);
  const anchor_order = oneOf("anchor_order", c.anchor_order, ["ratio_major", "size_major"] as const);
  let anchor_strides: number[] | "padded_size";
  if (c.anchor_strides === "padded_size") {
    anchor_strides = "padded_size";
  } else if (Array.isArray(c.anchor_strides)) {
    anchor_strides = positiveList("anchor_strides", c.anchor_strides, 8);
    if (anchor_strides.length !== anchor_sizes.length) {
      throw rangeError("anchor_strides", `${anchor_sizes.length} strides (one per level of anchor_sizes)`, c.anchor_strides);
    }
  } else {
    throw typeError("anchor_strides", `"padded_size" or an array of per-level strides`, c.anchor_strides);
  }
  if (anchor_cell === "odtk" && anchor_strides === "padded_size") {
    // ODTK's cell formula needs one stride per level for both axes.
    throw rangeError("anchor_strides", "per-level strides with anchor_cell \"odtk\"", c.anchor_strides);
  }
  const anchor_offset = num("anchor_offset", c.anchor_offset, -1, 1);
  if (!Array.isArray(c.box_coder_weights) || c.box_coder_weights.length !== 4) {
    throw typeError("box_coder_weights", "an array of 4 non-zero numbers", c.box_coder_weights);
  }
  const box_coder_weights = c.box_coder_weights.map((w: unknown, i: number) => {
    const v = num(`box_coder_weights[${i}]`, w, -1e9, 1e9, "a finite non-zero number");
    if (v === 0) throw rangeError(`box_coder_weights[${i}]`, "a finite non-zero number", v);
    return v;
  }) as [number, number, number, number];
  const bbox_xform_clip = c.bbox_xform_clip === null ? null : num("bbox_xform_clip", c.bbox_xform_clip, -1e9, 1e9, "a finite number or null");
  const pixel_offset = c.pixel_offset === 0 || c.pixel_offset === 1 ? c.pixel_offset : (() => {
    throw typeof c.pixel_offset === "number" ? rangeError("pixel_offset", "0 or 1", c.pixel_offset) : typeError("pixel_offset", "0 or 1", c.pixel_offset);
  })();
  const clip_boxes = oneOf("clip_boxes", c.clip_boxes, ["none", "image_before_nms", "canvas_in_decode", "output_after_nms"] as const);
  const remove_empty_boxes = bool("remove_empty_boxes", c.remove_empty_boxes);
  const score_input = oneOf("score_input", c.score_input, ["logits", "probabilities"] as const);
  const candidate_order = oneOf("candidate_order", c.candidate_order, ["anchor_major", "class_major"] as const);
  const nms_algorithm = oneOf("nms_algorithm", c.nms_algorithm, ["torchvision_batched", "greedy_per_class"] as const);
  const torchvision_nms_device = oneOf("torchvision_nms_device", c.torchvision_nms_device, ["cpu", "cuda"] as const);
  const size_divisible = int("size_divisible", c.size_divisible, 1, 4096);
  return {
    preset,
    num_classes,
    score_thresh,
    score_thresh_per_class,
    nms_thresh,
    topk_candidates,
    detections_per_img,
    anchor_sizes,
    aspect_ratios,
    anchor_cell,
    anchor_order,
    anchor_strides,
    anchor_offset,
    box_coder_weights,
    bbox_xform_clip,
    pixel_offset,
    clip_boxes,
    remove_empty_boxes,
    score_input,
    candidate_order,
    nms_algorithm,
    torchvision_nms_device,
    size_divisible,
  };
}

/** Keys whose value differs from the preset's default (for %config's "changed" marks). */
export function changedKeys(c: PostprocessConfig): (keyof PostprocessConfig)[] {
  const base = presets[c.preset];
  return CONFIG_KEYS.filter((k) => JSON.stringify(c[k]) !== JSON.stringify(base[k]));
}


/** The native params struct (native/include/rk/params.h) of a validated config and class count. */
export interface NativeParams {
  numClasses: number;
  anchors: {
    cell: string;
    order: string;
    sizes: number[][];
    ratios: number[];
    stridesFromPaddedSize: boolean;
    strides: number[];
    offset: number;
  };
  /** classThresh: f32 per-class thresholds (K), then scoreThresh is their minimum. */
  select: { scoreThresh: number; topkCandidates: number; scoreInput: string; candidateOrder: string; classThresh?: number[] };
  decode: { weights: number[]; clampDwdh: boolean; bboxXformClip: number; pixelOffset: number; clip: string };
  nms: { iouThresh: number; algorithm: string; torchvisionDevice: string; compareInDouble: boolean };
  output: { detectionsPerImg: number; removeEmpty: boolean };
}

export function toNativeParams(c: PostprocessConfig, numClasses: number): NativeParams {
  const perClass = classThresholds(c, numClasses);
  return {
    numClasses,
    anchors: {
      cell: c.anchor_cell,
      order: c.anchor_order,
      sizes: c.anchor_sizes,
      ratios: c.aspect_ratios,
      stridesFromPaddedSize: c.anchor_strides === "padded_size",
      strides: c.anchor_strides === "padded_size" ? [] : c.anchor_strides,
      offset: c.anchor_offset,
    },
    select: {
      // With per-class thresholds, the smallest is the bound every backend's prefilter starts from.
      scoreThresh: perClass ? perClass.reduce((m, t) => Math.min(m, t), Infinity) : c.score_thresh,
      topkCandidates: c.topk_candidates,
      scoreInput: c.score_input,
      candidateOrder: c.candidate_order,
      ...(perClass ? { classThresh: Array.from(perClass) } : {}),
    },
    decode: {
      weights: c.box_coder_weights,
      clampDwdh: c.bbox_xform_clip !== null,
      bboxXformClip: c.bbox_xform_clip ?? 0,
      pixelOffset: c.pixel_offset,
      clip: c.clip_boxes,
    },
    nms: {
      iouThresh: c.nms_thresh,
      algorithm: c.nms_algorithm,
      torchvisionDevice: c.torchvision_nms_device,
      // torchvision's CPU kernel compares the f32 IoU with the Python float; CUDA kernels and ODTK in f32.
      compareInDouble: c.nms_algorithm === "torchvision_batched" && c.torchvision_nms_device === "cpu",
    },
    output: { detectionsPerImg: c.detections_per_img, removeEmpty: c.remove_empty_boxes },
  };
}
