/**
 * The reference implementation in plain TypeScript: the same stages and the same f32 arithmetic as
 * the native core (native/include/rk/math.h), written for reading, not speed. It is the `js`
 * backend when the addon is missing and the oracle the native backends are tested against.
 *
 * Every f32 operation is `Math.fround` of the double result, which equals the f32 operation
 * (double has enough precision for +, -, *, / and sqrt of f32 operands to round once).
 */
import { classThresholds, NativeParams, toNativeParams } from "./config";
import { NormalizedHeads } from "./heads";
import { PostprocessConfig } from "./presets";

const f = Math.fround;

// ------------------------------------------------------------------------------------------------
// Scalar arithmetic

let halfTable: Float32Array | undefined;
/** IEEE binary16 bits -> number (exact). */
export function halfToFloat(h: number): number {
  if (!halfTable) {
    halfTable = new Float32Array(65536);
    for (let i = 0; i < 65536; i++) {
      const sign = i & 0x8000 ? -1 : 1;
      const e = (i >> 10) & 0x1f;
      const m = i & 0x3ff;
      halfTable[i] = e === 0 ? sign * m * 2 ** -24 : e === 31 ? (m ? NaN : sign * Infinity) : sign * (1 + m / 1024) * 2 ** (e - 15);
    }
  }
  return halfTable[h];
}

const F32_SCRATCH = new Float32Array(1);
const U32_SCRATCH = new Uint32Array(F32_SCRATCH.buffer);

/** number -> binary16 bits, rounded to nearest even (for writing fp16 test inputs). */
export function floatToHalf(x: number): number {
  F32_SCRATCH[0] = x;
  return bitsToHalf(U32_SCRATCH[0]);
}

/** Every element of a float32 array rounded to binary16 bits (as floatToHalf, without a call per element's boxing). */
export function floatsToHalves(src: Float32Array): Uint16Array {
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  const out = new Uint16Array(src.length);
  for (let i = 0; i < out.length; i++) out[i] = bitsToHalf(bits[i]);
  return out;
}

/** The binary16 bits nearest (ties to even) to the float32 with these bits. */
function bitsToHalf(bits: number): number {
  const sign = (bits >>> 16) & 0x8000;
  const exp = (bits >>> 23) & 0xff;
  let mant = bits & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && half & 1)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half++;
  e = half >> 10;
  return sign | (e >= 31 ? 0x7c00 : half);
}

export function expF32(x: number): number {
  return f(Math.exp(x));
}

/** torch.sigmoid on f32: 1 / (1 + exp(-x)), three roundings. */
export function sigmoidF32(x: number): number {
  const e = f(Math.exp(-x));
  const d = f(1 + e);
  return f(1 / d);
}

/** torch.clamp(x, max=m): NaN passes through. */
const clampMax = (x: number, m: number) => (x > m ? m : x);
/** std::max / std::min as torchvision's CPU kernels call them. */
const maxLikeStd = (a: number, b: number) => (a < b ? b : a);
const minLikeStd = (a: number, b: number) => (b < a ? b : a);
const clampLikeTorch = (v: number, lo: number, hi: number) => {
  const w = v < lo ? lo : v;
  return w > hi ? hi : w;
};
/** Round half to even (torch.round). */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

export type Box = [number, number, number, number];

// ------------------------------------------------------------------------------------------------
// Anchors (SPEC 1(2), 2(2), 3(2))

export interface AnchorGrid {
  cells: Box[][]; // [level][a]
  strideY: number[];
  strideX: number[];
  offset: number;
}

function cellAnchor(p: NativeParams["anchors"], size: number, ratio: number, stride: number): Box {
  if (p.cell === "torchvision") {
    const scale = f(size);
    const hRatio = f(Math.sqrt(f(ratio)));
    const wRatio = f(1 / hRatio);
    const ws = f(wRatio * scale);
    const hs = f(hRatio * scale);
    return [roundHalfEven(f(-ws / 2)), roundHalfEven(f(-hs / 2)), roundHalfEven(f(ws / 2)), roundHalfEven(f(hs / 2))];
  }
  if (p.cell === "detectron2") {
    const area = size * size;
    const w = Math.sqrt(area / ratio);
    const h = ratio * w;
    return [f(-w / 2), f(-h / 2), f(w / 2), f(h / 2)];
  }
  // ODTK: scale c of the stride s, centred at s/2
  const s = f(stride);
  const r = f(ratio);
  const c = f(size);
  const ws = f(Math.sqrt(f(f(s * s) / r)));
  const hs = f(ws * r);
  const dw = f(ws * c);
  const dh = f(hs * c);
  return [f(0.5 * f(s - dw)), f(0.5 * f(s - dh)), f(0.5 * f(s + dw)), f(0.5 * f(s + dh))];
}

