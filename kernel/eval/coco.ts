/**
 * COCO box evaluation that gives pycocotools' COCOeval (iouType "bbox") numbers, computed over
 * columns instead of per-annotation dicts. What is mirrored, and where it matters:
 *  - IoU as its C helper bbIou does it, in doubles: the intersection's right edge is
 *    min(x + w) of the two boxes, a crowd ground truth divides by the detection's area only;
 *  - ground truth is ignored when iscrowd is set or its `area` field is outside the range (both
 *    ends inclusive); detections are sorted by score with a stable sort (numpy's mergesort) and cut
 *    at maxDets[-1] per image and category; ground truth ignored-last, stable;
 *  - greedy matching per IoU threshold (numpy's linspace values, 0.6000000000000001 and all):
 *    a matched non-crowd ground truth is skipped, a match on a regular ground truth stops at the
 *    first ignored one, a candidate needs IoU >= min(t, 1 - 1e-10);
 *  - a detection counts as matched when the id of its ground truth is not 0 (pycocotools stores
 *    the id in a zero-initialised array), unmatched detections outside the area range are ignored;
 *  - accumulate: per category, area and maxDets, the detections of all images concatenated in image
 *    id order, stable-sorted by score; precision = tp / (tp + fp + np.spacing(1)), made monotone,
 *    sampled at the 101 recall points with searchsorted(side="left"); the rest stays 0; -1 where a
 *    category has no evaluation or no non-ignored ground truth;
 *  - summarize: the 12 stats in pycocotools' order, the mean over entries > -1, -1 when none.
 * Per-category AP is the mean of precision[:, :, k, area all, maxDets 100] over entries > -1, as
 * Detectron2's COCOEvaluator reports it (NaN when there are none).
 */
import type { CocoDetections, CocoGroundTruth } from "../data/coco";

/** numpy.linspace(.5, .95, 10) and (0, 1, 101), computed as numpy does: start + i * step, last = stop. */
function linspace(start: number, stop: number, num: number): number[] {
  const step = (stop - start) / (num - 1);
  return Array.from({ length: num }, (_, i) => (i === num - 1 ? stop : i * step + start));
}
export const IOU_THRS = linspace(0.5, 0.95, 10);
export const REC_THRS = linspace(0, 1, 101);
export const MAX_DETS = [1, 10, 100] as const;
export const AREA_RNG: readonly [number, number][] = [
  [0, 1e10],
  [0, 32 ** 2],
  [32 ** 2, 96 ** 2],
  [96 ** 2, 1e10],
];
export const AREA_LABELS = ["all", "small", "medium", "large"] as const;
/** np.spacing(1) */
const EPS = 2.220446049250313e-16;

export const STAT_NAMES = ["AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"] as const;

export interface CocoEvalOptions {
  /** pycocotools' useCats (default true): false pools all categories per image. */
  useCats?: boolean;
  /** Only these image ids (default: every image of the ground truth). */
  imgIds?: number[];
}

export interface CocoEvalResult {
  /** The 12 numbers of COCOeval.stats, in its order. */
  stats: number[];
  /** Category ids (sorted), and the AP of each: NaN where nothing could be measured. */
  catIds: number[];
  perCategory: { id: number; name: string; AP: number; AP50: number; gt: number; dt: number }[];
  /** precision[t][r][k][a][m] flattened as pycocotools' array (T, R, K, A, M); recall (T, K, A, M). */
  precision: Float64Array;
  recall: Float64Array;
  dims: { T: number; R: number; K: number; A: number; M: number };
  imgIds: number[];
  /** Detections and ground truth evaluated (after the maxDets cut for detections). */
  counts: { images: number; gt: number; dt: number };
}

/** Indices 0..n-1 stably grouped by key (counting sort): returns [order, start offsets of each key]. */
function groupBy(keys: Int32Array, n: number, nKeys: number): { order: Int32Array; start: Int32Array } {
  const start = new Int32Array(nKeys + 1);
  for (let i = 0; i < n; i++) if (keys[i] >= 0) start[keys[i] + 1]++;
  for (let k = 0; k < nKeys; k++) start[k + 1] += start[k];
  const fill = start.slice(0, nKeys);
  const order = new Int32Array(start[nKeys]);
  for (let i = 0; i < n; i++) if (keys[i] >= 0) order[fill[keys[i]]++] = i;
  return { order, start };
}

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/**
 * Indices s0..s1-1 ordered by descending score, ties by index (a stable sort). Scores that are f32
 * values (every detection from this kernel) sort as one native 64-bit key each: the score's bits
 * ordered descending above the index; other scores take a comparator sort.
 */
