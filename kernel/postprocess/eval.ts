/**
 * COCO box metrics of detections held as arrays (the post-processing's own output) against ground
 * truth held as arrays, with the one evaluator (kernel/eval/coco.ts, pycocotools' numbers): the
 * arrays become COCO columns (image ids 1..N, boxes x1,y1,x2,y2 -> x, y, w, h in doubles, a
 * ground truth's area = w * h, no crowds, labels as category ids).
 */
import type { CocoDetections, CocoGroundTruth } from "../data/coco";
import { accumulateCoco, CocoEvalResult, CocoMatching, matchCoco } from "../eval/coco";

export interface EvalImage {
  gt: { boxes: Float32Array | number[]; labels: Int32Array | number[] };
  dt: { boxes: Float32Array | number[]; scores: Float32Array | number[]; labels: Int32Array | number[] };
}

export interface CocoMetrics {
  AP: number;
  AP50: number;
  AP75: number;
  APs: number;
  APm: number;
  APl: number;
  AR1: number;
  AR10: number;
  AR100: number;
  ARs: number;
  ARm: number;
  ARl: number;
  /** Ground-truth boxes and detections counted (all areas; detections after the maxDets cut). */
  gtCount: number;
  dtCount: number;
  /** Per category: AP (NaN where it cannot be measured), AP50, ground truth and detections. */
  perCategory?: CocoEvalResult["perCategory"];
  /** Detections left out because their label maps to no category of the annotations. */
  unmapped?: number;
  /** The full evaluation (precision and recall arrays) for charts. */
  evaluation?: CocoEvalResult;
}

export function metricsOf(r: CocoEvalResult, extra: Partial<CocoMetrics> = {}): CocoMetrics {
  const [AP, AP50, AP75, APs, APm, APl, AR1, AR10, AR100, ARs, ARm, ARl] = r.stats;
  return { AP, AP50, AP75, APs, APm, APl, AR1, AR10, AR100, ARs, ARm, ARl, gtCount: r.counts.gt, dtCount: r.counts.dt, perCategory: r.perCategory, evaluation: r, ...extra };
}

/**
 * Detections of images (ids given) as COCO columns; labels through `category` (undefined: left
 * out). With `scale` (per image [sx, sy]), boxes go back to the original image's pixels as the
 * frameworks' own postprocess does it (torchvision's resize_boxes, Detectron2's
 * detector_postprocess): each coordinate times the f32 ratio, in f32.
 */
export function detectionsToCoco(images: EvalImage["dt"][], imageIds: readonly number[], category: (label: number) => number | undefined = (l) => l, scale?: ([number, number] | undefined)[]): { dt: CocoDetections; unmapped: number } {
  let n = 0;
  for (const d of images) n += d.labels.length;
  const cols = { imageId: new Float64Array(n), categoryId: new Float64Array(n), x: new Float64Array(n), y: new Float64Array(n), w: new Float64Array(n), h: new Float64Array(n), score: new Float64Array(n) };
  let k = 0;
  let unmapped = 0;
  images.forEach((d, i) => {
    for (let j = 0; j < d.labels.length; j++) {
      const c = category(Number(d.labels[j]));
      if (c === undefined) {
        unmapped++;
        continue;
      }
      let x1 = d.boxes[4 * j], y1 = d.boxes[4 * j + 1], x2 = d.boxes[4 * j + 2], y2 = d.boxes[4 * j + 3];
      const sc = scale?.[i];
      if (sc) {
        x1 = Math.fround(x1 * sc[0]);
        x2 = Math.fround(x2 * sc[0]);
        y1 = Math.fround(y1 * sc[1]);
        y2 = Math.fround(y2 * sc[1]);
      }
      cols.imageId[k] = imageIds[i];
      cols.categoryId[k] = c;
      cols.x[k] = x1;
      cols.y[k] = y1;
      cols.w[k] = x2 - x1;
      cols.h[k] = y2 - y1;
      cols.score[k] = d.scores[j];
      k++;
    }
  });
  const cut = (a: Float64Array) => a.subarray(0, k);
  return { dt: { count: k, imageId: cut(cols.imageId), categoryId: cut(cols.categoryId), x: cut(cols.x), y: cut(cols.y), w: cut(cols.w), h: cut(cols.h), score: cut(cols.score) }, unmapped };
}