export function makeAnchorGrid(params: NativeParams, featureSizes: [number, number][], paddedSize: [number, number]): AnchorGrid {
  const p = params.anchors;
  const S = p.sizes[0].length;
  const R = p.ratios.length;
  const grid: AnchorGrid = { cells: [], strideY: [], strideX: [], offset: p.offset };
  featureSizes.forEach(([H, W], l) => {
    const sy = p.stridesFromPaddedSize ? Math.floor(paddedSize[0] / H) : p.strides[l];
    const sx = p.stridesFromPaddedSize ? Math.floor(paddedSize[1] / W) : p.strides[l];
    grid.strideY.push(sy);
    grid.strideX.push(sx);
    const cells: Box[] = new Array(S * R);
    for (let si = 0; si < S; si++) {
      for (let ri = 0; ri < R; ri++) {
        const a = p.order === "ratio_major" ? ri * S + si : si * R + ri;
        cells[a] = cellAnchor(p, p.sizes[l][si], p.ratios[ri], sx);
      }
    }
    grid.cells.push(cells);
  });
  return grid;
}

/** f32((offset + i) * stride), with offset*stride evaluated first in f64 (Detectron2's arange). */
export function gridShift(offset: number, stride: number, index: number): number {
  return f(offset * stride + stride * index);
}

/** Anchor of row (y*W + x)*A + a of level l. */
export function gridAnchor(g: AnchorGrid, featureSizes: [number, number][], l: number, row: number): Box {
  const A = g.cells[l].length;
  const a = row % A;
  const loc = Math.floor(row / A);
  const W = featureSizes[l][1];
  const x = loc % W;
  const y = Math.floor(loc / W);
  const sx = gridShift(g.offset, g.strideX[l], x);
  const sy = gridShift(g.offset, g.strideY[l], y);
  const c = g.cells[l][a];
  return [f(sx + c[0]), f(sy + c[1]), f(sx + c[2]), f(sy + c[3])];
}

/** Every anchor, [sum(HWA), 4], in the concatenated row order. */
export function generateAnchors(config: PostprocessConfig, featureSizes: [number, number][], paddedSize: [number, number]): Float32Array {
  const params = toNativeParams(config, 1);
  const g = makeAnchorGrid(params, featureSizes, paddedSize);
  const A = g.cells[0].length;
  const total = featureSizes.reduce((s, [h, w]) => s + h * w * A, 0);
  const out = new Float32Array(total * 4);
  let r0 = 0;
  featureSizes.forEach(([h, w], l) => {
    for (let row = 0; row < h * w * A; row++) out.set(gridAnchor(g, featureSizes, l, row), (r0 + row) * 4);
    r0 += h * w * A;
  });
  return out;
}

// ------------------------------------------------------------------------------------------------
// Decode and clip (SPEC 1(3), 1(6), 3(3))

export function decodeBox(a: Box, d: Box, p: NativeParams["decode"], canvasW: number, canvasH: number): Box {
  let [dx, dy, dw, dh] = d;
  let b: Box;
  if (p.pixelOffset === 0) {
    const widths = f(a[2] - a[0]);
    const heights = f(a[3] - a[1]);
    const ctrX = f(a[0] + f(0.5 * widths));
    const ctrY = f(a[1] + f(0.5 * heights));
    dx = f(dx / f(p.weights[0]));
    dy = f(dy / f(p.weights[1]));
    dw = f(dw / f(p.weights[2]));
    dh = f(dh / f(p.weights[3]));
    if (p.clampDwdh) {
      dw = clampMax(dw, f(p.bboxXformClip));
      dh = clampMax(dh, f(p.bboxXformClip));
    }
    const pcx = f(f(dx * widths) + ctrX);
    const pcy = f(f(dy * heights) + ctrY);
    const pw = f(expF32(dw) * widths);
    const ph = f(expF32(dh) * heights);
    const hw = f(0.5 * pw);
    const hh = f(0.5 * ph);
    b = [f(pcx - hw), f(pcy - hh), f(pcx + hw), f(pcy + hh)];
  } else {
    // ODTK's +1 convention: w = x2 - x1 + 1, centre (dx*w + x1) + 0.5w, x2/y2 - 1.
    const w = f(f(a[2] - a[0]) + 1);
    const h = f(f(a[3] - a[1]) + 1);
    if (p.clampDwdh) {
      dw = clampMax(dw, f(p.bboxXformClip));
      dh = clampMax(dh, f(p.bboxXformClip));
    }
    const pcx = f(f(f(dx * w) + a[0]) + f(0.5 * w));
    const pcy = f(f(f(dy * h) + a[1]) + f(0.5 * h));
    const pw = f(expF32(dw) * w);
    const ph = f(expF32(dh) * h);
    b = [f(pcx - f(0.5 * pw)), f(pcy - f(0.5 * ph)), f(f(pcx + f(0.5 * pw)) - 1), f(f(pcy + f(0.5 * ph)) - 1)];
  }
  if (p.clip === "canvas_in_decode") {
    b = [Math.max(0, b[0]), Math.max(0, b[1]), Math.min(b[2], f(canvasW - 1)), Math.min(b[3], f(canvasH - 1))];
  }
  return b;
}