function stableDescendingOrder(score: Float64Array, s0: number, s1: number): Int32Array {
  const n = s1 - s0;
  // The key's words are written as little-endian halves of each 64-bit element.
  let f32 = n < 2 ** 32 && LITTLE_ENDIAN;
  for (let j = s0; j < s1 && f32; j++) f32 = Math.fround(score[j]) === score[j] && !Number.isNaN(score[j]);
  if (!f32) return Int32Array.from({ length: n }, (_, j) => s0 + j).sort((x, y) => score[y] - score[x] || x - y);
  const keys = new BigUint64Array(n);
  const words = new Uint32Array(keys.buffer);
  const f = new Float32Array(1);
  const bits = new Uint32Array(f.buffer);
  for (let j = 0; j < n; j++) {
    f[0] = score[s0 + j];
    const b = bits[0];
    // Ascending float order as unsigned, then inverted: descending scores first.
    const asc = b & 0x80000000 ? ~b >>> 0 : (b | 0x80000000) >>> 0;
    words[2 * j] = j; // little-endian: the low word
    words[2 * j + 1] = ~asc >>> 0;
  }
  keys.sort();
  const out = new Int32Array(n);
  for (let j = 0; j < n; j++) out[j] = s0 + words[2 * j];
  return out;
}

/**
 * The matching of pycocotools' evaluate(): per kept detection (each (image, category) group
 * score-sorted and cut at maxDets), its score, rank and per area a tp and fp bit per IoU threshold;
 * what accumulate() needs and nothing that depends on the order of categories' passes.
 */
export interface CocoMatching {
  useCats: boolean;
  imgIds: number[];
  catIds: number[];
  names: Map<number, string>;
  dims: { T: number; R: number; K: number; A: number; M: number };
  kScore: Float64Array;
  kRank: Uint16Array;
  kTp: Uint16Array;
  kFp: Uint16Array;
  /** Per category k: [catKeptStart[k], catKeptStart[k + 1]) of the kept detections, in image order. */
  catKeptStart: Int32Array;
  /** Per (category, area): non-ignored ground truth. */
  npig: Float64Array;
  hasEval: Uint8Array;
  gtPerCat: Float64Array;
  /** Per category, filled on first use: its kept detections by descending score, ties by position. */
  sorted: (SortedCategory | undefined)[];
}

/** A category's kept detections in accumulate's order: score, rank, and per area [a * stride + j] the tp and fp bits. */
interface SortedCategory {
  len: number;
  stride: number;
  score: Float64Array;
  rank: Uint16Array;
  tp: Uint16Array;
  fp: Uint16Array;
  /** No NaN score: the detections above a score are then a prefix. */
  ordered: boolean;
}

function sortCategory(m: CocoMatching, k: number): SortedCategory {
  const A = m.dims.A;
  const order = stableDescendingOrder(m.kScore, m.catKeptStart[k], m.catKeptStart[k + 1]);
  const n = order.length;
  const c: SortedCategory = { len: n, stride: n, score: new Float64Array(n), rank: new Uint16Array(n), tp: new Uint16Array(n * A), fp: new Uint16Array(n * A), ordered: true };
  for (let j = 0; j < n; j++) {
    const e = order[j];
    c.score[j] = m.kScore[e];
    if (c.score[j] !== c.score[j]) c.ordered = false;
    c.rank[j] = m.kRank[e];
    for (let a = 0; a < A; a++) {
      c.tp[a * n + j] = m.kTp[e * A + a];
      c.fp[a * n + j] = m.kFp[e * A + a];
    }
  }
  return c;
}

