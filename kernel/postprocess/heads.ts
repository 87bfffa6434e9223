/**
 * Head outputs as users hand them in (arrays in either layout, image sizes, optional anchors) and
 * their checked, normalised form that every backend reads: one description of shapes, flat typed
 * arrays, no copies of the large tensors.
 */
import { PostprocessConfig } from "./presets";
import { describe } from "./config";
import { NdArray, numel, shapeString, toInt32 } from "./ndarray";
import { floatsToHalves } from "./reference";

export type Layout = "concatenated" | "per_level";
export type HeadDType = "float32" | "float16";
export type HeadArray = Float32Array | Uint16Array;

/** Arrays of one batch of head outputs, in the concatenated or the per-level layout. */
export interface HeadOutputs {
  /** [N, sum(HWA), K] (concatenated, P3..P7) or one [N, A*K, H, W] per level. fp32, or fp16 bits. */
  cls_logits: NdArray | NdArray[];
  /** [N, sum(HWA), 4] or one [N, A*4, H, W] per level, same dtype as cls_logits. */
  bbox_regression: NdArray | NdArray[];
  /** Optional anchors, f32 [N, sum(HWA), 4] or [sum(HWA), 4]; generated when absent. */
  anchors?: NdArray;
  /** (h, w) of each image before padding: [N, 2]. */
  image_sizes: NdArray | number[][];
  /** (H, W) of each level; derived from the padded size when absent (concatenated layout). */
  feature_sizes?: NdArray | number[][];
  /** (H, W) of the padded batch; max image size rounded up to size_divisible when absent. */
  padded_size?: [number, number];
  /** Detectron2: (h, w) each image is rescaled to before its final clip. */
  output_sizes?: NdArray | number[][];
}

/** The checked form: shapes spelled out, data as flat typed arrays (views, not copies). */
export interface NormalizedHeads {
  layout: Layout;
  dtype: HeadDType;
  batch: number;
  numClasses: number;
  anchorsPerLocation: number;
  featureSizes: [number, number][];
  paddedSize: [number, number];
  cls: HeadArray[];
  box: HeadArray[];
  anchors?: Float32Array;
  anchorsPerImage: boolean;
  imageSizes: Int32Array;
  outputSizes?: Int32Array;
}

export class ShapeError extends RangeError {
  readonly code = "ERR_RK_SHAPE";
}

function shapeError(message: string): ShapeError {
  const e = new ShapeError(message);
  e.name = "RangeError";
  return e;
}

function checkArray(a: unknown, name: string): NdArray {
  if (!a || typeof a !== "object" || !("shape" in a) || !("data" in a) || !("dtype" in a)) {
    throw Object.assign(new TypeError(`Expected an array {dtype, shape, data} for ${name} but received ${describe(a)}`), { code: "ERR_RK_SHAPE" });
  }
  const arr = a as NdArray;
  if (!Array.isArray(arr.shape) || !ArrayBuffer.isView(arr.data)) {
    throw Object.assign(new TypeError(`Expected a shape array and a TypedArray for ${name} but received ${describe(arr.shape)}`), { code: "ERR_RK_SHAPE" });
  }
  if (arr.data.length !== numel(arr.shape)) {
    throw shapeError(`Expected ${numel(arr.shape)} elements for ${name} of shape ${shapeString(arr.shape)} but received ${arr.data.length}`);
  }
  return arr;
}

function headDType(a: NdArray, name: string): HeadDType {
  if (a.dtype === "float32" && a.data instanceof Float32Array) return "float32";
  if (a.dtype === "float16" && a.data instanceof Uint16Array) return "float16";
  throw Object.assign(
    new TypeError(`Expected float32 (Float32Array) or float16 (Uint16Array of fp16 bits) for ${name} but received ${a.dtype} (${a.data.constructor.name})`),
    { code: "ERR_RK_SHAPE" },
  );
}

function pairs(v: NdArray | number[][] | undefined, name: string, rows?: number): Int32Array | undefined {
  if (v === undefined) return undefined;
  let flat: Int32Array;
  if (Array.isArray(v)) {
    if (!v.every((r) => Array.isArray(r) && r.length === 2 && r.every((x) => Number.isInteger(x)))) {
      throw Object.assign(new TypeError(`Expected [[h, w], ...] integers for ${name} but received ${describe(v)}`), { code: "ERR_RK_SHAPE" });
    }
    flat = Int32Array.from(v.flat());
  } else {
    const a = checkArray(v, name);
    if (a.shape.length !== 2 || a.shape[1] !== 2) throw shapeError(`Expected shape [N, 2] for ${name} but received ${shapeString(a.shape)}`);
    flat = toInt32(a, name);
  }
  if (rows !== undefined && flat.length !== rows * 2) {
    throw shapeError(`Expected ${rows} (h, w) rows for ${name} (one per image) but received ${flat.length / 2}`);
  }
  for (let i = 0; i < flat.length; i++) {
    if (flat[i] < 1) throw shapeError(`Expected sizes >= 1 for ${name} but received ${flat[i]} at row ${i >> 1}`);
  }
  return flat;
}

