/** Signing and verification: HMAC with constant-time compare, tampered / missing / replayed messages, schemes, transports. */
import * as assert from "assert";
import * as crypto from "crypto";

import { Signer, parseMessage, serializeMessage, newHeader } from "../kernel/protocol/wire";
import { parseConnection, endpoint } from "../kernel/protocol/connection";
import { TestKernel } from "./kernel-client";

function message(signer: Signer, content: Record<string, unknown> = { code: "1" }) {
  return serializeMessage({ identities: [Buffer.from("id")], header: newHeader("execute_request", "s"), parent_header: {}, metadata: {}, content }, signer);
}

describe("protocol: signing", function () {
  it("signs as HMAC-SHA256 over header, parent, metadata, content (checked with an independent HMAC)", function () {
    const frames = message(new Signer("secret"));
    const d = frames.findIndex((f) => f.toString() === "<IDS|MSG>");
    const h = crypto.createHmac("sha256", "secret");
    for (const f of frames.slice(d + 2, d + 6)) h.update(f);
    assert.strictEqual(frames[d + 1].toString(), h.digest("hex"));
  });

  it("round-trips a message through serialise and parse", function () {
    const signer = new Signer("k");
    const frames = serializeMessage({ identities: [Buffer.from("a"), Buffer.from("b")], header: newHeader("comm_msg", "s"), parent_header: {}, metadata: { m: 1 }, content: { x: [1, "y"] }, buffers: [Buffer.from([1, 2])] }, signer);
    const m = parseMessage(frames, new Signer("k"));
    assert.deepStrictEqual(m.identities.map(String), ["a", "b"]);
    assert.deepStrictEqual(m.content, { x: [1, "y"] });
    assert.deepStrictEqual(m.metadata, { m: 1 });
    assert.deepStrictEqual([...m.buffers[0]], [1, 2]);
  });

  it("refuses a tampered message, a missing signature, a wrong key and a replay", function () {
    const frames = message(new Signer("k"));
    const d = frames.findIndex((f) => f.toString() === "<IDS|MSG>");
    const tampered = frames.map((f, i) => (i === d + 5 ? Buffer.from(JSON.stringify({ code: "2" })) : f));
    assert.throws(() => parseMessage(tampered, new Signer("k")), /invalid signature/);
    const unsigned = frames.map((f, i) => (i === d + 1 ? Buffer.alloc(0) : f));
    assert.throws(() => parseMessage(unsigned, new Signer("k")), /missing signature/);
    assert.throws(() => parseMessage(frames, new Signer("other")), /invalid signature/);
    const once = new Signer("k");
    parseMessage(frames, once);
    assert.throws(() => parseMessage(frames, once), /duplicate signature/);
  });

  it("an empty key turns signing off, as jupyter_client does", function () {
    const frames = message(new Signer(""));
    const d = frames.findIndex((f) => f.toString() === "<IDS|MSG>");
    assert.strictEqual(frames[d + 1].length, 0);
    assert.doesNotThrow(() => parseMessage(frames, new Signer("")));
  });

  it("other hmac-<digest> schemes work; a scheme without hmac- or an unknown digest is a clear error", function () {
    const s = new Signer("k", "hmac-sha512");
    assert.strictEqual(s.sign([Buffer.from("x")]).length, 128);
    assert.throws(() => new Signer("k", "sha256"), /of the form "hmac-<digest>" but received "sha256"/);
    assert.throws(() => new Signer("k", "hmac-nope"), /digest Node's crypto has .* but received "hmac-nope"/);
  });

  it("reads connection files for tcp and ipc and names their endpoints as jupyter_client does", function () {
    const base = { shell_port: 1, iopub_port: 2, stdin_port: 3, control_port: 4, hb_port: 5, key: "k", signature_scheme: "hmac-sha256" };
    assert.strictEqual(endpoint(parseConnection(JSON.stringify({ ...base, transport: "tcp", ip: "127.0.0.1" })), "shell"), "tcp://127.0.0.1:1");
    assert.strictEqual(endpoint(parseConnection(JSON.stringify({ ...base, transport: "ipc", ip: "/tmp/k" })), "hb"), "ipc:///tmp/k-5");
    assert.throws(() => parseConnection(JSON.stringify({ ...base, transport: "udp" })), /transport "tcp" or "ipc"/);
    assert.throws(() => parseConnection(JSON.stringify({ ...base, shell_port: "x" })), /integer port for shell_port/);
  });

  describe("a running kernel", function () {
    let k: TestKernel;
    before(async function () {
      k = await TestKernel.start();
    });
    after(() => k?.stop());

    it("drops a message with a bad signature, logs it on stderr and never executes it", async function () {
      const { frames } = k.frames("execute_request", { code: "globalThis.tamperedRan = 1", silent: false, store_history: true, user_expressions: {}, allow_stdin: false });
      const d = frames.findIndex((f) => f.toString() === "<IDS|MSG>");
      frames[d + 1] = Buffer.from("0".repeat(64));
      k.sendRaw("shell", frames);
      const missing = k.frames("execute_request", { code: "globalThis.tamperedRan = 2" });
      missing.frames[missing.frames.findIndex((f) => f.toString() === "<IDS|MSG>") + 1] = Buffer.alloc(0);
      k.sendRaw("shell", missing.frames);
      await k.waitFor(() => (k.stderr.match(/dropped a message on shell/g) ?? []).length >= 2);
      assert.match(k.stderr, /Refused a message with a invalid signature|Refused a message with a missing signature/);
      const r = await k.execute("typeof (globalThis as any).tamperedRan");
      assert.strictEqual(r.result!["text/plain"], "'undefined'");
    });
  });

  for (const variant of [{ key: "", name: "signing off (empty key)" }, { scheme: "hmac-sha512", name: "hmac-sha512" }, { transport: "ipc" as const, name: "the ipc transport" }]) {
    it(`works with ${variant.name}`, async function () {
      const k = await TestKernel.start(variant);
      try {
        const r = await k.execute("21 * 2");
        assert.strictEqual(r.result!["text/plain"], "42");
        assert.ok((await k.ping()) < 1000);
      } finally {
        await k.stop();
      }
    });
  }
});