/** The detections of a sorted category scoring above `above`, in the same order. */
function cutCategory(c: SortedCategory, above: number, A: number): SortedCategory {
  if (above === -Infinity) return c;
  if (c.ordered) {
    let len = 0;
    while (len < c.len && c.score[len] > above) len++;
    return { ...c, len };
  }
  const keep: number[] = [];
  for (let j = 0; j < c.len; j++) if (c.score[j] > above) keep.push(j);
  const n = keep.length;
  const out: SortedCategory = { len: n, stride: n, score: new Float64Array(n), rank: new Uint16Array(n), tp: new Uint16Array(n * A), fp: new Uint16Array(n * A), ordered: true };
  keep.forEach((j, q) => {
    out.score[q] = c.score[j];
    out.rank[q] = c.rank[j];
    for (let a = 0; a < A; a++) {
      out.tp[a * n + q] = c.tp[a * c.stride + j];
      out.fp[a * n + q] = c.fp[a * c.stride + j];
    }
  });
  return out;
}

/** A lookup of ids to their positions: a table when the ids are small integers (COCO's), else a Map. */
function indexOf(ids: number[]): (id: number) => number | undefined {
  let max = -1;
  for (const id of ids) max = Number.isInteger(id) && id >= 0 && max >= -1 ? Math.max(max, id) : -2;
  if (max >= -1 && max <= Math.max(1_000_000, 8 * ids.length)) {
    const table = new Int32Array(max + 1).fill(-1);
    ids.forEach((id, i) => (table[id] = i));
    return (id) => {
      const i = id >= 0 && id <= max ? table[id] : -1;
      return i >= 0 && i === i ? i : undefined;
    };
  }
  const map = new Map(ids.map((id, i) => [id, i]));
  return (id) => map.get(id);
}

/** pycocotools' COCOeval (bbox): evaluate(), accumulate() and summarize() of `dt` against `gt`. */
export function evaluateCocoBoxes(gt: CocoGroundTruth, dt: CocoDetections, options: CocoEvalOptions = {}): CocoEvalResult {
  return accumulateCoco(matchCoco(gt, dt, options));
}

/**
 * pycocotools' evaluate(): the matching of every kept detection. accumulateCoco() of it gives the
 * metrics; with a score cut, the metrics of the detections scoring above it, exactly as if only
 * those had been evaluated (each (image, category) group's kept detections are score-sorted, so
 * the ones above a score are a prefix of the group, matched before any other).
 */
