/** The magics system: in a running kernel %lsmagic, %time, %who, %name?, unknown magics, magics.run, mixed cells; the registry finishing the progress bars of a magic that fails. */
import * as assert from "assert";

import { MagicContext, MagicRegistry } from "../kernel/magics/registry";
import { TestKernel } from "./kernel-client";

describe("magics", function () {
  let k: TestKernel;
  before(async function () {
    k = await TestKernel.start();
  });
  after(() => k?.stop());

  it("%lsmagic lists line and cell magics as text and HTML", async function () {
    const r = await k.execute("%lsmagic");
    const d = r.iopub.find((m) => m.msg_type === "display_data")!.content.data as Record<string, string>;
    assert.match(d["text/plain"], /Available line magics:\n.*%lsmagic.*%time.*%who/);
    assert.match(d["text/plain"], /Available cell magics:\n%%time/);
    assert.match(d["text/html"], /<table>/);
  });

  it("%time runs the code once, reports CPU and wall time, and returns its value", async function () {
    const r = await k.execute("%time [1, 2, 3].reduce((a, b) => a + b)");
    assert.match(r.stdout, /^CPU times: user [\d.]+ m?s, sys: [\d.]+ m?s, total: [\d.]+ m?s\nWall time: [\d.]+ m?s\n/);
    assert.strictEqual(r.result!["text/plain"], "6");
  });

  it("%%time times a whole cell, TypeScript and magics, and keeps its declarations", async function () {
    const r = await k.execute("%%time\nconst timed = 5;\ntimed * 2");
    assert.match(r.stdout, /Wall time/);
    assert.strictEqual(r.result!["text/plain"], "10");
    assert.strictEqual((await k.execute("timed")).result!["text/plain"], "5");
  });

  it("%time of code with an error reports the time and the error", async function () {
    const r = await k.execute("%time throw new Error('inside')");
    assert.match(r.stdout, /Wall time/);
    assert.strictEqual(r.error!.evalue, "inside");
  });

  it("%who lists the session's own names (not the kernel's globals), optionally by type; --long as a table", async function () {
    await k.execute("const whoNum = 1; const whoStr = 'x'; function whoFn() {}");
    const all = await k.execute("%who");
    assert.match(all.stdout, /whoFn\twhoNum\twhoStr/);
    assert.doesNotMatch(all.stdout, /display|magics|rk\b/);
    const nums = await k.execute("%who number");
    assert.match(nums.stdout, /whoNum/);
    assert.doesNotMatch(nums.stdout, /whoStr/);
    const long = await k.execute("%who --long string");
    const d = long.iopub.find((m) => m.msg_type === "display_data")!.content.data as Record<string, string>;
    assert.match(d["text/plain"], /whoStr\s+string\s+'x'/);
  });

  it("%name? gives the help in the pager payload", async function () {
    const r = await k.execute("%who?");
    const payload = r.reply.content.payload as { source: string; data: Record<string, string> }[];
    assert.strictEqual(payload[0].source, "page");
    assert.match(payload[0].data["text/plain"], /^%who \[--long\]/);
  });

  it("an unknown magic is an error suggesting the closest names", async function () {
    const r = await k.execute("%wh");
    assert.strictEqual(r.error!.ename, "UnknownMagicError");
    assert.strictEqual(r.error!.evalue, "Expected a magic (see %lsmagic) but received %wh; did you mean %who?");
    const r2 = await k.execute("%%who");
    assert.match(r2.error!.evalue, /Expected a cell magic but %%who is a line magic: use %who/);
  });

  it("a bad magic argument names it", async function () {
    const r = await k.execute("%who --lng");
    assert.strictEqual(r.error!.ename, "MagicArgError");
    assert.match(r.error!.evalue, /^%who: Expected an option \(--long\) but received "--lng" \(did you mean --long\?\)$/);
  });

  it("magic lines and TypeScript mix in one cell and run in order", async function () {
    const r = await k.execute('console.log("one");\n%time console.log("two")\nconsole.log("three");\n"four"');
    assert.match(r.stdout, /^one\ntwo\nCPU times.*\nWall time.*\n(Compiler time.*\n)?three\n$/);
    assert.strictEqual(r.result!["text/plain"], "'four'");
  });

  it("every magic is callable from TypeScript: magics.run, magics.list, magics.help", async function () {
    const r = await k.execute('const tv = await magics.run("%time 20 + 22"); [tv, magics.list().includes("who"), magics.help("time").startsWith("%time")]');
    assert.strictEqual(r.result!["text/plain"], "[ 42, true, true ]");
    const bad = await k.execute('await magics.run("%nope")');
    assert.strictEqual(bad.error!.ename, "UnknownMagicError");
  });

  it("a type error in a later TypeScript chunk reports its line in the cell", async function () {
    const r = await k.execute("const x1 = 1;\n%who\nconst y1: string = x1;");
    assert.match(r.error!.evalue, /^3:7 /);
  });
});

describe("magics registry: progress bars of a magic that fails", function () {
  function registryWith(fail: Error | undefined) {
    const notes: (string | undefined)[] = [];
    const registry = new MagicRegistry();
    registry.register({
      name: "work",
      kind: "line",
      summary: "",
      help: "",
      args: { positionals: [] },
      async run(ctx) {
        const done = ctx.display.progress(2, { label: "first" });
        done.finish("2 done");
        const bar = ctx.display.progress(10, { label: "second" });
        bar.update(3);
        await new Promise((r) => setImmediate(r));
        if (fail) throw fail;
        bar.finish("all done");
      },
    });
    const display = Object.assign(() => ({}), {
      progress: () => {
        const i = notes.push(undefined) - 1;
        return { update() {}, finish: (note = "") => (notes[i] ??= note) };
      },
    }) as unknown as MagicContext["display"];
    const ctx = { display } as unknown as MagicContext;
    return { run: () => registry.run(ctx, "work", { args: "", cell: false }), notes };
  }

  it("an error after the work started finishes its unfinished bars, saying so; finished bars keep their note", async function () {
    const { run, notes } = registryWith(new Error("boom"));
    await assert.rejects(run(), /boom/);
    assert.deepStrictEqual(notes, ["2 done", "stopped by the error below"]);
  });

  it("an interrupt says interrupted; a magic that succeeds is left as it finished", async function () {
    const stopped = registryWith(Object.assign(new Error("Interrupted by the user"), { name: "KeyboardInterrupt" }));
    await assert.rejects(stopped.run(), /Interrupted/);
    assert.deepStrictEqual(stopped.notes, ["2 done", "interrupted"]);
    const ok = registryWith(undefined);
    await ok.run();
    assert.deepStrictEqual(ok.notes, ["2 done", "all done"]);
  });
});