/** pycocotools' metrics for images whose ground truth and detections are arrays. */
/** Ground truth held as arrays (x1, y1, x2, y2; labels as category ids) as COCO columns, image ids 1..N. */
export function gtFromArrays(images: { gt: EvalImage["gt"]; dt?: EvalImage["dt"] }[]): CocoGroundTruth {
  const ids = images.map((_, i) => i + 1);
  let n = 0;
  for (const im of images) n += im.gt.labels.length;
  const gt: CocoGroundTruth = {
    images: ids.map((id) => ({ id })),
    categories: [],
    count: n,
    id: new Float64Array(n),
    imageId: new Float64Array(n),
    categoryId: new Float64Array(n),
    x: new Float64Array(n),
    y: new Float64Array(n),
    w: new Float64Array(n),
    h: new Float64Array(n),
    area: new Float64Array(n),
    iscrowd: new Uint8Array(n),
  };
  const cats = new Set<number>();
  let k = 0;
  images.forEach((im, i) => {
    for (let j = 0; j < im.gt.labels.length; j++) {
      const x1 = im.gt.boxes[4 * j], y1 = im.gt.boxes[4 * j + 1];
      gt.id[k] = k + 1;
      gt.imageId[k] = ids[i];
      gt.categoryId[k] = Number(im.gt.labels[j]);
      gt.x[k] = x1;
      gt.y[k] = y1;
      gt.w[k] = im.gt.boxes[4 * j + 2] - x1;
      gt.h[k] = im.gt.boxes[4 * j + 3] - y1;
      gt.area[k] = gt.w[k] * gt.h[k];
      cats.add(gt.categoryId[k]);
      k++;
    }
    for (const l of im.dt?.labels ?? []) cats.add(Number(l));
  });
  gt.categories = [...cats].sort((a, b) => a - b).map((id) => ({ id, name: String(id) }));
  return gt;
}

export function evaluateCoco(images: EvalImage[]): CocoMetrics {
  return metricsOf(accumulateCoco(matchCocoArrays(images)));
}

/** The matching of evaluateCoco (accumulateCoco gives its metrics, or those above a score). */
export function matchCocoArrays(images: EvalImage[]): CocoMatching {
  const gt = gtFromArrays(images);
  const { dt } = detectionsToCoco(
    images.map((im) => im.dt),
    images.map((_, i) => i + 1),
  );
  return matchCoco(gt, dt);
}

/**
 * Whether `child` holds, image by image and in the same order, exactly the detections of `parent`
 * whose score is above `cut` (same boxes, scores and labels, bit for bit). When it does, the COCO
 * metrics of `child` are accumulateCoco(matching of `parent`, cut): the matching is not redone.
 */
export function isScoreCut(parent: readonly EvalImage["dt"][], child: readonly EvalImage["dt"][], cut: number): boolean {
  if (parent.length !== child.length) return false;
  const same = (a: number, b: number) => a === b || (a !== a && b !== b);
  for (let i = 0; i < parent.length; i++) {
    const p = parent[i];
    const c = child[i];
    let k = 0;
    const nc = c.labels.length;
    for (let j = 0; j < p.labels.length; j++) {
      if (!(p.scores[j] > cut)) continue;
      if (k >= nc || !same(p.scores[j], c.scores[k]) || p.labels[j] !== c.labels[k]) return false;
      for (let q = 0; q < 4; q++) if (!same(p.boxes[4 * j + q], c.boxes[4 * k + q])) return false;
      k++;
    }
    if (k !== nc) return false;
  }
  return true;
}
