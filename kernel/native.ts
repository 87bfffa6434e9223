/**
 * The one file that loads the native addon and declares its surface. Everything else imports these
 * types and `loadNative()`, never the `.node` file. When loading fails, `nativeStatus()` says why
 * (never built, build failed and its log, wrong Node ABI) and which backends remain.
 */
import * as fs from "fs";
import * as path from "path";

import type { NativeParams } from "./postprocess/config";

export type NativeDType = "float32" | "float16";

/** Inputs of one run: the normalised heads (kernel/postprocess/heads.ts) as the addon reads them. */
export interface NativeInputs {
  layout: "concatenated" | "per_level";
  dtype: NativeDType;
  batch: number;
  numClasses: number;
  anchorsPerLocation: number;
  featureSizes: [number, number][];
  paddedSize: [number, number];
  /** Host TypedArrays, or device arrays from upload() (or raw pointers) with residency "device". */
  cls: (Float32Array | Uint16Array | DeviceArray | number)[];
  box: (Float32Array | Uint16Array | DeviceArray | number)[];
  anchors?: Float32Array;
  imageSizes: Int32Array;
  outputSizes?: Int32Array;
  residency?: "host" | "device";
  /** Candidate lists (the candidate cache) instead of cls/box: the stages after selection (cpu). */
  candidates?: import("./postprocess/reference").CandidateLists;
}

export interface NativeTimings {
  uploadMs: number;
  computeMs: number;
  downloadMs: number;
  /** Threshold + top-k pass (CPU), part of computeMs. */
  selectMs?: number;
  /** Merge, decode, NMS, cap and write (CPU), part of computeMs. */
  decodeNmsMs?: number;
  graphReplayed: boolean;
}

/** Padded detections: rows past counts[n] are zeros. */
export interface NativeResult {
  counts: Int32Array;
  boxes: Float32Array;
  scores: Float32Array;
  labels: Int32Array;
  maxDetections: number;
  timings: NativeTimings;
}

export interface NativePostprocessor {
  readonly backend: "cpu" | "cuda" | "disposed";
  readonly threads: number;
  readonly workspaceBytes: number;
  /** Runs on a libuv worker; the inputs' buffers are read in place and must not change until it settles. */
  run(inputs: NativeInputs): Promise<NativeResult>;
  runSync(inputs: NativeInputs): NativeResult;
  dispose(): void;
}

export interface NativeNmsParams {
  iouThresh: number;
  algorithm: "torchvision_batched" | "greedy_per_class";
  torchvisionDevice: "cpu" | "cuda";
  compareInDouble: boolean;
  pixelOffset: number;
}

export interface CudaDevice {
  index: number;
  name: string;
  sm: string;
  multiprocessors: number;
  memoryBytes: number;
}

export interface NativeBuildInfo {
  version: string;
  compiler: string;
  simd: string;
  napiVersion: number;
  hardwareConcurrency: number;
  cuda: { compiled: boolean; runtimeVersion?: number; architectures?: string; reason?: string };
  /** The TensorRT plugin library: built beside the addon when TENSORRT_ROOT named an SDK. */
  tensorrt: { compiled: boolean; reason?: string; headersVersion?: string; library?: string };
}

export type PluginKind = "postprocess" | "decode" | "nms";
/** One TensorRT plugin field, as the plugins parse it (native/trt/fields.cpp). */
export interface PluginFieldValue {
  name: string;
  type: "float64" | "float32" | "int32" | "int64" | "char";
  value: number[] | string;
}
export interface PluginGeometry {
  preset: string;
  layout: "concatenated" | "per_level";
  paddedSize: [number, number];
  levelSizes?: [number, number][];
  imageSize?: [number, number];
}

