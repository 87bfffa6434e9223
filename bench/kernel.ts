/**
 * bench/kernel: this kernel against ipykernel on the same machine, in one run, through the same
 * client (a ZMQ client in this process, test/kernel-client.ts):
 *   start     spawn to the first kernel_info_reply
 *   trivial   execute round trip of a one-line expression (reply and idle received), distinct code each time
 *   typed     the same for a cell with an interface and a typed function (a type-annotated def for Python)
 *   complete  complete_request round trip
 *   soak      RSS growth after a warm-up over 10,000 trivial executes and 2,000 `await pp.run(ds)` on a
 *             2-image dataset (bench/soak.ts says how growth is read)
 * Targets: start <= 0.75x ipykernel, trivial <= 0.7x ipykernel (the round trip counts up to the
 * iopub idle status), typed <= 10x trivial, soak growth <= 30 MB each.
 * Run: npm run bench:kernel [-- --json out.json] (RK_BENCH_SOAK=0 skips the soak)
 */
import * as fs from "fs";

import { TestKernel } from "../test/kernel-client";
import { SOAK_RUN_CELL, SOAK_RUN_SETUP, SoakResult, soak } from "./soak";
import { fmtMs, machine, median, table } from "./stats";

interface Spec {
  name: string;
  argv?: string[];
  trivial: (i: number) => string;
  typed: (i: number) => string;
  complete: { code: string; cursor: number };
}