/** torchvision/Detectron2 FPN level sizes of a padded batch: P3..P5 by division, P6+ ceil-halved. */
export function fpnFeatureSizes(padded: [number, number], levels: number): [number, number][] {
  const out: [number, number][] = [];
  for (let l = 0; l < levels; l++) {
    if (l < 3) {
      const s = 8 << l;
      out.push([Math.floor(padded[0] / s), Math.floor(padded[1] / s)]);
    } else {
      const p = out[l - 1];
      out.push([Math.ceil(p[0] / 2), Math.ceil(p[1] / 2)]);
    }
  }
  return out;
}

/** Checks head outputs against a config and returns their normalised form. */
export function normalizeHeads(heads: HeadOutputs, config: PostprocessConfig): NormalizedHeads {
  if (!heads || typeof heads !== "object") {
    throw Object.assign(new TypeError(`Expected head outputs {cls_logits, bbox_regression, image_sizes} but received ${describe(heads)}`), { code: "ERR_RK_SHAPE" });
  }
  const A = config.anchor_sizes[0].length * config.aspect_ratios.length;
  const L = config.anchor_sizes.length;
  const perLevel = Array.isArray(heads.cls_logits);
  const layout: Layout = perLevel ? "per_level" : "concatenated";
  if (Array.isArray(heads.bbox_regression) !== perLevel) {
    throw Object.assign(new TypeError(`Expected cls_logits and bbox_regression in the same layout (both arrays per level or both concatenated)`), {
      code: "ERR_RK_SHAPE",
    });
  }
  const clsList = (perLevel ? heads.cls_logits : [heads.cls_logits]) as NdArray[];
  const boxList = (perLevel ? heads.bbox_regression : [heads.bbox_regression]) as NdArray[];
  clsList.forEach((a, i) => checkArray(a, perLevel ? `cls_logits[${i}]` : "cls_logits"));
  boxList.forEach((a, i) => checkArray(a, perLevel ? `bbox_regression[${i}]` : "bbox_regression"));
  const dtype = headDType(clsList[0], "cls_logits");
  for (const [i, a] of [...clsList, ...boxList].entries()) {
    const name = i < clsList.length ? "cls_logits" : "bbox_regression";
    if (headDType(a, name) !== dtype) {
      throw Object.assign(new TypeError(`Expected ${dtype} for ${name} (the dtype of cls_logits) but received ${a.dtype}`), { code: "ERR_RK_SHAPE" });
    }
  }

  let batch: number;
  let numClasses: number;
  let featureSizes: [number, number][] | undefined;
  if (perLevel) {
    if (clsList.length !== L || boxList.length !== L) {
      throw shapeError(`Expected ${L} levels (one per anchor_sizes entry) of cls_logits and bbox_regression but received ${clsList.length} and ${boxList.length}`);
    }
    const c0 = clsList[0];
    if (c0.shape.length !== 4) throw shapeError(`Expected cls_logits[0] of shape [N, A*K, H, W] but received ${shapeString(c0.shape)}`);
    batch = c0.shape[0];
    if (c0.shape[1] % A !== 0) throw shapeError(`Expected A*K channels (A = ${A}) for cls_logits[0] but received ${c0.shape[1]}`);
    numClasses = c0.shape[1] / A;
    featureSizes = clsList.map((c) => [c.shape[2], c.shape[3]] as [number, number]);
    clsList.forEach((c, l) => {
      const want = [batch, A * numClasses, featureSizes![l][0], featureSizes![l][1]];
      if (c.shape.length !== 4 || c.shape.some((d, i) => d !== want[i])) {
        throw shapeError(`Expected cls_logits[${l}] (P${l + 3}) of shape ${shapeString(want)} but received ${shapeString(c.shape)}`);
      }
    });
    boxList.forEach((b, l) => {
      const want = [batch, A * 4, featureSizes![l][0], featureSizes![l][1]];
      if (b.shape.length !== 4 || b.shape.some((d, i) => d !== want[i])) {
        throw shapeError(`Expected bbox_regression[${l}] (P${l + 3}) of shape ${shapeString(want)} but received ${shapeString(b.shape)}`);
      }
    });
  } else {
    const c = clsList[0];
    if (c.shape.length !== 3) throw shapeError(`Expected cls_logits of shape [N, sum(HWA), K] but received ${shapeString(c.shape)}`);
    batch = c.shape[0];
    numClasses = c.shape[2];
  }
  if (batch < 1) throw shapeError(`Expected at least one image (N >= 1) in cls_logits but received shape ${shapeString(clsList[0].shape)}`);
  if (numClasses < 1) throw shapeError(`Expected K >= 1 classes in cls_logits but received shape ${shapeString(clsList[0].shape)}`);
  if (config.num_classes !== null && config.num_classes !== numClasses) {
    throw shapeError(`Expected ${config.num_classes} classes (num_classes) but cls_logits has ${numClasses} (shape ${shapeString(clsList[0].shape)})`);
  }

  const imageSizes = pairs(heads.image_sizes, "image_sizes", batch);
  if (!imageSizes) throw Object.assign(new TypeError(`Expected image_sizes [N, 2] but received undefined`), { code: "ERR_RK_SHAPE" });
  let paddedSize: [number, number];
  if (heads.padded_size !== undefined) {
    const p = heads.padded_size;
    if (!Array.isArray(p) || p.length !== 2 || !p.every((x) => Number.isInteger(x) && x >= 1)) {
      throw Object.assign(new TypeError(`Expected [H, W] integers >= 1 for padded_size but received ${describe(p)}`), { code: "ERR_RK_SHAPE" });
    }
    paddedSize = [p[0], p[1]];
  } else {
    let h = 0;
    let w = 0;
    for (let n = 0; n < batch; n++) {
      h = Math.max(h, imageSizes[2 * n]);
      w = Math.max(w, imageSizes[2 * n + 1]);
    }
    const d = config.size_divisible;
    paddedSize = [Math.ceil(h / d) * d, Math.ceil(w / d) * d];
  }
  for (let n = 0; n < batch; n++) {
    if (imageSizes[2 * n] > paddedSize[0] || imageSizes[2 * n + 1] > paddedSize[1]) {
      throw shapeError(`Expected image_sizes[${n}] within the padded size ${paddedSize[0]}x${paddedSize[1]} but received ${imageSizes[2 * n]}x${imageSizes[2 * n + 1]}`);
    }
  }
  if (!perLevel) {
    const given = pairs(heads.feature_sizes, "feature_sizes", undefined);
    if (given) {
      featureSizes = [];
      for (let i = 0; i < given.length; i += 2) featureSizes.push([given[i], given[i + 1]]);
      if (featureSizes.length !== L) throw shapeError(`Expected ${L} feature sizes (one per anchor_sizes entry) but received ${featureSizes.length}`);
    } else {
      if (L !== 5 && L > 3) throw shapeError(`Expected feature_sizes for ${L} levels (only P3..P7 sizes are derived from the padded size)`);
      featureSizes = fpnFeatureSizes(paddedSize, L);
    }
    const hwa = featureSizes.reduce((s, [h, w]) => s + h * w * A, 0);
    const c = clsList[0];
    const b = boxList[0];
    const levelText = featureSizes.map(([h, w]) => `${h}x${w}`).join(", ");
    if (c.shape[1] !== hwa) {
      throw shapeError(
        `Expected cls_logits of shape [${batch}, ${hwa}, K] (sum of H*W*A over feature sizes ${levelText} with A = ${A}, padded size ${paddedSize[0]}x${paddedSize[1]}) but received ${shapeString(c.shape)}`,
      );
    }
    if (b.shape.length !== 3 || b.shape[0] !== batch || b.shape[1] !== hwa || b.shape[2] !== 4) {
      throw shapeError(`Expected bbox_regression of shape [${batch}, ${hwa}, 4] but received ${shapeString(b.shape)}`);
    }
  }
  const totalAnchors = featureSizes!.reduce((s, [h, w]) => s + h * w * A, 0);

  let anchors: Float32Array | undefined;
  let anchorsPerImage = false;
  if (heads.anchors !== undefined) {
    const a = checkArray(heads.anchors, "anchors");
    if (!(a.data instanceof Float32Array)) throw Object.assign(new TypeError(`Expected float32 anchors but received ${a.dtype}`), { code: "ERR_RK_SHAPE" });
    const ok3 = a.shape.length === 3 && a.shape[0] === batch && a.shape[1] === totalAnchors && a.shape[2] === 4;
    const ok2 = a.shape.length === 2 && a.shape[0] === totalAnchors && a.shape[1] === 4;
    if (!ok3 && !ok2) throw shapeError(`Expected anchors of shape [${batch}, ${totalAnchors}, 4] or [${totalAnchors}, 4] but received ${shapeString(a.shape)}`);
    anchors = a.data;
    anchorsPerImage = ok3 && batch > 1;
    if (ok3 && batch === 1) anchorsPerImage = false;
  }
  const outputSizes = pairs(heads.output_sizes, "output_sizes", batch);
  return {
    layout,
    dtype,
    batch,
    numClasses,
    anchorsPerLocation: A,
    featureSizes: featureSizes!,
    paddedSize,
    cls: clsList.map((a) => a.data as HeadArray),
    box: boxList.map((a) => a.data as HeadArray),
    anchors,
    anchorsPerImage,
    imageSizes,
    outputSizes,
  };
}

/** The same heads as fp16 (each f32 value rounded to the nearest half), for fp16 candidates and tests. */
export function toHalfHeads(h: NormalizedHeads): NormalizedHeads {
  const conv = (a: Float32Array | Uint16Array) => {
    if (a instanceof Uint16Array) return a;
    return floatsToHalves(a);
  };
  return { ...h, dtype: "float16", cls: h.cls.map(conv), box: h.box.map(conv) };
}
