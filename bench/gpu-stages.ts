/**
 * bench/gpu-stages: one run of the cuda backend per case with the graph off, for a kernel-level
 * profile of its stages under Nsight Compute (scripts/gpu-check.sh profile):
 *   ncu --metrics gpu__time_duration.sum node dist/bench/gpu-stages.js
 */
import { createPostprocessor } from "../kernel/postprocess/postprocessor";
import { synthesize } from "../kernel/postprocess/synth";

for (const [batch, bgMean] of [[1, -6], [8, -6]] as const) {
  const ds = synthesize({ images: batch, size: [800, 1333], classes: 80, bgMean, seed: 1 });
  const pp = createPostprocessor({ num_classes: 80, torchvision_nms_device: "cuda" }, { backend: "cuda", graph: false });
  const dev = pp.upload(ds);
  pp.runSync(dev);
  const r = pp.runSync(dev);
  console.log(`b${batch} bg${bgMean}: stages ${r.timings.computeMs.toFixed(3)} ms, counts ${Array.from(r.padded.counts).join(",")}`);
  dev.free();
}