export function matchCoco(gt: CocoGroundTruth, dt: CocoDetections, options: CocoEvalOptions = {}): CocoMatching {
  const useCats = options.useCats !== false;
  const imgIds = [...new Set(options.imgIds ?? gt.images.map((i) => i.id))].sort((a, b) => a - b);
  const catIdsAll = [...new Set(gt.categories.map((c) => c.id))].sort((a, b) => a - b);
  const I = imgIds.length;
  const imgIndex = indexOf(imgIds);
  const catIndex = indexOf(catIdsAll);
  const C = catIdsAll.length;
  const K = useCats ? C : 1;
  const T = IOU_THRS.length;
  const R = REC_THRS.length;
  const A = AREA_RNG.length;
  const M = MAX_DETS.length;
  const maxDet = MAX_DETS[M - 1];

  // Group keys: (category, image) with useCats, else image; within a group, file order (and with
  // useCats off, category order first, as pycocotools concatenates per category).
  const groups = K * I;
  const keyOf = (imgId: number, catId: number, out: Int32Array, i: number) => {
    const ii = imgIndex(imgId);
    const ci = catIndex(catId);
    out[i] = ii === undefined || ci === undefined ? -1 : useCats ? ci * I + ii : ii;
  };
  const gtKeys = new Int32Array(gt.count);
  for (let i = 0; i < gt.count; i++) keyOf(gt.imageId[i], gt.categoryId[i], gtKeys, i);
  const dtKeys = new Int32Array(dt.count);
  for (let i = 0; i < dt.count; i++) keyOf(dt.imageId[i], dt.categoryId[i], dtKeys, i);
  const catOrdered = (keys: Int32Array, catIds: Float64Array, n: number) => {
    if (useCats) return groupBy(keys, n, groups);
    // Stable by category first, then stable by image: category order within each image.
    const catKeys = new Int32Array(n);
    for (let i = 0; i < n; i++) catKeys[i] = keys[i] < 0 ? -1 : (catIndex(catIds[i]) ?? -1);
    const byCat = groupBy(catKeys, n, C);
    const keys2 = new Int32Array(byCat.order.length);
    for (let j = 0; j < byCat.order.length; j++) keys2[j] = keys[byCat.order[j]];
    const byImg = groupBy(keys2, keys2.length, groups);
    return { order: Int32Array.from(byImg.order, (j) => byCat.order[j]), start: byImg.start };
  };
  const G = catOrdered(gtKeys, gt.categoryId, gt.count);
  const D = catOrdered(dtKeys, dt.categoryId, dt.count);
  // The detections' fields gathered in group order, so that each group reads contiguous memory
  // (positions p of D.order; the same values, read sequentially instead of scattered).
  const nGrouped = D.order.length;
  const dS = new Float64Array(nGrouped), dX = new Float64Array(nGrouped), dY = new Float64Array(nGrouped), dW = new Float64Array(nGrouped), dH = new Float64Array(nGrouped);
  for (let p = 0; p < nGrouped; p++) {
    const i = D.order[p];
    dS[p] = dt.score[i];
    dX[p] = dt.x[i];
    dY[p] = dt.y[i];
    dW[p] = dt.w[i];
    dH[p] = dt.h[i];
  }

  // Per kept detection (in group order, each group score-sorted and cut at maxDet):
  // its score, its rank in its group, and per area a tp and fp bit per threshold.
  const cap = Math.min(dt.count, groups * maxDet);
  const kScore = new Float64Array(cap);
  const kRank = new Uint16Array(cap);
  const kTp = new Uint16Array(cap * A);
  const kFp = new Uint16Array(cap * A);
  let kept = 0;
  /** Per category k: [first, end) of its kept detections; per (k, a): non-ignored ground truth. */
  const catKeptStart = new Int32Array(K + 1);
  const npig = new Float64Array(K * A);
  /** Per category: whether any image had ground truth or detections (pycocotools' E non-empty). */
  const hasEval = new Uint8Array(K);
  const gtPerCat = new Float64Array(K);

  // Scratch, grown as needed: the group's detections (score-sorted), its ground truth's fields.
  let ious = new Float64Array(maxDet * 16);
  let dts = new Int32Array(256);
  let gOrder = new Int32Array(16);
  let gtm = new Uint8Array(16 * T);
  let gX = new Float64Array(16), gY = new Float64Array(16), gW = new Float64Array(16), gH = new Float64Array(16);
  let gArea = new Float64Array(16);
  let gCrowd = new Uint8Array(16);
  let gIdZero = new Uint8Array(16);
  const thr = IOU_THRS.map((t) => Math.min(t, 1 - 1e-10));
  for (let k = 0; k < K; k++) {
    catKeptStart[k] = kept;
    for (let i = 0; i < I; i++) {
      const g0 = G.start[k * I + i], g1 = G.start[k * I + i + 1];
      const d0 = D.start[k * I + i], d1 = D.start[k * I + i + 1];
      const nG = g1 - g0;
      if (nG === 0 && d1 === d0) continue;
      hasEval[k] = 1;
      gtPerCat[k] += nG;
      // Detections: stable by descending score (insertion sort: groups are small), cut at maxDet.
      const nAll = d1 - d0;
      if (dts.length < nAll) dts = new Int32Array(nAll * 2);
      for (let j = 0; j < nAll; j++) {
        const v = d0 + j;
        const sv = dS[v];
        let p = j;
        while (p > 0 && dS[dts[p - 1]] < sv) {
          dts[p] = dts[p - 1];
          p--;
        }
        dts[p] = v;
      }
      const nD = Math.min(nAll, maxDet);
      if (gX.length < nG) {
        const c = nG * 2;
        [gX, gY, gW, gH, gArea] = [new Float64Array(c), new Float64Array(c), new Float64Array(c), new Float64Array(c), new Float64Array(c)];
        [gCrowd, gIdZero, gOrder] = [new Uint8Array(c), new Uint8Array(c), new Int32Array(c)];
        gtm = new Uint8Array(c * T);
      }
      for (let g = 0; g < nG; g++) {
        const gi = G.order[g0 + g];
        gX[g] = gt.x[gi];
        gY[g] = gt.y[gi];
        gW[g] = gt.w[gi];
        gH[g] = gt.h[gi];
        gArea[g] = gt.area[gi];
        gCrowd[g] = gt.iscrowd[gi];
        gIdZero[g] = gt.id[gi] === 0 ? 1 : 0;
      }
      // IoU [d][g] with g in file order (bbIou).
      if (ious.length < nD * nG) ious = new Float64Array(nD * nG * 2);
      for (let d = 0; d < nD; d++) {
        const di = dts[d];
        const dx = dX[di], dy = dY[di], dw = dW[di], dh = dH[di];
        const da = dw * dh;
        for (let g = 0; g < nG; g++) {
          let o = 0;
          const w = Math.min(dw + dx, gW[g] + gX[g]) - Math.max(dx, gX[g]);
          if (w > 0) {
            const h = Math.min(dh + dy, gH[g] + gY[g]) - Math.max(dy, gY[g]);
            if (h > 0) {
              const inter = w * h;
              o = inter / (gCrowd[g] ? da : da + gW[g] * gH[g] - inter);
            }
          }
          ious[d * nG + g] = o;
        }
      }
      const base = kept;
      for (let d = 0; d < nD; d++) {
        kScore[kept + d] = dS[dts[d]];
        kRank[kept + d] = d;
      }
      if (nG === 0) {
        // No ground truth: every detection is a false positive at every threshold, or ignored
        // when its area is outside the range (pycocotools' outcome of the general loop below).
        const full = (1 << T) - 1;
        for (let d = 0; d < nD; d++) {
          const di = dts[d];
          const dArea = dW[di] * dH[di];
          for (let a = 0; a < A; a++) {
            kTp[(base + d) * A + a] = 0;
            kFp[(base + d) * A + a] = dArea < AREA_RNG[a][0] || dArea > AREA_RNG[a][1] ? 0 : full;
          }
        }
        kept += nD;
        continue;
      }
      for (let a = 0; a < A; a++) {
        const lo = AREA_RNG[a][0], hi = AREA_RNG[a][1];
        // Ground truth order: non-ignored first, stable.
        let n = 0;
        for (let g = 0; g < nG; g++) if (!(gCrowd[g] || gArea[g] < lo || gArea[g] > hi)) gOrder[n++] = g;
        const regular = n;
        for (let g = 0; g < nG; g++) if (gCrowd[g] || gArea[g] < lo || gArea[g] > hi) gOrder[n++] = g;
        npig[k * A + a] += regular;
        if (nG > 0) gtm.fill(0, 0, nG * T);
        for (let d = 0; d < nD; d++) {
          const di = dts[d];
          const dArea = dW[di] * dH[di];
          const outside = dArea < lo || dArea > hi;
          const row = d * nG;
          let tp = 0;
          let fp = 0;
          for (let t = 0; t < T; t++) {
            let best = thr[t];
            let m = -1;
            const tm = t * nG;
            for (let p = 0; p < nG; p++) {
              const g = gOrder[p];
              if (gtm[tm + p] && !gCrowd[g]) continue;
              if (m > -1 && m < regular && p >= regular) break;
              const v = ious[row + g];
              if (v < best) continue;
              best = v;
              m = p;
            }
            let matched = false;
            let ignored = false;
            if (m > -1) {
              ignored = m >= regular;
              gtm[tm + m] = 1;
              // pycocotools keeps the ground truth's id in a zero-initialised array: id 0 reads as unmatched.
              matched = gIdZero[gOrder[m]] === 0;
            }
            if (!matched && outside) ignored = true;
            if (!ignored) {
              if (matched) tp |= 1 << t;
              else fp |= 1 << t;
            }
          }
          kTp[(base + d) * A + a] = tp;
          kFp[(base + d) * A + a] = fp;
        }
      }
      kept += nD;
    }
  }
  catKeptStart[K] = kept;
  const names = new Map(gt.categories.map((c) => [c.id, c.name]));
  return {
    useCats,
    imgIds,
    catIds: catIdsAll,
    names,
    dims: { T, R, K, A, M },
    kScore: kScore.subarray(0, kept),
    kRank: kRank.subarray(0, kept),
    kTp: kTp.subarray(0, kept * A),
    kFp: kFp.subarray(0, kept * A),
    catKeptStart,
    npig,
    hasEval,
    gtPerCat,
    sorted: new Array<SortedCategory | undefined>(K),
  };
}

