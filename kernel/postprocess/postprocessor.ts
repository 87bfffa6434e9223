/**
 * The Postprocessor users build once and run many times: a validated config bound to a backend
 * (native CPU, CUDA, or the TypeScript reference), reusing the backend's workspace between runs.
 */
import * as os from "os";

import { DeviceArray, NativeInputs, NativePostprocessor, NativeResult, NativeTimings, loadNative, nativeStatus } from "../native";
import { describe, resolveConfig, toNativeParams } from "./config";
import { HeadOutputs, NormalizedHeads, normalizeHeads } from "./heads";
import { PostprocessConfig } from "./presets";
import { PaddedDetections, runCandidatesReference, runReference } from "./reference";
import { CandidateBatch, isCandidateBatch } from "./cache";

export type BackendName = "cpu" | "cuda" | "js";
export type BackendChoice = BackendName | "auto";

export interface PostprocessorOptions {
  /** "auto" (default): cuda when a device is usable, else cpu, else js. */
  backend?: BackendChoice;
  /** CPU threads over images and levels; default: every core. */
  threads?: number;
  /** CUDA device index. */
  device?: number;
  /** CUDA: capture the stages in a CUDA Graph per fixed shape and replay it (default true). */
  graph?: boolean;
}

/**
 * Head outputs already in device memory (from Postprocessor.upload): runs read them in place, with
 * no host-to-device copy. free() releases the device memory now (else at garbage collection).
 */
export interface DeviceHeads extends Omit<NormalizedHeads, "cls" | "box"> {
  readonly residency: "device";
  readonly device: number;
  cls: DeviceArray[];
  box: DeviceArray[];
  free(): void;
}

export interface ImageDetections {
  /** [count * 4] (x1, y1, x2, y2), a view into the padded result. */
  boxes: Float32Array;
  scores: Float32Array;
  labels: Int32Array;
  count: number;
}

/** A run's timings: the native engine's (zero copies for JavaScript) and the call's wall time. */
export interface RunTimings extends NativeTimings {
  /** Wall time of the call as seen from JavaScript. */
  totalMs: number;
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

/** The argument of run() / upload() is an object (the fields themselves are checked where they are read). */
function checkHeadsArgument(heads: unknown, where: string): void {
  if (heads === null || typeof heads !== "object") {
    const got = heads === null ? "null" : heads === undefined ? "undefined" : typeof heads;
    throw Object.assign(new TypeError(`Expected head outputs for ${where} (a dataset, {cls_logits, bbox_regression, image_sizes}, or heads from upload()) but received ${got}`), { code: "ERR_RK_PARAM" });
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

export function toResult(backend: BackendName, padded: PaddedDetections, timings: RunTimings): PostprocessResult {
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

function hostHeads(h: NormalizedHeads | DeviceHeads): NormalizedHeads {
  if ("residency" in h) {
    throw Object.assign(new TypeError("Expected host arrays for the js backend but received device-resident heads (from upload())"), { code: "ERR_RK_PARAM" });
  }
  return h;
}

export class Postprocessor {
  readonly config: PostprocessConfig;
  readonly backend: BackendName;
  readonly threads: number;
  readonly device: number;
  readonly graph: boolean;
  /** Native engines by class count (a config with num_classes null adapts to the data). */
  private readonly engines = new Map<number, NativePostprocessor>();
  /** CPU engines for candidate lists when this Postprocessor's backend is cuda (the stages after selection run on the CPU core). */
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
    if (typeof this.device !== "number" || !Number.isInteger(this.device) || this.device < 0) {
      throw Object.assign(new RangeError(`Expected a device index >= 0 for device but received ${describe(this.device)}`), { code: "ERR_RK_CONFIG" });
    }
    this.graph = options.graph ?? true;
    if (typeof this.graph !== "boolean") {
      throw Object.assign(new TypeError(`Expected a boolean for graph but received ${describe(this.graph)}`), { code: "ERR_RK_CONFIG" });
    }
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
        ...(this.backend === "cuda" ? { graph: this.graph } : {}),
      });
      this.engines.set(numClasses, e);
    }
    return e;
  }

  private check(): void {
    if (this.disposed) throw Object.assign(new Error("Expected a live Postprocessor but this one was disposed"), { code: "ERR_RK_DISPOSED" });
  }

