/**
 * The TypeScript API with no notebook: load head outputs (a golden case, your model's .npz, or
 * synthetic heads), post-process them on the best backend, check parity with the framework when the
 * file carries its detections, evaluate COCO AP against ground truth, and write a COCO results file.
 *
 *   node dist/examples/api.js [HEADS.npz] [--out results.json]
 *
 * In your own project the imports read `from "retinanet-kernel"`.
 */
import * as os from "os";
import * as path from "path";

import { compareDetections, createPostprocessor, evaluateCoco, loadDataset, presets, synthesize } from "../kernel/postprocess/api";
import { detectionsToCoco } from "../kernel/postprocess/eval";
import { writeCocoResults } from "../kernel/data/coco";

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const outAt = args.indexOf("--out");
  const out = outAt >= 0 ? args[outAt + 1] : path.join(os.tmpdir(), "retinanet-kernel-results.json");
  const file = args.find((a, i) => !a.startsWith("--") && (outAt < 0 || i !== outAt + 1));

  const ds = file ? loadDataset(file) : synthesize({ images: 2, size: [480, 640], classes: 20, seed: 1 });
  // A golden case's .json beside the .npz says which framework and thresholds made its detections.
  const meta = ds.meta ?? {};
  const preset = String(meta.preset ?? "torchvision") as keyof typeof presets;
  const fromCase = Object.fromEntries(["score_thresh", "nms_thresh", "topk_candidates", "detections_per_img", "num_classes"].filter((k) => meta[k] !== undefined).map((k) => [k, meta[k]]));
  const pp = createPostprocessor({ ...presets[preset], ...fromCase }, { backend: "auto" });
  const result = await pp.run(ds);
  console.log(`${ds.name}: ${result.detections.length} images on the ${result.backend} backend (${preset} preset) in ${result.timings.totalMs.toFixed(2)} ms`);
  console.log(`detections per image: ${result.detections.map((d) => d.count).join(", ")}`);
  if (ds.expected) console.log(`the same as ${preset}'s own detections: ${compareDetections(result.detections, ds.expected).ok}`);
  if (ds.gt) {
    const m = evaluateCoco(result.detections.map((d, i) => ({ gt: ds.gt![i], dt: d })));
    console.log(`COCO AP ${m.AP.toFixed(3)}, AP50 ${m.AP50.toFixed(3)}, AR100 ${m.AR100.toFixed(3)} (pycocotools' numbers)`);
  }
  const { dt } = detectionsToCoco(result.detections, result.detections.map((_, i) => i + 1));
  writeCocoResults(out, dt);
  console.log(`wrote ${dt.count} detections to ${out} (COCO results format)`);
  await pp.dispose();
}

main().catch((e: Error) => {
  console.error(e.message);
  process.exitCode = 1;
});
