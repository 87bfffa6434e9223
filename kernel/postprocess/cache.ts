/**
 * The candidate cache: per image and level, every element of the class head that some config within
 * stated bounds can select, with what the stages after selection read of it. A config with
 * `score_thresh >= min_score`, `topk_candidates <= max_topk`, the cache's preset, score input and
 * anchor keys gives, on the cache, exactly the detections it gives on the heads:
 *
 * - kept: elements whose score (the kernel's own f32 sigmoid of the raw value, or the probability)
 *   is `> f32(min_score)` and at least the level's max_topk-th best score (ties at that place kept);
 *   any selection of such a config is among them (its top-k of `score > t` ranks first overall);
 * - stored: per level in the kernel's ranking order (score descending, then the order key), so that
 *   a run takes a prefix (the CPU core checks the order and sorts when it does not hold); the raw
 *   class value and the four raw deltas widened to f32 (exact for fp16), the anchor
 *   row and label (so the tie order key and the anchor are the kernel's own), the anchor itself only
 *   when the heads came with anchors, and each image's sizes and level shapes (the anchor grid and
 *   ODTK's clip canvas);
 * - at run time each candidate is decided again exactly as the class-head pass decides an element,
 *   then decoded, suppressed and written by the same stages (native/cpu/candidates.cpp, and
 *   runCandidatesReference for the js backend).
 *
 * On disk a cache is a folder (README, "The candidate cache"): cache.json and one .npy per column,
 * written under a temporary name and renamed when complete, so a cache is whole or absent.
 */
import * as fs from "fs";
import * as path from "path";

import { reason } from "../files";
import { loadNative } from "../native";
import { classThresholds, describe, resolveConfig } from "./config";
import { HeadOutputs, NormalizedHeads, normalizeHeads } from "./heads";
import { NdArray, toInt32 } from "./ndarray";
import { parseNpy } from "./npy";
import { ArrayMap, readNpyFolder, readNpz } from "./npz";
import { PostprocessConfig } from "./presets";
import { CandidateLists, CandidateShapes, halfToFloat, sigmoidF32 } from "./reference";

export const CACHE_FORMAT = "retinanet-kernel/candidate-cache";
export const CACHE_VERSION = 1;

/** Config keys a cache fixes: the anchors it was built with, how scores are read, and the preset. */
export const CACHE_FIXED_KEYS = [
  "preset",
  "score_input",
  "anchor_sizes",
  "aspect_ratios",
  "anchor_cell",
  "anchor_order",
  "anchor_strides",
  "anchor_offset",
  "size_divisible",
] as const;

export class CacheError extends Error {
  constructor(
    message: string,
    readonly code = "ERR_RK_CACHE",
  ) {
    super(message);
    this.name = "CacheError";
  }
}

export interface CacheBounds {
  /** Lowest score_thresh the cache serves (candidates kept: score > f32(min_score)). */
  minScore: number;
  /** Largest topk_candidates the cache serves (per level). */
  maxTopk: number;
}

export interface CacheMeta {
  format: typeof CACHE_FORMAT;
  version: number;
  package: string;
  created: string;
  /** The config the cache was built for (its fixed keys bind every config run on it). */
  config: Pick<PostprocessConfig, (typeof CACHE_FIXED_KEYS)[number]>;
  num_classes: number;
  anchors_per_location: number;
  levels: number;
  min_score: number;
  max_topk: number;
  images: number;
  candidates: number;
  /** Layout and dtype of the heads the candidates came from. */
  source: { path: string; layout: string; dtype: string; shards: number };
  given_anchors: boolean;
  output_sizes: boolean;
  image_ids: boolean;
  gt: boolean;
  gt_boxes: number;
  /** The framework's own detections (det{i}_*) of the source, for the parity report of `run`. */
  det: boolean;
  det_boxes: number;
  /** The golden case's .json beside the source (preset, thresholds), when there was one. */
  case?: Record<string, unknown>;
  /** COCO annotation file written beside the cache by %synth --cache or named at build time. */
  annotations?: string;
}

/** A cache in memory: its columns as typed arrays (views on the files read). */
export interface CandidateCache {
  dir: string;
  meta: CacheMeta;
  offsets: BigInt64Array;
  rows: Int32Array;
  labels: Int32Array;
  values: Float32Array;
  deltas: Float32Array;
  anchors?: Float32Array;
  imageSizes: Int32Array;
  paddedSizes: Int32Array;
  /** [N, L, 2] */
  featureSizes: Int32Array;
  outputSizes?: Int32Array;
  imageIds?: BigInt64Array;
  gt?: { offsets: BigInt64Array; boxes: Float32Array; labels: Int32Array };
  det?: { offsets: BigInt64Array; boxes: Float32Array; labels: Int32Array; scores: Float32Array };
}

/** A batch of candidate lists with the shapes of the heads they came from: what Postprocessor.run takes. */
export interface CandidateBatch {
  kind: "candidates";
  shapes: CandidateShapes;
  lists: CandidateLists;
}

export function isCandidateBatch(x: unknown): x is CandidateBatch {
  return typeof x === "object" && x !== null && (x as { kind?: unknown }).kind === "candidates";
}

// ---------------------------------------------------------------------------------------------
// Bounds

