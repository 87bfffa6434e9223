/**
 * Hostile and malformed traffic on the shell and control sockets: wrong signatures, frames that are
 * not JSON, bad headers, unknown message types (some named like Object's own properties), too few
 * frames, random bytes, requests with missing or mistyped content fields, 1 MB code strings. Each is
 * dropped or answered with an error reply; afterwards the kernel is alive, its state unchanged
 * (a variable defined before, the execution count) and the next execute works.
 */
import * as assert from "assert";
import * as crypto from "crypto";

import { TestKernel } from "./kernel-client";

const DELIM = Buffer.from("<IDS|MSG>");

/** A small deterministic generator (mulberry32), so a failing run can be replayed. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Case {
  frames: Buffer[];
  /** The msg_id of a request that must get an error reply naming `field`. */
  expectError?: { id: string; replyType: string; field: string };
}

describe("hostile traffic", function () {
  this.timeout(300000);
  let k: TestKernel;
  before(async () => {
    k = await TestKernel.start();
  });
  after(() => k?.stop());

  function signed(h: Buffer, c: Buffer, p = Buffer.from("{}"), md = Buffer.from("{}")): Buffer[] {
    return [DELIM, Buffer.from(k.sign([h, p, md, c])), h, p, md, c];
  }
  function header(msgType: unknown, extra: Record<string, unknown> = {}): { id: string; buf: Buffer } {
    const id = crypto.randomUUID();
    return { id, buf: Buffer.from(JSON.stringify({ msg_id: id, session: "fuzz", username: "fuzz", date: new Date().toISOString(), msg_type: msgType, version: "5.3", ...extra })) };
  }

  const MB = "x".repeat(1 << 20);
  /** Requests whose content is wrong: [msg_type, content, the field the error must name]. */
  const badContent: [string, Record<string, unknown>, string][] = [
    ["execute_request", {}, "code"],
    ["execute_request", { code: 5 }, "code"],
    ["execute_request", { code: null }, "code"],
    ["execute_request", { code: "sentinel = 0", silent: "yes" }, "silent"],
    ["execute_request", { code: "sentinel = 0", user_expressions: [1, 2] }, "user_expressions"],
    ["execute_request", { code: "sentinel = 0", user_expressions: { a: 1 } }, "user_expressions"],
    ["execute_request", { code: "sentinel = 0", store_history: 1 }, "store_history"],
    ["execute_request", { code: ["sentinel = 0"] }, "code"],
    ["complete_request", { code: "Math.", cursor_pos: -1 }, "cursor_pos"],
    ["complete_request", { code: "Math.", cursor_pos: "3" }, "cursor_pos"],
    ["complete_request", { code: "Math." }, "cursor_pos"],
    ["complete_request", { code: 7, cursor_pos: 1 }, "code"],
    ["inspect_request", { code: "Math", cursor_pos: 2, detail_level: 7 }, "detail_level"],
    ["inspect_request", { cursor_pos: 2 }, "code"],
    ["inspect_request", { code: "Math", cursor_pos: 1.5 }, "cursor_pos"],
    ["history_request", { hist_access_type: "bogus" }, "hist_access_type"],
    ["history_request", {}, "hist_access_type"],
    ["history_request", { hist_access_type: "tail", n: -3 }, "n"],
    ["history_request", { hist_access_type: "search", pattern: 4 }, "pattern"],
    ["is_complete_request", { code: null }, "code"],
    ["is_complete_request", { code: {} }, "code"],
    ["comm_info_request", { target_name: 3 }, "target_name"],
  ];

  function makeCases(n: number, seed: number): Case[] {
    const r = rng(seed);
    const pick = <T>(xs: T[]): T => xs[Math.floor(r() * xs.length)];
    const randomBytes = (max: number) => Buffer.from(Array.from({ length: Math.floor(r() * max) }, () => Math.floor(r() * 256)));
    const ok = (type: string, content: Record<string, unknown>) => {
      const h = header(type);
      return signed(h.buf, Buffer.from(JSON.stringify(content)));
    };
    const makers: (() => Case)[] = [
      // wrong signature, right length and wrong length
      () => {
        const f = ok("execute_request", { code: "sentinel = -1", silent: false });
        f[1] = Buffer.from(crypto.randomBytes(32).toString("hex"));
        return { frames: f };
      },
      () => {
        const f = ok("execute_request", { code: "sentinel = -2" });
        f[1] = Buffer.from("deadbeef");
        return { frames: f };
      },
      // frames that are not JSON (signed, so only parsing can refuse them)
      () => ({ frames: signed(Buffer.from("{not json"), Buffer.from("{}")) }),
      () => ({ frames: signed(header("execute_request").buf, Buffer.from("code = sentinel = -3")) }),
      () => ({ frames: signed(header("kernel_info_request").buf, Buffer.from("{}"), Buffer.from("[1,2")) }),
      () => ({ frames: signed(header("kernel_info_request").buf, Buffer.from("[]")) }),
      () => ({ frames: signed(header("kernel_info_request").buf, Buffer.from("null")) }),
      // headers without msg_type, with wrong types, not objects
      () => ({ frames: signed(Buffer.from(JSON.stringify({ msg_id: "x", session: "s" })), Buffer.from("{}")) }),
      () => ({ frames: signed(header(42).buf, Buffer.from("{}")) }),
      () => ({ frames: signed(header(null).buf, Buffer.from("{}")) }),
      () => ({ frames: signed(header(["execute_request"]).buf, Buffer.from('{"code":"sentinel = -4"}')) }),
      () => ({ frames: signed(header("execute_request", { msg_id: 7 }).buf, Buffer.from('{"code":"sentinel = -5"}')) }),
      () => ({ frames: signed(Buffer.from('"execute_request"'), Buffer.from('{"code":"sentinel = -6"}')) }),
      // unknown message types, some that are Object's own property names
      () => ({ frames: ok(pick(["bogus_request", "constructor", "__proto__", "toString", "hasOwnProperty", "valueOf", "execute_reply", "status", ""]), {}) }),
      // too few frames, no delimiter, random bytes
      () => ({ frames: [DELIM, Buffer.from(""), header("kernel_info_request").buf] }),
      () => ({ frames: [header("kernel_info_request").buf, Buffer.from("{}"), Buffer.from("{}"), Buffer.from("{}")] }),
      () => ({ frames: Array.from({ length: 1 + Math.floor(r() * 8) }, () => randomBytes(200)) }),
      () => ({ frames: [DELIM, ...Array.from({ length: 5 + Math.floor(r() * 3) }, () => randomBytes(64))] }),
      // well-signed requests with wrong content: an error reply that names the field
      () => {
        const [type, content, field] = pick(badContent);
        const h = header(type);
        return { frames: signed(h.buf, Buffer.from(JSON.stringify(content))), expectError: { id: h.id, replyType: type.replace(/_request$/, "_reply"), field } };
      },
    ];
    const cases = Array.from({ length: n }, () => pick(makers)());
    // 1 MB code strings in requests that leave the state alone, spread through the run
    const big = ["is_complete_request", "complete_request", "inspect_request"].flatMap((type) => [`const big = "${MB}"`, `// ${MB}`].map((code) => ({ frames: ok(type, { code, cursor_pos: 4 }) })));
    for (const [i, c] of big.entries()) cases.splice(Math.floor(((i + 1) * cases.length) / (big.length + 1)), 0, c);
    return cases;
  }

  it("1,200 hostile messages on shell and control: none stops the kernel or changes its state", async function () {
    const before = await k.execute("let sentinel = 41; sentinel + 1");
    assert.strictEqual(before.status, "ok");
    const count = before.reply.content.execution_count as number;
    const cases = makeCases(1200, 20261203);
    const expected: Case["expectError"][] = [];
    for (const [i, c] of cases.entries()) {
      const ch = i % 2 === 0 ? "shell" : "control";
      k.sendRaw(ch, c.frames);
      // On control only control's own requests are answered; shell's are unknown there (logged, ignored).
      if (c.expectError && (ch === "shell" || c.expectError.replyType === "comm_info_reply")) expected.push(c.expectError);
      if (i % 50 === 49) await new Promise((r) => setTimeout(r, 10));
    }
    assert.ok(expected.length >= 20, `expected many bad-content requests among the cases, got ${expected.length}`);
    // Every bad-content request is answered with an error reply naming its field.
    await k.waitFor(() => expected.every((e) => k.reply(e!.id) !== undefined), 120000).catch(() => undefined);
    const missing = expected.filter((e) => !k.reply(e!.id));
    assert.strictEqual(missing.length, 0, `no reply to ${missing.length} of ${expected.length} bad requests`);
    for (const e of expected) {
      const rep = k.reply(e!.id)!;
      assert.strictEqual(rep.header.msg_type, e!.replyType);
      assert.strictEqual(rep.content.status, "error");
      assert.match(String(rep.content.evalue), new RegExp(`content\\.${e!.field}\\b`));
    }
    assert.strictEqual(k.proc.exitCode, null, `the kernel exited: ${k.stderr.slice(-2000)}`);
    assert.ok((await k.ping()) < 2000);
    // State: the variable is unchanged and no execute ran (the count moved only by the next one).
    const after = await k.execute("sentinel");
    assert.strictEqual(after.status, "ok");
    assert.strictEqual(after.result!["text/plain"], "41");
    assert.strictEqual(after.reply.content.execution_count, count + 1);
    // The kernel said why, on its stderr, for what it dropped.
    assert.match(k.stderr, /dropped a message on (shell|control)/);
    assert.match(k.stderr, /refused execute_request on (shell|control): Expected content\.code/);
  });

  it("signatures: a wrong one of the right length and a replayed one are refused", async function () {
    const good = k.frames("execute_request", { code: "sentinel = 1", silent: false, store_history: true, user_expressions: {}, allow_stdin: false });
    const forged = good.frames.slice();
    const sig = Buffer.from(forged[1]);
    sig[0] = sig[0] === 0x61 ? 0x62 : 0x61;
    forged[1] = sig;
    k.sendRaw("shell", forged);
    const r = await k.execute("sentinel");
    assert.strictEqual(r.result!["text/plain"], "41");
    const probe = k.frames("execute_request", { code: "sentinel + 100", silent: false, store_history: true, user_expressions: {}, allow_stdin: false });
    k.sendRaw("shell", probe.frames);
    await k.replyTo(probe.id);
    const countBefore = (await k.execute("0")).reply.content.execution_count as number;
    k.sendRaw("shell", probe.frames); // the same frames again: a replay
    const next = await k.execute("1");
    assert.strictEqual(next.reply.content.execution_count, countBefore + 1);
    assert.match(k.stderr, /duplicate signature/);
  });
});
