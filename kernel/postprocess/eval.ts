/**
 * COCO box evaluation with pycocotools' definitions (COCOeval, iouType "bbox"): IoU thresholds
 * 0.50:0.95:0.05, 101 recall points, area ranges all / small (< 32²) / medium / large (> 96²),
 * maxDets 1 / 10 / 100, greedy matching of detections in score order to the best-IoU unmatched
 * ground truth, ignored ground truth (outside the area range) matched last, unmatched detections
 * outside the range ignored, precision made monotone before sampling at the recall points, and
 * averages over the entries that exist (categories with ground truth).
 * Boxes are (x1, y1, x2, y2) as the post-processing emits them; areas are w*h.
 */

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
  /** Ground-truth boxes and detections counted (all areas). */
  gtCount: number;
  dtCount: number;
}

export const IOU_THRESHOLDS = Array.from({ length: 10 }, (_, i) => Number((0.5 + 0.05 * i).toFixed(2)));
export const RECALL_POINTS = Array.from({ length: 101 }, (_, i) => Number((0.01 * i).toFixed(2)));
const AREAS: [number, number][] = [
  [0, 1e10],
  [0, 32 * 32],
  [32 * 32, 96 * 96],
  [96 * 96, 1e10],
];
const MAX_DETS = [1, 10, 100];

interface Box4 {
  x1: number;
  y1: number;
  x2: number;
  y2: number;
  area: number;
}

function boxes(b: Float32Array | number[], n: number): Box4[] {
  const out: Box4[] = [];
  for (let i = 0; i < n; i++) {
    const x1 = b[4 * i], y1 = b[4 * i + 1], x2 = b[4 * i + 2], y2 = b[4 * i + 3];
    out.push({ x1, y1, x2, y2, area: (x2 - x1) * (y2 - y1) });
  }
  return out;
}

function iou(d: Box4, g: Box4): number {
  const w = Math.min(d.x2, g.x2) - Math.max(d.x1, g.x1);
  const h = Math.min(d.y2, g.y2) - Math.max(d.y1, g.y1);
  if (w <= 0 || h <= 0) return 0;
  const inter = w * h;
  return inter / (d.area + g.area - inter);
}

/** Per (image, category, area range): what evaluateImg keeps for accumulate. */
interface ImgEval {
  dtScores: number[];
  dtMatched: boolean[][]; // [T][D]
  dtIgnore: boolean[][]; // [T][D]
  gtIgnoreCount: number; // non-ignored gts
}

function evaluateImg(gts: Box4[], dts: { box: Box4; score: number }[], area: [number, number], maxDet: number): ImgEval | undefined {
  if (gts.length === 0 && dts.length === 0) return undefined;
  const gIgnore = gts.map((g) => g.area < area[0] || g.area > area[1]);
  // Non-ignored ground truth first (stable), detections by score (stable), capped.
  const gOrder = gts.map((_, i) => i).sort((a, b) => Number(gIgnore[a]) - Number(gIgnore[b]) || a - b);
  const g = gOrder.map((i) => gts[i]);
  const gIg = gOrder.map((i) => gIgnore[i]);
  const d = dts
    .map((x, i) => ({ ...x, i }))
    .sort((a, b) => b.score - a.score || a.i - b.i)
    .slice(0, maxDet);
  const T = IOU_THRESHOLDS.length;
  const dtMatched = Array.from({ length: T }, () => new Array<boolean>(d.length).fill(false));
  const dtIgnore = Array.from({ length: T }, () => new Array<boolean>(d.length).fill(false));
  const ious = d.map((x) => g.map((y) => iou(x.box, y)));
  for (let t = 0; t < T; t++) {
    const gtMatched = new Array<boolean>(g.length).fill(false);
    for (let di = 0; di < d.length; di++) {
      let best = Math.min(IOU_THRESHOLDS[t], 1 - 1e-10);
      let m = -1;
      for (let gi = 0; gi < g.length; gi++) {
        if (gtMatched[gi]) continue;
        if (m > -1 && !gIg[m] && gIg[gi]) break;
        if (ious[di][gi] < best) continue;
        best = ious[di][gi];
        m = gi;
      }
      if (m === -1) continue;
      dtIgnore[t][di] = gIg[m];
      dtMatched[t][di] = true;
      gtMatched[m] = true;
    }
    for (let di = 0; di < d.length; di++) {
      const a = d[di].box.area;
      if (!dtMatched[t][di] && (a < area[0] || a > area[1])) dtIgnore[t][di] = true;
    }
  }
  return { dtScores: d.map((x) => x.score), dtMatched, dtIgnore, gtIgnoreCount: gIg.filter((x) => !x).length };
}