export function checkBounds(bounds: CacheBounds): CacheBounds {
  const { minScore, maxTopk } = bounds;
  if (typeof minScore !== "number" || !(minScore >= 0 && minScore <= 1)) {
    throw new CacheError(`Expected a number in [0, 1] for min_score but received ${describe(minScore)}`, "ERR_RK_CONFIG");
  }
  if (typeof maxTopk !== "number" || !Number.isInteger(maxTopk) || maxTopk < 1 || maxTopk > 100000) {
    throw new CacheError(`Expected an integer in [1, 100000] for max_topk but received ${describe(maxTopk)}`, "ERR_RK_CONFIG");
  }
  return { minScore, maxTopk };
}

/**
 * Checks that a config is one the cache serves exactly; the error names the bound or key, the
 * cache's value and the config's, never a silent approximation.
 */
export function checkConfigForCache(config: PostprocessConfig, cache: CandidateCache): void {
  const m = cache.meta;
  const where = `the candidate cache ${cache.dir}`;
  for (const key of CACHE_FIXED_KEYS) {
    const want = JSON.stringify(m.config[key]);
    const got = JSON.stringify(config[key]);
    if (want !== got) {
      throw new CacheError(`Expected ${key} ${want} (fixed by ${where}, which was built with it) but received ${got}: rebuild the cache with this ${key}`);
    }
  }
  if (config.num_classes !== null && config.num_classes !== m.num_classes) {
    throw new CacheError(`Expected num_classes ${m.num_classes} (the classes of ${where}) but received ${config.num_classes}`);
  }
  // Every class's threshold must be within the bound (score_thresh, or the per-class ones).
  const perClass = classThresholds(config, m.num_classes);
  if (!perClass && Math.fround(config.score_thresh) < Math.fround(m.min_score)) {
    throw new CacheError(
      `Expected score_thresh >= ${m.min_score} (the min_score bound of ${where}) but received ${config.score_thresh}: rebuild the cache with --min-score ${config.score_thresh} or lower`,
    );
  }
  const low = perClass ? perClass.findIndex((t) => t < Math.fround(m.min_score)) : -1;
  if (perClass && low >= 0) {
    throw new CacheError(
      `Expected every score_thresh_per_class >= ${m.min_score} (the min_score bound of ${where}) but received ${perClass[low]} for class ${low}: rebuild the cache with --min-score ${perClass[low]} or lower`,
    );
  }
  if (config.topk_candidates > m.max_topk) {
    throw new CacheError(
      `Expected topk_candidates <= ${m.max_topk} (the max_topk bound of ${where}) but received ${config.topk_candidates}: rebuild the cache with --max-topk ${config.topk_candidates} or higher`,
    );
  }
}

// ---------------------------------------------------------------------------------------------
// Selection of the superset from heads

/** The tie-break key of an element within its level (native/cpu/select.cpp, reference.ts). */
export function rankOrderKey(config: PostprocessConfig, row: number, label: number, K: number, A: number, HW: number): number {
  return config.candidate_order === "anchor_major" ? row * K + label : ((row % A) * K + label) * HW + Math.floor(row / A);
}

/** Candidates of one (image, level), in (row, label) order. */
interface LevelCandidates {
  rows: Int32Array;
  labels: Int32Array;
  values: Float32Array;
  deltas: Float32Array;
  anchors?: Float32Array;
}

let halfWide: Float32Array | undefined;
function halfTable(): Float32Array {
  if (!halfWide) {
    halfWide = new Float32Array(65536);
    for (let i = 0; i < 65536; i++) halfWide[i] = halfToFloat(i);
  }
  return halfWide;
}

/**
 * What any config within the bounds can select from one image and level of normalised heads. The
 * decision is the kernel's: `score > f32(min_score)` on sigmoidF32 of the raw value (widened for
 * fp16); a logit prefilter only skips values far below it.
 */