export function clipBox(b: Box, height: number, width: number): Box {
  return [clampLikeTorch(b[0], 0, width), clampLikeTorch(b[1], 0, height), clampLikeTorch(b[2], 0, width), clampLikeTorch(b[3], 0, height)];
}

// ------------------------------------------------------------------------------------------------
// NMS (SPEC 1(5), 3(5))

const boxArea = (b: Box, off: number) => f(f(f(b[2] - b[0]) + off) * f(f(b[3] - b[1]) + off));

/** IoU of the kept box k and a later candidate c: inter / ((area_k + area_c) - inter). */
export function iou(k: Box, areaK: number, c: Box, areaC: number, off: number): number {
  const xx1 = maxLikeStd(k[0], c[0]);
  const yy1 = maxLikeStd(k[1], c[1]);
  const xx2 = minLikeStd(k[2], c[2]);
  const yy2 = minLikeStd(k[3], c[3]);
  const w = maxLikeStd(0, f(f(xx2 - xx1) + off));
  const h = maxLikeStd(0, f(f(yy2 - yy1) + off));
  const inter = f(w * h);
  return f(inter / f(f(areaK + areaC) - inter));
}

export interface NmsOptions {
  iouThresh: number;
  algorithm: "torchvision_batched" | "greedy_per_class";
  torchvisionDevice: "cpu" | "cuda";
  compareInDouble: boolean;
  pixelOffset: number;
}

/** Class-aware NMS of one image; returns kept indices, score desc (ties by input position). */
export function nms(boxes: Box[], scores: ArrayLike<number>, labels: ArrayLike<number>, o: NmsOptions): number[] {
  const n = boxes.length;
  if (n === 0) return [];
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => (scores[a] !== scores[b] ? scores[b] - scores[a] : a - b));
  const off = o.pixelOffset;
  const thresh32 = f(o.iouThresh);
  const suppresses = (v: number) => (o.compareInDouble ? v > o.iouThresh : v > thresh32);
  let nmsBoxes = boxes;
  let perClass = true;
  if (o.algorithm === "torchvision_batched") {
    const vanillaAbove = o.torchvisionDevice === "cpu" ? 4000 : 100000;
    if (n * 4 <= vanillaAbove) {
      // torchvision's coordinate trick: shift each class by f32(label) * (max + 1).
      let max = -Infinity;
      let min = Infinity;
      for (const b of boxes) for (const v of b) {
        max = maxLikeStd(max, v);
        min = minLikeStd(min, v);
      }
      const span = f(max + 1);
      nmsBoxes = boxes.map((b, i) => {
        const s = f(f(labels[i]) * span);
        return [f(b[0] + s), f(b[1] + s), f(b[2] + s), f(b[3] + s)] as Box;
      });
      // With every coordinate >= 0 the shifted classes cannot overlap: per class is the same.
      perClass = min >= 0;
    }
  }
  const area = nmsBoxes.map((b) => boxArea(b, off));
  const suppressed = new Uint8Array(n);
  const greedy = (idx: number[]) => {
    for (let a = 0; a < idx.length; a++) {
      const i = idx[a];
      if (suppressed[i]) continue;
      for (let b = a + 1; b < idx.length; b++) {
        const j = idx[b];
        if (!suppressed[j] && suppresses(iou(nmsBoxes[i], area[i], nmsBoxes[j], area[j], off))) suppressed[j] = 1;
      }
    }
  };
  if (perClass) {
    const byLabel = new Map<number, number[]>();
    for (const i of order) {
      const list = byLabel.get(labels[i]);
      if (list) list.push(i);
      else byLabel.set(labels[i], [i]);
    }
    for (const idx of byLabel.values()) greedy(idx);
  } else {
    greedy(order);
  }
  return order.filter((i) => !suppressed[i]);
}

