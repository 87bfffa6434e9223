/** Message round trips over the wire for every request type and every iopub message the kernel publishes. */
import * as assert from "assert";

import { TestKernel } from "./kernel-client";

describe("messages", function () {
  let k: TestKernel;
  before(async function () {
    k = await TestKernel.start();
  });
  after(() => k?.stop());

  const types = (iopub: { msg_type: string }[]) => iopub.map((m) => m.msg_type);

  it("kernel_info on shell and on control: protocol 5.3, TypeScript version, status ok", async function () {
    for (const ch of ["shell", "control"] as const) {
      const { reply, iopub } = await k.request("kernel_info_request", {}, ch);
      const c = reply.content as Record<string, any>;
      assert.strictEqual(reply.header.msg_type, "kernel_info_reply");
      assert.strictEqual(c.status, "ok");
      assert.strictEqual(c.protocol_version, "5.3");
      assert.strictEqual(c.implementation, "retinanet-kernel");
      assert.strictEqual(c.language_info.name, "typescript");
      assert.match(c.language_info.version, /^5\.\d+\.\d+$/);
      assert.strictEqual(c.language_info.file_extension, ".ts");
      assert.ok(c.help_links.length >= 2 && typeof c.banner === "string");
      assert.deepStrictEqual(types(iopub), ["status", "status"]);
    }
  });

  it("execute: busy, execute_input, stream, execute_result, idle; execution_count counts", async function () {
    const r1 = await k.execute('console.log("out"); 40 + 2');
    assert.deepStrictEqual(types(r1.iopub), ["status", "execute_input", "stream", "execute_result", "status"]);
    assert.deepStrictEqual(r1.iopub.map((m) => m.content.execution_state).filter(Boolean), ["busy", "idle"]);
    const n = r1.reply.content.execution_count as number;
    assert.strictEqual(r1.result!["text/plain"], "42");
    const r2 = await k.execute("1");
    assert.strictEqual(r2.reply.content.execution_count, n + 1);
  });

  it("execute silent: no execute_input, no result, the count does not move", async function () {
    const before = (await k.execute("0")).reply.content.execution_count as number;
    const r = await k.execute('console.log("quiet"); 5', { silent: true });
    assert.deepStrictEqual(types(r.iopub), ["status", "stream", "status"]);
    const after = (await k.execute("0")).reply.content.execution_count as number;
    assert.strictEqual(after, before + 1);
  });

  it("execute store_history false: no count increment, not in history", async function () {
    const before = (await k.execute("0")).reply.content.execution_count as number;
    await k.execute("const notStored = 77", { store_history: false });
    const after = (await k.execute("0")).reply.content.execution_count as number;
    assert.strictEqual(after, before + 1);
    const { reply } = await k.request("history_request", { output: false, raw: true, hist_access_type: "search", pattern: "*notStored*" });
    assert.deepStrictEqual(reply.content.history, []);
  });

  it("execute user_expressions: values and errors per expression", async function () {
    const r = await k.execute("const ue = 6", { user_expressions: { double: "ue * 2", bad: "ue.nope.x" } });
    const ue = r.reply.content.user_expressions as Record<string, any>;
    assert.strictEqual(ue.double.status, "ok");
    assert.strictEqual(ue.double.data["text/plain"], "12");
    assert.strictEqual(ue.bad.status, "error");
    assert.strictEqual(ue.bad.ename, "TSError");
  });

  it("execute stop_on_error false: queued requests still run", async function () {
    const a = k.send("shell", "execute_request", { code: "throw new Error('x')", silent: false, store_history: true, user_expressions: {}, allow_stdin: false, stop_on_error: false });
    const b = k.send("shell", "execute_request", { code: "'ran'", silent: false, store_history: true, user_expressions: {}, allow_stdin: false, stop_on_error: true });
    await k.waitFor(() => !!k.reply(a) && !!k.reply(b));
    assert.strictEqual(k.reply(a)!.content.status, "error");
    assert.strictEqual(k.reply(b)!.content.status, "ok");
  });

  it("execute stop_on_error: a request sent before the error but delivered after it is aborted; one sent after the reply runs", async function () {
    const content = (code: string) => ({ code, silent: false, store_history: true, user_expressions: {}, allow_stdin: false, stop_on_error: true });
    const sentBefore = new Date(Date.now() - 5).toISOString();
    const a = k.send("shell", "execute_request", content("throw new Error('first')"));
    await k.waitFor(() => !!k.reply(a));
    assert.strictEqual(k.reply(a)!.content.status, "error");
    // A busy machine can deliver a request after the error although the client sent it before.
    const late = k.frames("execute_request", content("'late'"), { date: sentBefore });
    k.sendRaw("shell", late.frames);
    await k.waitFor(() => !!k.reply(late.id));
    assert.strictEqual(k.reply(late.id)!.content.status, "aborted");
    await new Promise((r) => setTimeout(r, 5));
    const after = k.send("shell", "execute_request", content("'after'"));
    await k.waitFor(() => !!k.reply(after));
    assert.strictEqual(k.reply(after)!.content.status, "ok");
  });

  it("display_data, update_display_data and clear_output", async function () {
    const r = await k.execute('const h = display.html("<i>1</i>"); h.update({ "text/plain": "2" }); display.update(h.id, "3"); clearOutput(true)');
    assert.deepStrictEqual(types(r.iopub), ["status", "execute_input", "display_data", "update_display_data", "update_display_data", "clear_output", "status"]);
    const [d, u1, u2, c] = r.iopub.slice(2, 6);
    const id = (d.content.transient as { display_id: string }).display_id;
    assert.ok(id);
    assert.strictEqual((u1.content.transient as { display_id: string }).display_id, id);
    assert.deepStrictEqual(u2.content.data, { "text/plain": "'3'" });
    assert.strictEqual(c.content.wait, true);
  });

  it("error: ename, evalue and a traceback of strings", async function () {
    const r = await k.execute("null as any as { f(): void }; (undefined as any).f()");
    assert.strictEqual(r.status, "error");
    assert.strictEqual(r.error!.ename, "TypeError");
    assert.match(r.error!.evalue, /Cannot read properties of undefined/);
    assert.ok(r.error!.traceback.every((l) => typeof l === "string"));
    assert.strictEqual(r.reply.content.ename, "TypeError");
  });

  it("type errors are reported with cell-relative line:column", async function () {
    const r = await k.execute("const okLine = 1;\n\nconst wrong: string = okLine;");
    assert.strictEqual(r.error!.ename, "TSError");
    assert.match(r.error!.evalue, /^3:7 Type 'number' is not assignable to type 'string'\./);
    assert.ok(r.error!.traceback.some((l) => l.includes("const wrong: string = okLine;")));
  });

  it("complete: matches with cursor_start/end (code points), magic names too", async function () {
    await k.execute("const completeMe = { alpha: 1, alphabet: 2 }");
    const { reply } = await k.request("complete_request", { code: "completeMe.alp", cursor_pos: 14 });
    assert.deepStrictEqual([...(reply.content.matches as string[])].sort(), ["alpha", "alphabet"]);
    assert.strictEqual(reply.content.cursor_start, 11);
    assert.strictEqual(reply.content.cursor_end, 14);
    const emoji = "const s = '😀'; Math.fl";
    const cp = [...emoji].length;
    const r2 = await k.request("complete_request", { code: emoji, cursor_pos: cp });
    assert.deepStrictEqual(r2.reply.content.matches, ["floor"]);
    assert.strictEqual(r2.reply.content.cursor_end, cp);
    const r3 = await k.request("complete_request", { code: "%ti", cursor_pos: 3 });
    assert.deepStrictEqual(r3.reply.content.matches, ["%time"]);
  });

  it("inspect: TypeScript quick info, and magic help", async function () {
    const { reply } = await k.request("inspect_request", { code: "Math.max", cursor_pos: 7, detail_level: 0 });
    assert.strictEqual(reply.content.found, true);
    assert.match((reply.content.data as Record<string, string>)["text/plain"], /Math\.max\(\.\.\.values: number\[\]\): number/);
    const r2 = await k.request("inspect_request", { code: "%who", cursor_pos: 2, detail_level: 0 });
    assert.match((r2.reply.content.data as Record<string, string>)["text/plain"], /list the variables/);
    const r3 = await k.request("inspect_request", { code: "   ", cursor_pos: 1, detail_level: 0 });
    assert.strictEqual(r3.reply.content.found, false);
  });

  it("is_complete: complete, incomplete with indent, invalid", async function () {
    const ask = async (code: string) => (await k.request("is_complete_request", { code })).reply.content;
    assert.deepStrictEqual(await ask("let x = 1"), { status: "complete" });
    assert.deepStrictEqual(await ask("function f() {"), { status: "incomplete", indent: "  " });
    assert.deepStrictEqual(await ask("  if (a) {"), { status: "incomplete", indent: "    " });
    assert.deepStrictEqual(await ask("let x = )"), { status: "invalid" });
  });

  it("history: tail, range, search (glob, unique, n) and with outputs", async function () {
    await k.execute("'hist-a'");
    await k.execute("'hist-b'");
    const tail = (await k.request("history_request", { output: false, raw: true, hist_access_type: "tail", n: 2 })).reply.content.history as [number, number, string][];
    assert.deepStrictEqual(tail.map((h) => h[2]), ["'hist-a'", "'hist-b'"]);
    const [session, line] = tail[0];
    const range = (await k.request("history_request", { output: true, raw: true, hist_access_type: "range", session, start: line, stop: line + 1 })).reply.content.history;
    assert.deepStrictEqual(range, [[session, line, ["'hist-a'", "'hist-a'"]]]);
    await k.execute("'hist-a'");
    const search = (await k.request("history_request", { output: false, raw: true, hist_access_type: "search", pattern: "'hist-?'" })).reply.content.history as unknown[];
    assert.strictEqual(search.length, 3);
    const unique = (await k.request("history_request", { output: false, raw: true, hist_access_type: "search", pattern: "'hist-*'", unique: true })).reply.content.history as unknown[];
    assert.strictEqual(unique.length, 2);
    const n = (await k.request("history_request", { output: false, raw: true, hist_access_type: "search", pattern: "'hist-*'", n: 1 })).reply.content.history as unknown[];
    assert.strictEqual(n.length, 1);
  });

  it("comms: comm_info, kernel-registered target, messages both ways, close; unknown targets are closed", async function () {
    await k.execute(`comms.registerTarget("echo", (comm, data) => { comm.onMessage((d) => comm.send({ echo: d })); comm.send({ opened: data }); });`);
    const open = k.send("shell", "comm_open", { comm_id: "c1", target_name: "echo", data: { hi: 1 } });
    await k.waitFor(() => k.iopubFor(open).some((m) => m.msg_type === "comm_msg"));
    assert.deepStrictEqual(k.iopubFor(open).find((m) => m.msg_type === "comm_msg")!.content.data, { opened: { hi: 1 } });
    const info = await k.request("comm_info_request", { target_name: "echo" });
    assert.deepStrictEqual(info.reply.content.comms, { c1: { target_name: "echo" } });
    const msg = k.send("shell", "comm_msg", { comm_id: "c1", data: { ping: 2 } });
    await k.waitFor(() => k.iopubFor(msg).some((m) => m.msg_type === "comm_msg"));
    assert.deepStrictEqual(k.iopubFor(msg).find((m) => m.msg_type === "comm_msg")!.content.data, { echo: { ping: 2 } });
    // comm_close has no reply: the shell queue runs it before the comm_info_request sent after it.
    k.send("shell", "comm_close", { comm_id: "c1", data: {} });
    const after = await k.request("comm_info_request", {});
    assert.deepStrictEqual(after.reply.content.comms, {});
    const unknown = k.send("shell", "comm_open", { comm_id: "c2", target_name: "nope", data: {} });
    await k.waitFor(() => k.iopubFor(unknown).some((m) => m.msg_type === "comm_close"));
    const fromKernel = await k.execute(`const c = comms.open("frontend-target", { x: 1 }); c.send({ y: 2 }); c.close();`);
    assert.deepStrictEqual(fromKernel.iopub.filter((m) => m.msg_type.startsWith("comm_")).map((m) => m.msg_type), ["comm_open", "comm_msg", "comm_close"]);
  });

  it("stdin: input_request with the prompt; input_reply answers it", async function () {
    const id = k.send("shell", "execute_request", { code: 'const answer = await input("Your name?", { password: true }); "got " + answer', silent: false, store_history: true, user_expressions: {}, allow_stdin: true, stop_on_error: true });
    await k.waitFor(() => k.stdinLog.some((m) => m.parent_header.msg_id === id));
    const req = k.stdinLog.find((m) => m.parent_header.msg_id === id)!;
    assert.deepStrictEqual(req.content, { prompt: "Your name?", password: true });
    k.send("stdin", "input_reply", { value: "Ada" });
    await k.waitFor(() => !!k.reply(id));
    await k.waitFor(() => k.iopubFor(id).some((m) => m.msg_type === "execute_result"));
    assert.strictEqual((k.iopubFor(id).find((m) => m.msg_type === "execute_result")!.content.data as Record<string, string>)["text/plain"], "'got Ada'");
  });

  it("interrupt_request on control is answered ok even when idle", async function () {
    const { reply } = await k.request("interrupt_request", {}, "control");
    assert.strictEqual(reply.content.status, "ok");
  });

  it("unknown message types are logged and ignored; the kernel keeps answering", async function () {
    const { iopub } = await k.request("kernel_info_request", {});
    assert.ok(iopub.length > 0);
    k.send("shell", "no_such_request", {});
    await k.waitFor(() => /unknown message type "no_such_request"/.test(k.stderr));
    const r = await k.execute("'still here'");
    assert.strictEqual(r.status, "ok");
  });

  it("shutdown_request with restart echoes the flag and ends the process", async function () {
    const k2 = await TestKernel.start();
    const id = k2.send("control", "shutdown_request", { restart: true });
    await k2.waitFor(() => !!k2.reply(id));
    assert.deepStrictEqual(k2.reply(id)!.content, { status: "ok", restart: true });
    await new Promise<void>((resolve) => (k2.proc.exitCode !== null ? resolve() : k2.proc.once("exit", () => resolve())));
    assert.strictEqual(k2.proc.exitCode, 0);
    await k2.stop();
  });
});
