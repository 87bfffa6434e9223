/**
 * Long sessions: memory stays flat across many trivial executes and many pp.run() calls (shorter
 * here than in bench/kernel, which runs 10,000 and 2,000). Growth after warm-up <= 30 MB each.
 */
import * as assert from "assert";

import { SOAK_RUN_CELL, SOAK_RUN_SETUP, soak } from "../bench/soak";
import { TestKernel } from "./kernel-client";

describe("long sessions", function () {
  this.timeout(600000);
  let k: TestKernel;
  before(async () => {
    k = await TestKernel.start();
  });
  after(() => k?.stop());

  it("3,000 trivial executes after a warm-up of 1,000: RSS grows by <= 30 MB", async function () {
    const r = await soak(k, "trivial", (i) => `${i} + 1`, 3000, 1000);
    console.log(`      RSS ${r.startMb.toFixed(0)} -> ${r.endMb.toFixed(0)} MB (growth ${r.growthMb.toFixed(1)} MB) over ${r.runs} executes in ${(r.ms / 1000).toFixed(1)} s`);
    assert.ok(r.growthMb <= 30, `grew by ${r.growthMb.toFixed(1)} MB: ${r.samples.map((x) => x.toFixed(0)).join(" ")}`);
  });

  it("600 pp.run() on a 2-image dataset after a warm-up of 200: RSS grows by <= 30 MB", async function () {
    const setup = await k.execute(SOAK_RUN_SETUP);
    assert.strictEqual(setup.status, "ok", JSON.stringify(setup.error));
    const r = await soak(k, "pp.run", () => SOAK_RUN_CELL, 600, 200);
    console.log(`      RSS ${r.startMb.toFixed(0)} -> ${r.endMb.toFixed(0)} MB (growth ${r.growthMb.toFixed(1)} MB) over ${r.runs} runs in ${(r.ms / 1000).toFixed(1)} s`);
    assert.ok(r.growthMb <= 30, `grew by ${r.growthMb.toFixed(1)} MB: ${r.samples.map((x) => x.toFixed(0)).join(" ")}`);
  });

  it("history keeps the last 1,000 outputs and bounded inputs", async function () {
    const big = await k.execute('"y".repeat(200000)');
    assert.strictEqual(big.status, "ok");
    const { reply } = await k.request("history_request", { output: true, raw: true, hist_access_type: "tail", n: 1 });
    const rows = reply.content.history as [number, number, [string, string | null]][];
    assert.strictEqual(rows.length, 1);
    assert.ok(rows[0][2][1]!.length <= 65537, `output of ${rows[0][2][1]!.length} characters kept`);
  });
});