// ------------------------------------------------------------------------------------------------
// The pipeline

export interface PaddedDetections {
  maxDetections: number;
  counts: Int32Array; // [N]
  boxes: Float32Array; // [N, D, 4]
  scores: Float32Array; // [N, D]
  labels: Int32Array; // [N, D]
}

interface Candidate {
  score: number;
  level: number;
  label: number;
  row: number;
  order: number;
}

const ranksBefore = (a: Candidate, b: Candidate) =>
  a.score !== b.score ? b.score - a.score : a.level !== b.level ? a.level - b.level : a.order - b.order;

/** Runs every stage on normalised heads; the result has the native backends' padded form. */
export function runReference(config: PostprocessConfig, heads: NormalizedHeads): PaddedDetections {
  const params = toNativeParams(config, heads.numClasses);
  const { batch: N, numClasses: K, anchorsPerLocation: A, featureSizes } = heads;
  const D = config.detections_per_img;
  const grid = makeAnchorGrid(params, featureSizes, heads.paddedSize);
  const levelAnchors = featureSizes.map(([h, w]) => h * w * A);
  const levelOffset = levelAnchors.map((_, l) => levelAnchors.slice(0, l).reduce((s, v) => s + v, 0));
  const totalAnchors = levelAnchors.reduce((s, v) => s + v, 0);
  const read = heads.dtype === "float32" ? (a: ArrayLike<number>, i: number) => a[i] : (a: ArrayLike<number>, i: number) => halfToFloat(a[i]);
  // Per-class thresholds: the decision is score > f32(t_label); the smallest is the first test.
  const classT = classThresholds(config, K);
  const thresh = classT ? classT.reduce((m, t) => Math.min(m, t), Infinity) : f(config.score_thresh);
  const out: PaddedDetections = {
    maxDetections: D,
    counts: new Int32Array(N),
    boxes: new Float32Array(N * D * 4),
    scores: new Float32Array(N * D),
    labels: new Int32Array(N * D),
  };

  for (let n = 0; n < N; n++) {
    // 1. Selection per level: score > f32(t), then the top-k by (score desc, order asc).
    const selected: Candidate[] = [];
    featureSizes.forEach(([H, W], l) => {
      const count = levelAnchors[l] * K;
      const cls = heads.layout === "concatenated" ? heads.cls[0] : heads.cls[l];
      const base = heads.layout === "concatenated" ? (n * totalAnchors + levelOffset[l]) * K : n * count;
      const level: Candidate[] = [];
      for (let pos = 0; pos < count; pos++) {
        const v = read(cls, base + pos);
        const score = config.score_input === "logits" ? sigmoidF32(v) : v;
        if (!(score > thresh)) continue;
        let row: number;
        let label: number;
        if (heads.layout === "concatenated") {
          // pos = row*K + k
          row = Math.floor(pos / K);
          label = pos % K;
        } else {
          // pos = ((a*K + k)*H + y)*W + x
          const channel = Math.floor(pos / (H * W));
          const a = Math.floor(channel / K);
          label = channel % K;
          row = (pos % (H * W)) * A + a;
        }
        if (classT && !(score > classT[label])) continue;
        const order = config.candidate_order === "anchor_major" ? row * K + label : ((row % A) * K + label) * H * W + Math.floor(row / A);
        level.push({ score, level: l, label, row, order });
      }
      level.sort(ranksBefore);
      selected.push(...level.slice(0, config.topk_candidates));
    });

    const deltaOf = (c: Candidate): Box => {
      const l = c.level;
      const [H, W] = featureSizes[l];
      if (heads.layout === "concatenated") {
        const at = (n * totalAnchors + levelOffset[l] + c.row) * 4; // [N, sum(HWA), 4]
        return [read(heads.box[0], at), read(heads.box[0], at + 1), read(heads.box[0], at + 2), read(heads.box[0], at + 3)];
      }
      const a = c.row % A;
      const loc = Math.floor(c.row / A);
      const at = (j: number) => n * levelAnchors[l] * 4 + (a * 4 + j) * H * W + loc; // [N, A*4, H, W]
      return [read(heads.box[l], at(0)), read(heads.box[l], at(1)), read(heads.box[l], at(2)), read(heads.box[l], at(3))];
    };
    const anchorOf = (c: Candidate): Box => {
      if (!heads.anchors) return gridAnchor(grid, featureSizes, c.level, c.row);
      const at = ((heads.anchorsPerImage ? n * totalAnchors : 0) + levelOffset[c.level] + c.row) * 4;
      return [heads.anchors[at], heads.anchors[at + 1], heads.anchors[at + 2], heads.anchors[at + 3]];
    };
    const outputSize = heads.outputSizes ? ([heads.outputSizes[2 * n], heads.outputSizes[2 * n + 1]] as [number, number]) : undefined;
    finishImage(config, params, grid, featureSizes, selected, deltaOf, anchorOf, n, [heads.imageSizes[2 * n], heads.imageSizes[2 * n + 1]], outputSize, out);
  }
  return out;
}

