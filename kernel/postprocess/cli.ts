/**
 * `retinanet-kernel run`: post-process head outputs from an .npz (golden format) and write the
 * detections as det{i}_boxes / det{i}_scores / det{i}_labels (float32 / float32 / int64), the
 * golden naming, so any tool that reads npz can check them.
 */
import * as path from "path";

import { ArgSchema, parseArgs, usage } from "../args";
import { compareDetections } from "./compare";
import { loadDataset } from "./dataset";
import { NdArray, ndarray } from "./ndarray";
import { writeNpz } from "./npz";
import { createPostprocessor } from "./postprocessor";
import { PRESET_NAMES, PostprocessConfig } from "./presets";

export const RUN_SCHEMA: ArgSchema = {
  options: [
    { name: "data", type: "string", required: true, help: "input .npz (or folder of .npy) in the golden format" },
    { name: "out", type: "string", required: true, help: "output .npz" },
    { name: "preset", type: "choice", choices: PRESET_NAMES, help: "framework semantics (default: the case's .json, else torchvision)" },
    { name: "score-thresh", type: "number", min: 0, max: 1, help: "score threshold" },
    { name: "nms-thresh", type: "number", min: 0, max: 1, help: "NMS IoU threshold" },
    { name: "topk-candidates", type: "int", min: 1, max: 100000, help: "candidates per level before NMS" },
    { name: "detections-per-img", type: "int", min: 1, max: 100000, help: "detections kept per image" },
    { name: "num-classes", type: "int", min: 1, max: 100000, help: "K (default: from the data)" },
    { name: "backend", type: "choice", choices: ["auto", "cpu", "cuda", "js"], default: "auto", help: "implementation" },
    { name: "threads", type: "int", min: 1, max: 1024, help: "CPU threads (default: every core)" },
    { name: "layout", type: "choice", choices: ["concatenated", "per_level"], help: "which head arrays to read when the file has both" },
    { name: "help", alias: "h", type: "bool", help: "show this help" },
  ],
};

export const RUN_HELP = `${usage("retinanet-kernel run", RUN_SCHEMA)}

Writes det{i}_boxes [D_i, 4] float32, det{i}_scores [D_i] float32, det{i}_labels [D_i] int64.
Thresholds default to the case's .json beside the .npz (golden cases), else to the preset's.`;

/** Runs the command; returns the exit code. Output goes to the given writers. */
export async function runCommand(argv: string[], out: (s: string) => void = console.log): Promise<number> {
  if (argv.includes("--help") || argv.includes("-h")) {
    out(RUN_HELP);
    return 0;
  }
  const args = parseArgs(argv, RUN_SCHEMA).values;
  const ds = loadDataset(args.data as string, { layout: args.layout as "concatenated" | "per_level" | undefined });
  const meta = ds.meta ?? {};
  const config: Partial<PostprocessConfig> = {};
  const fromMeta = (key: keyof PostprocessConfig) => {
    if (meta[key] !== undefined) (config as Record<string, unknown>)[key] = meta[key];
  };
  if (typeof meta.preset === "string" && (PRESET_NAMES as readonly string[]).includes(meta.preset)) config.preset = meta.preset as PostprocessConfig["preset"];
  (["score_thresh", "nms_thresh", "topk_candidates", "detections_per_img"] as const).forEach(fromMeta);
  if (args.preset !== undefined) config.preset = args.preset as PostprocessConfig["preset"];
  if (args.scoreThresh !== undefined) config.score_thresh = args.scoreThresh as number;
  if (args.nmsThresh !== undefined) config.nms_thresh = args.nmsThresh as number;
  if (args.topkCandidates !== undefined) config.topk_candidates = args.topkCandidates as number;
  if (args.detectionsPerImg !== undefined) config.detections_per_img = args.detectionsPerImg as number;
  if (args.numClasses !== undefined) config.num_classes = args.numClasses as number;

  const pp = createPostprocessor(config, { backend: args.backend as "auto", threads: args.threads as number | undefined });
  const result = await pp.run(ds);
  await pp.dispose();
  const arrays = new Map<string, NdArray>();
  result.detections.forEach((d, i) => {
    arrays.set(`det${i}_boxes`, ndarray("float32", [d.count, 4], Float32Array.from(d.boxes)));
    arrays.set(`det${i}_scores`, ndarray("float32", [d.count], Float32Array.from(d.scores)));
    arrays.set(`det${i}_labels`, ndarray("int64", [d.count], BigInt64Array.from(Array.from(d.labels, (v) => BigInt(v)))));
  });
  writeNpz(args.out as string, arrays);
  out(
    `${path.basename(args.data as string)}: preset ${pp.config.preset}, backend ${result.backend}, ${result.detections.length} image(s), ` +
      `detections [${result.detections.map((d) => d.count).join(", ")}], ${result.timings.totalMs.toFixed(2)} ms -> ${args.out}`,
  );
  if (ds.expected) {
    const parity = compareDetections(result.detections, ds.expected);
    out(parity.ok ? "parity with the file's expected detections: exact (within SPEC tolerances)" : `parity: MISMATCH ${parity.images.filter((i) => !i.ok).map((i) => `image ${i.image}: ${i.mismatch}`).join("; ")}`);
    return parity.ok ? 0 : 3;
  }
  return 0;
}
