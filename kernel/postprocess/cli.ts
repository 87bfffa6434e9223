/**
 * `retinanet-kernel run`: post-process head outputs from an .npz (golden format) and write the
 * detections as det{i}_boxes / det{i}_scores / det{i}_labels (float32 / float32 / int64), the
 * golden naming, so any tool that reads npz can check them.
 */
import * as fs from "fs";
import * as path from "path";

import { ArgSchema, parseArgs, usage } from "../args";
import { buildCache, cacheBoxes, isCacheDir, openCache } from "./cache";
import { runCache } from "./cache-run";
import { compareDetections } from "./compare";
import { BoxSet, loadDataset } from "./dataset";
import { NdArray, ndarray } from "./ndarray";
import { checkOutputPath } from "../files";
import { writeNpz } from "./npz";
import { resolveConfig } from "./config";
import { createPostprocessor } from "./postprocessor";
import { PRESET_NAMES, PostprocessConfig } from "./presets";

export const RUN_SCHEMA: ArgSchema = {
  options: [
    { name: "data", type: "string", required: true, help: "input .npz (or folder of .npy) in the golden format, or a candidate cache folder" },
    { name: "out", type: "string", required: true, help: "output .npz" },
    { name: "preset", type: "choice", choices: PRESET_NAMES, help: "framework semantics (default: the case's .json, else torchvision)" },
    { name: "score-thresh", type: "number", min: 0, max: 1, help: "score threshold" },
    { name: "nms-thresh", type: "number", min: 0, max: 1, help: "NMS IoU threshold" },
    { name: "topk-candidates", type: "int", min: 1, max: 100000, help: "candidates per level before NMS" },
    { name: "detections-per-img", type: "int", min: 1, max: 100000, help: "detections kept per image" },
    { name: "num-classes", type: "int", min: 1, max: 100000, help: "K (default: from the data)" },
    { name: "score-input", type: "choice", choices: ["logits", "probabilities"], help: "what the class head holds (default: the case's .json, else the preset's)" },
    { name: "backend", type: "choice", choices: ["auto", "cpu", "cuda", "js"], default: "auto", help: "implementation" },
    { name: "threads", type: "int", min: 1, max: 1024, help: "CPU threads (default: every core)" },
    { name: "layout", type: "choice", choices: ["concatenated", "per_level"], help: "which head arrays to read when the file has both" },
    { name: "help", alias: "h", type: "bool", help: "show this help" },
  ],
};

export const RUN_HELP = `${usage("retinanet-kernel run", RUN_SCHEMA)}

Writes det{i}_boxes [D_i, 4] float32, det{i}_scores [D_i] float32, det{i}_labels [D_i] int64.
Thresholds default to the case's .json beside the .npz (golden cases), else to the preset's.
On a candidate cache (retinanet-kernel cache), only the stages after selection run; a config
outside the cache's bounds is an error.`;

export const CACHE_SCHEMA: ArgSchema = {
  options: [
    { name: "data", type: "string", required: true, help: "head outputs: an .npz, a folder of .npy files, or a folder of shards (.npz files or .npy folders)" },
    { name: "out", type: "string", required: true, help: "the cache folder to write (replaced if it is a cache)" },
    { name: "preset", type: "choice", choices: PRESET_NAMES, help: "framework semantics (default: the case's .json, else torchvision)" },
    { name: "num-classes", type: "int", min: 1, max: 100000, help: "K, checked against the data" },
    { name: "score-input", type: "choice", choices: ["logits", "probabilities"], help: "what the class head holds (default: the case's .json, else the preset's)" },
    { name: "min-score", type: "number", min: 0, max: 1, default: 0.05, help: "lowest score_thresh the cache serves" },
    { name: "max-topk", type: "int", min: 1, max: 100000, default: 1000, help: "largest topk_candidates the cache serves" },
    { name: "help", alias: "h", type: "bool", help: "show this help" },
  ],
};

export const CACHE_HELP = `${usage("retinanet-kernel cache", CACHE_SCHEMA)}

Keeps, per image and level, every candidate that a config with score_thresh >= --min-score and
topk_candidates <= --max-topk can select (same preset and anchors); runs on the cache give the
same detections as on the heads. Shards are read one at a time; the folder appears only when whole.`;