export function levelCandidates(heads: NormalizedHeads, config: PostprocessConfig, bounds: CacheBounds, n: number, l: number): LevelCandidates {
  const { numClasses: K, anchorsPerLocation: A, featureSizes } = heads;
  const levelAnchors = featureSizes.map(([h, w]) => h * w * A);
  const totalAnchors = levelAnchors.reduce((s, v) => s + v, 0);
  const levelOffset = levelAnchors.map((_, i) => levelAnchors.slice(0, i).reduce((s, v) => s + v, 0));
  const [H, W] = featureSizes[l];
  const HW = H * W;
  const count = levelAnchors[l] * K;
  const concat = heads.layout === "concatenated";
  const cls = concat ? heads.cls[0] : heads.cls[l];
  const base = concat ? (n * totalAnchors + levelOffset[l]) * K : n * count;
  const wide = heads.dtype === "float16" ? halfTable() : undefined;
  const logits = config.score_input === "logits";
  const thresh = Math.fround(bounds.minScore);
  // Values at or below `floor` cannot pass: sigmoid is monotone; the margin covers f32 rounding.
  const floor = logits ? (thresh > 0 ? Math.log(thresh / (1 - thresh)) - 1e-3 * (1 + Math.abs(Math.log(thresh / (1 - thresh)))) : -Infinity) : thresh - 1e-6;
  let posList: number[] = [];
  let scoreList: number[] = [];
  let valueList: number[] = [];
  for (let pos = 0; pos < count; pos++) {
    const raw = cls[base + pos];
    const v = wide ? wide[raw] : raw;
    if (!(v > floor) && !(floor === -Infinity && v === -Infinity)) continue;
    const score = logits ? sigmoidF32(v) : v;
    if (!(score > thresh)) continue;
    posList.push(pos);
    scoreList.push(score);
    valueList.push(v);
  }
  if (posList.length > bounds.maxTopk) {
    // Keep every element scoring at least the max_topk-th best score (ties at the cut included).
    const sorted = Float64Array.from(scoreList).sort();
    const kth = sorted[sorted.length - bounds.maxTopk];
    const keep = scoreList.map((s) => s >= kth);
    posList = posList.filter((_, i) => keep[i]);
    valueList = valueList.filter((_, i) => keep[i]);
    scoreList = scoreList.filter((_, i) => keep[i]);
  }
  // (row, label) of each element, then sorted by them: the anchor-major order of the level.
  const m = posList.length;
  const rows = new Int32Array(m);
  const labels = new Int32Array(m);
  for (let i = 0; i < m; i++) {
    const pos = posList[i];
    if (concat) {
      rows[i] = Math.floor(pos / K);
      labels[i] = pos % K;
    } else {
      const channel = Math.floor(pos / HW);
      const a = Math.floor(channel / K);
      labels[i] = channel % K;
      rows[i] = (pos % HW) * A + a;
    }
  }
  // Stored in the kernel's ranking order (score descending, then the preset's order key): a run
  // then takes a prefix of each level instead of sorting it.
  const key = (i: number) => rankOrderKey(config, rows[i], labels[i], K, A, HW);
  const order = Array.from({ length: m }, (_, i) => i).sort((a, b) => scoreList[b] - scoreList[a] || key(a) - key(b));
  const out: LevelCandidates = { rows: new Int32Array(m), labels: new Int32Array(m), values: new Float32Array(m), deltas: new Float32Array(m * 4) };
  const box = concat ? heads.box[0] : heads.box[l];
  if (heads.anchors) out.anchors = new Float32Array(m * 4);
  order.forEach((src, i) => {
    const row = rows[src];
    out.rows[i] = row;
    out.labels[i] = labels[src];
    out.values[i] = valueList[src];
    for (let j = 0; j < 4; j++) {
      const at = concat ? (n * totalAnchors + levelOffset[l] + row) * 4 + j : n * levelAnchors[l] * 4 + ((row % A) * 4 + j) * HW + Math.floor(row / A);
      const d = box[at];
      out.deltas[i * 4 + j] = wide ? wide[d] : d;
    }
    if (heads.anchors && out.anchors) {
      const at = ((heads.anchorsPerImage ? n * totalAnchors : 0) + levelOffset[l] + row) * 4;
      for (let j = 0; j < 4; j++) out.anchors[i * 4 + j] = heads.anchors[at + j];
    }
  });
  return out;
}

// ---------------------------------------------------------------------------------------------
// Writing

/** A column file written as it grows: a fixed 128-byte .npy header rewritten with the final shape. */
class ColumnFile {
  private fd: number;
  private elements = 0;
  constructor(
    readonly file: string,
    private readonly descr: string,
    private readonly tail: number[],
  ) {
    this.fd = fs.openSync(file, "w");
    fs.writeSync(this.fd, this.header());
  }
  private header(): Buffer {
    const rows = this.tail.length === 0 ? this.elements : this.elements / this.tail.reduce((a, b) => a * b, 1);
    const shape = [rows, ...this.tail];
    const text = `{'descr': '${this.descr}', 'fortran_order': False, 'shape': (${shape.join(", ")}${shape.length === 1 ? "," : ""}), }`;
    const head = Buffer.alloc(128, 0x20);
    Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]).copy(head, 0);
    head.writeUInt16LE(118, 8);
    head.write(text, 10, "latin1");
    head[127] = 0x0a;
    return head;
  }
  append(data: ArrayBufferView & { length: number }): void {
    if (data.byteLength > 0) fs.writeSync(this.fd, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    this.elements += data.length;
  }
  close(): void {
    fs.writeSync(this.fd, this.header(), 0, 128, 0);
    fs.closeSync(this.fd);
  }
  abandon(): void {
    try {
      fs.closeSync(this.fd);
    } catch {
      /* already closed */
    }
  }
  get length(): number {
    return this.elements;
  }
}

/** Boxes of one image: ground truth (gt) or a framework's expected detections (det, with scores). */
export interface ImageBoxes {
  boxes: Float32Array;
  labels: Int32Array;
  scores?: Float32Array;
}

/** One image as the writer takes it: its candidate lists per level and its shapes. */
export interface CacheImage {
  levels: LevelCandidates[];
  imageSize: [number, number];
  paddedSize: [number, number];
  featureSizes: [number, number][];
  outputSize?: [number, number];
  imageId?: number | bigint;
  gt?: ImageBoxes;
  det?: ImageBoxes;
}

/** The columns of one per-image box set (gt or det): offsets, boxes, labels (and scores for det). */
class BoxColumns {
  private readonly offsets: ColumnFile;
  private readonly boxes: ColumnFile;
  private readonly labels: ColumnFile;
  private readonly scores?: ColumnFile;
  count = 0n;
  constructor(dir: string, prefix: string, withScores: boolean) {
    this.offsets = new ColumnFile(path.join(dir, `${prefix}_offsets.npy`), "<i8", []);
    this.boxes = new ColumnFile(path.join(dir, `${prefix}_boxes.npy`), "<f4", [4]);
    this.labels = new ColumnFile(path.join(dir, `${prefix}_labels.npy`), "<i4", []);
    if (withScores) this.scores = new ColumnFile(path.join(dir, `${prefix}_scores.npy`), "<f4", []);
    this.offsets.append(new BigInt64Array([0n]));
  }
  append(b: ImageBoxes): void {
    this.boxes.append(b.boxes);
    this.labels.append(b.labels);
    if (this.scores) this.scores.append(b.scores ?? new Float32Array(b.labels.length));
    this.count += BigInt(b.labels.length);
    this.offsets.append(new BigInt64Array([this.count]));
  }
  files(): ColumnFile[] {
    return [this.offsets, this.boxes, this.labels, ...(this.scores ? [this.scores] : [])];
  }
}