export interface NativeAddon {
  Postprocessor: new (
    params: NativeParams,
    options?: { backend?: "cpu" | "cuda"; threads?: number; device?: number; graph?: boolean },
  ) => NativePostprocessor;
  anchors(params: NativeParams, shapes: { featureSizes: [number, number][]; paddedSize?: [number, number] }): Float32Array;
  nms(boxes: Float32Array, scores: Float32Array, labels: Int32Array, params: NativeNmsParams): Int32Array;
  /** Max over every element, one streaming pass on one thread (the CPU benchmark's floor). */
  streamMax(arrays: Float32Array[]): number;
  buildInfo: NativeBuildInfo;
  /** The canonical TensorRT plugin fields of a configuration (the plugins' own writer). */
  pluginFields(kind: PluginKind, spec: PluginGeometry & { params: NativeParams }): PluginFieldValue[];
  /** Reads plugin fields with the plugins' own parser; throws its error (ERR_RK_PARAM). */
  parsePluginFields(kind: PluginKind, fields: PluginFieldValue[]): Required<Omit<PluginGeometry, "levelSizes">> & { params: NativeParams; numLevels: number; levelSizes: [number, number][] | null };
  /** Present when built with TENSORRT_ROOT: one plugin in a TensorRT engine (libnvinfer opened at run time). */
  tensorrtRun?: (spec: {
    plugin: string;
    fields: PluginFieldValue[];
    inputs: { name: string; dtype: string; shape: number[]; data: ArrayBufferView }[];
    iterations: number;
    nvinfer?: string;
  }) => { outputs: { shape: number[]; dtype: string; data: ArrayBufferView }[]; timesMs: number[] };
  pluginFieldSpecs(): { name: string; type: string; required: Record<PluginKind, boolean>; meaning: string }[];
  /** Present on Unix: the file's pages as an ArrayBuffer (copy on write), unmapped when collected. */
  mapFile?: (path: string) => ArrayBuffer;
  /** Present when the addon was built with CUDA. */
  devices?: () => { devices: CudaDevice[]; reason?: string; driverVersion: number };
  /** Present when the addon was built with CUDA: copies a TypedArray to device memory. */
  upload?: (data: ArrayBufferView, device?: number) => DeviceArray;
}

/** Device memory from upload(): freed by free() or when the handle is collected. */
export interface DeviceArray {
  readonly pointer: number;
  readonly bytes: number;
  readonly device: number;
  free(): void;
}

export interface NativeStatus {
  loaded: boolean;
  path: string;
  /** Why the addon is not available, in words, with what to do. */
  reason?: string;
  backends: ("cpu" | "cuda" | "js")[];
}

/** Root of the package (this file is dist/kernel/native.js once built). */
export const PACKAGE_ROOT = path.resolve(__dirname, "..", "..");
const ADDON_PATH = process.env.RETINANET_KERNEL_ADDON ?? path.join(PACKAGE_ROOT, "build", "Release", "retinanet_kernel.node");
const BUILD_STATUS = path.join(PACKAGE_ROOT, "build", "native-status.json");

let cached: { addon?: NativeAddon; status: NativeStatus } | undefined;

function explainFailure(err: Error & { code?: string }): string {
  if (!fs.existsSync(ADDON_PATH)) {
    let why = "the native addon was never built";
    try {
      const s = JSON.parse(fs.readFileSync(BUILD_STATUS, "utf8")) as { ok: boolean; reason?: string; log?: string };
      if (!s.ok) why = `the native build failed (${s.reason ?? "see log"}; log: ${s.log ?? "build/native-build.log"})`;
    } catch {
      // no status file: npm install's build step did not run
    }
    return `${why}; run \`npm run build:native\` (needs g++ and cmake). Only the js backend is available.`;
  }
  if (/NODE_MODULE_VERSION|was compiled against a different Node/.test(err.message)) {
    return `the addon at ${ADDON_PATH} was built for another Node.js ABI (${err.message.split("\n")[0]}); rebuild with \`npm run build:native\`. Only the js backend is available.`;
  }
  return `loading ${ADDON_PATH} failed: ${err.message.split("\n")[0]}. Only the js backend is available.`;
}

/** Loads the addon once. Never throws: a failure is reported by `nativeStatus()`. */
export function loadNative(): NativeAddon | undefined {
  if (!cached) {
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const addon = require(ADDON_PATH) as NativeAddon;
      const backends: NativeStatus["backends"] = ["cpu"];
      if (addon.buildInfo.cuda.compiled) backends.push("cuda");
      backends.push("js");
      cached = { addon, status: { loaded: true, path: ADDON_PATH, backends } };
    } catch (e) {
      cached = { status: { loaded: false, path: ADDON_PATH, reason: explainFailure(e as Error), backends: ["js"] } };
    }
  }
  return cached.addon;
}

export function nativeStatus(): NativeStatus {
  loadNative();
  return cached!.status;
}
