/** Output ordering: streams, displays and results arrive in the order the cell produced them. */
import * as assert from "assert";

import { TestKernel } from "./kernel-client";

describe("output ordering", function () {
  let k: TestKernel;
  before(async function () {
    k = await TestKernel.start();
  });
  after(() => k?.stop());

  it("interleaved stdout, stderr and display_data keep their order", async function () {
    const r = await k.execute(
      'console.log("a"); console.error("b"); display.text("c"); console.log("d"); process.stdout.write("e\\n"); console.error("f"); "g"',
    );
    const seq = r.iopub
      .filter((m) => ["stream", "display_data", "execute_result"].includes(m.msg_type))
      .map((m) => (m.msg_type === "stream" ? String(m.content.text) : String((m.content.data as Record<string, string>)["text/plain"])));
    assert.deepStrictEqual(seq.join("|"), "a\n|b\n|c|d\ne\n|f\n|'g'");
  });

  it("consecutive writes to one stream are coalesced into few messages", async function () {
    const r = await k.execute("for (let i = 0; i < 2000; i++) console.log(i)");
    const streams = r.iopub.filter((m) => m.msg_type === "stream");
    const text = streams.map((m) => m.content.text).join("");
    assert.strictEqual(text.split("\n").length, 2001);
    assert.ok(streams.length < 20, `${streams.length} stream messages`);
  });

  it("output of an await inside the cell stays in order with the rest", async function () {
    const r = await k.execute('console.log("before"); await new Promise((r) => setTimeout(r, 50)); console.log("after"); display.text("end")');
    const seq = r.iopub.filter((m) => m.msg_type === "stream" || m.msg_type === "display_data").map((m) => m.msg_type);
    assert.deepStrictEqual(seq, ["stream", "stream", "display_data"]);
    assert.strictEqual(r.stdout, "before\nafter\n");
  });

  it("output printed before a long synchronous loop arrives while the loop still runs", async function () {
    const id = k.send("shell", "execute_request", { code: 'console.log("early"); display.text("shown"); const t0 = Date.now(); while (Date.now() - t0 < 1500) {} "late"', silent: false, store_history: true, user_expressions: {}, allow_stdin: false, stop_on_error: true });
    const t0 = performance.now();
    await k.waitFor(() => k.iopubFor(id).some((m) => m.msg_type === "stream") && k.iopubFor(id).some((m) => m.msg_type === "display_data"), 5000);
    const streamAt = performance.now() - t0;
    assert.ok(!k.reply(id), "the cell is still running");
    assert.ok(streamAt < 1000, `stream after ${streamAt.toFixed(0)} ms`);
    await k.waitFor(() => !!k.reply(id));
  });

  it("output from a callback that outlives its cell is attributed to the last cell, as in ipykernel", async function () {
    const first = await k.execute('setTimeout(() => console.log("late"), 200); 1');
    const second = await k.execute("await new Promise((r) => setTimeout(r, 500)); 2");
    await k.waitFor(() => k.iopubFor(second.id).some((m) => m.msg_type === "stream") || k.iopubFor(first.id).some((m) => m.msg_type === "stream"));
    assert.match(second.stdout + k.iopubFor(second.id).filter((m) => m.msg_type === "stream").map((m) => m.content.text).join(""), /late/);
  });
});
