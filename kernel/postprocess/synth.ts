/**
 * Synthetic head outputs with ground truth, the idea of ../shared/golden/make_golden.py: background
 * logits ~ N(mu, 1.5); for a few ground-truth boxes per image, anchors with IoU > 0.4 get a high
 * logit on the object's class (8*IoU - 2 + noise) and deltas that encode the box plus noise.
 * Deterministic for a seed (xoshiro128** + Box-Muller), so benchmarks and notebooks are repeatable.
 */
import { describe, resolveConfig } from "./config";
import { Dataset } from "./dataset";
import { fpnFeatureSizes } from "./heads";
import { NdArray, ndarray } from "./ndarray";
import { PostprocessConfig } from "./presets";
import { floatToHalf, generateAnchors, sigmoidF32 } from "./reference";

export interface SynthOptions {
  /** Images in the batch (N). */
  images?: number;
  /** (H, W) of every image, or one size per image. */
  size?: [number, number] | [number, number][];
  /** Classes (K). */
  classes?: number;
  /** Fraction of background scores above 0.05; sets the background logit mean. Ignored when bgMean is set. */
  density?: number;
  /** Background logit mean (e.g. -6 sparse, -4 dense). */
  bgMean?: number;
  /** Objects per image. */
  objects?: number;
  seed?: number;
  /** Store the heads as fp16 bits instead of f32. */
  fp16?: boolean;
  /** Post-processing config whose anchors and padding the heads are made for (default torchvision). */
  config?: Partial<PostprocessConfig>;
  name?: string;
}

