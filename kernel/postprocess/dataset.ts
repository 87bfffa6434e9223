/**
 * Datasets: head outputs plus what comes with them (ground truth, expected detections, the golden
 * case's parameters). Loaded from the golden format (../shared/golden/README.md): an .npz with
 * cls_logits / bbox_regression (concatenated) and/or cls_pL / box_pL (per level), image_sizes,
 * feature_sizes, anchors, det{i}_*, gt{i}_*; or from a folder of .npy files with the same names.
 */
import * as fs from "fs";
import * as path from "path";

import { HeadOutputs, Layout } from "./heads";
import { NdArray, toInt32 } from "./ndarray";
import { ArrayMap, readNpyFolder, readNpz } from "./npz";

export interface BoxSet {
  boxes: Float32Array; // [n * 4]
  labels: Int32Array; // [n]
  scores?: Float32Array; // [n] (detections)
}

/** COCO ground truth bound to a dataset's images by id (%load --annotations). */
export interface DatasetCoco {
  file: string;
  gt: import("../data/coco").CocoGroundTruth;
  /** The COCO image id of each image of the dataset, in batch order. */
  imageIds: number[];
  /** How the ids were found: the heads' image_ids array, or the order of the file's images. */
  idSource: "image_ids" | "order";
  labels: import("../eval/labels").LabelMap;
  /**
   * Per image, the f32 ratios [width, height] from the heads' image size (the network's input) to
   * the annotation file's width and height, where they differ (undefined where they agree).
   */
  scale: ([number, number] | undefined)[];
  /** Folder of the image files (%load --images), found by the annotations' file_name. */
  imagesDir?: string;
}

export interface Dataset extends HeadOutputs {
  name: string;
  /** Where it came from (a path, or "synthetic"). */
  source: string;
  /** Ground truth per image, when present (gt{i}_boxes / gt{i}_labels). */
  gt?: BoxSet[];
  /** The framework's detections per image, when present (det{i}_*). */
  expected?: BoxSet[];
  /** Detectron2 goldens: detections before the empty-box filter (nms{i}_boxes). */
  expectedBeforeFilter?: Float32Array[];
  /** The golden case's .json (preset, thresholds, ...), when present beside the .npz. */
  meta?: Record<string, unknown>;
  /** Every array of the file, for callers that need more. */
  arrays: ArrayMap;
  /** COCO ground truth, when bound (then evaluation uses it instead of gt). */
  coco?: DatasetCoco;
}

export interface LoadOptions {
  /** Which layout to use when the file has both; default: concatenated when present. */
  layout?: Layout;
  /** Name of the dataset; default: the file name. */
  name?: string;
}

function perImage(arrays: ArrayMap, prefix: string, suffix: string): NdArray[] {
  const out: NdArray[] = [];
  for (let i = 0; arrays.has(`${prefix}${i}_${suffix}`); i++) out.push(arrays.get(`${prefix}${i}_${suffix}`)!);
  return out;
}

function float32(a: NdArray, name: string): Float32Array {
  if (a.data instanceof Float32Array) return a.data;
  throw Object.assign(new TypeError(`Expected float32 for ${name} but received ${a.dtype}`), { code: "ERR_RK_DATASET" });
}