/** What every image of a cache must share (set by the first image). */
interface CacheLayout {
  levels: number;
  numClasses: number;
  anchorsPerLocation: number;
  layout: string;
  dtype: string;
  given: boolean;
  outputSizes: boolean;
  ids: boolean;
  gt: boolean;
  det: boolean;
}

/**
 * Removes the temporary folders of earlier writes of the cache `name` in `parent` that can never
 * finish: left by a process that is gone (killed), or by this one (a write that an interrupt
 * terminated mid-way; this process writes one cache at a time).
 */
function removeAbandonedPartials(parent: string, name: string): void {
  const prefix = `.${name}.partial-`;
  let entries: string[] = [];
  try {
    entries = fs.readdirSync(parent).filter((e) => e.startsWith(prefix));
  } catch {
    return; // the parent's own problem is reported when the new write starts
  }
  for (const e of entries) {
    const pid = Number(/^(\d+)-\d+$/.exec(e.slice(prefix.length))?.[1]);
    if (!Number.isInteger(pid) || pid <= 0) continue;
    let gone = pid === process.pid;
    if (!gone) {
      try {
        process.kill(pid, 0);
      } catch (err) {
        gone = (err as NodeJS.ErrnoException).code === "ESRCH";
      }
    }
    if (gone) fs.rmSync(path.join(parent, e), { recursive: true, force: true });
  }
}

/** Writes a cache image by image into a temporary folder; finish() renames it into place. */
export class CacheWriter {
  private readonly tmp: string;
  private readonly cols: Record<string, ColumnFile> = {};
  private gt?: BoxColumns;
  private det?: BoxColumns;
  private shape?: CacheLayout;
  private images = 0;
  private total = 0n;
  private shards = 0;
  private done = false;

  constructor(
    readonly dir: string,
    readonly config: PostprocessConfig,
    readonly bounds: CacheBounds,
    readonly sourcePath: string,
  ) {
    checkBounds(bounds);
    const parent = path.dirname(path.resolve(dir));
    if (!fs.existsSync(parent)) throw new CacheError(`Expected an existing folder for the cache's parent but ${parent} does not exist`, "ERR_RK_FILE");
    removeAbandonedPartials(parent, path.basename(dir));
    this.tmp = path.join(parent, `.${path.basename(dir)}.partial-${process.pid}-${Date.now()}`);
    try {
      fs.mkdirSync(this.tmp);
    } catch (e) {
      throw new CacheError(`Expected a folder where the cache ${dir} can be written but ${reason(e, dir)}`, "ERR_RK_FILE");
    }
    const col = (name: string, descr: string, tail: number[] = []) => (this.cols[name] = new ColumnFile(path.join(this.tmp, `${name}.npy`), descr, tail));
    col("offsets", "<i8");
    col("rows", "<i4");
    col("labels", "<i4");
    col("values", "<f4");
    col("deltas", "<f4", [4]);
    col("image_sizes", "<i4", [2]);
    col("padded_sizes", "<i4", [2]);
    this.cols.offsets.append(new BigInt64Array([0n]));
  }

  /** Sets what every image shares from the first one; later images must agree (the error says how not). */
  private agree(want: CacheLayout, what: string): void {
    if (!this.shape) {
      this.shape = want;
      const col = (name: string, descr: string, tail: number[]) => (this.cols[name] = new ColumnFile(path.join(this.tmp, `${name}.npy`), descr, tail));
      col("feature_sizes", "<i4", [want.levels, 2]);
      if (want.given) col("anchors", "<f4", [4]);
      if (want.outputSizes) col("output_sizes", "<i4", [2]);
      if (want.ids) col("image_ids", "<i8", []);
      if (want.gt) this.gt = new BoxColumns(this.tmp, "gt", false);
      if (want.det) this.det = new BoxColumns(this.tmp, "det", true);
      return;
    }
    const have = this.shape;
    const says: Record<keyof CacheLayout, string> = {
      levels: `${have.levels} levels`,
      numClasses: `K = ${have.numClasses} classes`,
      anchorsPerLocation: `${have.anchorsPerLocation} anchors per location`,
      layout: `the ${have.layout} layout`,
      dtype: `${have.dtype} heads`,
      given: have.given ? "an anchors array" : "no anchors array",
      outputSizes: have.outputSizes ? "output_sizes" : "no output_sizes",
      ids: have.ids ? "image_ids" : "no image_ids",
      gt: have.gt ? "gt{i}_boxes" : "no gt{i}_boxes",
      det: have.det ? "det{i}_boxes" : "no det{i}_boxes",
    };
    for (const key of Object.keys(says) as (keyof CacheLayout)[]) {
      if (want[key] !== have[key]) throw new CacheError(`Expected ${says[key]} in ${what}, as in the images before it, but received ${String(want[key])}`);
    }
  }