/** xoshiro128** seeded by splitmix32: fast, 32-bit, good enough for test data. */
export class Rng {
  private s = new Uint32Array(4);
  private spare: number | undefined;
  constructor(seed: number) {
    let x = seed >>> 0;
    for (let i = 0; i < 4; i++) {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      this.s[i] = (z ^ (z >>> 16)) >>> 0;
    }
  }
  nextU32(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1], 5) >>> 0, 7), 9) >>> 0;
    const t = (s[1] << 9) >>> 0;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return result;
  }
  /** Uniform in [0, 1). */
  uniform(): number {
    return this.nextU32() / 4294967296;
  }
  /** Standard normal (Box-Muller, both values used). */
  normal(): number {
    if (this.spare !== undefined) {
      const v = this.spare;
      this.spare = undefined;
      return v;
    }
    let u = 0;
    while (u === 0) u = this.uniform();
    const v = this.uniform();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

/** Inverse of the standard normal CDF (Acklam's rational approximation, |error| < 1.2e-9). */
export function normalQuantile(p: number): number {
  const a = [-3.969683028665376e1, 2.209460984245205e2, -2.759285104469687e2, 1.38357751867269e2, -3.066479806614716e1, 2.506628277459239];
  const b = [-5.447609879822406e1, 1.615858368580409e2, -1.556989798598866e2, 6.680131188771972e1, -1.328068155288572e1];
  const c = [-7.784894002430293e-3, -3.223964580411365e-1, -2.400758277161838, -2.549732539343734, 4.374664141464968, 2.938163982698783];
  const d = [7.784695709041462e-3, 3.224671290700398e-1, 2.445134137142996, 3.754408661907416];
  const lo = 0.02425;
  if (p < lo) {
    const q = Math.sqrt(-2 * Math.log(p));
    return (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  }
  if (p > 1 - lo) return -normalQuantile(1 - p);
  const q = p - 0.5;
  const r = q * q;
  return ((((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q) / (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
}

/** Background logit mean that puts `density` of background scores above 0.05 (sigma 1.5). */
export function bgMeanForDensity(density: number): number {
  return Math.log(0.05 / 0.95) - 1.5 * normalQuantile(1 - density);
}

function iouPlain(a: ArrayLike<number>, ai: number, b: readonly number[]): number {
  const x1 = Math.max(a[ai], b[0]);
  const y1 = Math.max(a[ai + 1], b[1]);
  const x2 = Math.min(a[ai + 2], b[2]);
  const y2 = Math.min(a[ai + 3], b[3]);
  const inter = Math.max(0, x2 - x1) * Math.max(0, y2 - y1);
  const areaA = (a[ai + 2] - a[ai]) * (a[ai + 3] - a[ai + 1]);
  const areaB = (b[2] - b[0]) * (b[3] - b[1]);
  return inter / (areaA + areaB - inter);
}

/** Ground-truth boxes of one image (x1, y1, x2, y2; 16 px up to 60% of the image) and their labels. */
function drawObjects(rng: Rng, objects: number, h: number, w: number, K: number, off: number): { boxes: number[][]; labels: number[] } {
  const boxes: number[][] = [];
  const labels: number[] = [];
  for (let o = 0; o < objects; o++) {
    const bw = 16 + rng.uniform() * Math.max(1, w * 0.6 - 16);
    const bh = 16 + rng.uniform() * Math.max(1, h * 0.6 - 16);
    const x1 = rng.uniform() * Math.max(1, w - bw);
    const y1 = rng.uniform() * Math.max(1, h - bh);
    boxes.push([x1, y1, x1 + bw - off, y1 + bh - off]);
    labels.push(Math.floor(rng.uniform() * K));
  }
  return { boxes, labels };
}

function checkInt(name: string, v: unknown, lo: number, hi: number): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < lo || v > hi) {
    throw Object.assign(new RangeError(`Expected an integer in [${lo}, ${hi}] for ${name} but received ${describe(v)}`), { code: "ERR_RK_CONFIG" });
  }
  return v;
}

/** A synthetic batch of head outputs (concatenated layout) with ground truth. */
export function synthesize(options: SynthOptions = {}): Dataset {
  const N = checkInt("images", options.images ?? 1, 1, 64);
  const K = checkInt("classes", options.classes ?? 80, 1, 10000);
  const objects = checkInt("objects", options.objects ?? 8, 0, 1000);
  const seed = checkInt("seed", options.seed ?? 1, 0, 2 ** 32 - 1);
  const rawSizes = options.size ?? [800, 1333];
  const sizes: [number, number][] = Array.isArray(rawSizes[0]) ? (rawSizes as [number, number][]) : Array.from({ length: N }, () => rawSizes as [number, number]);
  if (sizes.length !== N || !sizes.every((s) => Array.isArray(s) && s.length === 2 && s.every((x) => Number.isInteger(x) && x >= 32 && x <= 8192))) {
    throw Object.assign(new RangeError(`Expected ${N} image sizes [h, w] with 32 <= h, w <= 8192 for size but received ${describe(options.size)}`), { code: "ERR_RK_CONFIG" });
  }
  let bgMean: number;
  if (options.bgMean !== undefined) {
    if (typeof options.bgMean !== "number" || !(options.bgMean > -50 && options.bgMean < 50)) {
      throw Object.assign(new RangeError(`Expected a number in (-50, 50) for bgMean but received ${describe(options.bgMean)}`), { code: "ERR_RK_CONFIG" });
    }
    bgMean = options.bgMean;
  } else {
    const density = options.density ?? 0.02;
    if (typeof density !== "number" || !(density > 0 && density < 1)) {
      throw Object.assign(new RangeError(`Expected a number in (0, 1) for density but received ${describe(density)}`), { code: "ERR_RK_CONFIG" });
    }
    bgMean = bgMeanForDensity(density);
  }
  const config = resolveConfig({ ...options.config, num_classes: null });
  const d = config.size_divisible;
  const padded: [number, number] = [
    Math.ceil(Math.max(...sizes.map((s) => s[0])) / d) * d,
    Math.ceil(Math.max(...sizes.map((s) => s[1])) / d) * d,
  ];
  const featureSizes = fpnFeatureSizes(padded, config.anchor_sizes.length);
  const anchors = generateAnchors(config, featureSizes, padded);
  const HWA = anchors.length / 4;
  const rng = new Rng(seed);
  const cls = new Float32Array(N * HWA * K);
  const reg = new Float32Array(N * HWA * 4);
  for (let i = 0; i < cls.length; i++) cls[i] = rng.normal() * 1.5 + bgMean;
  for (let i = 0; i < reg.length; i++) reg[i] = rng.normal() * 0.5;
  const gt: Dataset["gt"] = [];
  const off = config.pixel_offset;
  for (let n = 0; n < N; n++) {
    const [h, w] = sizes[n];
    const { boxes, labels } = drawObjects(rng, objects, h, w, K, off);
    gt.push({ boxes: Float32Array.from(boxes.flat()), labels: Int32Array.from(labels) });
    if (boxes.length === 0) continue;
    // Anchors matching an object (IoU > 0.4) get its class and its encoded box.
    for (let r = 0; r < HWA; r++) {
      let best = 0;
      let which = -1;
      for (let o = 0; o < boxes.length; o++) {
        const v = iouPlain(anchors, r * 4, boxes[o]);
        if (v > best) {
          best = v;
          which = o;
        }
      }
      if (best <= 0.4) continue;
      const [gx1, gy1, gx2, gy2] = boxes[which];
      const ax1 = anchors[r * 4], ay1 = anchors[r * 4 + 1], ax2 = anchors[r * 4 + 2], ay2 = anchors[r * 4 + 3];
      const aw = ax2 - ax1 + off, ah = ay2 - ay1 + off;
      const gw = gx2 - gx1 + off, gh = gy2 - gy1 + off;
      const at = (n * HWA + r) * 4;
      reg[at] = ((gx1 + 0.5 * gw) - (ax1 + 0.5 * aw)) / aw + rng.normal() * 0.08;
      reg[at + 1] = ((gy1 + 0.5 * gh) - (ay1 + 0.5 * ah)) / ah + rng.normal() * 0.08;
      reg[at + 2] = Math.log(gw / aw) + rng.normal() * 0.08;
      reg[at + 3] = Math.log(gh / ah) + rng.normal() * 0.08;
      cls[(n * HWA + r) * K + labels[which]] = best * 8 - 2 + rng.normal();
    }
  }
  let clsArr: NdArray = ndarray("float32", [N, HWA, K], cls);
  let regArr: NdArray = ndarray("float32", [N, HWA, 4], reg);
  if (options.fp16) {
    const c16 = new Uint16Array(cls.length);
    for (let i = 0; i < cls.length; i++) c16[i] = floatToHalf(cls[i]);
    const r16 = new Uint16Array(reg.length);
    for (let i = 0; i < reg.length; i++) r16[i] = floatToHalf(reg[i]);
    clsArr = ndarray("float16", [N, HWA, K], c16);
    regArr = ndarray("float16", [N, HWA, 4], r16);
  }
  const imageSizes = ndarray("int32", [N, 2], Int32Array.from(sizes.flat()));
  const featureArr = ndarray("int32", [featureSizes.length, 2], Int32Array.from(featureSizes.flat()));
  const arrays = new Map<string, NdArray>([
    ["cls_logits", clsArr],
    ["bbox_regression", regArr],
    ["image_sizes", imageSizes],
    ["feature_sizes", featureArr],
  ]);
  gt.forEach((g, i) => {
    arrays.set(`gt${i}_boxes`, ndarray("float32", [g.labels.length, 4], g.boxes));
    arrays.set(`gt${i}_labels`, ndarray("int32", [g.labels.length], g.labels));
  });
  return {
    name: options.name ?? `synth_n${N}_k${K}`,
    source: "synthetic",
    cls_logits: clsArr,
    bbox_regression: regArr,
    image_sizes: imageSizes,
    feature_sizes: featureArr,
    padded_size: padded,
    gt,
    arrays,
    meta: { preset: config.preset, bg_mean: bgMean, seed, objects, images: N, classes: K, size: sizes },
  };
}

// ---------------------------------------------------------------------------------------------
// A synthetic validation set written straight to a candidate cache

/** P(Z > z) for a standard normal (erfc by Numerical Recipes' Chebyshev fit, relative error < 1.2e-7). */
export function normalUpperTail(z: number): number {
  const x = z / Math.SQRT2;
  const t = 1 / (1 + 0.5 * Math.abs(x));
  const y =
    t *
    Math.exp(
      -x * x -
        1.26551223 +
        t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))),
    );
  const erfc = x >= 0 ? y : 2 - y;
  return erfc / 2;
}

export interface SynthCacheOptions extends Omit<SynthOptions, "fp16" | "images"> {
  images?: number;
  /** Bounds of the cache (default: min_score 0.05, max_topk 1000). */
  minScore?: number;
  maxTopk?: number;
  progress?: (done: number, total: number) => void;
  stop?: { readonly stopped: boolean };
}

/**
 * A synthetic validation set of any size as a candidate cache, one image at a time: the same model
 * as synthesize() (background logits ~ N(mu, 1.5); objects' anchors with IoU > 0.4 get their class
 * and encoded box), but only the elements a cache keeps are drawn: per level, how many background
 * logits pass min_score (binomial), the largest of them as order statistics of the normal tail, at
 * distinct random positions. The cache is exactly the cache of heads whose other elements lie below
 * those drawn; it is not the same draw as synthesize() with the same seed. Also writes
 * annotations.json (COCO: image ids 1..N, category id = label) into the cache.
 */
export function synthesizeCache(dir: string, options: SynthCacheOptions = {}): import("./cache").CacheMeta {
  // Required here, not at the top: cache.ts needs reference.ts, which this file's users load first.
  const { CacheWriter, CacheError, rankOrderKey } = require("./cache") as typeof import("./cache");
  const N = checkInt("images", options.images ?? 100, 1, 10_000_000);
  const K = checkInt("classes", options.classes ?? 80, 1, 10000);
  const objects = checkInt("objects", options.objects ?? 8, 0, 1000);
  const seed = checkInt("seed", options.seed ?? 1, 0, 2 ** 32 - 1);
  const raw = (options.size ?? [800, 1333]) as unknown[];
  if (!Array.isArray(raw) || raw.length !== 2 || !raw.every((x) => typeof x === "number" && Number.isInteger(x) && x >= 32 && x <= 8192)) {
    throw Object.assign(new RangeError(`Expected one image size [h, w] with 32 <= h, w <= 8192 for size but received ${describe(options.size)}`), { code: "ERR_RK_CONFIG" });
  }
  const [h, w] = raw as number[];
  const bgMean = options.bgMean ?? bgMeanForDensity(options.density ?? 0.02);
  if (typeof bgMean !== "number" || !(bgMean > -50 && bgMean < 50)) throw Object.assign(new RangeError(`Expected a number in (-50, 50) for bgMean but received ${describe(bgMean)}`), { code: "ERR_RK_CONFIG" });
  const config = resolveConfig({ ...options.config, num_classes: null });
  if (config.score_input !== "logits") throw new CacheError(`Expected a preset that reads logits (torchvision, detectron2) for a synthetic cache but received ${config.preset}, which reads probabilities`, "ERR_RK_CONFIG");
  const bounds = { minScore: options.minScore ?? 0.05, maxTopk: options.maxTopk ?? 1000 };
  const d = config.size_divisible;
  const padded: [number, number] = [Math.ceil(h / d) * d, Math.ceil(w / d) * d];
  const featureSizes = fpnFeatureSizes(padded, config.anchor_sizes.length);
  const anchors = generateAnchors(config, featureSizes, padded);
  const A = config.anchor_sizes[0].length * config.aspect_ratios.length;
  const levelAnchors = featureSizes.map(([fh, fw]) => fh * fw * A);
  const levelOffset = levelAnchors.map((_, l) => levelAnchors.slice(0, l).reduce((s, v) => s + v, 0));
  // Largest anchor extent per level, to look for objects' anchors near the object only.
  const extent = featureSizes.map((_, l) => {
    let m = 0;
    for (let r = levelOffset[l]; r < levelOffset[l] + A; r++) m = Math.max(m, anchors[r * 4 + 2] - anchors[r * 4], anchors[r * 4 + 3] - anchors[r * 4 + 1]);
    return m;
  });
  const strides = featureSizes.map(([fh]) => padded[0] / fh);
  const thresh = Math.fround(bounds.minScore);
  const c0 = Math.log(bounds.minScore / (1 - bounds.minScore));
  const pTail = bounds.minScore > 0 ? normalUpperTail((c0 - bgMean) / 1.5) : 1;
  const rng = new Rng(seed);
  const off = config.pixel_offset;
  const writer = new CacheWriter(dir, config, bounds, "synthetic");
  try {
    const gtImages: { boxes: number[][]; labels: number[] }[] = [];
    for (let n = 0; n < N; n++) {
      if (options.stop?.stopped) throw new CacheError(`Interrupted: the synthetic cache ${dir} was not written (${n} of ${N} images drawn)`, "ERR_RK_INTERRUPTED");
      const { boxes, labels } = drawObjects(rng, objects, h, w, K, off);
      gtImages.push({ boxes, labels });
      const levels = featureSizes.map(([fh, fw], l) => {
        const M = levelAnchors[l] * K;
        // Elements by flat position (row * K + label) -> logit; deltas by row.
        const values = new Map<number, number>();
        const deltas = new Map<number, number[]>();
        // Objects: anchors with IoU > 0.4 get the best object's class and encoded box.
        const best = new Map<number, { iou: number; o: number }>();
        boxes.forEach((b, o) => {
          const s = strides[l];
          const e = extent[l];
          const xs = Math.max(0, Math.floor((b[0] - e) / s)), xe = Math.min(fw - 1, Math.ceil((b[2] + e) / s));
          const ys = Math.max(0, Math.floor((b[1] - e) / s)), ye = Math.min(fh - 1, Math.ceil((b[3] + e) / s));
          for (let y = ys; y <= ye; y++) {
            for (let x = xs; x <= xe; x++) {
              for (let a = 0; a < A; a++) {
                const row = (y * fw + x) * A + a;
                const v = iouPlain(anchors, (levelOffset[l] + row) * 4, b);
                if (v > 0.4 && v > (best.get(row)?.iou ?? 0)) best.set(row, { iou: v, o });
              }
            }
          }
        });
        // Background: how many logits pass c0, then the largest of them (Renyi's order statistics of
        // uniforms in the tail), at distinct random positions.
        let count: number;
        const mean = M * pTail;
        if (mean < 50) {
          // Poisson, by multiplying uniforms.
          const limit = Math.exp(-mean);
          let prod = rng.uniform();
          count = 0;
          while (prod > limit) {
            count++;
            prod *= rng.uniform();
          }
        } else {
          count = Math.max(0, Math.round(mean + Math.sqrt(mean * (1 - pTail)) * rng.normal()));
        }
        const draw = Math.min(count, bounds.maxTopk + best.size);
        let u = 1; // u_(i): the i-th largest of `count` uniforms in (0, 1), descending
        for (let i = 0; i < draw; i++) {
          u *= Math.pow(1 - rng.uniform(), 1 / (count - i));
          let pos = Math.floor(rng.uniform() * M);
          while (values.has(pos)) pos = Math.floor(rng.uniform() * M);
          // The tail quantile: P(X > x) = pTail * (1 - u).
          const q = Math.max(pTail * (1 - u), 1e-300);
          values.set(pos, bgMean - 1.5 * normalQuantile(q));
        }
        for (const [row, { iou, o }] of best) {
          const [gx1, gy1, gx2, gy2] = boxes[o];
          const at = (levelOffset[l] + row) * 4;
          const ax1 = anchors[at], ay1 = anchors[at + 1], ax2 = anchors[at + 2], ay2 = anchors[at + 3];
          const aw = ax2 - ax1 + off, ah = ay2 - ay1 + off;
          const gw = gx2 - gx1 + off, gh = gy2 - gy1 + off;
          deltas.set(row, [
            ((gx1 + 0.5 * gw) - (ax1 + 0.5 * aw)) / aw + rng.normal() * 0.08,
            ((gy1 + 0.5 * gh) - (ay1 + 0.5 * ah)) / ah + rng.normal() * 0.08,
            Math.log(gw / aw) + rng.normal() * 0.08,
            Math.log(gh / ah) + rng.normal() * 0.08,
          ]);
          values.set(row * K + labels[o], iou * 8 - 2 + rng.normal());
        }
        // The kernel's decision on the f32 values, then the max_topk cut with ties kept.
        let kept: { pos: number; v: number; s: number }[] = [];
        for (const [pos, x] of values) {
          const v = Math.fround(x);
          const s = sigmoidF32(v);
          if (s > thresh) kept.push({ pos, v, s });
        }
        if (kept.length > bounds.maxTopk) {
          const sorted = kept.map((k) => k.s).sort((a, b) => b - a);
          const kth = sorted[bounds.maxTopk - 1];
          kept = kept.filter((k) => k.s >= kth);
        }
        // The kernel's ranking order: score descending, then the preset's order key.
        const HW = fh * fw;
        kept.sort((a, b) => b.s - a.s || rankOrderKey(config, Math.floor(a.pos / K), a.pos % K, K, A, HW) - rankOrderKey(config, Math.floor(b.pos / K), b.pos % K, K, A, HW));
        const m = kept.length;
        const lc = { rows: new Int32Array(m), labels: new Int32Array(m), values: new Float32Array(m), deltas: new Float32Array(m * 4) };
        kept.forEach((k, i) => {
          const row = Math.floor(k.pos / K);
          lc.rows[i] = row;
          lc.labels[i] = k.pos % K;
          lc.values[i] = k.v;
          let dl = deltas.get(row);
          if (!dl) {
            dl = [rng.normal() * 0.5, rng.normal() * 0.5, rng.normal() * 0.5, rng.normal() * 0.5];
            deltas.set(row, dl);
          }
          lc.deltas.set(dl, i * 4);
        });
        return lc;
      });
      writer.addImage(
        {
          levels,
          imageSize: [h, w],
          paddedSize: padded,
          featureSizes,
          imageId: n + 1,
          gt: { boxes: Float32Array.from(boxes.flat()), labels: Int32Array.from(labels) },
        },
        { layout: "concatenated", dtype: "float32", numClasses: K, anchorsPerLocation: A, what: `synthetic image ${n}` },
      );
      if (n % 50 === 49 || n === N - 1) options.progress?.(n + 1, N);
    }
    writer.writeExtra("annotations.json", syntheticAnnotations(gtImages, [h, w], K));
    return writer.finish({ annotations: "annotations.json", caseMeta: { preset: config.preset, bg_mean: bgMean, seed, objects, images: N, classes: K, size: [h, w] } });
  } catch (e) {
    writer.abort();
    throw e;
  }
}

/** COCO ground truth of a synthetic set: image ids 1..N, category id = label, boxes as x, y, w, h. */
function syntheticAnnotations(images: { boxes: number[][]; labels: number[] }[], [h, w]: [number, number], K: number): string {
  const parts: string[] = [];
  parts.push(`{"info":{"description":"retinanet-kernel synthetic validation set"},"images":[`);
  parts.push(images.map((_, i) => `{"id":${i + 1},"width":${w},"height":${h},"file_name":"synthetic_${i + 1}.jpg"}`).join(","));
  parts.push(`],"categories":[`);
  parts.push(Array.from({ length: K }, (_, k) => `{"id":${k},"name":"class ${k}"}`).join(","));
  parts.push(`],"annotations":[`);
  let id = 1;
  const anns: string[] = [];
  images.forEach((im, i) => {
    im.boxes.forEach((b, j) => {
      const x = Math.fround(b[0]), y = Math.fround(b[1]);
      const bw = Math.fround(Math.fround(b[2]) - x), bh = Math.fround(Math.fround(b[3]) - y);
      anns.push(`{"id":${id++},"image_id":${i + 1},"category_id":${im.labels[j]},"bbox":[${x},${y},${bw},${bh}],"area":${bw * bh},"iscrowd":0}`);
    });
  });
  parts.push(anns.join(","));
  parts.push(`]}\n`);
  return parts.join("");
}
