/**
 * bench/upload: where the first upload() of a process spends its time (issue 19's open doubt: bench/gpu
 * measures 38-68 ms for the first case's upload of 68 MB, 3 ms for the same bytes later).
 *
 *   node dist/bench/upload.js [--images 1] [--rounds 4]
 *
 * In a fresh process: `rounds` uploads of one synthesized dataset through the Postprocessor (all its head
 * arrays, each round timed whole, then freed), then each array twice through the addon's upload() alone,
 * then a fresh buffer of the first array's size (never uploaded before), twice, then `rounds` runs from the
 * host arrays (the copy in through the pinned staging, and the whole call). Each row is one call, in the
 * order they ran. RK_CUDA_COPY_THREADS (1-64) sets the threads that fill the staging (default
 * min(8, cores / 2)); scripts/gpu-check.sh's copy step runs this under several.
 */
import * as os from "os";
import { loadNative } from "../kernel/native";
import { resolveConfig } from "../kernel/postprocess/config";
import { createPostprocessor } from "../kernel/postprocess/postprocessor";
import { synthesize } from "../kernel/postprocess/synth";
import { arg, fmtMs, machine, table } from "./stats";

function main(): void {
  const count = (name: string, fallback: string, most: number): number => {
    const text = arg(name, fallback);
    const n = Number(text);
    if (!Number.isInteger(n) || n < 1 || n > most) {
      console.error(`Expected --${name} to be an integer from 1 to ${most} but received ${JSON.stringify(text)}`);
      process.exit(2);
    }
    return n;
  };
  const images = count("images", "1", 16);
  const rounds = count("rounds", "4", 100);
  const addon = loadNative();
  const devices = addon?.devices?.();
  if (!addon?.upload || !devices || devices.devices.length === 0) {
    console.error(`bench/upload needs the cuda backend and a GPU: ${devices?.reason ?? addon?.buildInfo.cuda.reason ?? "the native addon is not built"}`);
    process.exit(2);
  }
  const config = resolveConfig({ preset: "torchvision", num_classes: 80 });
  const ds = synthesize({ images, size: [800, 1333], classes: 80, bgMean: -6, seed: 1 });
  const rows: string[][] = [];
  const t0 = performance.now();
  const pp = createPostprocessor(config, { backend: "cuda" });
  rows.push(["createPostprocessor", "-", "-", fmtMs(performance.now() - t0)]);
  const heads = pp.prepare(ds);
  const arrays = [...heads.cls, ...heads.box] as (Float32Array | Uint16Array)[];
  const mib = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB`;
  const time = (label: string, a: Float32Array | Uint16Array) => {
    const t = performance.now();
    const d = addon.upload!(a, 0);
    const ms = performance.now() - t;
    d.free();
    return [label, mib(a.byteLength), `${((a.byteLength / 1e6) / ms).toFixed(1)} GB/s`, fmtMs(ms)];
  };
  for (let r = 0; r < rounds; r++) {
    const t = performance.now();
    pp.upload(heads).free();
    rows.push([`Postprocessor.upload, round ${r + 1}`, mib(arrays.reduce((s, a) => s + a.byteLength, 0)), "-", fmtMs(performance.now() - t)]);
  }
  for (let r = 0; r < 2; r++) arrays.forEach((a, i) => rows.push(time(`addon.upload array ${i}, round ${r + 1}`, a)));
  const fresh = new Float32Array(arrays[0].length).fill(1);
  rows.push(time("addon.upload, a fresh buffer", fresh));
  rows.push(time("addon.upload, the same again", fresh));
  // The whole call from host arrays (what bench/gpu's "from host" times), with its copy in split out.
  const total = arrays.reduce((s, a) => s + a.byteLength, 0);
  for (let r = 0; r < rounds; r++) {
    const t = pp.runSync(heads).timings;
    rows.push([`runSync from host arrays, round ${r + 1} (copy in / whole call)`, mib(total), `${(total / 1e6 / t.uploadMs).toFixed(1)} GB/s`, `${fmtMs(t.uploadMs)} / ${fmtMs(t.totalMs)}`]);
  }
  const threads = process.env.RK_CUDA_COPY_THREADS ?? `default, min(8, ${os.cpus().length} cores / 2)`;
  console.log(`bench/upload: ${devices.devices[0].name}; staging threads ${threads}; ${machine()}`);
  console.log(table(["call", "bytes", "rate", "time"], rows));
  void pp.dispose();
}

main();