/** A dataset from arrays in the golden naming. */
export function datasetFromArrays(arrays: ArrayMap, name: string, source: string, options: LoadOptions = {}, meta?: Record<string, unknown>): Dataset {
  const hasConcat = arrays.has("cls_logits") && arrays.has("bbox_regression");
  const levelNames = [...arrays.keys()]
    .map((k) => /^cls_p(\d+)$/.exec(k))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => Number(m[1]))
    .sort((a, b) => a - b);
  const hasLevels = levelNames.length > 0 && levelNames.every((l) => arrays.has(`box_p${l}`));
  const layout = options.layout ?? (hasConcat ? "concatenated" : "per_level");
  if (layout === "concatenated" && !hasConcat) {
    throw Object.assign(new Error(`Expected cls_logits and bbox_regression in ${source} for the concatenated layout but received ${[...arrays.keys()].join(", ")}`), {
      code: "ERR_RK_DATASET",
    });
  }
  if (layout === "per_level" && !hasLevels) {
    throw Object.assign(new Error(`Expected cls_pL and box_pL arrays in ${source} for the per-level layout but received ${[...arrays.keys()].join(", ")}`), {
      code: "ERR_RK_DATASET",
    });
  }
  const sizes = arrays.get("image_sizes");
  if (!sizes) {
    throw Object.assign(new Error(`Expected image_sizes [N, 2] in ${source} but it is missing (arrays: ${[...arrays.keys()].join(", ")})`), { code: "ERR_RK_DATASET" });
  }
  const ds: Dataset = {
    name,
    source,
    cls_logits: layout === "concatenated" ? arrays.get("cls_logits")! : levelNames.map((l) => arrays.get(`cls_p${l}`)!),
    bbox_regression: layout === "concatenated" ? arrays.get("bbox_regression")! : levelNames.map((l) => arrays.get(`box_p${l}`)!),
    image_sizes: sizes,
    arrays,
    meta,
  };
  if (layout === "concatenated" && arrays.has("feature_sizes")) ds.feature_sizes = arrays.get("feature_sizes");
  if (arrays.has("anchors")) ds.anchors = arrays.get("anchors");
  if (meta && Array.isArray(meta.padded_size) && meta.padded_size.length === 2) ds.padded_size = [Number(meta.padded_size[0]), Number(meta.padded_size[1])];
  const gtBoxes = perImage(arrays, "gt", "boxes");
  if (gtBoxes.length > 0) {
    ds.gt = gtBoxes.map((b, i) => ({ boxes: float32(b, `gt${i}_boxes`), labels: toInt32(arrays.get(`gt${i}_labels`)!, `gt${i}_labels`) }));
  }
  const detBoxes = perImage(arrays, "det", "boxes");
  if (detBoxes.length > 0) {
    ds.expected = detBoxes.map((b, i) => ({
      boxes: float32(b, `det${i}_boxes`),
      labels: toInt32(arrays.get(`det${i}_labels`)!, `det${i}_labels`),
      scores: float32(arrays.get(`det${i}_scores`)!, `det${i}_scores`),
    }));
  }
  const nmsBoxes = perImage(arrays, "nms", "boxes");
  if (nmsBoxes.length > 0) ds.expectedBeforeFilter = nmsBoxes.map((b, i) => float32(b, `nms${i}_boxes`));
  return ds;
}

/** Loads an .npz (with its golden .json beside it, if any) or a folder of .npy files. */
export function loadDataset(file: string, options: LoadOptions = {}): Dataset {
  if (typeof file !== "string" || file.length === 0) {
    throw Object.assign(new TypeError(`Expected a path to an .npz file or a folder of .npy files but received ${JSON.stringify(file)}`), { code: "ERR_RK_DATASET" });
  }
  let arrays: ArrayMap;
  let stat: fs.Stats;
  try {
    stat = fs.statSync(file);
  } catch {
    throw Object.assign(new Error(`Expected an .npz file or a folder of .npy files at ${JSON.stringify(file)} but nothing is there`), { code: "ERR_RK_FILE" });
  }
  if (stat.isDirectory()) {
    arrays = readNpyFolder(file);
  } else {
    arrays = readNpz(file);
  }
  let meta: Record<string, unknown> | undefined;
  const json = stat.isDirectory() ? path.join(file, "meta.json") : file.replace(/\.npz$/, ".json");
  if (json !== file && fs.existsSync(json)) {
    try {
      meta = JSON.parse(fs.readFileSync(json, "utf8")) as Record<string, unknown>;
    } catch (e) {
      throw Object.assign(new Error(`Expected JSON in ${json} (the case's parameters) but parsing failed: ${(e as Error).message}`), { code: "ERR_RK_DATASET" });
    }
  }
  const name = options.name ?? path.basename(file).replace(/\.npz$/, "");
  return datasetFromArrays(arrays, name, file, options, meta);
}

/**
 * A dataset held as a candidate cache (kernel/postprocess/cache.ts): a whole validation set in a
 * few MB per thousand images, on which configs within the cache's bounds run exactly.
 */
export interface CacheDataset {
  kind: "cache";
  name: string;
  /** The cache folder. */
  source: string;
  cache: import("./cache").CandidateCache;
  gt?: BoxSet[];
  expected?: BoxSet[];
  coco?: DatasetCoco;
  meta?: Record<string, unknown>;
}

/** What %load and %synth give: heads in memory, or a candidate cache. */
export type AnyDataset = Dataset | CacheDataset;

export function isCacheDataset(ds: AnyDataset): ds is CacheDataset {
  return (ds as CacheDataset).kind === "cache";
}
