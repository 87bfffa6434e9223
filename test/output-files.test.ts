/**
 * Output files are written whole or not at all, and a path that cannot be written is an error
 * naming its option, before any long work: the helpers (kernel/files.ts), the CLI (`run --out`,
 * `eval --json`) and the magics (`%optimize --save`, `%run --save-results`, `%tune --save`,
 * `--export-plugin`, `%synth --cache`), where the session keeps what it had and no bar is shown.
 */
import * as assert from "assert";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

import { checkOutputPath, OutputPathError, writeFileWhole, writeWhole } from "../kernel/files";
import { PACKAGE_ROOT } from "../kernel/native";
import { goldenCases } from "./helpers";
import { TestKernel } from "./kernel-client";

const BIN = path.join(PACKAGE_ROOT, "bin", "retinanet-kernel");
type Msg = { msg_type: string; content: Record<string, unknown> };

describe("output files", function () {
  this.timeout(120000);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "rk-out-"));
  const missing = path.join(dir, "no-such-folder", "x.json");
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("writeFileWhole writes the file and leaves no temporary file beside it", function () {
    const f = path.join(dir, "a.json");
    writeFileWhole(f, "--save", "[1, 2]\n");
    assert.strictEqual(fs.readFileSync(f, "utf8"), "[1, 2]\n");
    assert.deepStrictEqual(fs.readdirSync(dir), ["a.json"]);
  });

  it("a write that fails part way leaves the previous file as it was, and no temporary file", function () {
    const f = path.join(dir, "keep.json");
    fs.writeFileSync(f, "old\n");
    assert.throws(
      () =>
        writeWhole(f, "--save-results", (fd) => {
          fs.writeSync(fd, "half of the new");
          throw Object.assign(new Error("no space left on device"), { code: "ENOSPC" });
        }),
      (e: Error) => e instanceof OutputPathError && /^Expected a writable file path for --save-results but received ".*keep\.json": the disk is full \(ENOSPC\)/.test(e.message),
    );
    assert.strictEqual(fs.readFileSync(f, "utf8"), "old\n");
    assert.deepStrictEqual(fs.readdirSync(dir).filter((n) => n.endsWith(".tmp")), []);
    // An error of the writer's own (not of the file system) passes through unchanged.
    assert.throws(() => writeWhole(f, "--save", () => { throw new RangeError("Expected a number in [0, 1] for x but received 2"); }), RangeError);
    assert.strictEqual(fs.readFileSync(f, "utf8"), "old\n");
  });

  it("checkOutputPath names the option, the path and why it cannot be written", function () {
    const cases: [unknown, RegExp][] = [
      [missing, /^Expected a writable file path for --save but received ".*no-such-folder\/x\.json": its folder ".*no-such-folder" does not exist$/],
      [dir, /^Expected a writable file path for --save but received ".*": it is a folder$/],
      [path.join(dir, "a.json", "x.json"), /: ".*a\.json" is not a folder$/],
      ["", /^Expected a file path for --save but received ""$/],
      [undefined, /^Expected a file path for --save but received nothing$/],
      [3, /^Expected a file path for --save but received a number$/],
    ];
    for (const [file, re] of cases) assert.throws(() => checkOutputPath(file, "--save"), (e: Error) => e instanceof OutputPathError && re.test(e.message), String(file));
    assert.strictEqual(checkOutputPath(path.join(dir, "new.json"), "--save"), path.join(dir, "new.json"));
    // A folder that exists but holds no files of ours (procfs answers ENOENT): said as such, at write time.
    if (fs.existsSync("/proc/self")) {
      assert.throws(() => writeFileWhole("/proc/rk-x.json", "--save", "{}"), /^OutputPathError: Expected a writable file path for --save but received "\/proc\/rk-x\.json": (files cannot be made in "\/proc" \(ENOENT\)|"\/proc" cannot be written \(EACCES\))$/);
    }
    // A folder output (a candidate cache) may replace a folder, not a file.
    assert.strictEqual(checkOutputPath(dir, "--cache", { folder: true }), dir);
    assert.throws(() => checkOutputPath(path.join(dir, "a.json"), "--cache", { folder: true }), /^OutputPathError: Expected a writable folder path for --cache but received ".*a\.json": it is a file$/);
  });

  it("retinanet-kernel run --out and eval --json: an unwritable path is an error naming the flag, before the work", function () {
    const c = goldenCases().find((x) => x.name === "tv_k80_b2_mixed")!;
    const run = spawnSync(process.execPath, [BIN, "run", "--data", c.npz, "--backend", "js", "--out", missing], { encoding: "utf8", timeout: 60000 });
    assert.strictEqual(run.status, 1, run.stderr);
    assert.match(run.stderr, /^retinanet-kernel run: Expected a writable file path for --out but received ".*x\.json": its folder ".*no-such-folder" does not exist \[ERR_RK_OUTPUT\]/);
    assert.strictEqual(run.stdout, "", "nothing ran");
    const fixture = path.join(PACKAGE_ROOT, "test", "fixtures", "coco", "basic.json");
    const gt = JSON.parse(fs.readFileSync(fixture, "utf8")) as { gt: unknown; results: unknown };
    const gtFile = path.join(dir, "gt.json");
    const dtFile = path.join(dir, "dt.json");
    fs.writeFileSync(gtFile, JSON.stringify(gt.gt));
    fs.writeFileSync(dtFile, JSON.stringify(gt.results));
    const ev = spawnSync(process.execPath, [BIN, "eval", "--annotations", gtFile, "--results", dtFile, "--json", missing], { encoding: "utf8", timeout: 60000 });
    assert.strictEqual(ev.status, 1, ev.stderr);
    assert.match(ev.stderr, /^retinanet-kernel eval: Expected a writable file path for --json but received ".*x\.json": its folder ".*" does not exist/);
    const ok = spawnSync(process.execPath, [BIN, "eval", "--annotations", gtFile, "--results", dtFile, "--json", path.join(dir, "stats.json")], { encoding: "utf8", timeout: 60000 });
    assert.strictEqual(ok.status, 0, ok.stderr);
    assert.strictEqual((JSON.parse(fs.readFileSync(path.join(dir, "stats.json"), "utf8")) as { stats: number[] }).stats.length, 12);
  });

  describe("in the kernel", function () {
    let k: TestKernel;
    before(async function () {
      k = await TestKernel.start();
      const r = await k.execute("%synth small --images 2 --size 96x128 --classes 3 --seed 2");
      assert.strictEqual(r.status, "ok", r.error?.evalue);
    });
    after(() => k?.stop());

    it("--save, --save-results, --export-plugin and --cache to an unwritable path: an error naming the option, no work started, the session kept", async function () {
      const opt = await k.execute("%optimize --data small --iterations 2 --as first");
      assert.strictEqual(opt.status, "ok", opt.error?.evalue);
      const cases: [string, string][] = [
        [`%optimize --data small --iterations 2 --as second --save ${missing}`, "--save"],
        [`%run first --data small --iterations 2 --save-results ${missing}`, "--save-results"],
        [`%tune thresholds --data small --as third --save ${missing}`, "--save"],
        [`%tune thresholds --data small --as third --export-plugin ${missing.replace(/\.json$/, "")}`, "--export-plugin"],
        [`%optimize --data small --iterations 2 --as second --export-plugin ${missing}`, "--export-plugin"],
        [`%synth second --images 3 --size 96x128 --classes 3 --cache ${path.dirname(missing)}/val.cache`, "--cache"],
      ];
      for (const [code, flag] of cases) {
        const r = await k.execute(code);
        assert.strictEqual(r.status, "error", code);
        assert.match(r.error!.evalue, new RegExp(`^Expected a writable (file|folder) path for ${flag} but received ".*(x\\.json|val\\.cache)": its folder ".*no-such-folder" does not exist$`), code);
        assert.deepStrictEqual((r.iopub as Msg[]).filter((m) => m.msg_type === "display_data"), [], `${code}: nothing shown, nothing started`);
      }
      const kept = await k.execute("typeof first");
      assert.strictEqual(kept.result?.["text/plain"], "'object'", "the earlier winner is still bound");
      for (const name of ["second", "third"]) assert.match((await k.execute(name)).error?.evalue ?? "", new RegExp(`Cannot find name '${name}'`), `${name} was not bound`);
      const saved = path.join(dir, "results.json");
      const ok = await k.execute(`%run first --data small --iterations 2 --save-results ${saved}`);
      assert.strictEqual(ok.status, "ok", ok.error?.evalue);
      assert.ok(Array.isArray(JSON.parse(fs.readFileSync(saved, "utf8"))));
      assert.deepStrictEqual(fs.readdirSync(dir).filter((n) => n.endsWith(".tmp")), []);
    });
  });
});
