/**
 * Interrupts: interrupt_request (the kernelspec's interrupt_mode "message") and SIGINT stop a busy
 * loop within 1 s and a pending await likewise; the reply is a KeyboardInterrupt error; every
 * variable defined before is still there; the heartbeat answers while a cell spins.
 */
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";

import { PACKAGE_ROOT } from "../kernel/native";
import { TestKernel } from "./kernel-client";

describe("interrupt", function () {
  let k: TestKernel;
  before(async function () {
    k = await TestKernel.start();
    await k.execute("const defined = [1, 2, 3]; let counter = 0;");
  });
  after(() => k?.stop());

  it("the kernelspec declares interrupt_mode", function () {
    const spec = JSON.parse(fs.readFileSync(path.join(PACKAGE_ROOT, "kernel.json"), "utf8")) as { interrupt_mode: string; argv: string[] };
    assert.strictEqual(spec.interrupt_mode, "message");
    assert.ok(spec.argv.includes("--no-force-async-hooks-checks"));
  });

  async function interruptWith(how: "message" | "signal", code: string): Promise<{ ms: number; reply: Record<string, unknown> }> {
    const id = k.send("shell", "execute_request", { code, silent: false, store_history: true, user_expressions: {}, allow_stdin: false, stop_on_error: false });
    await k.waitFor(() => k.iopubFor(id).some((m) => m.msg_type === "execute_input"));
    await new Promise((r) => setTimeout(r, 300));
    // the heartbeat is answered by the I/O thread while the main thread spins
    assert.ok((await k.ping()) < 500, "heartbeat while busy");
    const t0 = performance.now();
    if (how === "message") k.send("control", "interrupt_request", {});
    else k.proc.kill("SIGINT");
    await k.waitFor(() => !!k.reply(id), 10000);
    const ms = performance.now() - t0;
    return { ms, reply: k.reply(id)!.content };
  }

  for (const how of ["message", "signal"] as const) {
    it(`${how}: while (true) {} stops within 1 s with KeyboardInterrupt`, async function () {
      const { ms, reply } = await interruptWith(how, "counter++; while (true) {}");
      assert.strictEqual(reply.status, "error");
      assert.strictEqual(reply.ename, "KeyboardInterrupt");
      assert.ok(ms < 1000, `${ms.toFixed(0)} ms`);
    });

    it(`${how}: a pending await that never resolves stops the same way`, async function () {
      const { ms, reply } = await interruptWith(how, "await new Promise(() => {})");
      assert.strictEqual(reply.ename, "KeyboardInterrupt");
      assert.ok(ms < 1000, `${ms.toFixed(0)} ms`);
    });
  }

  it("message: a loop inside a timer callback is stopped too (V8 termination), within 1 s", async function () {
    const { ms, reply } = await interruptWith("message", "await new Promise<void>((r) => setTimeout(() => { while (true) {} r(); }, 1))");
    assert.strictEqual(reply.ename, "KeyboardInterrupt");
    assert.ok(ms < 1000, `${ms.toFixed(0)} ms`);
  });

  it("message: a long synchronous loop inside a function of an earlier cell", async function () {
    await k.execute("function spin(): number { let x = 0; for (;;) { x += Math.random(); } }");
    const { ms, reply } = await interruptWith("message", "spin()");
    assert.strictEqual(reply.ename, "KeyboardInterrupt");
    assert.ok(ms < 1000, `${ms.toFixed(0)} ms`);
  });

  it("every variable defined before is still there, and the kernel runs new cells", async function () {
    const r = await k.execute("[defined.length, counter]");
    assert.strictEqual(r.status, "ok");
    assert.strictEqual(r.result!["text/plain"], "[ 3, 2 ]");
  });

  it("an interrupt while idle does nothing to the next cell", async function () {
    await k.request("interrupt_request", {}, "control");
    k.proc.kill("SIGINT");
    await new Promise((r) => setTimeout(r, 200));
    const r = await k.execute("await new Promise((r) => setTimeout(r, 300)); 'fine'");
    assert.strictEqual(r.result!["text/plain"], "'fine'");
  });
});