  /** Adds one image (candidate lists made by levelCandidates, the synthetic cache or an exporter). */
  addImage(image: CacheImage, source: { layout: string; dtype: string; numClasses: number; anchorsPerLocation: number; what?: string }): void {
    if (this.done) throw new CacheError(`Expected an open cache writer but ${this.dir} was already finished`);
    this.agree(
      {
        levels: image.featureSizes.length,
        numClasses: source.numClasses,
        anchorsPerLocation: source.anchorsPerLocation,
        layout: source.layout,
        dtype: source.dtype,
        given: image.levels.some((lc) => lc.anchors !== undefined),
        outputSizes: image.outputSize !== undefined,
        ids: image.imageId !== undefined,
        gt: image.gt !== undefined,
        det: image.det !== undefined,
      },
      source.what ?? `image ${this.images}`,
    );
    const c = this.cols;
    const ends = new BigInt64Array(image.levels.length);
    image.levels.forEach((lc, l) => {
      c.rows.append(lc.rows);
      c.labels.append(lc.labels);
      c.values.append(lc.values);
      c.deltas.append(lc.deltas);
      if (c.anchors) c.anchors.append(lc.anchors ?? new Float32Array(lc.rows.length * 4));
      this.total += BigInt(lc.rows.length);
      ends[l] = this.total;
    });
    c.offsets.append(ends);
    c.image_sizes.append(Int32Array.from(image.imageSize));
    c.padded_sizes.append(Int32Array.from(image.paddedSize));
    c.feature_sizes.append(Int32Array.from(image.featureSizes.flat()));
    if (image.outputSize) c.output_sizes.append(Int32Array.from(image.outputSize));
    if (image.imageId !== undefined) c.image_ids.append(new BigInt64Array([BigInt(image.imageId)]));
    if (image.gt) this.gt!.append(image.gt);
    if (image.det) this.det!.append(image.det);
    this.images++;
  }

  /** Adds every image of one batch of heads (with its image_ids, gt{i}_* and det{i}_* when given). */
  addBatch(heads: NormalizedHeads, extras: { imageIds?: ArrayLike<number | bigint>; gt?: ImageBoxes[]; det?: ImageBoxes[] } = {}, stop?: { stopped: boolean }): void {
    const what = `batch ${this.shards} (images ${this.images}..${this.images + heads.batch - 1})`;
    for (const [name, list] of [["image_ids", extras.imageIds], ["gt{i}_boxes", extras.gt], ["det{i}_boxes", extras.det]] as const) {
      if (list !== undefined && list.length !== heads.batch) throw new CacheError(`Expected ${heads.batch} entries of ${name} in ${what} (one per image) but received ${list.length}`);
    }
    for (let n = 0; n < heads.batch; n++) {
      if (stop?.stopped) return;
      const levels = heads.featureSizes.map((_, l) => levelCandidates(heads, this.config, this.bounds, n, l));
      this.addImage(
        {
          levels,
          imageSize: [heads.imageSizes[2 * n], heads.imageSizes[2 * n + 1]],
          paddedSize: heads.paddedSize,
          featureSizes: heads.featureSizes,
          ...(heads.outputSizes ? { outputSize: [heads.outputSizes[2 * n], heads.outputSizes[2 * n + 1]] as [number, number] } : {}),
          ...(extras.imageIds ? { imageId: extras.imageIds[n] } : {}),
          ...(extras.gt ? { gt: extras.gt[n] } : {}),
          ...(extras.det ? { det: extras.det[n] } : {}),
        },
        { layout: heads.layout, dtype: heads.dtype, numClasses: heads.numClasses, anchorsPerLocation: heads.anchorsPerLocation, what },
      );
    }
    this.shards++;
  }

  /** A file written into the cache folder with it (the synthetic set's annotations.json). */
  writeExtra(name: string, text: string): void {
    fs.writeFileSync(path.join(this.tmp, name), text);
  }

  get imageCount(): number {
    return this.images;
  }
  get candidateCount(): number {
    return Number(this.total);
  }

  /** Closes the columns, writes cache.json and renames the folder into place (replacing a cache at `dir`). */
  finish(extra: { annotations?: string; caseMeta?: Record<string, unknown> } = {}): CacheMeta {
    if (this.images === 0 || !this.shape) {
      this.abort();
      throw new CacheError(`Expected at least one image for the cache ${this.dir} but received none`);
    }
    for (const col of [...Object.values(this.cols), ...(this.gt?.files() ?? []), ...(this.det?.files() ?? [])]) col.close();
    const pick = {} as Record<string, unknown>;
    for (const k of CACHE_FIXED_KEYS) pick[k] = this.config[k];
    const sh = this.shape;
    const meta: CacheMeta = {
      format: CACHE_FORMAT,
      version: CACHE_VERSION,
      package: packageVersion(),
      created: new Date().toISOString(),
      config: pick as CacheMeta["config"],
      num_classes: sh.numClasses,
      anchors_per_location: sh.anchorsPerLocation,
      levels: sh.levels,
      min_score: this.bounds.minScore,
      max_topk: this.bounds.maxTopk,
      images: this.images,
      candidates: Number(this.total),
      source: { path: this.sourcePath, layout: sh.layout, dtype: sh.dtype, shards: this.shards },
      given_anchors: sh.given,
      output_sizes: sh.outputSizes,
      image_ids: sh.ids,
      gt: sh.gt,
      gt_boxes: Number(this.gt?.count ?? 0n),
      det: sh.det,
      det_boxes: Number(this.det?.count ?? 0n),
      ...(extra.annotations ? { annotations: extra.annotations } : {}),
      ...(extra.caseMeta ? { case: extra.caseMeta } : {}),
    };
    fs.writeFileSync(path.join(this.tmp, "cache.json"), JSON.stringify(meta, null, 1) + "\n");
    const target = path.resolve(this.dir);
    let old: string | undefined;
    if (fs.existsSync(target)) {
      if (!fs.existsSync(path.join(target, "cache.json"))) {
        this.abort();
        throw new CacheError(`Expected ${target} to be absent or a candidate cache (it is replaced) but it holds no cache.json: choose another --out`, "ERR_RK_FILE");
      }
      old = `${this.tmp}.old`;
      fs.renameSync(target, old);
    }
    try {
      fs.renameSync(this.tmp, target);
    } catch (e) {
      if (old) fs.renameSync(old, target); // the previous cache back in place
      this.abort();
      throw new CacheError(`Expected to move the new cache into ${target} but the rename failed: ${(e as Error).message}`, "ERR_RK_FILE");
    }
    if (old) fs.rmSync(old, { recursive: true, force: true });
    this.done = true;
    return meta;
  }