const SPECS: Spec[] = [
  {
    name: "retinanet-kernel",
    trivial: (i) => `${i} + 1`,
    typed: (i) => `interface Box${i} { x1: number; y1: number; x2: number; y2: number }\nfunction area${i}(b: Box${i}): number { return (b.x2 - b.x1) * (b.y2 - b.y1); }\narea${i}({ x1: 0, y1: 0, x2: 2, y2: ${i} })`,
    complete: { code: "Math.ab", cursor: 7 },
  },
  {
    name: "ipykernel",
    argv: ["/usr/bin/python3", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
    trivial: (i) => `${i} + 1`,
    typed: (i) => `from dataclasses import dataclass\n@dataclass\nclass Box${i}:\n    x1: float\n    y1: float\n    x2: float\n    y2: float\ndef area${i}(b: Box${i}) -> float:\n    return (b.x2 - b.x1) * (b.y2 - b.y1)\narea${i}(Box${i}(0, 0, 2, ${i}))`,
    complete: { code: "import math; math.fa", cursor: 20 },
  },
];

interface Result {
  start: number;
  firstExecute: number;
  trivial: number;
  typed: number;
  complete: number;
}

/** Spawn to first kernel_info_reply, `times` times, alternating kernels; keeps the last of each running. */
async function startAll(specs: Spec[], times: number): Promise<{ kernels: TestKernel[]; startMs: number[][] }> {
  const startMs: number[][] = specs.map(() => []);
  let kernels: TestKernel[] = [];
  for (let t = 0; t < times; t++) {
    kernels = [];
    for (const [i, spec] of specs.entries()) {
      const k = await TestKernel.start({ argv: spec.argv, noWait: true });
      await k.replyTo(k.send("shell", "kernel_info_request", {}), 120000);
      startMs[i].push(performance.now() - k.startedAt);
      if (t < times - 1) await k.stop();
      else kernels.push(k);
    }
  }
  return { kernels, startMs };
}

/** Round trip of one request, reply and idle received. */
async function roundTrip(run: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await run();
  return performance.now() - t0;
}

async function measureAll(specs: Spec[], reps: number): Promise<Result[]> {
  const { kernels, startMs } = await startAll(specs, 3);
  const first = await Promise.all(kernels.map(async (k, i) => {
    const t0 = performance.now();
    await k.execute(specs[i].trivial(0));
    return performance.now() - t0;
  }));
  // Let background start-up work (the language service thread) finish before timing.
  await new Promise((r) => setTimeout(r, Number(process.env.RK_BENCH_SETTLE_MS ?? 6000)));
  const trivial: number[][] = specs.map(() => []);
  const typed: number[][] = specs.map(() => []);
  const complete: number[][] = specs.map(() => []);
  const exec = async (k: TestKernel, code: string) => {
    const r = await k.execute(code);
    if (r.status !== "ok") throw new Error(`${code} failed: ${JSON.stringify(r.error)}`);
  };
  for (let i = 1; i <= 5; i++) for (const [j, k] of kernels.entries()) await exec(k, specs[j].trivial(i));
  // Interleaved: each iteration times every kernel once, so drifts of the machine hit both alike.
  for (let i = 0; i < reps; i++) {
    for (const [j, k] of kernels.entries()) trivial[j].push(await roundTrip(() => exec(k, specs[j].trivial(100 + i))));
  }
  for (let i = 0; i < Math.ceil(reps / 2); i++) {
    for (const [j, k] of kernels.entries()) typed[j].push(await roundTrip(() => exec(k, specs[j].typed(i))));
  }
  for (let i = 0; i < Math.ceil(reps / 2); i++) {
    for (const [j, k] of kernels.entries()) {
      const c = specs[j].complete;
      complete[j].push(await roundTrip(() => k.request("complete_request", { code: c.code, cursor_pos: c.cursor })));
    }
  }
  await Promise.all(kernels.map((k) => k.stop()));
  return specs.map((_, j) => ({ start: median(startMs[j]), firstExecute: first[j], trivial: median(trivial[j]), typed: median(typed[j]), complete: median(complete[j]) }));
}

async function main(): Promise<void> {
  const reps = Number(process.env.RK_BENCH_REPS ?? 40);
  const [ours, peer] = await measureAll(SPECS, reps);
  const results = { "retinanet-kernel": ours, ipykernel: peer };
  const rows = [
    ["start to kernel_info_reply", fmtMs(ours.start), fmtMs(peer.start), `${(ours.start / peer.start).toFixed(2)}x`, "<= 0.75x", ours.start / peer.start <= 0.75 ? "met" : "MISSED"],
    ["first execute after start", fmtMs(ours.firstExecute), fmtMs(peer.firstExecute), `${(ours.firstExecute / peer.firstExecute).toFixed(2)}x`, "", ""],
    ["trivial execute round trip", fmtMs(ours.trivial), fmtMs(peer.trivial), `${(ours.trivial / peer.trivial).toFixed(2)}x`, "<= 0.7x", ours.trivial / peer.trivial <= 0.7 ? "met" : "MISSED"],
    ["typed cell round trip", fmtMs(ours.typed), fmtMs(peer.typed), `${(ours.typed / ours.trivial).toFixed(1)}x trivial`, "<= 10x trivial", ours.typed / ours.trivial <= 10 ? "met" : "MISSED"],
    ["completion round trip", fmtMs(ours.complete), fmtMs(peer.complete), `${(ours.complete / peer.complete).toFixed(2)}x`, "", ""],
  ];
  console.log(`bench/kernel: medians of ${reps} interleaved round trips, one ZMQ client for both kernels (${machine()})`);
  console.log(table(["measure", "retinanet-kernel", "ipykernel", "ratio", "target", ""], rows));
  const soaks: SoakResult[] = [];
  if (process.env.RK_BENCH_SOAK !== "0") {
    const k = await TestKernel.start();
    try {
      soaks.push(await soak(k, "trivial executes", (i) => `${i} + 1`, Number(process.env.RK_SOAK_EXECUTES ?? 10000), 1000));
      const setup = await k.execute(SOAK_RUN_SETUP);
      if (setup.status !== "ok") throw new Error(`soak setup failed: ${JSON.stringify(setup.error)}`);
      soaks.push(await soak(k, "await pp.run(ds), 2 images", () => SOAK_RUN_CELL, Number(process.env.RK_SOAK_RUNS ?? 2000), 200));
    } finally {
      await k.stop();
    }
    console.log("\nsoak: RSS of the kernel process after a warm-up and at the end (lowest of the first and of the last samples)");
    console.log(
      table(
        ["what", "runs", "RSS after warm-up", "RSS at end", "growth", "target", ""],
        soaks.map((r) => [r.what, String(r.runs), `${r.startMb.toFixed(0)} MB`, `${r.endMb.toFixed(0)} MB`, `${r.growthMb.toFixed(1)} MB`, "<= 30 MB", r.growthMb <= 30 ? "met" : "MISSED"]),
      ),
    );
  }
  const jsonAt = process.argv.indexOf("--json");
  if (jsonAt > 0) fs.writeFileSync(process.argv[jsonAt + 1], JSON.stringify({ machine: machine(), results, soak: soaks }, null, 2));
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