/**
 * The stages after selection for one image (decode + clip, NMS, cap, Detectron2's rescale, clip and
 * empty-box removal), writing row n of `out`: shared by the heads and the candidate lists.
 */
function finishImage(
  config: PostprocessConfig,
  params: NativeParams,
  grid: AnchorGrid,
  featureSizes: [number, number][],
  selected: Candidate[],
  deltaOf: (c: Candidate) => Box,
  anchorOf: (c: Candidate) => Box,
  n: number,
  [imageH, imageW]: [number, number],
  outputSize: [number, number] | undefined,
  out: PaddedDetections,
): void {
  const D = out.maxDetections;
  // Decode + clip.
  const boxes: Box[] = selected.map((c) => {
    const l = c.level;
    const [H, W] = featureSizes[l];
    const d = deltaOf(c);
    const anchor = anchorOf(c);
    let b = decodeBox(anchor, d, params.decode, f(W * grid.strideX[l]), f(H * grid.strideY[l]));
    if (config.clip_boxes === "image_before_nms") b = clipBox(b, imageH, imageW);
    if (b.some(Number.isNaN)) {
      const what = anchor.some(Number.isNaN) ? "anchors" : "bbox_regression";
      throw Object.assign(
        new Error(`Expected finite ${what} for a selected candidate but received NaN at image ${n}, level P${l + 3}, anchor row ${c.row} (class ${c.label}): the box cannot be decoded`),
        { code: "ERR_RK_NONFINITE" },
      );
    }
    return b;
  });
  // NMS, cap, (Detectron2) rescale, clip, drop empty boxes.
  const keep = nms(boxes, selected.map((c) => c.score), selected.map((c) => c.label), {
    iouThresh: config.nms_thresh,
    algorithm: config.nms_algorithm,
    torchvisionDevice: config.torchvision_nms_device,
    compareInDouble: params.nms.compareInDouble,
    pixelOffset: config.pixel_offset,
  });
  let written = 0;
  for (const i of keep.slice(0, D)) {
    let b = boxes[i];
    if (config.clip_boxes === "output_after_nms") {
      let outH = imageH;
      let outW = imageW;
      if (outputSize) {
        [outH, outW] = outputSize;
        const sx = f(outW / imageW);
        const sy = f(outH / imageH);
        b = [f(b[0] * sx), f(b[1] * sy), f(b[2] * sx), f(b[3] * sy)];
      }
      b = clipBox(b, outH, outW);
    }
    if (config.remove_empty_boxes && !(f(b[2] - b[0]) > 0 && f(b[3] - b[1]) > 0)) continue;
    out.boxes.set(b, (n * D + written) * 4);
    out.scores[n * D + written] = selected[i].score;
    out.labels[n * D + written] = selected[i].label;
    written++;
  }
  out.counts[n] = written;
}

/** Candidate lists of a batch of images (the candidate cache): see native/include/rk/stages.h. */
export interface CandidateLists {
  /** [batch * L + 1]: image n, level l holds [offsets[n*L + l], offsets[n*L + l + 1]). */
  offsets: BigInt64Array;
  rows: Int32Array;
  labels: Int32Array;
  /** Raw class-head values (logits or probabilities), widened to f32. */
  values: Float32Array;
  /** [count * 4] raw box deltas, widened to f32. */
  deltas: Float32Array;
  /** [count * 4] the anchor of each candidate; absent: the grid of the shapes. */
  anchors?: Float32Array;
  /**
   * Lists of at least this many entries may have been cut there (the cache's max_topk; absent or 0:
   * never). With per-class thresholds such a level must still hold topk_candidates that pass.
   */
  listCap?: number;
}