  /** Drops everything written so far. */
  abort(): void {
    for (const col of [...Object.values(this.cols), ...(this.gt?.files() ?? []), ...(this.det?.files() ?? [])]) col.abandon();
    fs.rmSync(this.tmp, { recursive: true, force: true });
    this.done = true;
  }
}

function packageVersion(): string {
  try {
    return JSON.parse(fs.readFileSync(path.join(__dirname, "..", "..", "..", "package.json"), "utf8")).version;
  } catch {
    return "unknown";
  }
}

// ---------------------------------------------------------------------------------------------
// Reading

export function isCacheDir(dir: string): boolean {
  try {
    return fs.statSync(dir).isDirectory() && fs.existsSync(path.join(dir, "cache.json"));
  } catch {
    return false;
  }
}

/** Opens a cache folder; every error names the file. */
export function openCache(dir: string): CandidateCache {
  const metaFile = path.join(dir, "cache.json");
  let meta: CacheMeta;
  try {
    meta = JSON.parse(fs.readFileSync(metaFile, "utf8"));
  } catch (e) {
    throw new CacheError(`Expected a readable JSON file at ${metaFile} (a candidate cache's description) but received ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, "ERR_RK_FILE");
  }
  if (!meta || meta.format !== CACHE_FORMAT) throw new CacheError(`Expected format ${JSON.stringify(CACHE_FORMAT)} in ${metaFile} but received ${describe(meta?.format)}`);
  if (meta.version !== CACHE_VERSION) {
    throw new CacheError(`Expected version ${CACHE_VERSION} of the candidate cache format in ${metaFile} but received ${describe(meta.version)} (written by retinanet-kernel ${meta.package}): rebuild it with retinanet-kernel cache`);
  }
  // Columns are mapped, not read, when the addon can (pages come in as they are first read): a
  // cache of any size opens in milliseconds. Cache files are only ever replaced whole (a new folder
  // renamed over the old), never rewritten in place, so a mapping always sees a whole file.
  const mapFile = loadNative()?.mapFile;
  const read = (name: string, dtype: string, shape: (number | undefined)[]): NdArray => {
    const file = path.join(dir, `${name}.npy`);
    let a: NdArray;
    try {
      a = parseNpy(mapFile ? Buffer.from(mapFile(file)) : fs.readFileSync(file), file);
    } catch (e) {
      throw new CacheError(`Expected a whole .npy file at ${file} but reading it failed: ${(e as Error).message}`, "ERR_RK_FILE");
    }
    if (a.dtype !== dtype || a.shape.length !== shape.length || shape.some((d, i) => d !== undefined && d !== a.shape[i])) {
      throw new CacheError(`Expected ${dtype} [${shape.map((d) => d ?? "?").join(", ")}] in ${file} (from ${metaFile}) but received ${a.dtype} [${a.shape.join(", ")}]`);
    }
    return a;
  };
  const N = meta.images;
  const L = meta.levels;
  const C = meta.candidates;
  const cache: CandidateCache = {
    dir,
    meta,
    offsets: read("offsets", "int64", [N * L + 1]).data as BigInt64Array,
    rows: read("rows", "int32", [C]).data as Int32Array,
    labels: read("labels", "int32", [C]).data as Int32Array,
    values: read("values", "float32", [C]).data as Float32Array,
    deltas: read("deltas", "float32", [C, 4]).data as Float32Array,
    imageSizes: read("image_sizes", "int32", [N, 2]).data as Int32Array,
    paddedSizes: read("padded_sizes", "int32", [N, 2]).data as Int32Array,
    featureSizes: read("feature_sizes", "int32", [N, L, 2]).data as Int32Array,
  };
  if (meta.given_anchors) cache.anchors = read("anchors", "float32", [C, 4]).data as Float32Array;
  if (meta.output_sizes) cache.outputSizes = read("output_sizes", "int32", [N, 2]).data as Int32Array;
  if (meta.image_ids) cache.imageIds = read("image_ids", "int64", [N]).data as BigInt64Array;
  if (meta.gt) {
    cache.gt = {
      offsets: read("gt_offsets", "int64", [N + 1]).data as BigInt64Array,
      boxes: read("gt_boxes", "float32", [meta.gt_boxes, 4]).data as Float32Array,
      labels: read("gt_labels", "int32", [meta.gt_boxes]).data as Int32Array,
    };
  }
  if (meta.det) {
    cache.det = {
      offsets: read("det_offsets", "int64", [N + 1]).data as BigInt64Array,
      boxes: read("det_boxes", "float32", [meta.det_boxes, 4]).data as Float32Array,
      labels: read("det_labels", "int32", [meta.det_boxes]).data as Int32Array,
      scores: read("det_scores", "float32", [meta.det_boxes]).data as Float32Array,
    };
  }
  if (cache.offsets[N * L] !== BigInt(C)) throw new CacheError(`Expected the last offset in ${path.join(dir, "offsets.npy")} to be ${C} (the candidates) but received ${cache.offsets[N * L]}`);
  return cache;
}

/** Ground truth (gt) or expected detections (det) of every image of a cache, as views. */
export function cacheBoxes(cache: CandidateCache, which: "gt" | "det"): ImageBoxes[] | undefined {
  const set = cache[which];
  if (!set) return undefined;
  const out: ImageBoxes[] = [];
  for (let n = 0; n < cache.meta.images; n++) {
    const a = Number(set.offsets[n]);
    const b = Number(set.offsets[n + 1]);
    out.push({ boxes: set.boxes.subarray(a * 4, b * 4), labels: set.labels.subarray(a, b), ...("scores" in set ? { scores: set.scores.subarray(a, b) } : {}) });
  }
  return out;
}

/**
 * The images [begin, end) as candidate batches, one per run of consecutive images with the same
 * level shapes and padded size (the anchor grid), as views on the cache's columns.
 */
export function cacheBatches(cache: CandidateCache, begin = 0, end = cache.meta.images, maxImages = 1024): CandidateBatch[] {
  const L = cache.meta.levels;
  const out: CandidateBatch[] = [];
  const same = (a: number, b: number) => {
    for (let j = 0; j < 2 * L; j++) if (cache.featureSizes[a * 2 * L + j] !== cache.featureSizes[b * 2 * L + j]) return false;
    return cache.paddedSizes[2 * a] === cache.paddedSizes[2 * b] && cache.paddedSizes[2 * a + 1] === cache.paddedSizes[2 * b + 1];
  };
  let i = begin;
  while (i < end) {
    let j = i + 1;
    while (j < end && j - i < maxImages && same(i, j)) j++;
    const featureSizes: [number, number][] = [];
    for (let l = 0; l < L; l++) featureSizes.push([cache.featureSizes[(i * L + l) * 2], cache.featureSizes[(i * L + l) * 2 + 1]]);
    out.push({
      kind: "candidates",
      shapes: {
        batch: j - i,
        numClasses: cache.meta.num_classes,
        anchorsPerLocation: cache.meta.anchors_per_location,
        featureSizes,
        paddedSize: [cache.paddedSizes[2 * i], cache.paddedSizes[2 * i + 1]],
        imageSizes: cache.imageSizes.subarray(2 * i, 2 * j),
        ...(cache.outputSizes ? { outputSizes: cache.outputSizes.subarray(2 * i, 2 * j) } : {}),
      },
      lists: {
        offsets: cache.offsets.subarray(i * L, j * L + 1),
        rows: cache.rows,
        labels: cache.labels,
        values: cache.values,
        deltas: cache.deltas,
        ...(cache.anchors ? { anchors: cache.anchors } : {}),
        listCap: cache.meta.max_topk,
      },
    });
    i = j;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Sources of heads: one .npz, a folder of .npy files, or a folder of shards

export interface HeadBatch {
  heads: HeadOutputs;
  imageIds?: ArrayLike<number | bigint>;
  gt?: ImageBoxes[];
  det?: ImageBoxes[];
  file: string;
  caseMeta?: Record<string, unknown>;
}

/** The shard files of a folder (.npz files, or sub-folders of .npy files), in name order. */
export function shardFiles(dir: string): string[] {
  const names = fs.readdirSync(dir).sort();
  const npz = names.filter((n) => n.endsWith(".npz")).map((n) => path.join(dir, n));
  const folders = names.map((n) => path.join(dir, n)).filter((p) => fs.statSync(p).isDirectory() && fs.readdirSync(p).some((f) => f.endsWith(".npy")));
  return [...npz, ...folders].sort();
}

/** True for a folder of shards (rather than one batch stored as .npy files). */
export function isShardFolder(dir: string): boolean {
  try {
    if (!fs.statSync(dir).isDirectory() || isCacheDir(dir)) return false;
    if (fs.readdirSync(dir).some((f) => f === "cls_logits.npy" || /^cls_p\d+\.npy$/.test(f))) return false;
    return shardFiles(dir).length > 0;
  } catch {
    return false;
  }
}

function boxesOf(arrays: ArrayMap, prefix: "gt" | "det"): ImageBoxes[] | undefined {
  if (!arrays.has(`${prefix}0_boxes`)) return undefined;
  const f32 = (a: NdArray) => (a.data instanceof Float32Array ? a.data : Float32Array.from(a.data as ArrayLike<number>));
  const out: ImageBoxes[] = [];
  for (let i = 0; arrays.has(`${prefix}${i}_boxes`); i++) {
    const scores = arrays.get(`${prefix}${i}_scores`);
    out.push({ boxes: f32(arrays.get(`${prefix}${i}_boxes`)!), labels: toInt32(arrays.get(`${prefix}${i}_labels`)!, `${prefix}${i}_labels`), ...(scores ? { scores: f32(scores) } : {}) });
  }
  return out;
}

/** Reads one batch of heads (an .npz or a folder of .npy files); errors name the file. */
export function readHeadBatch(file: string): HeadBatch {
  let arrays: ArrayMap;
  try {
    arrays = fs.statSync(file).isDirectory() ? readNpyFolder(file) : readNpz(file);
  } catch (e) {
    throw new CacheError(`Expected a whole shard of head outputs at ${file} but reading it failed: ${(e as Error).message}`, "ERR_RK_FILE");
  }
  const levels = [...arrays.keys()].filter((k) => /^cls_p\d+$/.test(k)).sort((a, b) => Number(a.slice(5)) - Number(b.slice(5)));
  const concat = arrays.has("cls_logits");
  if (!concat && levels.length === 0) throw new CacheError(`Expected cls_logits or cls_pL arrays in ${file} but received ${[...arrays.keys()].join(", ")}`, "ERR_RK_DATASET");
  const sizes = arrays.get("image_sizes");
  if (!sizes) throw new CacheError(`Expected image_sizes [N, 2] in ${file} but it is missing`, "ERR_RK_DATASET");
  const heads: HeadOutputs = {
    cls_logits: concat ? arrays.get("cls_logits")! : levels.map((k) => arrays.get(k)!),
    bbox_regression: concat ? arrays.get("bbox_regression")! : levels.map((k) => arrays.get(`box_p${k.slice(5)}`)!),
    image_sizes: sizes,
  };
  if (concat && arrays.has("feature_sizes")) heads.feature_sizes = arrays.get("feature_sizes");
  if (arrays.has("anchors")) heads.anchors = arrays.get("anchors");
  if (arrays.has("output_sizes")) heads.output_sizes = arrays.get("output_sizes");
  if (arrays.has("padded_size")) {
    const p = arrays.get("padded_size")!.data as ArrayLike<number>;
    heads.padded_size = [Number(p[0]), Number(p[1])];
  }
  const ids = arrays.get("image_ids");
  let caseMeta: Record<string, unknown> | undefined;
  const json = fs.statSync(file).isDirectory() ? path.join(file, "meta.json") : file.replace(/\.npz$/, ".json");
  if (json !== file && fs.existsSync(json)) {
    try {
      caseMeta = JSON.parse(fs.readFileSync(json, "utf8"));
    } catch (e) {
      throw new CacheError(`Expected JSON in ${json} (the case's parameters) but parsing failed: ${(e as Error).message}`, "ERR_RK_DATASET");
    }
  }
  return { heads, imageIds: ids ? (ids.data as ArrayLike<number | bigint>) : undefined, gt: boxesOf(arrays, "gt"), det: boxesOf(arrays, "det"), file, caseMeta };
}

export interface BuildProgress {
  update(done: number, note?: string): void;
}

/**
 * Builds a cache from heads: an .npz, a folder of .npy files, or a folder of shards read one at a
 * time (memory: one shard plus its candidates). Interrupted or failed builds leave nothing behind.
 */
export function buildCache(
  source: string,
  out: string,
  config: PostprocessConfig,
  bounds: CacheBounds,
  progress?: BuildProgress,
  stop?: { stopped: boolean },
  extra: { annotations?: string } = {},
): CacheMeta {
  const files = isShardFolder(source) ? shardFiles(source) : [source];
  if (!fs.existsSync(source)) throw new CacheError(`Expected head outputs (.npz, a folder of .npy files or a folder of shards) at ${source} but nothing is there`, "ERR_RK_FILE");
  const cfg = resolveConfig({ ...config, num_classes: null });
  const writer = new CacheWriter(out, cfg, bounds, source);
  try {
    let first: NormalizedHeads | undefined;
    let caseMeta: Record<string, unknown> | undefined;
    files.forEach((file, i) => {
      if (stop?.stopped) return;
      const batch = readHeadBatch(file);
      let heads: NormalizedHeads;
      try {
        heads = normalizeHeads(batch.heads, cfg);
      } catch (e) {
        throw new CacheError(`Expected head outputs of the ${cfg.preset} preset's shapes in ${file} but: ${(e as Error).message}`, "ERR_RK_DATASET");
      }
      if (first && (heads.numClasses !== first.numClasses || heads.layout !== first.layout || heads.dtype !== first.dtype)) {
        throw new CacheError(
          `Expected every shard of ${source} to have K = ${first.numClasses}, the ${first.layout} layout and ${first.dtype} (as ${files[0]}) but ${file} has K = ${heads.numClasses}, ${heads.layout}, ${heads.dtype}`,
          "ERR_RK_DATASET",
        );
      }
      first ??= heads;
      try {
        writer.addBatch(heads, { imageIds: batch.imageIds, gt: batch.gt, det: batch.det }, stop);
        if (i === 0 && files.length === 1) caseMeta = batch.caseMeta;
      } catch (e) {
        throw new CacheError(`${(e as Error).message} (shard ${file})`, (e as CacheError).code ?? "ERR_RK_CACHE");
      }
      progress?.update(i + 1, `${writer.imageCount} images, ${writer.candidateCount} candidates`);
    });
    if (stop?.stopped) {
      writer.abort();
      throw new CacheError(`Interrupted: the cache ${out} was not written (${writer.imageCount} images had been read)`, "ERR_RK_INTERRUPTED");
    }
    return writer.finish({ ...extra, caseMeta });
  } catch (e) {
    writer.abort();
    throw e;
  }
}

