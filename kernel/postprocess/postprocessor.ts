/**
 * The Postprocessor users build once and run many times: a validated config bound to a backend
 * (native CPU, CUDA, or the TypeScript reference), reusing the backend's workspace between runs.
 */
import * as os from "os";

import { NativePostprocessor, NativeResult, loadNative, nativeStatus } from "../native";
import { describe, resolveConfig, toNativeParams } from "./config";
import { HeadOutputs, NormalizedHeads, normalizeHeads } from "./heads";
import { PostprocessConfig } from "./presets";
import { PaddedDetections, runReference } from "./reference";

export type BackendName = "cpu" | "cuda" | "js";
export type BackendChoice = BackendName | "auto";

export interface PostprocessorOptions {
  /** "auto" (default): cuda when a device is usable, else cpu, else js. */
  backend?: BackendChoice;
  /** CPU threads over images and levels; default: every core. */
  threads?: number;
  /** CUDA device index. */
  device?: number;
}

export interface ImageDetections {
  /** [count * 4] (x1, y1, x2, y2), a view into the padded result. */
  boxes: Float32Array;
  scores: Float32Array;
  labels: Int32Array;
  count: number;
}

export interface RunTimings {
  /** Wall time of the call as seen from JavaScript. */
  totalMs: number;
  uploadMs: number;
  computeMs: number;
  downloadMs: number;
  selectMs?: number;
  decodeNmsMs?: number;
  graphReplayed: boolean;
}

export interface PostprocessResult {
  backend: BackendName;
  /** Per image, views into `padded` (no copy). */
  detections: ImageDetections[];
  /** [N, D, ...] padded form + counts, as TensorRT's NMS plugins emit it. */
  padded: PaddedDetections;
  timings: RunTimings;
}

export class BackendUnavailableError extends Error {
  readonly code = "ERR_RK_UNAVAILABLE";
  constructor(message: string) {
    super(message);
    this.name = "BackendUnavailableError";
  }
}

/** Backends usable here, and why the others are not. */
export function availableBackends(): { available: BackendName[]; unavailable: Partial<Record<BackendName, string>> } {
  const status = nativeStatus();
  const addon = loadNative();
  const available: BackendName[] = [];
  const unavailable: Partial<Record<BackendName, string>> = {};
  if (addon) available.push("cpu");
  else unavailable.cpu = status.reason;
  if (!addon) {
    unavailable.cuda = status.reason;
  } else if (!addon.buildInfo.cuda.compiled || !addon.devices) {
    unavailable.cuda = `this build has no CUDA backend: ${addon.buildInfo.cuda.reason ?? "not compiled"}`;
  } else {
    const d = addon.devices();
    if (d.devices.length > 0) available.push("cuda");
    else unavailable.cuda = `no CUDA device: ${d.reason ?? "none found"}`;
  }
  available.push("js");
  return { available, unavailable };
}

function pickBackend(choice: BackendChoice): BackendName {
  const { available, unavailable } = availableBackends();
  if (choice === "auto") return available.includes("cuda") ? "cuda" : available.includes("cpu") ? "cpu" : "js";
  if (!["cpu", "cuda", "js"].includes(choice)) {
    throw Object.assign(new RangeError(`Expected one of "auto", "cpu", "cuda", "js" for backend but received ${describe(choice)}`), { code: "ERR_RK_CONFIG" });
  }
  if (!available.includes(choice)) {
    throw new BackendUnavailableError(`Expected an available backend (${available.join(", ")}) for backend but received "${choice}": ${unavailable[choice]}`);
  }
  return choice;
}

function padded(r: NativeResult): PaddedDetections {
  return { maxDetections: r.maxDetections, counts: r.counts, boxes: r.boxes, scores: r.scores, labels: r.labels };
}

function toResult(backend: BackendName, padded: PaddedDetections, timings: RunTimings): PostprocessResult {
  const D = padded.maxDetections;
  const detections: ImageDetections[] = [];
  for (let n = 0; n < padded.counts.length; n++) {
    const count = padded.counts[n];
    detections.push({
      boxes: padded.boxes.subarray(n * D * 4, n * D * 4 + count * 4),
      scores: padded.scores.subarray(n * D, n * D + count),
      labels: padded.labels.subarray(n * D, n * D + count),
      count,
    });
  }
  return { backend, detections, padded, timings };
}

