/** Shared test helpers: where the golden data is, which backends run here, configs of golden cases. */
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";

import { loadNative, PACKAGE_ROOT } from "../kernel/native";
import { NdArray, ndarray } from "../kernel/postprocess/ndarray";
import { availableBackends, BackendName, PostprocessResult } from "../kernel/postprocess/postprocessor";
import { PostprocessConfig, PRESET_NAMES, PresetName } from "../kernel/postprocess/presets";

/**
 * Runs `fn` with the environment variables `vars` set (undefined: unset), then puts back what was
 * there before, also when `fn` throws. For settings the native code reads at launch (RK_CUDA_RANKS, RK_CUDA_TOPK).
 */
export async function withEnv<T>(vars: Record<string, string | undefined>, fn: () => Promise<T>): Promise<T> {
  const saved = Object.fromEntries(Object.keys(vars).map((name) => [name, process.env[name]]));
  const apply = (values: Record<string, string | undefined>) => {
    for (const [name, value] of Object.entries(values)) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  };
  apply(vars);
  try {
    return await fn();
  } finally {
    apply(saved);
  }
}

/** ../shared/golden beside the checkout, or RK_GOLDEN_DIR (the GPU machine carries a copy). */
export const GOLDEN_DIR = process.env.RK_GOLDEN_DIR ?? path.resolve(PACKAGE_ROOT, "..", "shared", "golden");

export interface GoldenCase {
  name: string;
  npz: string;
  meta: Record<string, unknown>;
  preset: string;
}

export function goldenCases(): GoldenCase[] {
  if (!fs.existsSync(GOLDEN_DIR)) return [];
  return fs
    .readdirSync(GOLDEN_DIR)
    .filter((f) => f.endsWith(".json"))
    .sort()
    .map((f) => {
      const meta = JSON.parse(fs.readFileSync(path.join(GOLDEN_DIR, f), "utf8")) as Record<string, unknown>;
      return { name: f.replace(/\.json$/, ""), npz: path.join(GOLDEN_DIR, f.replace(/\.json$/, ".npz")), meta, preset: String(meta.preset) };
    });
}

export function isBuiltPreset(p: string): p is PresetName {
  return (PRESET_NAMES as readonly string[]).includes(p);
}

/** The config a golden case was made with. */
export function goldenConfig(c: GoldenCase): Partial<PostprocessConfig> {
  const m = c.meta;
  return {
    preset: c.preset as PresetName,
    score_thresh: m.score_thresh as number,
    nms_thresh: m.nms_thresh as number,
    topk_candidates: m.topk_candidates as number,
    detections_per_img: m.detections_per_img as number,
    num_classes: m.num_classes as number,
  };
}

/** Host backends available in this process (cuda has its own GPU test files). */
export function hostBackends(): BackendName[] {
  return availableBackends().available.filter((b) => b !== "cuda");
}

export function nativeAvailable(): boolean {
  return availableBackends().available.includes("cpu");
}

/** Deterministic uniform floats in [lo, hi). */
export function randomFloats(n: number, seed: number, lo = 0, hi = 1): Float32Array {
  let s = seed >>> 0 || 1;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    out[i] = lo + ((s >>> 0) / 4294967296) * (hi - lo);
  }
  return out;
}

/** Concatenated [N, sum(HWA), C] -> per-level [N, A*C, H, W] (channel a*C + c). */
export function toPerLevel(a: NdArray, featureSizes: [number, number][], A: number): NdArray[] {
  const [N, total, C] = a.shape;
  const src = a.data as Float32Array;
  const out: NdArray[] = [];
  let r0 = 0;
  for (const [H, W] of featureSizes) {
    const dst = new Float32Array(N * A * C * H * W);
    for (let n = 0; n < N; n++) {
      for (let y = 0; y < H; y++) {
        for (let x = 0; x < W; x++) {
          for (let an = 0; an < A; an++) {
            const row = (y * W + x) * A + an;
            for (let c = 0; c < C; c++) dst[((n * A * C + an * C + c) * H + y) * W + x] = src[(n * total + r0 + row) * C + c];
          }
        }
      }
    }
    out.push(ndarray("float32", [N, A * C, H, W], dst));
    r0 += H * W * A;
  }
  return out;
}


/** Why the CUDA backend cannot run here (undefined when it can): GPU tests skip with this printed. */
export function cudaUnavailableReason(): string | undefined {
  const addon = loadNative();
  if (!addon) return "the native addon is not built";
  if (!addon.buildInfo.cuda.compiled || !addon.devices) return `the addon has no CUDA backend (${addon.buildInfo.cuda.reason ?? "not compiled"})`;
  const d = addon.devices();
  if (d.devices.length === 0) return d.reason ?? "no CUDA device";
  return undefined;
}

/** Same detections, bit for bit (boxes, scores, labels, counts, padded rows). */
export function assertSameBits(got: PostprocessResult, want: PostprocessResult, what: string): void {
  assert.deepStrictEqual(Array.from(got.padded.counts), Array.from(want.padded.counts), `${what}: counts`);
  const eq = (a: ArrayLike<number>, b: ArrayLike<number>, name: string) => {
    assert.strictEqual(a.length, b.length, `${what}: ${name} length`);
    for (let i = 0; i < a.length; i++) {
      if (!Object.is(a[i], b[i])) assert.fail(`${what}: ${name}[${i}] = ${a[i]}, expected ${b[i]}`);
    }
  };
  eq(got.padded.boxes, want.padded.boxes, "boxes");
  eq(got.padded.scores, want.padded.scores, "scores");
  eq(got.padded.labels, want.padded.labels, "labels");
}