/** `retinanet-kernel cache`: builds a candidate cache; returns the exit code. */
export function cacheCommand(argv: string[], out: (s: string) => void = console.log): number {
  if (argv.includes("--help") || argv.includes("-h")) {
    out(CACHE_HELP);
    return 0;
  }
  const args = parseArgs(argv, CACHE_SCHEMA).values;
  checkOutputPath(args.out, "--out", { folder: true });
  const data = args.data as string;
  // A case's .json beside an .npz, or meta.json in a folder (examples/export_heads.py writes one).
  const caseJson = data.endsWith(".npz") ? data.replace(/\.npz$/, ".json") : path.join(data, "meta.json");
  let preset = args.preset as PostprocessConfig["preset"] | undefined;
  let scoreInput = args.scoreInput as PostprocessConfig["score_input"] | undefined;
  if (fs.existsSync(caseJson)) {
    const meta = JSON.parse(fs.readFileSync(caseJson, "utf8")) as { preset?: string; score_input?: string };
    if (preset === undefined && (PRESET_NAMES as readonly string[]).includes(meta.preset ?? "")) preset = meta.preset as PostprocessConfig["preset"];
    if (scoreInput === undefined && (meta.score_input === "logits" || meta.score_input === "probabilities")) scoreInput = meta.score_input;
  }
  const config = resolveConfig({ preset: preset ?? "torchvision", ...(scoreInput ? { score_input: scoreInput } : {}), ...(args.numClasses !== undefined ? { num_classes: args.numClasses as number } : {}) });
  const start = performance.now();
  const meta = buildCache(data, args.out as string, config, { minScore: args.minScore as number, maxTopk: args.maxTopk as number }, {
    update: (done, note) => process.stderr.write(`\r  shard ${done}: ${note ?? ""}   `),
  });
  process.stderr.write("\n");
  if (args.numClasses !== undefined && meta.num_classes !== args.numClasses) {
    fs.rmSync(args.out as string, { recursive: true, force: true });
    throw Object.assign(new Error(`Expected K = ${args.numClasses} (--num-classes) but the heads have ${meta.num_classes} classes`), { code: "ERR_RK_SHAPE" });
  }
  out(
    `${args.out}: ${meta.images} images, ${meta.candidates} candidates (${(meta.candidates / meta.images).toFixed(1)} per image), preset ${meta.config.preset}, ` +
      `min_score ${meta.min_score}, max_topk ${meta.max_topk}, from ${meta.source.shards} shard(s) in ${((performance.now() - start) / 1000).toFixed(1)} s`,
  );
  return 0;
}

/** Runs the command; returns the exit code. Output goes to the given writers. */
export async function runCommand(argv: string[], out: (s: string) => void = console.log): Promise<number> {
  if (argv.includes("--help") || argv.includes("-h")) {
    out(RUN_HELP);
    return 0;
  }
  const args = parseArgs(argv, RUN_SCHEMA).values;
  checkOutputPath(args.out, "--out");
  const cache = isCacheDir(args.data as string) ? openCache(args.data as string) : undefined;
  const ds = cache ? undefined : loadDataset(args.data as string, { layout: args.layout as "concatenated" | "per_level" | undefined });
  const meta = (cache ? cache.meta.case : ds!.meta) ?? {};
  const config: Partial<PostprocessConfig> = {};
  const fromMeta = (key: keyof PostprocessConfig) => {
    if (meta[key] !== undefined) (config as Record<string, unknown>)[key] = meta[key];
  };
  if (typeof meta.preset === "string" && (PRESET_NAMES as readonly string[]).includes(meta.preset)) config.preset = meta.preset as PostprocessConfig["preset"];
  (["score_thresh", "nms_thresh", "topk_candidates", "detections_per_img", "score_input"] as const).forEach(fromMeta);
  if (args.preset !== undefined) config.preset = args.preset as PostprocessConfig["preset"];
  if (args.scoreThresh !== undefined) config.score_thresh = args.scoreThresh as number;
  if (args.nmsThresh !== undefined) config.nms_thresh = args.nmsThresh as number;
  if (args.topkCandidates !== undefined) config.topk_candidates = args.topkCandidates as number;
  if (args.detectionsPerImg !== undefined) config.detections_per_img = args.detectionsPerImg as number;
  if (args.numClasses !== undefined) config.num_classes = args.numClasses as number;
  if (args.scoreInput !== undefined) config.score_input = args.scoreInput as PostprocessConfig["score_input"];
  if (cache && args.preset === undefined) config.preset = cache.meta.config.preset;
  if (cache && args.scoreInput === undefined) config.score_input = cache.meta.config.score_input;

  const pp = createPostprocessor(config, { backend: args.backend as "auto", threads: args.threads as number | undefined });
  let result;
  let expected: BoxSet[] | undefined;
  try {
    result = cache ? await runCache(pp, cache) : await pp.run(ds!);
    expected = cache ? cacheBoxes(cache, "det") : ds!.expected;
  } finally {
    await pp.dispose();
  }
  const arrays = new Map<string, NdArray>();
  result.detections.forEach((d, i) => {
    arrays.set(`det${i}_boxes`, ndarray("float32", [d.count, 4], Float32Array.from(d.boxes)));
    arrays.set(`det${i}_scores`, ndarray("float32", [d.count], Float32Array.from(d.scores)));
    arrays.set(`det${i}_labels`, ndarray("int64", [d.count], BigInt64Array.from(Array.from(d.labels, (v) => BigInt(v)))));
  });
  writeNpz(args.out as string, arrays, { what: "--out" });
  out(
    `${path.basename(args.data as string)}: preset ${pp.config.preset}, backend ${result.backend}, ${result.detections.length} image(s), ` +
      `detections [${result.detections.map((d) => d.count).join(", ")}], ${result.timings.totalMs.toFixed(2)} ms -> ${args.out}`,
  );
  if (expected) {
    const parity = compareDetections(result.detections, expected);
    out(parity.ok ? "parity with the file's expected detections: exact (within SPEC tolerances)" : `parity: MISMATCH ${parity.images.filter((i) => !i.ok).map((i) => `image ${i.image}: ${i.mismatch}`).join("; ")}`);
    return parity.ok ? 0 : 3;
  }
  return 0;
}