/** COCO metrics of detections against ground truth, image by image. */
export function evaluateCoco(images: EvalImage[]): CocoMetrics {
  const T = IOU_THRESHOLDS.length, R = RECALL_POINTS.length;
  // Per image and category, the boxes.
  const cats = new Set<number>();
  const per = images.map((im) => {
    const ng = im.gt.labels.length, nd = im.dt.labels.length;
    const gb = boxes(im.gt.boxes, ng), db = boxes(im.dt.boxes, nd);
    const gt = new Map<number, Box4[]>(), dt = new Map<number, { box: Box4; score: number }[]>();
    for (let i = 0; i < ng; i++) {
      const c = Number(im.gt.labels[i]);
      cats.add(c);
      if (!gt.has(c)) gt.set(c, []);
      gt.get(c)!.push(gb[i]);
    }
    for (let i = 0; i < nd; i++) {
      const c = Number(im.dt.labels[i]);
      cats.add(c);
      if (!dt.has(c)) dt.set(c, []);
      dt.get(c)!.push({ box: db[i], score: Number(im.dt.scores[i]) });
    }
    return { gt, dt };
  });
  const catList = [...cats].sort((a, b) => a - b);
  // precision[t][r] and recall[t] per (category, area, maxDet); -1 where no ground truth.
  const apSum = (t: number | undefined, a: number, m: number) => {
    let sum = 0, count = 0;
    for (const c of catList) {
      const res = accumulate(c, a, m);
      if (!res) continue;
      const ts = t === undefined ? [...Array(T).keys()] : [t];
      for (const ti of ts) for (let r = 0; r < R; r++) {
        sum += res.precision[ti][r];
        count++;
      }
    }
    return count ? sum / count : -1;
  };
  const arSum = (a: number, m: number) => {
    let sum = 0, count = 0;
    for (const c of catList) {
      const res = accumulate(c, a, m);
      if (!res) continue;
      for (let t = 0; t < T; t++) {
        sum += res.recall[t];
        count++;
      }
    }
    return count ? sum / count : -1;
  };
  const cache = new Map<string, { precision: number[][]; recall: number[] } | undefined>();
  function accumulate(c: number, a: number, maxDetIndex: number) {
    const maxDet = MAX_DETS[maxDetIndex];
    const key = `${c}/${a}/${maxDet}`;
    if (cache.has(key)) return cache.get(key);
    const evals = per
      .map((p) => evaluateImg(p.gt.get(c) ?? [], p.dt.get(c) ?? [], AREAS[a], MAX_DETS[MAX_DETS.length - 1]))
      .filter((e): e is ImgEval => e !== undefined);
    let result: { precision: number[][]; recall: number[] } | undefined;
    const npig = evals.reduce((s, e) => s + e.gtIgnoreCount, 0);
    if (npig > 0) {
      const items: { score: number; e: ImgEval; i: number; order: number }[] = [];
      let order = 0;
      for (const e of evals) for (let i = 0; i < Math.min(maxDet, e.dtScores.length); i++) items.push({ score: e.dtScores[i], e, i, order: order++ });
      items.sort((x, y) => y.score - x.score || x.order - y.order);
      const precision: number[][] = [];
      const recall: number[] = [];
      for (let t = 0; t < T; t++) {
        let tp = 0, fp = 0;
        const rc: number[] = [], pr: number[] = [];
        for (const it of items) {
          if (it.e.dtIgnore[t][it.i]) continue;
          if (it.e.dtMatched[t][it.i]) tp++;
          else fp++;
          rc.push(tp / npig);
          pr.push(tp / (fp + tp + Number.EPSILON));
        }
        recall.push(rc.length ? rc[rc.length - 1] : 0);
        for (let i = pr.length - 1; i > 0; i--) if (pr[i] > pr[i - 1]) pr[i - 1] = pr[i];
        const q = new Array<number>(R).fill(0);
        let pi = 0;
        for (let r = 0; r < R; r++) {
          while (pi < rc.length && rc[pi] < RECALL_POINTS[r]) pi++; // searchsorted, side left
          if (pi < rc.length) q[r] = pr[pi];
        }
        precision.push(q);
      }
      result = { precision, recall };
    }
    cache.set(key, result);
    return result;
  }
  const last = MAX_DETS.length - 1;
  return {
    AP: apSum(undefined, 0, last),
    AP50: apSum(0, 0, last),
    AP75: apSum(5, 0, last),
    APs: apSum(undefined, 1, last),
    APm: apSum(undefined, 2, last),
    APl: apSum(undefined, 3, last),
    AR1: arSum(0, 0),
    AR10: arSum(0, 1),
    AR100: arSum(0, 2),
    ARs: arSum(1, last),
    ARm: arSum(2, last),
    ARl: arSum(3, last),
    gtCount: images.reduce((s, im) => s + im.gt.labels.length, 0),
    dtCount: images.reduce((s, im) => s + im.dt.labels.length, 0),
  };
}
