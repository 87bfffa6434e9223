/** `retinanet-kernel run`: a real process on golden files, its npz output read back and checked. */
import * as assert from "assert";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

import { PACKAGE_ROOT } from "../kernel/native";
import { compareDetections } from "../kernel/postprocess/compare";
import { loadDataset } from "../kernel/postprocess/dataset";
import { readNpz } from "../kernel/postprocess/npz";
import { goldenCases } from "./helpers";

const BIN = path.join(PACKAGE_ROOT, "bin", "retinanet-kernel");
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "rk-cli-"));

function cli(args: string[]) {
  return spawnSync(process.execPath, [BIN, ...args], { encoding: "utf8", timeout: 120000 });
}

describe("CLI: retinanet-kernel run", function () {
  for (const c of goldenCases().filter((x) => ["tv_k80_b2_mixed", "odtk_k20_b2_mixed", "d2_k4_b1_edges"].includes(x.name))) {
    for (const backend of ["cpu", "js"]) {
      it(`${c.name} --backend ${backend}: writes det{i}_* in the golden naming and dtypes`, function () {
        const out = path.join(tmp, `${c.name}-${backend}.npz`);
        const r = cli(["run", "--data", c.npz, "--backend", backend, "--out", out]);
        if (backend === "cpu" && /Expected an available backend/.test(r.stderr)) this.skip();
        assert.strictEqual(r.status, 0, r.stderr + r.stdout);
        assert.match(r.stdout, new RegExp(`preset ${c.preset}, backend ${backend}`));
        assert.match(r.stdout, /parity with the file's expected detections: exact/);
        const z = readNpz(out);
        const ds = loadDataset(c.npz);
        const n = ds.expected!.length;
        for (let i = 0; i < n; i++) {
          assert.strictEqual(z.get(`det${i}_boxes`)!.dtype, "float32");
          assert.strictEqual(z.get(`det${i}_scores`)!.dtype, "float32");
          assert.strictEqual(z.get(`det${i}_labels`)!.dtype, "int64");
        }
        const got = Array.from({ length: n }, (_, i) => ({
          boxes: z.get(`det${i}_boxes`)!.data as Float32Array,
          scores: z.get(`det${i}_scores`)!.data as Float32Array,
          labels: Int32Array.from(z.get(`det${i}_labels`)!.data as BigInt64Array, Number),
          count: z.get(`det${i}_scores`)!.shape[0],
        }));
        assert.ok(compareDetections(got, ds.expected!).ok);
      });
    }
  }

  it("flags override the case's parameters", function () {
    const c = goldenCases().find((x) => x.name === "tv_k80_b2_mixed")!;
    const out = path.join(tmp, "override.npz");
    const r = cli(["run", "--data", c.npz, "--backend", "js", "--detections-per-img", "7", "--score-thresh", "0.5", "--out", out]);
    assert.strictEqual(r.status, 3, "parity fails on purpose: different parameters");
    assert.match(r.stdout, /detections \[7, 7\]/);
  });

  it("bad arguments are errors that name them; exit code 1", function () {
    const c = goldenCases()[0];
    const cases: [string[], RegExp][] = [
      [["run", "--out", "x.npz"], /Expected a value for --data \(input \.npz/],
      [["run", "--data", c.npz, "--out", "x.npz", "--score-thresh", "abc"], /Expected a number for --score-thresh but received "abc"/],
      [["run", "--data", c.npz, "--out", "x.npz", "--score-thresh", "2"], /Expected a number in \[0, 1\] for --score-thresh but received 2/],
      [["run", "--data", c.npz, "--out", "x.npz", "--topk-candidates", "1.5"], /Expected an integer for --topk-candidates but received "1\.5"/],
      [["run", "--data", c.npz, "--out", "x.npz", "--preset", "yolo"], /Expected one of torchvision, detectron2, odtk for --preset but received "yolo"/],
      [["run", "--data", c.npz, "--out", "x.npz", "--bogus"], /Expected an option .* but received "--bogus"/],
      [["run", "--data", path.join(tmp, "missing.npz"), "--out", "x.npz"], /nothing is there/],
    ];
    for (const [args, re] of cases) {
      const r = cli(args);
      assert.strictEqual(r.status, 1, `${args.join(" ")}: ${r.stderr}`);
      assert.match(r.stderr, re);
    }
  });

  it("--help prints the options", function () {
    const r = cli(["run", "--help"]);
    assert.strictEqual(r.status, 0);
    assert.match(r.stdout, /--score-thresh/);
    assert.match(r.stdout, /int64/);
  });
});