/**
 * pycocotools' accumulate() and summarize() of a matching. With `above`, only the detections whose
 * score is above it count: the metrics are those of evaluating just them (see matchCoco).
 */
export function accumulateCoco(m: CocoMatching, above = -Infinity): CocoEvalResult {
  const { useCats, imgIds, catIds: catIdsAll, npig, hasEval, gtPerCat } = m;
  const { T, R, K, A, M } = m.dims;
  const I = imgIds.length;
  const dtPerCat = new Float64Array(K);
  let kept = 0;

  // Accumulate.
  const precision = new Float64Array(T * R * K * A * M).fill(-1);
  const recall = new Float64Array(T * K * A * M).fill(-1);
  const pIdx = (t: number, r: number, k: number, a: number, m: number) => (((t * R + r) * K + k) * A + a) * M + m;
  const rIdx = (t: number, k: number, a: number, m: number) => ((t * K + k) * A + a) * M + m;
  // Per (category, area, maxDets), one pass over the category's detections in score order with a
  // counter per threshold. Precision is only needed where a true positive lands: between two of
  // them tp stays and fp grows, so pycocotools' monotone envelope (the maximum of pr over later
  // positions) equals the maximum over later true positives, and each sampled recall point lands on
  // a true positive (the first position whose recall reaches it). Same formula, same doubles.
  const FULL = (1 << T) - 1;
  const tpn = new Float64Array(T);
  const fpOwn = new Float64Array(T);
  let ev = new Float64Array(T * 64);
  let evCap = 64;
  const evN = new Int32Array(T);
  for (let k = 0; k < K; k++) {
    if (!hasEval[k]) continue;
    // Stable by descending score over the concatenation (already in image order); with a cut, the
    // detections above it in the same order.
    const c = cutCategory((m.sorted[k] ??= sortCategory(m, k)), above, A);
    dtPerCat[k] = c.len;
    kept += c.len;
    for (let a = 0; a < A; a++) {
      const np = npig[k * A + a];
      if (np === 0) continue;
      if (evCap < np) {
        evCap = np;
        ev = new Float64Array(T * evCap);
      }
      for (let mi = 0; mi < M; mi++) {
        const md = MAX_DETS[mi];
        tpn.fill(0);
        fpOwn.fill(0);
        evN.fill(0);
        let common = 0;
        let nd = 0;
        const base = a * c.stride;
        for (let j = 0; j < c.len; j++) {
          if (c.rank[j] >= md) continue;
          nd++;
          const f = c.fp[base + j];
          const tpm = c.tp[base + j];
          if (f === FULL) {
            common++;
            continue;
          }
          if (f !== 0) for (let t = 0; t < T; t++) if (f & (1 << t)) fpOwn[t]++;
          if (tpm !== 0) {
            for (let t = 0; t < T; t++) {
              if (!(tpm & (1 << t))) continue;
              const tp = ++tpn[t];
              ev[t * evCap + evN[t]++] = tp / (common + fpOwn[t] + tp + EPS);
            }
          }
        }
        for (let t = 0; t < T; t++) {
          const n = evN[t];
          const evt = t * evCap;
          recall[rIdx(t, k, a, mi)] = nd ? tpn[t] / np : 0;
          for (let q = n - 1; q > 0; q--) if (ev[evt + q] > ev[evt + q - 1]) ev[evt + q - 1] = ev[evt + q];
          // r = 0 lands on the first detection: the envelope's value there is the best over all.
          let q = 0;
          for (let r = 0; r < R; r++) {
            if (nd === 0) {
              for (let rr = r; rr < R; rr++) precision[pIdx(t, rr, k, a, mi)] = 0;
              break;
            }
            if (r === 0 && REC_THRS[0] <= 0) {
              precision[pIdx(t, 0, k, a, mi)] = n > 0 ? ev[evt] : 0;
              continue;
            }
            while (q < n && (q + 1) / np < REC_THRS[r]) q++;
            if (q >= n) {
              for (let rr = r; rr < R; rr++) precision[pIdx(t, rr, k, a, mi)] = 0;
              break;
            }
            precision[pIdx(t, r, k, a, mi)] = ev[evt + q];
          }
        }
      }
    }
  }

  // Summarize.
  const meanOf = (ap: boolean, t: number | undefined, a: number, m: number, k?: number): number => {
    let sum = 0;
    let n = 0;
    const ts = t === undefined ? IOU_THRS.map((_, i) => i) : [t];
    const ks = k === undefined ? Array.from({ length: K }, (_, i) => i) : [k];
    for (const tt of ts) {
      for (const kk of ks) {
        if (ap) {
          for (let r = 0; r < R; r++) {
            const v = precision[pIdx(tt, r, kk, a, m)];
            if (v > -1) (sum += v), n++;
          }
        } else {
          const v = recall[rIdx(tt, kk, a, m)];
          if (v > -1) (sum += v), n++;
        }
      }
    }
    return n === 0 ? -1 : sum / n;
  };
  const stats = [
    meanOf(true, undefined, 0, 2),
    meanOf(true, 0, 0, 2),
    meanOf(true, 5, 0, 2),
    meanOf(true, undefined, 1, 2),
    meanOf(true, undefined, 2, 2),
    meanOf(true, undefined, 3, 2),
    meanOf(false, undefined, 0, 0),
    meanOf(false, undefined, 0, 1),
    meanOf(false, undefined, 0, 2),
    meanOf(false, undefined, 1, 2),
    meanOf(false, undefined, 2, 2),
    meanOf(false, undefined, 3, 2),
  ];
  const names = m.names;
  const perCategory = useCats
    ? catIdsAll.map((id, k) => {
        const ap = meanOf(true, undefined, 0, 2, k);
        const ap50 = meanOf(true, 0, 0, 2, k);
        return { id, name: names.get(id) ?? String(id), AP: ap === -1 ? NaN : ap, AP50: ap50 === -1 ? NaN : ap50, gt: gtPerCat[k], dt: dtPerCat[k] };
      })
    : [];
  let gtCount = 0;
  for (let k = 0; k < K; k++) gtCount += gtPerCat[k];
  return { stats, catIds: catIdsAll, perCategory, precision, recall, dims: { T, R, K, A, M }, imgIds, counts: { images: I, gt: gtCount, dt: kept } };
}