export class Postprocessor {
  readonly config: PostprocessConfig;
  readonly backend: BackendName;
  readonly threads: number;
  readonly device: number;
  /** Native engines by class count (a config with num_classes null adapts to the data). */
  private readonly engines = new Map<number, NativePostprocessor>();
  private tail: Promise<unknown> = Promise.resolve();
  private disposed = false;

  constructor(config: Partial<PostprocessConfig> = {}, options: PostprocessorOptions = {}) {
    if (options === null || typeof options !== "object") {
      throw Object.assign(new TypeError(`Expected an options object for createPostprocessor but received ${describe(options)}`), { code: "ERR_RK_CONFIG" });
    }
    this.config = resolveConfig(config);
    this.backend = pickBackend(options.backend ?? "auto");
    const threads = options.threads ?? os.availableParallelism();
    if (typeof threads !== "number" || !Number.isInteger(threads) || threads < 1 || threads > 1024) {
      throw Object.assign(new RangeError(`Expected an integer in [1, 1024] for threads but received ${describe(threads)}`), { code: "ERR_RK_CONFIG" });
    }
    this.threads = threads;
    this.device = options.device ?? 0;
    if (this.config.num_classes !== null) this.engine(this.config.num_classes);
  }

  /** Checks head outputs against this config (shapes, dtypes, sizes) and normalises them. */
  prepare(heads: HeadOutputs): NormalizedHeads {
    return normalizeHeads(heads, this.config);
  }

  private engine(numClasses: number): NativePostprocessor | undefined {
    if (this.backend === "js") return undefined;
    let e = this.engines.get(numClasses);
    if (!e) {
      const addon = loadNative()!;
      e = new addon.Postprocessor(toNativeParams(this.config, numClasses), {
        backend: this.backend,
        threads: this.threads,
        device: this.device,
      });
      this.engines.set(numClasses, e);
    }
    return e;
  }

  private check(): void {
    if (this.disposed) throw Object.assign(new Error("Expected a live Postprocessor but this one was disposed"), { code: "ERR_RK_DISPOSED" });
  }

  /** Runs on a worker thread (native) and resolves with the detections; runs are serialised. */
  run(heads: HeadOutputs | NormalizedHeads): Promise<PostprocessResult> {
    this.check();
    const callSite = new Error("called from");
    const job = this.tail.then(async () => {
      const h = "featureSizes" in heads ? heads : this.prepare(heads);
      const start = performance.now();
      const engine = this.engine(h.numClasses);
      if (!engine) {
        const padded = runReference(this.config, h);
        const ms = performance.now() - start;
        return toResult("js", padded, { totalMs: ms, uploadMs: 0, computeMs: ms, downloadMs: 0, graphReplayed: false });
      }
      const r = await engine.run(h);
      return toResult(this.backend, padded(r), { totalMs: performance.now() - start, ...r.timings });
    });
    this.tail = job.catch(() => undefined);
    return job.catch((e: Error) => {
      // Point async errors at the caller's code, not at the worker's callback.
      if (e && typeof e === "object" && typeof e.stack === "string") e.stack += `\n    --- run() ${callSite.stack?.split("\n").slice(1).join("\n")}`;
      throw e;
    });
  }

  /** The same on the calling thread: for small inputs, or where blocking is fine. */
  runSync(heads: HeadOutputs | NormalizedHeads): PostprocessResult {
    this.check();
    const h = "featureSizes" in heads ? heads : this.prepare(heads);
    const start = performance.now();
    const engine = this.engine(h.numClasses);
    if (!engine) {
      const padded = runReference(this.config, h);
      const ms = performance.now() - start;
      return toResult("js", padded, { totalMs: ms, uploadMs: 0, computeMs: ms, downloadMs: 0, graphReplayed: false });
    }
    const r = engine.runSync(h);
    return toResult(this.backend, padded(r), { totalMs: performance.now() - start, ...r.timings });
  }

  /** Frees the native workspace and threads now instead of at garbage collection. */
  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    await this.tail;
    for (const e of this.engines.values()) e.dispose();
    this.engines.clear();
  }
}

/** A Postprocessor for a config (preset defaults overlaid by the given fields) on a backend. */
export function createPostprocessor(config: Partial<PostprocessConfig> = {}, options: PostprocessorOptions = {}): Postprocessor {
  return new Postprocessor(config, options);
}
