/** Magic argument parsing, table-driven: tokens, options, key=value, lists, ranges, and bad input with its message. */
import * as assert from "assert";

import { ArgSchema, parseArgs, parseNumberList, tokenize } from "../kernel/args";
import { splitCell } from "../kernel/runtime/cell";

const SCHEMA: ArgSchema = {
  positionals: [{ name: "NAME", type: "string", help: "a name" }],
  options: [
    { name: "images", type: "int", min: 1, max: 64, default: 1, help: "images" },
    { name: "size", type: "size", help: "HxW" },
    { name: "density", type: "number", min: 0, max: 1, help: "density" },
    { name: "backend", type: "choice", choices: ["auto", "cpu", "cuda"], default: "auto", help: "backend" },
    { name: "verbose", alias: "v", type: "bool", help: "more output" },
    { name: "thresholds", type: "numbers", help: "a list or range" },
  ],
  keyValues: true,
};

describe("magic argument parsing", function () {
  const tokens: [string, string[]][] = [
    ["a b  c", ["a", "b", "c"]],
    ["'a b' \"c d\"", ["a b", "c d"]],
    ["x='quoted value' y=2", ["x=quoted value", "y=2"]],
    ['"escaped \\" quote"', ['escaped " quote']],
    ["a\\ b", ["a b"]],
    ["  ", []],
    ["''", [""]],
  ];
  for (const [line, want] of tokens) {
    it(`tokenizes ${JSON.stringify(line)}`, function () {
      assert.deepStrictEqual(tokenize(line), want);
    });
  }
  it("rejects an unterminated quote", function () {
    assert.throws(() => tokenize("a 'b"), /Expected a closing ' but the line ended: a 'b/);
  });

  const ok: [string, Record<string, unknown>, [string, string][]][] = [
    ["cam1", { NAME: "cam1", images: 1, backend: "auto" }, []],
    ["cam1 --images 4 --size 800x1333 --density 0.1", { NAME: "cam1", images: 4, size: [800, 1333], density: 0.1, backend: "auto" }, []],
    ["--images=8 --backend cpu -v", { images: 8, backend: "cpu", verbose: true }, []],
    ["score_thresh=0.3 nms_thresh=0.4:0.7:0.1", { images: 1, backend: "auto" }, [["score_thresh", "0.3"], ["nms_thresh", "0.4:0.7:0.1"]]],
    ["--thresholds 0.05,0.1,0.3", { thresholds: [0.05, 0.1, 0.3] }, []],
    ["--thresholds 0.4:0.7:0.1", { thresholds: [0.4, 0.5, 0.6, 0.7] }, []],
    ["--thresholds 1:3,10", { thresholds: [1, 2, 3, 10] }, []],
    ["--verbose=false", { verbose: false }, []],
  ];
  for (const [line, values, pairs] of ok) {
    it(`parses ${JSON.stringify(line)}`, function () {
      const r = parseArgs(tokenize(line), SCHEMA);
      for (const [k, v] of Object.entries(values)) assert.deepStrictEqual(r.values[k], v, k);
      assert.deepStrictEqual(r.pairs, pairs);
    });
  }
  it("gives options in camelCase too", function () {
    const r = parseArgs(tokenize("--images 2"), { options: [{ name: "max-images", type: "int", help: "" }, { name: "images", type: "int", help: "" }] });
    assert.strictEqual(r.values.images, 2);
    const r2 = parseArgs(tokenize("--max-images 3"), { options: [{ name: "max-images", type: "int", help: "" }] });
    assert.strictEqual(r2.values.maxImages, 3);
  });

  const bad: [string, RegExp][] = [
    ["--images", /^Expected a value after --images but the line ended$/],
    ["--images two", /^Expected a number for --images but received "two"$/],
    ["--images 2.5", /^Expected an integer for --images but received "2\.5"$/],
    ["--images 0", /^Expected an integer in \[1, 64\] for --images but received 0$/],
    ["--size 800", /^Expected a size HxW \(e\.g\. 800x1333\) for --size but received "800"$/],
    ["--density 1.5", /^Expected a number in \[0, 1\] for --density but received 1\.5$/],
    ["--backend tpu", /^Expected one of auto, cpu, cuda for --backend but received "tpu"$/],
    ["--imagess 3", /^Expected an option \(.*\) but received "--imagess" \(did you mean --images\?\)$/],
    ["a b", /^Expected at most 1 argument\(s\) \(NAME\) and key=value pairs but received "b"$/],
    ["--thresholds 0.7:0.4:0.1", /^Expected start <= stop in the range for --thresholds but received "0\.7:0\.4:0\.1"$/],
    ["--thresholds 0:1:0", /^Expected a finite range with a step > 0 for --thresholds/],
    ["--thresholds 0:100000:1", /^Expected at most 10000 values in the range for --thresholds but received 100001$/],
    ["--verbose=maybe", /^Expected true or false for --verbose but received "maybe"$/],
  ];
  for (const [line, re] of bad) {
    it(`rejects ${JSON.stringify(line)} naming the argument`, function () {
      assert.throws(() => parseArgs(tokenize(line), SCHEMA), (e: Error & { code?: string }) => e.code === "ERR_RK_MAGIC_ARGS" && re.test(e.message));
    });
  }
  it("a required argument missing", function () {
    assert.throws(
      () => parseArgs([], { positionals: [{ name: "PATH", type: "string", required: true, help: "where" }] }),
      (e: Error) => e.message === "Expected a value for PATH (where) but received none",
    );
  });
  it("number lists: inclusive ranges without float drift", function () {
    assert.deepStrictEqual(parseNumberList("0.05:0.3:0.05", "x"), [0.05, 0.1, 0.15, 0.2, 0.25, 0.3]);
  });

  describe("cells of magics and TypeScript", function () {
    it("splits line magics and TypeScript in order, keeping line numbers", function () {
      const segs = splitCell("const a = 1;\n%time a\nconst b = 2;\nb\n%who");
      assert.deepStrictEqual(segs, [
        { kind: "ts", code: "const a = 1;", firstLine: 0 },
        { kind: "magic", name: "time", args: "a", line: 1, help: false },
        { kind: "ts", code: "const b = 2;\nb", firstLine: 2 },
        { kind: "magic", name: "who", args: "", line: 4, help: false },
      ]);
    });
    it("a %% first line makes a cell magic of the whole cell", function () {
      assert.deepStrictEqual(splitCell("\n%%time --x\nconst a = 1;\n%who"), [{ kind: "magic", name: "time", args: "--x", line: 1, help: false, body: "const a = 1;\n%who" }]);
    });
    it("%name? asks for help", function () {
      assert.deepStrictEqual(splitCell("%time?"), [{ kind: "magic", name: "time", args: "", line: 0, help: true }]);
    });
  });
});