  /**
   * Copies head outputs to this Postprocessor's CUDA device once, so that later runs read them in
   * place (the device-resident entry point). Only for backend "cuda".
   */
  upload(heads: HeadOutputs | NormalizedHeads): DeviceHeads {
    this.check();
    const addon = loadNative();
    if (this.backend !== "cuda" || !addon?.upload) {
      throw new BackendUnavailableError(
        `Expected a Postprocessor with backend "cuda" for upload() but this one runs on "${this.backend}"`,
      );
    }
    checkHeadsArgument(heads, "upload()");
    const h = "featureSizes" in heads ? heads : this.prepare(heads);
    const arrays: DeviceArray[] = [];
    const put = (a: Float32Array | Uint16Array): DeviceArray => {
      const d = addon.upload!(a, this.device);
      arrays.push(d);
      return d;
    };
    try {
      const cls = h.cls.map(put);
      const box = h.box.map(put);
      return { ...h, cls, box, residency: "device", device: this.device, free: () => arrays.forEach((a) => a.free()) };
    } catch (e) {
      arrays.forEach((a) => a.free());
      throw e;
    }
  }

  private toInputs(h: NormalizedHeads | DeviceHeads): NativeInputs {
    if (!("residency" in h)) return h;
    if (this.backend !== "cuda") {
      throw Object.assign(new TypeError(`Expected host arrays for the ${this.backend} backend but received device-resident heads (from upload())`), { code: "ERR_RK_PARAM" });
    }
    if (h.device !== this.device) {
      throw Object.assign(new RangeError(`Expected heads uploaded to device ${this.device} but received heads on device ${h.device}`), { code: "ERR_RK_PARAM" });
    }
    return { ...h, residency: "device" };
  }

  private static isNormalized(h: HeadOutputs | NormalizedHeads | DeviceHeads): h is NormalizedHeads | DeviceHeads {
    return "featureSizes" in h;
  }

  /**
   * The engine and inputs for candidate lists (a batch of the candidate cache): the backend's own
   * engine (the CPU core, or the CUDA engine, which leaves a list out of ranking order to the CPU
   * core), or the reference for js.
   */
  private candidateInputs(b: CandidateBatch): { engine?: NativePostprocessor; inputs: NativeInputs } {
    const engine = this.backend === "js" ? undefined : this.engine(b.shapes.numClasses);
    const inputs: NativeInputs = { ...b.shapes, layout: "concatenated", dtype: "float32", cls: [], box: [], candidates: b.lists };
    return { engine, inputs };
  }

  private runCandidatesJs(b: CandidateBatch): PostprocessResult {
    const start = performance.now();
    const padded = runCandidatesReference(this.config, b.shapes, b.lists);
    const ms = performance.now() - start;
    return toResult("js", padded, { totalMs: ms, uploadMs: 0, computeMs: ms, downloadMs: 0, graphReplayed: false });
  }

  /** Runs on a worker thread (native) and resolves with the detections; runs are serialised. */
  run(heads: HeadOutputs | NormalizedHeads | DeviceHeads | CandidateBatch): Promise<PostprocessResult> {
    this.check();
    const callSite = new Error("called from");
    const job = this.tail.then(async () => {
      const route = this.route(heads);
      return "done" in route ? route.done : this.finish(await route.engine.run(route.inputs), route.start);
    });
    this.tail = job.catch(() => undefined);
    return job.catch((e: Error) => {
      // Point async errors at the caller's code, not at the worker's callback.
      if (e && typeof e === "object" && typeof e.stack === "string") e.stack += `\n    --- run() ${callSite.stack?.split("\n").slice(1).join("\n")}`;
      throw e;
    });
  }

  /** The same on the calling thread: for small inputs, or where blocking is fine. */
  runSync(heads: HeadOutputs | NormalizedHeads | DeviceHeads | CandidateBatch): PostprocessResult {
    this.check();
    const route = this.route(heads);
    return "done" in route ? route.done : this.finish(route.engine.runSync(route.inputs), route.start);
  }

  /**
   * What run() and runSync() do with their input: the result itself where JavaScript computes it
   * (no native engine), else the engine and its inputs, with the call's start time (the heads'
   * normalisation excluded, the engine's creation included).
   */
  private route(
    heads: HeadOutputs | NormalizedHeads | DeviceHeads | CandidateBatch,
  ): { done: PostprocessResult } | { engine: NativePostprocessor; inputs: NativeInputs; start: number } {
    checkHeadsArgument(heads, "run()");
    if (isCandidateBatch(heads)) {
      const { engine, inputs } = this.candidateInputs(heads);
      if (!engine) return { done: this.runCandidatesJs(heads) };
      return { engine, inputs, start: performance.now() };
    }
    const h = Postprocessor.isNormalized(heads) ? heads : this.prepare(heads);
    const start = performance.now();
    const engine = this.engine(h.numClasses);
    if (!engine) {
      const padded = runReference(this.config, hostHeads(h));
      const ms = performance.now() - start;
      return { done: toResult("js", padded, { totalMs: ms, uploadMs: 0, computeMs: ms, downloadMs: 0, graphReplayed: false }) };
    }
    return { engine, inputs: this.toInputs(h), start };
  }

  /** A native engine's result as the caller sees it, timed from `start`. */
  private finish(r: NativeResult, start: number): PostprocessResult {
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
