/**
 * The cell converter: both of its paths (a checker prepared between cells, and a new program) give
 * the same JavaScript, declarations and diagnostics; names carry across cells, shadowing works,
 * earlier names are read through `exports`, and top-level await is detected.
 */
import * as assert from "assert";

import { CellConverter } from "../kernel/runtime/converter";
import { preludeDeclarations } from "../kernel/runtime/prelude";

const SESSION = [
  "let a: number = 5; const b = { a }; function f(x: number) { return x + a; } interface P { q: number }",
  "a + f(2)",
  "const a = 'shadow'; a.length",
  "const p: P = { q: a.length }; p",
  "let { q: qq, ...rest } = p; qq",
  "class K { constructor(public v = qq) {} }; new K().v",
  "enum Color { Red, Green }; Color.Green",
  "type Pair = [number, string]; const pair: Pair = [1, 'x']; pair",
  "const s: string = 1",
  "b.a.toFixed(2",
  "await new Promise((r) => setTimeout(r, 1)); qq",
  "for (const x of [1, 2]) { f(x) }",
  "const o = { a, qq }; o",
  "namespace NS { export const z = 1 }; NS.z",
  "display.html('x'); rk.presets.torchvision.nms_thresh",
  "label: for (;;) { break label; }",
  "(() => { const a = 1; return a })()",
  // a name whose type comes from a module (declaration emit needs a module specifier)
  'const handle = display.html("<i>x</i>"); handle.id',
  "const api = rk; api.presets.odtk.pixel_offset",
];

describe("cell converter", function () {
  this.timeout(120000);
  const prelude = preludeDeclarations();

  it("the warm path and the full path give the same code, declarations and diagnostics, cell by cell", function () {
    const warm = new CellConverter(prelude);
    const full = new CellConverter(prelude);
    let decl = "";
    for (const cell of SESSION) {
      warm.prepare(decl);
      const w = warm.convert(decl, cell);
      assert.strictEqual(warm.lastPath, "warm", cell);
      const f = full.convert(decl, cell, { path: "full" });
      assert.strictEqual(full.lastPath, "full");
      assert.deepStrictEqual(w.diagnostics.map((d) => [d.line, d.character, d.code]), f.diagnostics.map((d) => [d.line, d.character, d.code]), cell);
      assert.strictEqual(w.output, f.output, cell);
      assert.strictEqual(w.declOutput, f.declOutput, cell);
      assert.strictEqual(w.hasLastValue, f.hasLastValue, cell);
      assert.strictEqual(w.hasToplevelAwait, f.hasToplevelAwait, cell);
      if (w.diagnostics.every((d) => d.category !== 1)) decl = w.declOutput ?? decl;
    }
  });

  it("carries names, rewrites earlier names to exports, allows shadowing, reports cell-relative positions", function () {
    const c = new CellConverter(prelude);
    const r1 = c.convert("", "const x = 2;\nfunction sq(v: number) { return v * v }");
    assert.match(r1.declOutput!, /declare const x = 2;/);
    const r2 = c.convert(r1.declOutput!, "sq(x) + 1");
    assert.match(r2.output!, /exports\.__rk_last__ = exports\.sq\(exports\.x\) \+ 1;/);
    const r3 = c.convert(r2.declOutput!, "const x = 'now a string';\nx.toUpperCase()");
    assert.deepStrictEqual(r3.diagnostics, []);
    assert.match(r3.declOutput!, /declare const x = "now a string";/);
    assert.doesNotMatch(r3.declOutput!, /declare const x = 2/);
    const r4 = c.convert(r3.declOutput!, "\n\nconst n: number = x;");
    assert.deepStrictEqual(r4.diagnostics.map((d) => [d.line, d.character, d.code]), [[2, 6, 2322]]);
  });

  it("cells that import take the full path, and their imports carry", function () {
    const c = new CellConverter(prelude);
    c.prepare("");
    const r = c.convert("", 'import * as os from "os"; os.platform()');
    assert.strictEqual(c.lastPath, "full");
    assert.match(r.declOutput!, /import \* as os from "os";/);
    c.prepare(r.declOutput!);
    const r2 = c.convert(r.declOutput!, "os.arch()");
    assert.strictEqual(c.lastPath, "warm");
    assert.match(r2.output!, /exports\.os\.arch\(\)/);
  });

  it("detects top-level await, including for await", function () {
    const c = new CellConverter(prelude);
    assert.strictEqual(c.convert("", "await 1").hasToplevelAwait, true);
    assert.strictEqual(c.convert("", "for await (const x of [Promise.resolve(1)]) { x }").hasToplevelAwait, true);
    assert.strictEqual(c.convert("", "async function g() { await 1 }").hasToplevelAwait, false);
  });
});
