/**
 * bench/cpu: post-processing on the CPU at 800x1333, K = 80, synthetic heads with background logit
 * mean -6 (sparse) and -4 (dense), in one run: the native backend on 1 thread and on every thread,
 * the TypeScript reference (js), and the floor: one streaming pass over the same input bytes on one
 * thread (native max over the logits and deltas).
 * Targets (issue 4): native 1 thread <= 1.5x the floor; native >= 20x the js reference.
 *   npm run bench:cpu [-- --images N --reps N --data heads.npz --json out.json]
 * With --data, the heads come from an .npz in the golden format (bench/torchvision_cpu.py writes
 * one and runs this against torchvision on the same heads).
 */
import * as fs from "fs";
import * as os from "os";

import { loadNative } from "../kernel/native";
import { Dataset, loadDataset } from "../kernel/postprocess/dataset";
import { createPostprocessor } from "../kernel/postprocess/postprocessor";
import { synthesize } from "../kernel/postprocess/synth";
import { arg, fmtMs, machine, median, table } from "./stats";

interface CaseResult {
  name: string;
  native1: number;
  nativeAll: number;
  js: number;
  floor: number;
  bytes: number;
  detections: number[];
  candidates?: number;
}

async function benchCase(name: string, ds: Dataset, reps: number, jsReps: number): Promise<CaseResult> {
  const addon = loadNative();
  if (!addon) throw new Error("the native addon is not loaded: npm run build:native");
  const cls = (Array.isArray(ds.cls_logits) ? ds.cls_logits : [ds.cls_logits]).map((a) => a.data as Float32Array);
  const box = (Array.isArray(ds.bbox_regression) ? ds.bbox_regression : [ds.bbox_regression]).map((a) => a.data as Float32Array);
  const bytes = [...cls, ...box].reduce((s, a) => s + a.byteLength, 0);
  // Interleaved: each round times the floor and both native variants back to back, so that the
  // machine's drifts hit them alike; the js reference (seconds) runs a few times at the end.
  const one = createPostprocessor({}, { backend: "cpu", threads: 1 });
  const all = createPostprocessor({}, { backend: "cpu", threads: os.availableParallelism() });
  const heads = one.prepare(ds);
  const first = one.runSync(heads);
  all.runSync(heads);
  const runs = { floor: [] as number[], n1: [] as number[], nAll: [] as number[] };
  const timeIt = (f: () => unknown) => {
    const t0 = performance.now();
    f();
    return performance.now() - t0;
  };
  for (let i = 0; i < reps; i++) {
    runs.floor.push(timeIt(() => addon.streamMax([...cls, ...box])));
    runs.n1.push(timeIt(() => one.runSync(heads)));
    runs.nAll.push(timeIt(() => all.runSync(heads)));
  }
  await one.dispose();
  await all.dispose();
  const js = createPostprocessor({}, { backend: "js" });
  const jsRuns: number[] = [];
  for (let i = 0; i < jsReps; i++) jsRuns.push(timeIt(() => js.runSync(heads)));
  const n1 = { ms: median(runs.n1), detections: first.detections.map((d) => d.count) };
  const nAll = { ms: median(runs.nAll) };
  const floorMs = median(runs.floor);
  return { name, native1: n1.ms, nativeAll: nAll.ms, js: median(jsRuns), floor: floorMs, bytes, detections: n1.detections };
}

async function main(): Promise<void> {
  const images = Number(arg("images", "1"));
  const reps = Number(arg("reps", "15"));
  const jsReps = Number(arg("js-reps", "2"));
  const data = arg("data");
  const cases: [string, Dataset][] = [];
  if (data) {
    cases.push([`${data.split("/").pop()}`, loadDataset(data)]);
  } else {
    for (const bg of [-6, -4]) {
      cases.push([`b${images} 800x1333 K80 bg${bg}`, synthesize({ images, size: [800, 1333], classes: 80, bgMean: bg, objects: 10, seed: 3 })]);
    }
  }
  const results: CaseResult[] = [];
  for (const [name, ds] of cases) results.push(await benchCase(name, ds, reps, jsReps));
  const threads = os.availableParallelism();
  console.log(`bench/cpu: medians of ${reps} interleaved rounds (js ${jsReps} runs), ${machine()}`);
  console.log(
    table(
      ["case", "native 1T", `native ${threads}T`, "js reference", "floor (1 pass)", "1T / floor", "js / native 1T", "detections"],
      results.map((r) => [
        r.name,
        fmtMs(r.native1),
        fmtMs(r.nativeAll),
        fmtMs(r.js),
        `${fmtMs(r.floor)} (${((r.bytes / 1e6) / r.floor).toFixed(1)} GB/s)`,
        `${(r.native1 / r.floor).toFixed(2)}x`,
        `${(r.js / r.native1).toFixed(0)}x`,
        r.detections.join(","),
      ]),
    ),
  );
  console.log("targets: native 1 thread <= 1.5x floor; js / native >= 20x");
  const json = arg("json");
  if (json) fs.writeFileSync(json, JSON.stringify({ machine: machine(), threads, results }, null, 2));
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
