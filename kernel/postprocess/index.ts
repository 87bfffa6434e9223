/** The TypeScript API of retinanet-kernel's post-processing, as users call it from cells or scripts. */
export { presets, PRESET_NAMES, SWITCH_DOCS } from "./presets";
export type { PostprocessConfig, PresetName } from "./presets";
export { resolveConfig, validateConfig, changedKeys, CONFIG_KEYS, toNativeParams } from "./config";
export type { NativeParams } from "./config";
export { createPostprocessor, Postprocessor, availableBackends, BackendUnavailableError } from "./postprocessor";
export type { BackendChoice, BackendName, ImageDetections, PostprocessResult, PostprocessorOptions, RunTimings } from "./postprocessor";
export { normalizeHeads, fpnFeatureSizes } from "./heads";
export type { HeadOutputs, NormalizedHeads, Layout } from "./heads";
export { loadDataset, datasetFromArrays } from "./dataset";
export type { Dataset, BoxSet } from "./dataset";
export { readNpz, writeNpz, readNpy, writeNpy, readNpyFolder } from "./npz";
export { parseNpy, formatNpy } from "./npy";
export { ndarray, numel } from "./ndarray";
export type { NdArray, DType } from "./ndarray";
export { runReference, generateAnchors, nms, sigmoidF32, halfToFloat, floatToHalf } from "./reference";
export type { PaddedDetections } from "./reference";
export { compareDetections, compareImage, PARITY_TOLERANCES } from "./compare";
export type { ParityReport, ImageParity } from "./compare";