/** Shapes of the heads a batch of candidate lists came from. */
export interface CandidateShapes {
  batch: number;
  numClasses: number;
  anchorsPerLocation: number;
  featureSizes: [number, number][];
  paddedSize: [number, number];
  imageSizes: Int32Array;
  outputSizes?: Int32Array;
}

/**
 * The stages after selection on candidate lists: each candidate re-decided as the class-head pass
 * decides an element (score, `> f32(t)`, top-k by score then order key), then finishImage.
 */
export function runCandidatesReference(config: PostprocessConfig, shapes: CandidateShapes, lists: CandidateLists): PaddedDetections {
  const { batch: N, numClasses: K, anchorsPerLocation: A, featureSizes } = shapes;
  const L = featureSizes.length;
  const params = toNativeParams(config, K);
  const grid = makeAnchorGrid(params, featureSizes, shapes.paddedSize);
  const D = config.detections_per_img;
  const classT = classThresholds(config, K);
  const thresh = classT ? classT.reduce((m, t) => Math.min(m, t), Infinity) : f(config.score_thresh);
  const out: PaddedDetections = { maxDetections: D, counts: new Int32Array(N), boxes: new Float32Array(N * D * 4), scores: new Float32Array(N * D), labels: new Int32Array(N * D) };
  for (let n = 0; n < N; n++) {
    const selected: (Candidate & { at: number })[] = [];
    for (let l = 0; l < L; l++) {
      const [H, W] = featureSizes[l];
      const begin = Number(lists.offsets[n * L + l]);
      const end = Number(lists.offsets[n * L + l + 1]);
      const level: (Candidate & { at: number })[] = [];
      for (let i = begin; i < end; i++) {
        const v = lists.values[i];
        const score = config.score_input === "logits" ? sigmoidF32(v) : v;
        if (!(score > thresh)) continue;
        const row = lists.rows[i];
        const label = lists.labels[i];
        if (classT && !(score > classT[label])) continue;
        const order = config.candidate_order === "anchor_major" ? row * K + label : ((row % A) * K + label) * H * W + Math.floor(row / A);
        level.push({ score, level: l, label, row, order, at: i });
      }
      const cap = lists.listCap ?? 0;
      // What the cache cut scores below its lowest kept score: it could pass only a class threshold below that.
      const lowest = () => {
        let m = Infinity;
        for (let i = begin; i < end; i++) {
          const s = config.score_input === "logits" ? sigmoidF32(lists.values[i]) : lists.values[i];
          if (s < m) m = s;
        }
        return m;
      };
      if (classT && cap > 0 && end - begin >= cap && level.length < config.topk_candidates && thresh < lowest()) {
        throw Object.assign(
          new RangeError(
            `Expected topk_candidates (${config.topk_candidates}) candidates passing score_thresh_per_class in image ${n}, level P${l + 3} of the candidate cache, which holds only the best ${cap} (max_topk) of the level, but ${level.length} of them pass: ` +
              `the class thresholds remove candidates the cache kept, and the ones it cut could be selected. Lower topk_candidates to ${level.length} or rebuild the cache with a larger --max-topk`,
          ),
          { code: "ERR_RK_CACHE_BOUNDS" },
        );
      }
      level.sort(ranksBefore);
      selected.push(...level.slice(0, config.topk_candidates));
    }
    const at = (c: Candidate) => (c as Candidate & { at: number }).at * 4;
    const quad = (a: Float32Array, i: number): Box => [a[i], a[i + 1], a[i + 2], a[i + 3]];
    const anchors = lists.anchors;
    finishImage(
      config,
      params,
      grid,
      featureSizes,
      selected,
      (c) => quad(lists.deltas, at(c)),
      (c) => (anchors ? quad(anchors, at(c)) : gridAnchor(grid, featureSizes, c.level, c.row)),
      n,
      [shapes.imageSizes[2 * n], shapes.imageSizes[2 * n + 1]],
      shapes.outputSizes ? [shapes.outputSizes[2 * n], shapes.outputSizes[2 * n + 1]] : undefined,
      out,
    );
  }
  return out;
}
