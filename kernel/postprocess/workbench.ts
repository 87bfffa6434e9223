/**
 * The tuning workflow behind the magics, callable from cells too (`rk.workbench`): the session's
 * config and datasets, `optimize` (every available candidate checked against the reference and
 * timed; the fastest correct one kept), latency and detections reports, COCO evaluation, sweeps over
 * config keys with their Pareto front, and the saved artifact that a fresh kernel loads back.
 */
import { createHash } from "crypto";
import * as fs from "fs";
import * as path from "path";
import * as os from "os";

import { writeFileWhole } from "../files";
import { loadNative } from "../native";
import { compareDetections } from "./compare";
import { closest } from "../args";
import { changedKeys, CONFIG_KEYS, describe, resolveConfig } from "./config";
import { AnyDataset, CacheDataset, Dataset, isCacheDataset, loadDataset } from "./dataset";
import { buildCache, cacheBoxes, CandidateCache, checkConfigForCache, isCacheDir, isShardFolder, openCache } from "./cache";
import { runCache } from "./cache-run";
import { CocoDetections, CocoGroundTruth, readCocoAnnotations, writeCocoResults } from "../data/coco";
import { accumulateCoco, CocoMatching, matchCoco } from "../eval/coco";
import { labelMapFor } from "../eval/labels";
import { CocoMetrics, detectionsToCoco, isScoreCut, matchCocoArrays, metricsOf } from "./eval";
import { HeadOutputs, NormalizedHeads, normalizeHeads, toHalfHeads } from "./heads";
import { ndarray, NdArray } from "./ndarray";
import { availableBackends, BackendName, createPostprocessor, DeviceHeads, Postprocessor, PostprocessResult } from "./postprocessor";
import { pluginExport, PluginExport, runTensorrt, writePluginExport } from "./plugin";
import { PostprocessConfig, presets } from "./presets";
import { synthesize, synthesizeCache, SynthCacheOptions, SynthOptions } from "./synth";
import { chooseThresholds, parseKeep, parseTarget, ThresholdReport, TuneError, TuneLatencyReport, tuneLatency, withThresholds } from "./tune";
import { gtFromArrays } from "./eval";

const PACKAGE_VERSION: string = (() => {
  try {
    return JSON.parse(fs.readFileSync(`${__dirname}/../../../package.json`, "utf8")).version;
  } catch {
    return "unknown";
  }
})();

export class WorkflowError extends Error {
  constructor(
    message: string,
    readonly code = "ERR_RK_WORKFLOW",
  ) {
    super(message);
    this.name = "WorkflowError";
  }
}

/** An interrupt check the long loops call between steps (the kernel sets it on interrupt_request). */
export interface StopSignal {
  readonly stopped: boolean;
}
const NEVER: StopSignal = { stopped: false };

export interface Progress {
  update(done: number, note?: string): void;
  finish(note?: string): void;
}
const NO_PROGRESS: Progress = { update: () => undefined, finish: () => undefined };

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length === 0 ? NaN : s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

