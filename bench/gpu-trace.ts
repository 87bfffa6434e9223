/**
 * bench/gpu-trace: repeated graph-replayed runs of the cuda backend for a diagnostic build with
 * kernel timestamps (cmake -DRK_CUDA_TRACE=ON; scripts/gpu-check.sh trace), which prints one
 * timeline per run on stderr. Each case is announced on stderr before its runs, and its median
 * GPU time printed after them; with the normal addon only the medians are printed (a quick same-run
 * comparison, e.g. with RK_CUDA_RANKS=sort against the default, or RK_CUDA_PDL=0).
 *   node dist/bench/gpu-trace.js [--runs N] [--fp16]
 */
import { toHalfHeads } from "../kernel/postprocess/heads";
import { createPostprocessor } from "../kernel/postprocess/postprocessor";
import { synthesize } from "../kernel/postprocess/synth";

const i = process.argv.indexOf("--runs");
const runs = i > 0 ? Number(process.argv[i + 1]) : 20;
const fp16 = process.argv.includes("--fp16");  // also the same heads in f16
for (const [batch, bgMean] of [[1, -6], [8, -6], [1, -4], [8, -4]] as const) {
  const ds = synthesize({ images: batch, size: [800, 1333], classes: 80, bgMean, seed: 1 });
  const pp = createPostprocessor({ num_classes: 80, torchvision_nms_device: "cuda" }, { backend: "cuda" });
  const h32 = pp.prepare(ds);
  for (const heads of fp16 ? [h32, toHalfHeads(h32)] : [h32]) {
    const dev = pp.upload(heads);
    for (let r = 0; r < 5; r++) pp.runSync(dev);
    const name = `b${batch} bg${bgMean}${heads.dtype === "float16" ? " fp16" : ""}`;
    process.stderr.write(`case ${name}\n`);
    const ms: number[] = [];
    for (let r = 0; r < runs; r++) ms.push(pp.runSync(dev).timings.computeMs);
    ms.sort((a, b) => a - b);
    process.stderr.write(`case ${name}: median ${ms[Math.floor(ms.length / 2)].toFixed(4)} ms over ${runs} runs\n`);
    dev.free();
  }
}
