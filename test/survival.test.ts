/**
 * A kernel that survives its user: non-Error throws, unhandled rejections, process.exit, 100 MB of
 * output, and 1,000 malformed wire messages; after each the kernel answers and the session's
 * variables are intact.
 */
import * as assert from "assert";
import * as crypto from "crypto";

import { TestKernel } from "./kernel-client";

describe("survival", function () {
  let k: TestKernel;
  before(async function () {
    k = await TestKernel.start();
    await k.execute("const precious = { answer: 42 }");
  });
  after(() => k?.stop());

  const stillAlive = async () => {
    const r = await k.execute("precious.answer");
    assert.strictEqual(r.result!["text/plain"], "42");
  };

  it("thrown non-Error values: number, string, object, undefined", async function () {
    for (const [code, evalue] of [["throw 7", "7"], ['throw "text"', "'text'"], ["throw { kind: 'x' }", "{ kind: 'x' }"], ["throw undefined", "undefined"]]) {
      const r = await k.execute(code);
      assert.strictEqual(r.status, "error", code);
      assert.strictEqual(r.error!.ename, "Uncaught", code);
      assert.strictEqual(r.error!.evalue, evalue, code);
    }
    await stillAlive();
  });

  it("an unhandled rejection is reported on the cell that started it", async function () {
    const r = await k.execute("Promise.reject(new Error('nobody caught me')); await new Promise((r) => setTimeout(r, 100)); 'done'");
    assert.strictEqual(r.status, "ok");
    const err = r.iopub.find((m) => m.msg_type === "error");
    assert.ok(err, "an error output on the same cell");
    assert.match(String(err!.content.ename), /^UnhandledPromiseRejection: Error$/);
    assert.match(String(err!.content.evalue), /nobody caught me/);
    await stillAlive();
  });

  it("an unhandled rejection after the cell ended is reported on the last cell", async function () {
    const first = await k.execute("setTimeout(() => Promise.reject('late rejection'), 100); 'started'");
    await k.waitFor(() => k.iopubLog.some((m) => m.header.msg_type === "error" && /late rejection/.test(String(m.content.evalue))));
    const err = k.iopubLog.find((m) => m.header.msg_type === "error" && /late rejection/.test(String(m.content.evalue)))!;
    assert.strictEqual(err.parent_header.msg_id, first.id);
    await stillAlive();
  });

  it("an exception thrown in a callback does not end the kernel", async function () {
    await k.execute("setTimeout(() => { throw new Error('callback boom'); }, 10); await new Promise((r) => setTimeout(r, 100))");
    await k.waitFor(() => k.iopubLog.some((m) => m.header.msg_type === "error" && /callback boom/.test(String(m.content.evalue))));
    await stillAlive();
  });

  it("process.exit(), process.abort() and process.kill(process.pid) are refused with an error", async function () {
    for (const code of ["process.exit(0)", "process.exit()", "process.abort()", "process.kill(process.pid, 'SIGTERM')"]) {
      const r = await k.execute(code);
      assert.strictEqual(r.status, "error", code);
      assert.strictEqual(r.error!.ename, "ProcessExitRefused", code);
      assert.match(r.error!.evalue, /refused inside the kernel: it would end the kernel and lose the session/);
    }
    assert.strictEqual(k.proc.exitCode, null);
    await stillAlive();
  });

  it("a cell that prints 100 MB is throttled: bounded output, bounded kernel memory, a notice", async function () {
    this.timeout(180000);
    const rssBefore = Number((await k.request("usage_request", {}, "control")).reply.content.kernel_memory);
    const r = await k.execute('const line = "x".repeat(999) + "\\n"; for (let i = 0; i < 100000; i++) process.stdout.write(line); "printed"', {}, 170000);
    assert.strictEqual(r.result!["text/plain"], "'printed'");
    const shown = r.stdout.length;
    assert.ok(shown <= 8 * 1024 * 1024, `${shown} bytes shown`);
    assert.match(r.stderr, /output limit of 8\.4 MB per cell reached; 91\.6 MB more were not shown/);
    const rssAfter = Number((await k.request("usage_request", {}, "control")).reply.content.kernel_memory);
    assert.ok(rssAfter - rssBefore < 150e6, `kernel RSS grew by ${((rssAfter - rssBefore) / 1e6).toFixed(0)} MB`);
    const next = await k.execute('console.log("fresh budget")');
    assert.strictEqual(next.stdout, "fresh budget\n");
  });

  it("1,000 malformed wire messages: dropped and logged; the kernel keeps answering with its state", async function () {
    this.timeout(120000);
    const good = k.frames("execute_request", { code: "1" }).frames;
    const d = good.findIndex((f) => f.toString() === "<IDS|MSG>");
    const sign = (parts: Buffer[]) => Buffer.from(k.sign(parts));
    const variants: (() => Buffer[])[] = [
      () => [Buffer.from("garbage")], // no delimiter
      () => good.slice(0, d + 3), // missing frames
      () => [...good.slice(0, d + 1), Buffer.from("f".repeat(64)), ...good.slice(d + 2)], // wrong signature
      () => [...good.slice(0, d + 1), Buffer.alloc(0), ...good.slice(d + 2)], // missing signature
      () => {
        const h = Buffer.from("{not json");
        const rest = [Buffer.from("{}"), Buffer.from("{}"), Buffer.from("{}")];
        return [good[d], sign([h, ...rest]), h, ...rest]; // signed bad JSON
      },
      () => {
        const h = Buffer.from(JSON.stringify({ msg_id: crypto.randomUUID(), session: "s", username: "u", date: "", msg_type: "made_up_type", version: "5.3" }));
        const rest = [Buffer.from("{}"), Buffer.from("{}"), Buffer.from("{}")];
        return [good[d], sign([h, ...rest]), h, ...rest]; // unknown msg_type
      },
      () => {
        const h = Buffer.from(JSON.stringify({ msg_id: crypto.randomUUID(), session: "s", username: "u", date: "", msg_type: "execute_request", version: "5.3" }));
        const c = Buffer.from(JSON.stringify({ code: 42, silent: "yes" }));
        const rest = [Buffer.from("{}"), Buffer.from("{}"), c];
        return [good[d], sign([h, ...rest]), h, ...rest]; // wrong content types
      },
      () => good, // a replay of one signature
    ];
    for (let i = 0; i < 1000; i++) k.sendRaw(i % 3 === 0 ? "control" : "shell", variants[i % variants.length]());
    // and one huge message (20 MB of content), signed
    const h = Buffer.from(JSON.stringify({ msg_id: crypto.randomUUID(), session: "s", username: "u", date: "", msg_type: "comm_msg", version: "5.3" }));
    const big = Buffer.from(JSON.stringify({ comm_id: "none", data: { blob: "y".repeat(20e6) } }));
    k.sendRaw("shell", [good[d], sign([h, Buffer.from("{}"), Buffer.from("{}"), big]), h, Buffer.from("{}"), Buffer.from("{}"), big]);
    const t0 = performance.now();
    await stillAlive();
    assert.ok(performance.now() - t0 < 60000);
    await k.waitFor(() => (k.stderr.match(/dropped a message/g) ?? []).length >= 500, 20000);
    assert.ok((await k.ping()) < 1000);
    const info = await k.request("kernel_info_request", {});
    assert.strictEqual(info.reply.content.status, "ok");
  });
});