/** A value of `%config key=value` from its text: number, boolean, null, JSON list/object, or string. */
export function parseConfigValue(raw: string): unknown {
  const t = raw.trim();
  if (/^[+-]?(\d+\.?\d*(e[+-]?\d+)?|\.\d+(e[+-]?\d+)?)$/i.test(t)) return Number(t);
  if (t === "true" || t === "false") return t === "true";
  if (t === "null") return null;
  if (t.startsWith("[") || t.startsWith("{")) {
    try {
      // A map's label keys may be written bare ({3:0.6}): the magic line's quoting removes JSON's quotes.
      return JSON.parse(t.startsWith("{") ? t.replace(/([{,]\s*)(\d+)\s*:/g, '$1"$2":') : t);
    } catch {
      throw new WorkflowError(`Expected valid JSON for a list or map value (a map's keys may be bare labels: {3:0.6}) but received ${t}`, "ERR_RK_CONFIG");
    }
  }
  return t;
}

export interface OptimizeOptions {
  data?: string;
  backend?: "auto" | BackendName | "tensorrt";
  precision?: "fp32" | "fp16";
  batch?: number;
  iterations?: number;
}

export interface CandidateSpec {
  name: string;
  backend: BackendName | "tensorrt";
  precision: "fp32" | "fp16";
  threads?: number;
  graph?: boolean;
  deviceResident?: boolean;
  unavailable?: string;
}

export interface CandidateResult extends CandidateSpec {
  correct?: boolean;
  mismatch?: string;
  medianMs?: number;
  p90Ms?: number;
  speedup?: number;
  winner?: boolean;
}

export interface OptimizeReport {
  /** On a candidate cache: times are per image, correctness checked on the first `sample` images. */
  perImage?: boolean;
  sample?: number;
  dataset: string;
  images: number;
  rows: CandidateResult[];
  winner?: CandidateResult;
  postprocessor?: Postprocessor;
  artifact?: OptimizedArtifact;
  interrupted: boolean;
}

export interface OptimizedArtifact {
  format: "retinanet-kernel/optimized";
  version: 1;
  created: string;
  config: PostprocessConfig;
  backend: BackendName;
  precision: "fp32" | "fp16";
  threads?: number;
  graph?: boolean;
  versions: { package: string; addon?: string; node: string };
  parity: { dataset: string; images: number; checksum: string; medianMs: number };
  /** What chose this configuration (%tune's objective), when not %optimize. */
  source?: string;
  checksum: string;
}

export interface LatencyStats {
  runs: number;
  medianMs: number;
  p90Ms: number;
  minMs: number;
  computeMs: number;
  uploadMs: number;
  downloadMs: number;
  /** On cuda: the heads were read from their resident GPU copy; uploadMs is the one upload this call made (0: already resident). */
  resident?: { uploadMs: number };
  /** On cuda: why the dataset could not be made resident (e.g. out of GPU memory); the runs copied it in from host arrays. */
  residentSkipped?: string;
}

export interface SweepRow {
  values: Record<string, unknown>;
  medianMs: number;
  metric: number;
  detections: number;
  pareto?: boolean;
}

/** sha256 over the detections (counts, boxes, scores, labels): what "the same detections" pins. */
export function detectionsChecksum(r: PostprocessResult): string {
  const h = createHash("sha256");
  for (const d of r.detections) {
    h.update(Buffer.from(Int32Array.of(d.count).buffer));
    h.update(Buffer.from(d.boxes.buffer, d.boxes.byteOffset, d.boxes.byteLength));
    h.update(Buffer.from(d.scores.buffer, d.scores.byteOffset, d.scores.byteLength));
    h.update(Buffer.from(d.labels.buffer, d.labels.byteOffset, d.labels.byteLength));
  }
  return h.digest("hex");
}

function artifactChecksum(a: Omit<OptimizedArtifact, "checksum"> | OptimizedArtifact): string {
  const { checksum: _ignored, ...rest } = a as OptimizedArtifact;
  return createHash("sha256").update(JSON.stringify(rest)).digest("hex");
}

/** The saveable artifact of a configuration on a backend, with what it was checked and timed on. */
function makeArtifact(
  config: PostprocessConfig,
  run: { backend: BackendName; precision: "fp32" | "fp16"; threads?: number; graph?: boolean },
  parity: OptimizedArtifact["parity"],
  source?: string,
): OptimizedArtifact {
  const art: Omit<OptimizedArtifact, "checksum"> = {
    format: "retinanet-kernel/optimized",
    version: 1,
    created: new Date().toISOString(),
    config,
    backend: run.backend,
    precision: run.precision,
    ...(run.threads !== undefined ? { threads: run.threads } : {}),
    ...(run.graph !== undefined ? { graph: run.graph } : {}),
    versions: { package: PACKAGE_VERSION, addon: loadNative()?.buildInfo.version, node: process.version },
    parity,
    ...(source !== undefined ? { source } : {}),
  };
  return { ...art, checksum: artifactChecksum(art) };
}

/** The first `n` images of a dataset (views, no copy). */
export function sliceImages(ds: Dataset, n: number): HeadOutputs {
  const sizes = ds.image_sizes;
  const N = Array.isArray(sizes) ? sizes.length : (sizes as NdArray).shape[0];
  if (!Number.isInteger(n) || n < 1 || n > N) throw new WorkflowError(`Expected --batch in [1, ${N}] for dataset ${ds.name} but received ${n}`, "ERR_RK_MAGIC_ARGS");
  if (n === N) return ds;
  const cut = (a: NdArray): NdArray => {
    const per = a.data.length / a.shape[0];
    return ndarray(a.dtype, [n, ...a.shape.slice(1)], a.data.subarray(0, per * n) as never);
  };
  return {
    ...ds,
    cls_logits: Array.isArray(ds.cls_logits) ? ds.cls_logits.map(cut) : cut(ds.cls_logits),
    bbox_regression: Array.isArray(ds.bbox_regression) ? ds.bbox_regression.map(cut) : cut(ds.bbox_regression),
    image_sizes: Array.isArray(sizes) ? sizes.slice(0, n) : cut(sizes as NdArray),
    anchors: ds.anchors && ds.anchors.shape.length === 3 ? cut(ds.anchors) : ds.anchors,
    output_sizes: ds.output_sizes === undefined ? undefined : Array.isArray(ds.output_sizes) ? ds.output_sizes.slice(0, n) : cut(ds.output_sizes as NdArray),
  };
}

/** Bytes of device memory a set of uploaded heads holds. */
function deviceBytes(heads: DeviceHeads): number {
  return [...heads.cls, ...heads.box].reduce((sum, a) => sum + a.bytes, 0);
}

export class Workbench {
  /** Keys the user set (the preset among them); the config is the preset's defaults plus these. */
  private overrides: Record<string, unknown> = {};
  config: PostprocessConfig = resolveConfig({});
  readonly datasets = new Map<string, AnyDataset>();
  private lastDataset: string | undefined;
  /** Results of %optimize by name (the bound variable's name). */
  readonly optimized = new Map<string, { postprocessor: Postprocessor; report: OptimizeReport }>();
  lastOptimized: string | undefined;
  /** The last %tune's report (latency search or per-class thresholds). */
  lastTune: TuneLatencyReport | ThresholdReport | undefined;
  /** The last %tune --objective latency report, if the last %tune was one. */
  get lastTuneLatency(): TuneLatencyReport | undefined {
    return this.lastTune && "winner" in this.lastTune ? this.lastTune : undefined;
  }
  /** The last %tune thresholds report, if the last %tune was one. */
  get lastTuneThresholds(): ThresholdReport | undefined {
    return this.lastTune && "perClass" in this.lastTune ? this.lastTune : undefined;
  }
  /** The last %sweep's rows (values, time, metric, detections, Pareto mark), for picking a point in code. */
  lastSweep: { dataset: string; metric: string; rows: SweepRow[]; interrupted: boolean } | undefined;

  /** Sets config keys; validated as a whole first, so a bad value changes nothing. */
  setConfig(values: Record<string, unknown>): { before: PostprocessConfig; after: PostprocessConfig; changed: string[] } {
    for (const k of Object.keys(values)) {
      if (!(CONFIG_KEYS as string[]).includes(k)) {
        const near = closest(k, CONFIG_KEYS as string[]);
        throw new WorkflowError(`Expected a config key (${CONFIG_KEYS.join(", ")}) but received ${JSON.stringify(k)}${near ? `: did you mean ${near}?` : ""}`, "ERR_RK_CONFIG");
      }
    }
    const overrides = { ...this.overrides, ...values };
    const after = resolveConfig(overrides); // throws with the field's name; nothing changed then
    const before = this.config;
    this.overrides = overrides;
    this.config = after;
    const changed = CONFIG_KEYS.filter((k) => JSON.stringify(before[k]) !== JSON.stringify(after[k]));
    return { before, after, changed };
  }

  resetConfig(): void {
    this.overrides = {};
    this.config = resolveConfig({});
  }

  /** Rows of the config table: key, value, the preset's default, and whether it differs. */
  configRows(): { key: string; value: unknown; preset: unknown; changed: boolean }[] {
    const base = presets[this.config.preset] as unknown as Record<string, unknown>;
    const changed = new Set<string>(changedKeys(this.config));
    return CONFIG_KEYS.map((k) => ({ key: k, value: this.config[k], preset: base[k], changed: changed.has(k) }));
  }

  addDataset<T extends AnyDataset>(name: string, ds: T): T {
    if (!/^[A-Za-z_][\w-]*$/.test(name)) throw new WorkflowError(`Expected a dataset name of letters, digits, _ or - but received ${JSON.stringify(name)}`, "ERR_RK_MAGIC_ARGS");
    ds.name = name;
    const replaced = this.datasets.get(name);
    if (replaced !== undefined && replaced !== ds) this.releaseResident(replaced);
    this.datasets.set(name, ds);
    this.lastDataset = name;
    return ds;
  }

  /**
   * Loads heads; with `annotations`, binds COCO ground truth by image id: the heads' `image_ids`
   * array when the file has one, else the first images of the annotation file in its order (said in
   * `coco.idSource`). Labels map to categories by the session preset's convention unless `labelMap`.
   */
  load(
    name: string,
    path: string,
    options: { annotations?: string; images?: string; labelMap?: Record<number, number>; minScore?: number; maxTopk?: number; progress?: Progress; stop?: StopSignal } = {},
  ): AnyDataset {
    if (options.images !== undefined && !options.annotations) throw new WorkflowError(`Expected --annotations with --images (the image files are found by the annotations' file_name) but received --images ${options.images} alone`, "ERR_RK_MAGIC_ARGS");
    if (options.images !== undefined && !fs.existsSync(options.images)) throw new WorkflowError(`Expected a folder of images for --images but ${options.images} does not exist`, "ERR_RK_DATASET");
    const isCache = isCacheDir(path);
    if ((options.minScore !== undefined || options.maxTopk !== undefined) && !isShardFolder(path)) {
      const what = isCache ? "a candidate cache, whose bounds were set when it was built (retinanet-kernel cache --min-score --max-topk builds another)" : "one batch of heads";
      throw new WorkflowError(`Expected a folder of shards for --min-score / --max-topk (they set the bounds of the candidate cache built from it) but ${path} is ${what}`, "ERR_RK_MAGIC_ARGS");
    }
    let ds: AnyDataset;
    if (isCache) {
      ds = this.cacheDataset(name, openCache(path));
    } else if (isShardFolder(path)) {
      ds = this.cacheDataset(name, this.cacheShards(path, options));
    } else {
      ds = loadDataset(path, { name });
    }
    if (options.annotations) this.bindCoco(ds, options.annotations, options.labelMap);
    if (options.images !== undefined) ds.coco!.imagesDir = options.images;
    return this.addDataset(name, ds);
  }

  /** A cache as a dataset: its gt and det columns as box sets; the session preset must be the cache's. */
  private cacheDataset(name: string, cache: CandidateCache): CacheDataset {
    const preset = cache.meta.config.preset;
    if (preset !== this.config.preset) {
      throw new WorkflowError(`Expected a candidate cache built for the session preset ${this.config.preset} but ${cache.dir} was built for ${preset}: %config preset=${preset} first, or rebuild the cache`, "ERR_RK_CACHE");
    }
    return { kind: "cache", name, source: cache.dir, cache, gt: cacheBoxes(cache, "gt"), expected: cacheBoxes(cache, "det"), meta: cache.meta.case };
  }

  /**
   * The candidate cache of a folder of shards, built on the fly beside it (FOLDER.cache) with bounds
   * that serve the session config (min_score <= score_thresh, max_topk >= topk_candidates), or
   * reused when one built from the same folder with such bounds is there.
   */
  private cacheShards(dir: string, options: { minScore?: number; maxTopk?: number; progress?: Progress; stop?: StopSignal }): CandidateCache {
    const minScore = options.minScore ?? Math.min(0.05, this.config.score_thresh);
    const maxTopk = options.maxTopk ?? Math.max(1000, this.config.topk_candidates);
    const target = `${dir.replace(/[/\\]+$/, "")}.cache`;
    if (isCacheDir(target)) {
      try {
        const c = openCache(target);
        if (c.meta.source.path === dir && c.meta.min_score <= minScore && c.meta.max_topk >= maxTopk && c.meta.config.preset === this.config.preset) return c;
      } catch {
        /* rebuilt below */
      }
    }
    const files = require("./cache").shardFiles(dir) as string[];
    const progress = options.progress ?? NO_PROGRESS;
    buildCache(dir, target, this.config, { minScore, maxTopk }, { update: (done, note) => progress.update(done, note) }, options.stop);
    progress.finish(`${files.length} shards cached in ${target}`);
    return openCache(target);
  }

  /** The image file of a dataset image (from the bound annotations' file_name under --images), if there is one. */
  imageFile(ds: AnyDataset, index: number): string | undefined {
    const coco = ds.coco;
    if (!coco?.imagesDir) return undefined;
    const im = coco.gt.images.find((x) => x.id === coco.imageIds[index]);
    if (!im?.file_name) return undefined;
    const file = path.join(coco.imagesDir, im.file_name);
    return fs.existsSync(file) ? file : undefined;
  }

  /** Binds a COCO annotation file to a dataset's images (see load). */
  bindCoco<T extends AnyDataset>(ds: T, annotations: string, labelMap?: Record<number, number>): T {
    const gt = readCocoAnnotations(annotations);
    const { batch: n, imageSizes: sizes } = this.shapesOf(ds);
    const idsData = isCacheDataset(ds) ? ds.cache.imageIds : ds.arrays.get("image_ids")?.data;
    let imageIds: number[];
    let idSource: "image_ids" | "order";
    if (idsData) {
      imageIds = Array.from(idsData as ArrayLike<number | bigint>, (v) => Number(v));
      if (imageIds.length !== n) throw new WorkflowError(`Expected image_ids in ${ds.source} to hold one id per image (${n}) but it holds ${imageIds.length}`, "ERR_RK_DATASET");
      idSource = "image_ids";
    } else {
      if (gt.images.length < n) throw new WorkflowError(`Expected at least ${n} images in ${annotations} (one per image of ${ds.name}, in order, as the heads carry no image_ids) but it has ${gt.images.length}`, "ERR_RK_DATASET");
      imageIds = gt.images.slice(0, n).map((im) => im.id);
      idSource = "order";
    }
    const known = new Set(gt.images.map((im) => im.id));
    const missing = imageIds.find((id) => !known.has(id));
    if (missing !== undefined) throw new WorkflowError(`Expected every image id of ${ds.name} in ${annotations} but image id ${missing} is not there`, "ERR_RK_DATASET");
    // Detections are compared with ground truth in the original image's pixels, as the frameworks
    // report them: the f32 ratios from the heads' image sizes to the annotations' width and height.
    const byId = new Map(gt.images.map((im) => [im.id, im]));
    const scale = imageIds.map((id, i): [number, number] | undefined => {
      const im = byId.get(id);
      const h = sizes[2 * i], w = sizes[2 * i + 1];
      if (!im?.width || !im?.height || (im.width === w && im.height === h)) return undefined;
      return [Math.fround(Math.fround(im.width) / Math.fround(w)), Math.fround(Math.fround(im.height) / Math.fround(h))];
    });
    ds.coco = { file: annotations, gt, imageIds, idSource, labels: labelMapFor(this.config.preset ?? "torchvision", gt.categories.map((c) => c.id), labelMap), scale };
    return ds;
  }

  synth(name: string, options: SynthOptions): Dataset {
    return this.addDataset(name, synthesize({ ...options, name, config: { preset: this.config.preset } }));
  }

  /** A synthetic validation set of any size written to a candidate cache folder, then loaded. */
  synthCache(name: string, dir: string, options: SynthCacheOptions, progress: Progress = NO_PROGRESS, stop: StopSignal = NEVER): CacheDataset {
    const total = options.images ?? 100;
    synthesizeCache(dir, { ...options, config: { preset: this.config.preset }, progress: (done) => progress.update(done, `${done} of ${total} images`), stop });
    progress.finish(`${total} images written to ${dir}`);
    return this.addDataset(name, this.cacheDataset(name, openCache(dir)));
  }

  /** Images, class count, level shapes and image sizes of a dataset (a cache: of its first image). */
  shapesOf(ds: AnyDataset): NormalizedHeads {
    if (!isCacheDataset(ds)) return normalizeHeads(ds, resolveConfig({ ...this.config, num_classes: null }));
    const c = ds.cache;
    const L = c.meta.levels;
    const featureSizes: [number, number][] = [];
    for (let l = 0; l < L; l++) featureSizes.push([c.featureSizes[2 * l], c.featureSizes[2 * l + 1]]);
    return {
      layout: c.meta.source.layout as NormalizedHeads["layout"],
      dtype: c.meta.source.dtype as NormalizedHeads["dtype"],
      batch: c.meta.images,
      numClasses: c.meta.num_classes,
      anchorsPerLocation: c.meta.anchors_per_location,
      featureSizes,
      paddedSize: [c.paddedSizes[0], c.paddedSizes[1]],
      cls: [],
      box: [],
      anchorsPerImage: false,
      imageSizes: c.imageSizes,
      ...(c.outputSizes ? { outputSizes: c.outputSizes } : {}),
    };
  }

  dataset(name?: string): AnyDataset {
    const key = name ?? this.lastDataset;
    if (key === undefined) throw new WorkflowError("Expected a dataset but none is loaded: use %load NAME PATH or %synth NAME first", "ERR_RK_DATASET");
    const ds = this.datasets.get(key);
    if (!ds) {
      const near = closest(key, [...this.datasets.keys()]);
      throw new WorkflowError(`Expected a loaded dataset (${[...this.datasets.keys()].join(", ") || "none"}) for --data but received ${JSON.stringify(key)}${near ? `: did you mean ${near}?` : ""}`, "ERR_RK_DATASET");
    }
    return ds;
  }

  datasetRows(): { name: string; images: number; layout: string; dtype: string; classes: number; levels: string; mb: number; gpuMb: number; gt: boolean; expected: boolean; source: string; candidates?: number; bounds?: string }[] {
    return [...this.datasets.values()].map((ds) => {
      const h = this.shapesOf(ds);
      const cache = isCacheDataset(ds) ? ds.cache : undefined;
      const arrays: (ArrayBufferView | undefined)[] = cache
        ? [cache.offsets, cache.rows, cache.labels, cache.values, cache.deltas, cache.anchors, cache.imageSizes, cache.paddedSizes, cache.featureSizes, cache.imageIds]
        : [...h.cls, ...h.box];
      const bytes = arrays.reduce((sum, a) => sum + (a?.byteLength ?? 0), 0);
      return {
        name: ds.name,
        images: h.batch,
        layout: cache ? `cache (${h.layout})` : h.layout,
        dtype: h.dtype,
        classes: h.numClasses,
        levels: h.featureSizes.map(([a, b]) => `${a}x${b}`).join(" "),
        mb: bytes / 1e6,
        gpuMb: this.residentBytes(ds) / 1e6,
        gt: !!ds.gt || !!ds.coco,
        expected: !!ds.expected,
        source: ds.source,
        ...(cache ? { candidates: cache.meta.candidates, bounds: `score_thresh >= ${cache.meta.min_score}, topk_candidates <= ${cache.meta.max_topk}` } : {}),
      };
    });
  }

  /** The candidates this machine can build for the options (and the ones it cannot, with why). */
  candidates(options: OptimizeOptions = {}): CandidateSpec[] {
    const want = options.backend ?? "auto";
    const { available, unavailable } = availableBackends();
    const precisions: ("fp32" | "fp16")[] = options.precision ? [options.precision] : ["fp32"];
    const out: CandidateSpec[] = [];
    const cores = os.availableParallelism();
    for (const precision of precisions) {
      if (want === "auto" || want === "cpu") {
        if (available.includes("cpu")) {
          for (const threads of [...new Set([1, cores])]) out.push({ name: `cpu ${threads}T ${precision}`, backend: "cpu", precision, threads });
        } else out.push({ name: `cpu ${precision}`, backend: "cpu", precision, unavailable: unavailable.cpu ?? "not available" });
      }
      if (want === "auto" || want === "cuda") {
        if (available.includes("cuda")) {
          out.push({ name: `cuda graph ${precision}`, backend: "cuda", precision, graph: true });
          out.push({ name: `cuda no-graph ${precision}`, backend: "cuda", precision, graph: false });
          out.push({ name: `cuda device-resident ${precision}`, backend: "cuda", precision, graph: true, deviceResident: true });
        } else out.push({ name: `cuda ${precision}`, backend: "cuda", precision, unavailable: unavailable.cuda ?? "not available" });
      }
      if (want === "auto" || want === "tensorrt") {
        const trt = loadNative()?.buildInfo.tensorrt;
        out.push({ name: `tensorrt ${precision}`, backend: "tensorrt", precision, ...(trt?.compiled ? {} : { unavailable: `no TensorRT plugins in this build: ${trt?.reason ?? "the native addon is not loaded"}` }) });
      }
      if (want === "auto" || want === "js") out.push({ name: `js ${precision}`, backend: "js", precision });
    }
    return out;
  }

  /**
   * Writes the current configuration as TensorRT plugin fields for the dataset's shapes (FILE.json)
   * and the Python script that adds the plugin node to an ONNX model (FILE.py).
   */
  exportPlugin(file: string, options: { data?: string; batch?: number; kind?: "postprocess" | "decode" | "nms" } = {}): { json: string; script: string; spec: PluginExport } {
    const ds = this.dataset(options.data);
    let data: HeadOutputs | NormalizedHeads;
    if (isCacheDataset(ds)) {
      // A cache: the shapes of its first image, for a batch of --batch (default 1) such images.
      const h = this.shapesOf(ds);
      const batch = options.batch ?? 1;
      if (!Number.isInteger(batch) || batch < 1) throw new WorkflowError(`Expected --batch >= 1 for dataset ${ds.name} but received ${batch}`, "ERR_RK_MAGIC_ARGS");
      data = { ...h, batch, imageSizes: Int32Array.from({ length: 2 * batch }, (_, i) => h.imageSizes[i % 2]) };
    } else {
      data = options.batch === undefined ? ds : sliceImages(ds, options.batch);
    }
    const spec = pluginExport(this.config, data, options.kind ?? "postprocess");
    return { ...writePluginExport(file, spec), spec };
  }

  /** Builds, checks and times every candidate on the dataset; keeps the fastest correct one. */
  async optimize(options: OptimizeOptions = {}, progress: Progress = NO_PROGRESS, stop: StopSignal = NEVER): Promise<OptimizeReport> {
    const iterations = options.iterations ?? 20;
    if (!Number.isInteger(iterations) || iterations < 1 || iterations > 100000) throw new WorkflowError(`Expected an integer in [1, 100000] for --iterations but received ${describe(iterations)}`, "ERR_RK_MAGIC_ARGS");
    const ds = this.dataset(options.data);
    if (isCacheDataset(ds)) return this.optimizeCache(ds, options, progress, stop);
    const data = options.batch === undefined ? ds : sliceImages(ds, options.batch);
    const config = this.config;
    const heads32 = normalizeHeads(data, config);
    const cands = this.candidates(options);
    const runnable = cands.filter((c) => !c.unavailable);
    if (runnable.length === 0) throw new WorkflowError(`Expected at least one available backend for --backend ${options.backend} but none is: ${cands.map((c) => `${c.name}: ${c.unavailable}`).join("; ")}`, "ERR_RK_UNAVAILABLE");
    // The reference: the TypeScript stages on the same values (fp16: on the widened halves).
    const reference = new Map<string, PostprocessResult>();
    const headsFor = (p: "fp32" | "fp16") => (p === "fp16" ? toHalfHeads(heads32) : heads32);
    const js = createPostprocessor(config, { backend: "js" });
    for (const p of new Set(runnable.map((c) => c.precision))) reference.set(p, js.runSync(headsFor(p)));
    const rows: CandidateResult[] = cands.map((c) => ({ ...c }));
    const built = new Map<CandidateResult, Postprocessor>();
    let done = 0;
    let interrupted = false;
    const total = runnable.length;
    progress.update(0, "reference done");
    for (const row of rows) {
      if (row.unavailable) continue;
      if (stop.stopped) {
        interrupted = true;
        break;
      }
      const heads = headsFor(row.precision);
      if (row.backend === "tensorrt") {
        // A TensorRT engine around the plugin: checked and timed (GPU time of enqueueV3), not bindable.
        try {
          const r = runTensorrt(config, heads, iterations + 1);
          const parity = compareDetections(r.detections, reference.get(row.precision)!.detections.map((d) => ({ boxes: d.boxes, scores: d.scores, labels: d.labels })));
          row.correct = parity.ok;
          if (!parity.ok) row.mismatch = parity.images.find((i) => !i.ok)?.mismatch;
          const times = r.timesMs.slice(1);
          row.medianMs = median(times);
          row.p90Ms = percentile(times, 90);
          progress.update(++done, row.name);
        } catch (e) {
          row.unavailable = (e as Error).message;
        }
        continue;
      }
      const pp = createPostprocessor(config, { backend: row.backend as BackendName, threads: row.threads, graph: row.graph });
      // Device-resident rows read the dataset's resident GPU copy (uploaded once, kept for later
      // calls); a --batch slice is uploaded for this call and freed after it.
      const keep = row.deviceResident && data === ds;
      const input = !row.deviceResident ? heads : keep ? this.residentHeads(pp, ds, heads).heads : pp.upload(heads);
      try {
        const first = await pp.run(input);
        const ref = reference.get(row.precision)!;
        const parity = compareDetections(first.detections, ref.detections.map((d) => ({ boxes: d.boxes, scores: d.scores, labels: d.labels })));
        row.correct = parity.ok;
        if (!parity.ok) row.mismatch = parity.images.find((i) => !i.ok)?.mismatch;
        const n = row.backend === "js" ? Math.min(iterations, 3) : iterations;
        const times: number[] = [];
        for (let i = 0; i < n && !stop.stopped; i++) {
          const r = await pp.run(input);
          times.push(r.timings.totalMs);
        }
        if (times.length > 0) {
          row.medianMs = median(times);
          row.p90Ms = percentile(times, 90);
        }
      } finally {
        if (row.deviceResident && !keep && "free" in input) (input as { free(): void }).free();
      }
      built.set(row, pp);
      progress.update(++done, row.name);
    }
    progress.finish(interrupted ? `interrupted after ${done} of ${total}` : `${done} candidates`);
    const jsRow = rows.find((r) => r.backend === "js" && r.medianMs !== undefined);
    for (const r of rows) if (r.medianMs !== undefined && jsRow?.medianMs) r.speedup = jsRow.medianMs / r.medianMs;
    // The bound winner must be a Postprocessor: device-resident and TensorRT rows are timed, not bound.
    const correct = rows.filter((r) => r.correct && r.medianMs !== undefined && !r.deviceResident && r.backend !== "tensorrt");
    correct.sort((a, b) => a.medianMs! - b.medianMs!);
    const winner = correct[0];
    for (const [row, pp] of built) if (row !== winner) await pp.dispose();
    const report: OptimizeReport = { dataset: ds.name, images: heads32.batch, rows, winner, interrupted };
    if (winner) {
      winner.winner = true;
      report.postprocessor = built.get(winner);
      const ref = reference.get(winner.precision)!;
      report.artifact = makeArtifact(
        config,
        { backend: winner.backend as BackendName, precision: winner.precision, threads: winner.threads, graph: winner.graph },
        { dataset: ds.name, images: heads32.batch, checksum: detectionsChecksum(ref), medianMs: winner.medianMs! },
      );
    }
    return report;
  }

  /** The candidates %optimize runs on a candidate cache: the CPU core's thread counts and js. */
  cacheCandidates(options: OptimizeOptions = {}): CandidateSpec[] {
    const want = options.backend ?? "auto";
    const { available } = availableBackends();
    const cores = os.availableParallelism();
    const cands: CandidateSpec[] = [];
    if ((want === "auto" || want === "cpu" || want === "cuda") && available.includes("cpu")) {
      for (const threads of [...new Set([1, cores])]) cands.push({ name: `cpu ${threads}T (cache)`, backend: "cpu", precision: "fp32", threads });
    }
    if (want === "auto" || want === "cuda") {
      if (available.includes("cuda")) cands.push({ name: "cuda (cache)", backend: "cuda", precision: "fp32" });
      else if (want === "cuda") cands.push({ name: "cuda (cache)", backend: "cuda", precision: "fp32", unavailable: availableBackends().unavailable.cuda ?? "no CUDA device" });
    }
    if (want === "tensorrt") cands.push({ name: "tensorrt (cache)", backend: "tensorrt", precision: "fp32", unavailable: "a TensorRT engine reads head tensors, not a candidate cache: %optimize on the heads" });
    if (want === "auto" || want === "js") cands.push({ name: "js (cache)", backend: "js", precision: "fp32" });
    return cands;
  }

  /**
   * %optimize on a candidate cache: each CPU candidate (and js) is checked against the reference on
   * a sample of images (--batch, default 64), then timed on every image of the cache (the stages
   * after selection: what differs between configs on a cache). Times are per image.
   */
  private async optimizeCache(ds: CacheDataset, options: OptimizeOptions, progress: Progress, stop: StopSignal): Promise<OptimizeReport> {
    const config = this.config;
    checkConfigForCache(config, ds.cache);
    const images = ds.cache.meta.images;
    const sample = Math.min(options.batch ?? 64, images);
    const cands = this.cacheCandidates(options);
    const rows: CandidateResult[] = cands.map((c) => ({ ...c }));
    const js = createPostprocessor(config, { backend: "js" });
    const reference = await runCache(js, ds.cache, { end: sample, stop });
    const built = new Map<CandidateResult, Postprocessor>();
    let done = 0;
    let interrupted = reference.interrupted;
    for (const row of rows) {
      if (row.unavailable) continue;
      if (stop.stopped) {
        interrupted = true;
        break;
      }
      const pp = createPostprocessor(config, { backend: row.backend as BackendName, threads: row.threads });
      const first = await runCache(pp, ds.cache, { end: sample, stop });
      const parity = compareDetections(first.detections, reference.detections.map((d) => ({ boxes: d.boxes, scores: d.scores, labels: d.labels })));
      row.correct = parity.ok && !first.interrupted;
      if (!parity.ok) row.mismatch = parity.images.find((i) => !i.ok)?.mismatch;
      // Timed on every image (js: on the sample, as it is slow), one pass: per-image time.
      const timed = row.backend === "js" ? first : await runCache(pp, ds.cache, { stop });
      if (!timed.interrupted) {
        row.medianMs = timed.timings.totalMs / timed.detections.length;
        row.p90Ms = row.medianMs;
      } else interrupted = true;
      built.set(row, pp);
      progress.update(++done, row.name);
    }
    progress.finish(interrupted ? `interrupted after ${done} candidates` : `${done} candidates; checked on ${sample} images, timed on ${images}`);
    const jsRow = rows.find((r) => r.backend === "js" && r.medianMs !== undefined);
    for (const r of rows) if (r.medianMs !== undefined && jsRow?.medianMs) r.speedup = jsRow.medianMs / r.medianMs;
    const correct = rows.filter((r) => r.correct && r.medianMs !== undefined).sort((a, b) => a.medianMs! - b.medianMs!);
    const winner = correct[0];
    for (const [row, pp] of built) if (row !== winner) await pp.dispose();
    await js.dispose();
    const report: OptimizeReport = { dataset: ds.name, images, rows, winner, interrupted, perImage: true, sample };
    if (winner) {
      winner.winner = true;
      report.postprocessor = built.get(winner);
      report.artifact = makeArtifact(
        config,
        { backend: winner.backend as BackendName, precision: winner.precision, threads: winner.threads },
        { dataset: ds.name, images: sample, checksum: detectionsChecksum(reference), medianMs: winner.medianMs! },
      );
    }
    return report;
  }

  /**
   * Detections and timing of a postprocessor on a dataset: heads, `iterations` timed runs after a
   * warm-up; a candidate cache, one pass over every image (the stages after selection).
   */
  async runDataset(pp: Postprocessor, ds: AnyDataset, iterations = 20, stop: StopSignal = NEVER, progress?: Progress): Promise<{ stats: LatencyStats; result: PostprocessResult; perImage: boolean }> {
    if (!isCacheDataset(ds)) return { ...(await this.latency(pp, ds, iterations, stop)), perImage: false };
    const r = await runCache(pp, ds.cache, { stop, progress: progress ? (done) => progress.update(done) : undefined });
    progress?.finish(r.interrupted ? "interrupted" : `${r.detections.length} images`);
    if (r.interrupted) throw Object.assign(new Error("Interrupted by the user"), { name: "KeyboardInterrupt" });
    const per = r.timings.totalMs / r.detections.length;
    return { stats: { runs: 1, medianMs: per, p90Ms: per, minMs: per, computeMs: r.timings.computeMs / r.detections.length, uploadMs: 0, downloadMs: 0 }, result: r, perImage: true };
  }

  /**
   * Heads of loaded datasets resident in GPU memory: uploaded once per dataset, device and form of
   * the heads (dtype, layout, shapes), then read in place by %run, %sweep, %tune and %optimize on
   * cuda instead of being copied in at every call. Freed when the dataset is replaced under its
   * name, or by releaseResident().
   */
  private readonly resident = new Map<object, Map<string, { heads: DeviceHeads; uploadMs: number }>>();

  /** The resident copy of `heads` (normalized from the loaded dataset `owner`) on pp's device, uploaded on first use. */
  residentHeads(pp: Postprocessor, owner: object, heads: NormalizedHeads): { heads: DeviceHeads; uploadMs: number; uploaded: boolean } {
    const key = JSON.stringify([pp.device, heads.dtype, heads.layout, heads.batch, heads.numClasses, heads.anchorsPerLocation, heads.featureSizes, heads.paddedSize]);
    let forOwner = this.resident.get(owner);
    const have = forOwner?.get(key);
    if (have) return { ...have, uploaded: false };
    const t0 = performance.now();
    const dev = pp.upload(heads);
    const entry = { heads: dev, uploadMs: performance.now() - t0 };
    if (!forOwner) this.resident.set(owner, (forOwner = new Map()));
    forOwner.set(key, entry);
    return { ...entry, uploaded: true };
  }

  /** Frees the GPU copies of one dataset's heads (or of every dataset); returns how many bytes were held. */
  releaseResident(owner?: object): number {
    let bytes = 0;
    for (const [o, entries] of [...this.resident]) {
      if (owner !== undefined && o !== owner) continue;
      for (const { heads } of entries.values()) {
        bytes += deviceBytes(heads);
        heads.free();
      }
      this.resident.delete(o);
    }
    return bytes;
  }

  /** Bytes of GPU memory the resident copies hold (of one dataset, or of all). */
  residentBytes(owner?: object): number {
    let bytes = 0;
    for (const [o, entries] of this.resident) {
      if (owner !== undefined && o !== owner) continue;
      for (const { heads } of entries.values()) bytes += deviceBytes(heads);
    }
    return bytes;
  }

  /** Whether `data` is a loaded dataset (whose heads may stay resident on the GPU). */
  private isLoaded(data: object): boolean {
    for (const ds of this.datasets.values()) if (ds === data) return true;
    return false;
  }

  /**
   * Latency of a postprocessor on a dataset: warm-up, then `iterations` timed runs. On cuda, a loaded
   * dataset's heads are read from their resident GPU copy (uploaded once; `stats.resident.uploadMs` is
   * that upload when this call made it, else 0), so the times are those of the stages. When the copy
   * cannot be made (out of GPU memory), the runs copy the heads in from host arrays and
   * `stats.residentSkipped` says why.
   */
  async latency(pp: Postprocessor, data: HeadOutputs, iterations = 20, stop: StopSignal = NEVER): Promise<{ stats: LatencyStats; result: PostprocessResult }> {
    const host = pp.prepare(data);
    let heads: NormalizedHeads | DeviceHeads = host;
    let resident: { uploadMs: number; uploaded: boolean } | undefined;
    let residentSkipped: string | undefined;
    if (pp.backend === "cuda" && this.isLoaded(data)) {
      try {
        const r = this.residentHeads(pp, data, host);
        heads = r.heads;
        resident = r;
      } catch (e) {
        residentSkipped = (e as Error).message;
      }
    }
    let result = await pp.run(heads);
    const total: number[] = [], compute: number[] = [], up: number[] = [], down: number[] = [];
    for (let i = 0; i < iterations && !stop.stopped; i++) {
      result = await pp.run(heads);
      total.push(result.timings.totalMs);
      compute.push(result.timings.computeMs);
      up.push(result.timings.uploadMs);
      down.push(result.timings.downloadMs);
    }
    const stats: LatencyStats = { runs: total.length, medianMs: median(total), p90Ms: percentile(total, 90), minMs: Math.min(...total), computeMs: median(compute), uploadMs: median(up), downloadMs: median(down) };
    if (resident) stats.resident = { uploadMs: resident.uploaded ? resident.uploadMs : 0 };
    if (residentSkipped !== undefined) stats.residentSkipped = residentSkipped;
    return { stats, result };
  }

  /**
   * COCO metrics of a result (pycocotools' numbers): against the bound COCO annotations when the
   * dataset has them (only its own images), else against its gt{i}_* arrays.
   */
  evaluate(ds: AnyDataset, result: PostprocessResult): CocoMetrics {
    const { matching, unmapped } = this.matchResult(ds, result);
    return metricsOf(accumulateCoco(matching), unmapped === undefined ? {} : { unmapped });
  }

  /** Throws unless the dataset has ground truth to evaluate against (its gt arrays or bound COCO annotations). */
  requireGroundTruth(ds: AnyDataset): void {
    if (!ds.gt && !ds.coco) throw new WorkflowError(`Expected ground truth (gt{i}_boxes, gt{i}_labels, or %load --annotations GT.json) in dataset ${ds.name} for --eval but it has none`, "ERR_RK_DATASET");
  }

  /** The COCO matching of a result (what evaluate() accumulates), and the detections no category takes. */
  matchResult(ds: AnyDataset, result: PostprocessResult): { matching: CocoMatching; unmapped?: number } {
    if (ds.coco) {
      const { dt, unmapped } = this.cocoDetections(ds, result);
      return { matching: matchCoco(ds.coco.gt, dt, { imgIds: ds.coco.imageIds }), unmapped };
    }
    this.requireGroundTruth(ds);
    return { matching: matchCocoArrays(result.detections.map((d, i) => ({ gt: ds.gt![i], dt: { boxes: d.boxes, scores: d.scores, labels: d.labels } }))) };
  }

  /** A result as COCO detections: image ids and categories from the bound annotations, else 1..N and the labels. */
  cocoDetections(ds: AnyDataset, result: PostprocessResult): { dt: CocoDetections; unmapped: number } {
    const coco = ds.coco;
    const ids = coco?.imageIds ?? result.detections.map((_, i) => i + 1);
    return detectionsToCoco(result.detections, ids, coco ? (l) => coco.labels.category(l) : undefined, coco?.scale);
  }


  /** Writes a result as a COCO results file (whole or not at all); returns how many detections it holds. */
  saveResults(ds: AnyDataset, result: PostprocessResult, file: string, what = "file"): { count: number; unmapped: number } {
    const { dt, unmapped } = this.cocoDetections(ds, result);
    writeCocoResults(file, dt, what);
    return { count: dt.count, unmapped };
  }

  /**
   * The grid of a sweep: every combination of the given values of config keys, each point checked
   * as a config and, with a candidate cache as `data`, as one the cache serves exactly (before any runs).
   */
  sweepGrid(axes: Record<string, unknown[]>, data?: AnyDataset): Record<string, unknown>[] {
    let grid: Record<string, unknown>[] = [{}];
    for (const [key, values] of Object.entries(axes)) {
      if (!(CONFIG_KEYS as string[]).includes(key)) {
        const near = closest(key, CONFIG_KEYS as string[]);
        throw new WorkflowError(`Expected a config key to sweep but received ${JSON.stringify(key)}${near ? `: did you mean ${near}?` : ""}`, "ERR_RK_MAGIC_ARGS");
      }
      if (values.length === 0) throw new WorkflowError(`Expected at least one value for ${key}`, "ERR_RK_MAGIC_ARGS");
      grid = grid.flatMap((g) => values.map((v) => ({ ...g, [key]: v })));
    }
    if (grid.length > 10000) throw new WorkflowError(`Expected at most 10000 grid points but the sweep has ${grid.length}`, "ERR_RK_MAGIC_ARGS");
    // Validate every point before running any.
    for (const g of grid) {
      const config = resolveConfig({ ...this.overrides, ...g });
      if (data && isCacheDataset(data)) checkConfigForCache(config, data.cache);
    }
    return grid;
  }

  /**
   * Runs every grid point (latency and metric); rows done so far are kept when stopped.
   *
   * Points that differ only in score_thresh share their COCO matching: they run in ascending
   * score_thresh, and when a point's detections are, image by image, exactly those of a lower
   * threshold's point scoring above its threshold (checked on the arrays, bit for bit), its metrics
   * are accumulated from that point's matching instead of matching again (evalShared counts them).
   * Every point still runs, for its latency and for that check; rows come back in grid order.
   */
  async sweep(axes: Record<string, unknown[]>, options: { data?: string; metric?: string; iterations?: number; backend?: BackendName | "auto"; shareMatching?: boolean } = {}, progress: Progress = NO_PROGRESS, stop: StopSignal = NEVER): Promise<{ rows: SweepRow[]; metric: string; interrupted: boolean; perImage: boolean; evalShared: number }> {
    const ds = this.dataset(options.data);
    const grid = this.sweepGrid(axes, ds);
    const metric = options.metric ?? (ds.gt || ds.coco ? "AP" : "detections");
    const metrics = ["AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "detections"];
    if (!metrics.includes(metric)) throw new WorkflowError(`Expected --metric one of ${metrics.join(", ")} but received ${JSON.stringify(metric)}`, "ERR_RK_MAGIC_ARGS");
    if (metric !== "detections" && !ds.gt && !ds.coco) throw new WorkflowError(`Expected ground truth in dataset ${ds.name} for --metric ${metric} but it has none (use --metric detections)`, "ERR_RK_DATASET");
    const configs = grid.map((g) => resolveConfig({ ...this.overrides, ...g }));
    // Ascending score_thresh (stable): each group's lowest threshold is matched first.
    const runOrder = grid.map((_, i) => i).sort((a, b) => configs[a].score_thresh - configs[b].score_thresh || a - b);
    // Per group (every key but score_thresh), the matched point of the lowest threshold so far.
    const shared = new Map<string, { result: PostprocessResult; matching: CocoMatching }>();
    const share = options.shareMatching !== false && metric !== "detections";
    const groupOf = (i: number) => JSON.stringify(Object.entries(grid[i]).filter(([k]) => k !== "score_thresh"));
    const done: (SweepRow | undefined)[] = new Array(grid.length);
    let count = 0;
    let evalShared = 0;
    let interrupted = false;
    for (const i of runOrder) {
      if (stop.stopped) {
        interrupted = true;
        break;
      }
      const point = grid[i];
      const config = configs[i];
      if (isCacheDataset(ds)) checkConfigForCache(config, ds.cache);
      // On a cache only the stages after selection run, on the backend asked for ("auto": cuda where a device is).
      const pp = createPostprocessor(config, { backend: options.backend ?? "auto" });
      let run;
      try {
        run = await this.runDataset(pp, ds, options.iterations ?? 5, stop);
      } catch (e) {
        if ((e as Error).name === "KeyboardInterrupt") {
          interrupted = true;
          break;
        }
        throw e;
      } finally {
        await pp.dispose();
      }
      const { stats, result } = run;
      const detections = result.detections.reduce((s, d) => s + d.count, 0);
      let value: number;
      if (metric === "detections") {
        value = detections;
      } else {
        // Uniform thresholds only: with per-class ones a point is matched on its own.
        const key = share && config.score_thresh_per_class == null ? groupOf(i) : undefined;
        const parent = key === undefined ? undefined : shared.get(key);
        const cut = Math.fround(config.score_thresh);
        if (parent && isScoreCut(parent.result.detections, result.detections, cut)) {
          value = (metricsOf(accumulateCoco(parent.matching, cut)) as unknown as Record<string, number>)[metric];
          evalShared++;
        } else {
          const { matching } = this.matchResult(ds, result);
          value = (metricsOf(accumulateCoco(matching)) as unknown as Record<string, number>)[metric];
          if (key !== undefined && !parent) shared.set(key, { result, matching });
        }
      }
      done[i] = { values: point, medianMs: stats.medianMs, metric: value, detections };
      count++;
      progress.update(count, Object.entries(point).map(([k, v]) => `${k}=${v}`).join(" "));
    }
    const rows = done.filter((r): r is SweepRow => r !== undefined);
    if (stop.stopped && rows.length < grid.length) interrupted = true;
    progress.finish(interrupted ? `interrupted: ${rows.length} of ${grid.length} points` : `${rows.length} points`);
    markPareto(rows);
    this.lastSweep = { dataset: ds.name, metric, rows, interrupted };
    return { rows, metric, interrupted, perImage: isCacheDataset(ds), evalShared };
  }

  /**
   * The default space of %tune --objective latency, each axis from the most accurate value to the
   * fastest: score_thresh, topk_candidates, nms_thresh and detections_per_img, inside a cache's bounds.
   */
  defaultTuneSpace(ds: AnyDataset): Record<string, unknown[]> {
    const c = this.config;
    const cache = isCacheDataset(ds) ? ds.cache.meta : undefined;
    const lo = cache ? cache.min_score : 0;
    const hi = cache ? cache.max_topk : 100000;
    const uniq = (xs: number[]) => [...new Set(xs)];
    return {
      score_thresh: uniq([c.score_thresh, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5].filter((t) => t >= lo && t >= c.score_thresh).sort((a, b) => a - b)),
      topk_candidates: uniq([c.topk_candidates, 1000, 500, 300, 100].filter((k) => k <= hi && k <= c.topk_candidates).sort((a, b) => b - a)),
      nms_thresh: uniq([c.nms_thresh, 0.4, 0.5, 0.6]),
      detections_per_img: uniq([c.detections_per_img, 100, 50].filter((d) => d <= c.detections_per_img).sort((a, b) => b - a)),
    };
  }

  /** One evaluation of a config for %tune: its metric on the dataset and its latency. */
  private async tunePoint(ds: AnyDataset, values: Record<string, unknown>, metric: string, backend: BackendName | "auto", iterations: number, stop: StopSignal): Promise<{ metric: number; ms: number; detections: number }> {
    const config = resolveConfig({ ...this.overrides, ...values });
    if (isCacheDataset(ds)) checkConfigForCache(config, ds.cache);
    const pp = createPostprocessor(config, { backend });
    try {
      const { stats, result } = await this.runDataset(pp, ds, iterations, stop);
      const value = (this.evaluate(ds, result) as unknown as Record<string, number>)[metric];
      // A cache's pass is one timing: the best of three, as single passes over a few hundred images are noisy.
      let ms = stats.medianMs;
      for (let i = 0; isCacheDataset(ds) && i < 2 && !stop.stopped; i++) ms = Math.min(ms, (await this.runDataset(pp, ds, iterations, stop)).stats.medianMs);
      return { metric: value, ms, detections: result.detections.reduce((n, d) => n + d.count, 0) };
    } finally {
      await pp.dispose();
    }
  }

  /** The latency of a config again: the best of `runs` passes (a cache) or of `runs` medians of timed runs (heads). */
  private async tuneTime(ds: AnyDataset, values: Record<string, unknown>, backend: BackendName | "auto", iterations: number, runs: number, stop: StopSignal): Promise<number> {
    const config = resolveConfig({ ...this.overrides, ...values });
    const pp = createPostprocessor(config, { backend });
    try {
      const times: number[] = [];
      for (let i = 0; i < runs && !stop.stopped; i++) times.push((await this.runDataset(pp, ds, iterations, stop)).stats.medianMs);
      return Math.min(...times);
    } finally {
      await pp.dispose();
    }
  }

  /**
   * %tune --objective latency: the fastest config of the space (default: defaultTuneSpace) whose
   * metric keeps the constraint, by coordinate search (kernel/postprocess/tune.ts); with grid, the
   * full grid as well, for comparison. On a candidate cache, latency is per image of the stages
   * after selection (which is what differs between configs); on heads, the backend's median.
   */
  async tuneLatency(
    options: { keep?: string; over?: Record<string, unknown[]>; data?: string; grid?: boolean; backend?: BackendName | "auto"; iterations?: number } = {},
    progress: Progress = NO_PROGRESS,
    stop: StopSignal = NEVER,
  ): Promise<TuneResult<TuneLatencyReport>> {
    const ds = this.dataset(options.data);
    if (!ds.gt && !ds.coco) throw new WorkflowError(`Expected ground truth in dataset ${ds.name} for %tune (its metric) but it has none`, "ERR_RK_DATASET");
    const keep = parseKeep(options.keep ?? "AP>=best-0.002");
    const axes = options.over && Object.keys(options.over).length > 0 ? options.over : this.defaultTuneSpace(ds);
    // Every point of the space is a valid config (and one the cache serves) before anything runs.
    this.sweepGrid(axes, ds);
    const iterations = options.iterations ?? 5;
    const backend = options.backend ?? "auto";
    const r = await tuneLatency(axes, keep, (values) => this.tunePoint(ds, values, keep.metric, backend, iterations, stop), {
      grid: options.grid,
      time: (values, runs) => this.tuneTime(ds, values, backend, iterations, runs, stop),
      stop,
      progress: (n, note) => progress.update(n, note),
    });
    progress.finish(r.interrupted ? `interrupted after ${r.evaluations} evaluations` : `${r.evaluations} evaluations of ${r.gridSize} grid points${r.grid ? ` (then the grid: ${r.grid.evaluations})` : ""}`);
    if (r.interrupted && !r.winner) throw Object.assign(new Error("Interrupted by the user"), { name: "KeyboardInterrupt" });
    const config = resolveConfig({ ...this.overrides, ...r.winner.values });
    const report: TuneLatencyReport = { ...r, config, perImage: isCacheDataset(ds) };
    return { report, ...this.bindTuned(config, ds, backend, `%tune latency (${keep.text})`) };
  }

  /**
   * %tune thresholds: per-class score thresholds for a target (precision=P, recall=R or f1) from
   * the dataset's detections under the session config (without per-class thresholds) matched to
   * its ground truth at `iou`.
   */
  async tuneThresholds(options: { target?: string; iou?: number; data?: string; backend?: BackendName | "auto" } = {}, progress: Progress = NO_PROGRESS, stop: StopSignal = NEVER): Promise<TuneResult<ThresholdReport>> {
    const ds = this.dataset(options.data);
    if (!ds.gt && !ds.coco) throw new WorkflowError(`Expected ground truth in dataset ${ds.name} for %tune thresholds but it has none`, "ERR_RK_DATASET");
    const target = parseTarget(options.target ?? "f1");
    const iou = options.iou ?? 0.5;
    if (typeof iou !== "number" || !(iou > 0 && iou <= 1)) throw new TuneError(`Expected --iou in (0, 1] but received ${describe(iou)}`);
    const base = resolveConfig({ ...this.overrides, score_thresh_per_class: null });
    if (isCacheDataset(ds)) checkConfigForCache(base, ds.cache);
    const backend = options.backend ?? "auto";
    const pp = createPostprocessor(base, { backend });
    let result: PostprocessResult;
    try {
      result = (await this.runDataset(pp, ds, 1, stop, progress)).result;
    } finally {
      await pp.dispose();
    }
    const K = this.shapesOf(ds).numClasses;
    let gt: CocoGroundTruth;
    let dt: CocoDetections;
    let map: { category(l: number): number | undefined; label(c: number): number | undefined; name(c: number): string | undefined };
    if (ds.coco) {
      const coco = ds.coco;
      const ids = new Set(coco.imageIds);
      const keepIdx: number[] = [];
      for (let i = 0; i < coco.gt.count; i++) if (ids.has(coco.gt.imageId[i])) keepIdx.push(i);
      const pick = <T extends Float64Array | Uint8Array>(a: T) => a.constructor === Uint8Array ? (Uint8Array.from(keepIdx, (i) => a[i]) as T) : (Float64Array.from(keepIdx, (i) => a[i]) as T);
      gt = { ...coco.gt, count: keepIdx.length, id: pick(coco.gt.id), imageId: pick(coco.gt.imageId), categoryId: pick(coco.gt.categoryId), x: pick(coco.gt.x), y: pick(coco.gt.y), w: pick(coco.gt.w), h: pick(coco.gt.h), area: pick(coco.gt.area), iscrowd: pick(coco.gt.iscrowd) };
      dt = this.cocoDetections(ds, result).dt;
      const names = new Map(coco.gt.categories.map((c) => [c.id, c.name]));
      map = { category: (l) => coco.labels.category(l), label: (c) => coco.labels.label(c), name: (c) => names.get(c) };
    } else {
      gt = gtFromArrays(ds.gt!.map((g) => ({ gt: g })));
      dt = detectionsToCoco(result.detections, result.detections.map((_, i) => i + 1)).dt;
      map = { category: (l) => l, label: (c) => c, name: () => undefined };
    }
    const { classes, perClass } = chooseThresholds(gt, dt, K, map, target, iou, base.score_thresh);
    const config = withThresholds(base, perClass);
    const report: ThresholdReport = { target, iou, base: base.score_thresh, classes, perClass, config, images: result.detections.length };
    return { report, ...this.bindTuned(config, ds, backend, `%tune thresholds (${options.target ?? "f1"})`) };
  }

  /** A Postprocessor and the saveable artifact for a tuned config (as %optimize's winner). */
  private bindTuned(config: PostprocessConfig, ds: AnyDataset, backend: BackendName | "auto", what: string): { postprocessor: Postprocessor; artifact: OptimizedArtifact } {
    const pp = createPostprocessor(config, { backend });
    const artifact = makeArtifact(
      config,
      { backend: pp.backend, precision: "fp32", threads: pp.backend === "cpu" ? pp.threads : undefined },
      { dataset: ds.name, images: this.shapesOf(ds).batch, checksum: "", medianMs: 0 },
      what,
    );
    return { postprocessor: pp, artifact };
  }
}

/** What %tune binds: the report and a Postprocessor built from its configuration. */
export interface TuneResult<R> {
  report: R;
  postprocessor: Postprocessor;
  artifact: OptimizedArtifact;
}

/** Marks the rows no other row beats on both latency (lower) and metric (higher). */
export function markPareto(rows: SweepRow[]): void {
  for (const r of rows) {
    r.pareto = !rows.some((o) => o !== r && o.medianMs <= r.medianMs && o.metric >= r.metric && (o.medianMs < r.medianMs || o.metric > r.metric));
  }
}

/** Writes a chosen config (loadOptimized reads it back), whole or not at all; `what` names the path's option in errors. */
export function saveOptimized(file: string, artifact: OptimizedArtifact, what = "file"): void {
  writeFileWhole(file, what, JSON.stringify(artifact, null, 1) + "\n");
}

/** Reads a saved artifact, checks it, and builds its Postprocessor (cpu when its backend is missing here). */
export function loadOptimized(file: string): { postprocessor: Postprocessor; artifact: OptimizedArtifact; note?: string } {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (e) {
    throw new WorkflowError(`Expected a readable optimized-configuration file at ${file} but received ${(e as NodeJS.ErrnoException).code ?? String(e)}`, "ERR_RK_ARTIFACT");
  }
  let a: OptimizedArtifact;
  try {
    a = JSON.parse(text);
  } catch {
    throw new WorkflowError(`Expected JSON in ${file} (a file written by %optimize --save) but it does not parse`, "ERR_RK_ARTIFACT");
  }
  if (!a || typeof a !== "object" || a.format !== "retinanet-kernel/optimized") {
    throw new WorkflowError(`Expected format "retinanet-kernel/optimized" in ${file} but received ${describe((a as { format?: unknown })?.format)}: not a file written by %optimize --save`, "ERR_RK_ARTIFACT");
  }
  if (a.version !== 1) throw new WorkflowError(`Expected version 1 of the optimized format in ${file} but received ${describe(a.version)}`, "ERR_RK_ARTIFACT");
  if (artifactChecksum(a) !== a.checksum) throw new WorkflowError(`Expected the checksum recorded in ${file} to match its content but it does not: the file was changed or truncated`, "ERR_RK_ARTIFACT");
  const config = resolveConfig(a.config);
  const { available } = availableBackends();
  let backend: BackendName = a.backend;
  let note: string | undefined;
  if (!available.includes(backend)) {
    backend = available.includes("cpu") ? "cpu" : "js";
    note = `${a.backend} is not available here; running on ${backend}, which gives the same detections`;
  }
  const pp = createPostprocessor(config, { backend, ...(backend === "cpu" && a.threads ? { threads: Math.min(a.threads, os.availableParallelism()) } : {}), ...(backend === "cuda" && a.graph !== undefined ? { graph: a.graph } : {}) });
  return { postprocessor: pp, artifact: a, note };
}

/** The session's workbench (one per kernel process), shared by the magics and cells (`rk.workbench`). */
export const workbench = new Workbench();
