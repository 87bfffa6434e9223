/**
 * Which room may lean on which (DESIGN.md's layout): the wire knows nothing of sessions, cells or
 * post-processing; data and evaluation know nothing of the workflow, the magics or the kernel;
 * the post-processing API does not reach up into magics or the session; log, args, collect and
 * files stand below everything; the TensorRT plugins reach the CUDA launchers through native/include/rk.
 */
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";

import { PACKAGE_ROOT } from "../kernel/native";

function files(dir: string, ext: RegExp): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? files(path.join(dir, e.name), ext) : ext.test(e.name) ? [path.join(dir, e.name)] : []));
}

/** The kernel-relative folder of every module a file imports or requires ("protocol", "log.ts", ...). */
function importsOf(file: string): string[] {
  const text = fs.readFileSync(file, "utf8");
  const specs = [...text.matchAll(/(?:from\s+|require\(|import\()\s*["'](\.[^"']+)["']/g)].map((m) => m[1]);
  const kernel = path.join(PACKAGE_ROOT, "kernel");
  return specs.map((s) => path.relative(kernel, path.resolve(path.dirname(file), s)).split(path.sep)[0]);
}

const KERNEL = path.join(PACKAGE_ROOT, "kernel");
const rules: [string, string[]][] = [
  ["protocol", ["session", "runtime", "magics", "postprocess", "display", "data", "eval", "quickstart", "main"]],
  ["data", ["magics", "session", "protocol", "runtime", "display", "postprocess"]],
  ["eval", ["magics", "session", "protocol", "runtime", "display"]],
  ["postprocess", ["magics", "session", "protocol"]],
];

describe("layering", function () {
  for (const [room, forbidden] of rules) {
    it(`kernel/${room} does not import ${forbidden.join(", ")}`, function () {
      const bad: string[] = [];
      for (const f of files(path.join(KERNEL, room), /\.ts$/)) {
        for (const target of importsOf(f)) if (forbidden.includes(target) || forbidden.includes(target.replace(/\.ts$/, ""))) bad.push(`${path.relative(PACKAGE_ROOT, f)} -> ${target}`);
      }
      assert.deepStrictEqual(bad, []);
    });
  }

  it("evaluation reaches the post-processing API for types only (the preset names)", function () {
    for (const f of files(path.join(KERNEL, "eval"), /\.ts$/)) {
      const text = fs.readFileSync(f, "utf8");
      for (const m of text.matchAll(/^import (type )?.*from "\.\.\/postprocess\/[^"]+";$/gm)) assert.ok(m[1], `${path.relative(PACKAGE_ROOT, f)}: ${m[0]}`);
    }
  });

  it("log.ts, args.ts, collect.ts and files.ts import nothing of the kernel", function () {
    for (const f of ["log.ts", "args.ts", "collect.ts", "files.ts"]) assert.deepStrictEqual(importsOf(path.join(KERNEL, f)), [], f);
  });

  it("one file per workflow magic", function () {
    for (const m of ["config", "load", "synth", "datasets", "optimize", "run", "sweep", "tune", "devices"]) {
      const f = path.join(KERNEL, "magics", "builtin", `${m}.ts`);
      assert.ok(fs.existsSync(f), f);
      assert.match(fs.readFileSync(f, "utf8"), new RegExp(`name: "${m}"`));
    }
  });

  it("the TensorRT plugins include the CUDA launchers from native/include/rk, not native/cuda", function () {
    for (const f of files(path.join(PACKAGE_ROOT, "native", "trt"), /\.(cpp|h)$/)) assert.doesNotMatch(fs.readFileSync(f, "utf8"), /#include\s+"\.\.\/cuda\//, f);
  });
});
