/** The post-processing API as cells see it (the global `rk`): everything in index.ts plus helpers. */
export * from "./index";
export { synthesize, bgMeanForDensity } from "./synth";
export type { SynthOptions } from "./synth";
export { devicesInfo, devicesReport } from "./devices";
export { workbench, Workbench, loadOptimized, saveOptimized, markPareto, detectionsChecksum } from "./workbench";
export type { OptimizeOptions, OptimizeReport, OptimizedArtifact, SweepRow, LatencyStats } from "./workbench";
export { evaluateCoco } from "./eval";
export type { CocoMetrics, EvalImage } from "./eval";
export { readPluginExport } from "./plugin";
export type { PluginExport } from "./plugin";
export type { TuneLatencyReport, ThresholdReport, ClassThreshold, TunePoint } from "./tune";
export type { CacheDataset, AnyDataset } from "./dataset";
export { openCache, buildCache } from "./cache";
export type { CandidateCache, CacheMeta } from "./cache";