/** pycocotools' 12 summary lines, same wording and format. */
export function summaryLines(stats: number[]): string[] {
  const rows: [boolean, number | undefined, string, number][] = [
    [true, undefined, "all", 100],
    [true, 0.5, "all", 100],
    [true, 0.75, "all", 100],
    [true, undefined, "small", 100],
    [true, undefined, "medium", 100],
    [true, undefined, "large", 100],
    [false, undefined, "all", 1],
    [false, undefined, "all", 10],
    [false, undefined, "all", 100],
    [false, undefined, "small", 100],
    [false, undefined, "medium", 100],
    [false, undefined, "large", 100],
  ];
  return rows.map(([ap, thr, area, md], i) => {
    const title = (ap ? "Average Precision" : "Average Recall").padEnd(18);
    const type = ap ? "(AP)" : "(AR)";
    const iou = (thr === undefined ? "0.50:0.95" : thr.toFixed(2)).padEnd(9);
    return ` ${title} ${type} @[ IoU=${iou} | area=${area.padStart(6)} | maxDets=${String(md).padStart(3)} ] = ${pyFixed3(stats[i])}`;
  });
}

/**
 * Python's '{:0.3f}': the exact binary value rounded, ties to even. toFixed breaks ties upward; a
 * double is exactly halfway between two 3-digit decimals only when v * 16 is an odd integer
 * (0.0625, 0.1875, ...), and only then do the two differ.
 */
export function pyFixed3(v: number): string {
  const q = v * 16;
  if (Number.isInteger(q) && Math.abs(q) % 2 === 1) {
    const lo = Math.floor(v * 1000);
    const n = lo % 2 === 0 ? lo : lo + 1;
    return (n / 1000).toFixed(3);
  }
  return v.toFixed(3);
}
