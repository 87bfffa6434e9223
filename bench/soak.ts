/**
 * Long-session memory: a kernel process driven by a ZMQ client through many trivial executes and
 * many `await pp.run(ds)` on a small dataset, its RSS read from /proc. Growth is measured after a
 * warm-up (the compiler and language threads load TypeScript, the addon loads) as the lowest RSS
 * of the last samples minus the lowest of the first samples after the warm-up: a garbage collector
 * that has not run yet raises single samples, memory that is kept raises every one.
 * Used by bench/kernel (full counts) and test/long-session.test.ts (shorter, in CI).
 */
import * as fs from "fs";

import { TestKernel } from "../test/kernel-client";

export interface SoakResult {
  what: string;
  runs: number;
  warmup: number;
  /** MB: RSS after the warm-up, at the end, and the growth between them. */
  startMb: number;
  endMb: number;
  growthMb: number;
  /** Every sample, MB. */
  samples: number[];
  ms: number;
}

export function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+)\s+kB/.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"));
  if (!m) throw new Error(`no VmRSS for process ${pid}`);
  return Number(m[1]) / 1024;
}

export const SOAK_RUN_SETUP =
  'const soakData = rk.synthesize({ images: 2, size: [256, 320], classes: 8, seed: 1 }); const soakPp = rk.createPostprocessor({ preset: "torchvision" }, { backend: "cpu" }); (await soakPp.run(soakData)).detections.length';
export const SOAK_RUN_CELL = "(await soakPp.run(soakData)).detections.length";

/** Runs `code` runs times after warmup runs, sampling RSS `samples` times; the kernel is reused. */
export async function soak(k: TestKernel, what: string, code: (i: number) => string, runs: number, warmup: number, samples = 40): Promise<SoakResult> {
  const every = Math.max(1, Math.floor(runs / samples));
  for (let i = 0; i < warmup; i++) await ok(k, code(i));
  const out: number[] = [];
  const t0 = performance.now();
  for (let i = 0; i < runs; i++) {
    await ok(k, code(warmup + i));
    if (i % every === 0 || i === runs - 1) out.push(rssMb(k.proc.pid!));
    // The client keeps what it received; drop it (only this run's replies matter).
    k.iopubLog.length = 0;
  }
  const ms = performance.now() - t0;
  const w = Math.max(3, Math.floor(out.length / 8));
  const startMb = Math.min(...out.slice(0, w));
  const endMb = Math.min(...out.slice(-w));
  return { what, runs, warmup, startMb, endMb, growthMb: endMb - startMb, samples: out, ms };
}

async function ok(k: TestKernel, code: string): Promise<void> {
  const r = await k.execute(code);
  if (r.status !== "ok") throw new Error(`${code.slice(0, 80)} failed: ${JSON.stringify(r.error)}`);
}
