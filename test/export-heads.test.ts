/**
 * examples/export_heads.py with the torch and torchvision on this machine (Debian's python3-torch
 * and python3-torchvision in CI; the GPU machine's through scripts/gpu-check.sh export): a
 * torchvision RetinaNet with random weights on generated images, written as shards and as a
 * torch-selected cache. The kernel's detections from every shard, from the cache it builds from the
 * shards and from the torch-written cache are torchvision's own postprocess_detections of the same
 * head outputs: the same count, order (ties aside: torchvision sorts them unstably) and labels;
 * scores and boxes within 2 ulp: torch's vectorised CPU sigmoid and exp round differently from the
 * kernel's by up to 2 ulp on some values (a few percent of them, with Debian's torch 1.13 here and
 * with torch 2.11 on the GPU machine's CPU); the goldens, made on another CPU, match bit for bit.
 * Detectron2 and ODTK are not installed here: the script says what they need.
 */
import * as assert from "assert";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

import { PACKAGE_ROOT } from "../kernel/native";
import { readNpz } from "../kernel/postprocess/npz";

const PY = process.env.RK_PYTHON ?? "/usr/bin/python3";
const SCRIPT = path.join(PACKAGE_ROOT, "examples", "export_heads.py");
const CLI = path.join(PACKAGE_ROOT, "dist", "kernel", "main.js");

function py(args: string[]): { code: number; out: string; err: string } {
  const r = spawnSync(PY, [SCRIPT, ...args], { encoding: "utf8", env: { ...process.env, CUDA_VISIBLE_DEVICES: "" } });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}

function kernel(args: string[]): { code: number; out: string; err: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8" });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}

/** Units in the last place between two f32 values (0 when bit-identical). */
function ulps(a: number, b: number): number {
  const f = new Float32Array([a, b]);
  const i = new Int32Array(f.buffer);
  const key = (x: number) => (x < 0 ? -(x & 0x7fffffff) : x);
  return Math.abs(key(i[0]) - key(i[1]));
}

/**
 * An image's detections in a canonical order: torchvision orders equal scores by an unstable sort
 * (SPEC 1(5)), so detections of one score are ordered by label and box here, on both sides.
 */
function canonical(d: Map<string, unknown[]>, i: number): { scores: number[]; labels: number[]; boxes: number[] } {
  const scores = d.get(`det${i}_scores`) as number[];
  const labels = (d.get(`det${i}_labels`) as bigint[]).map(Number);
  const boxes = d.get(`det${i}_boxes`) as number[];
  const order = scores.map((_, j) => j).sort((a, b) => scores[b] - scores[a] || labels[a] - labels[b] || boxes[4 * a] - boxes[4 * b] || boxes[4 * a + 1] - boxes[4 * b + 1] || a - b);
  return { scores: order.map((j) => scores[j]), labels: order.map((j) => labels[j]), boxes: order.flatMap((j) => boxes.slice(4 * j, 4 * j + 4)) };
}

/** Whether two det{i}_* sets are torchvision's within `maxUlp` (0: bit for bit), ties in either order. */
function sameDetections(got: Map<string, unknown[]>, want: Map<string, unknown[]>, maxUlp: number, what: string): number {
  assert.deepStrictEqual([...got.keys()].sort(), [...want.keys()].sort(), what);
  let worst = 0;
  for (let i = 0; want.has(`det${i}_scores`); i++) {
    const g = canonical(got, i);
    const w = canonical(want, i);
    assert.deepStrictEqual(g.labels, w.labels, `${what} image ${i}: labels`);
    for (const k of ["scores", "boxes"] as const) for (let j = 0; j < w[k].length; j++) worst = Math.max(worst, ulps(g[k][j], w[k][j]));
  }
  assert.ok(worst <= maxUlp, `${what}: ${worst} ulp from torchvision's (allowed ${maxUlp})`);
  return worst;
}

/** The det{i}_* arrays of an .npz, by name. */
function dets(file: string): Map<string, unknown[]> {
  const out = new Map<string, unknown[]>();
  for (const [k, a] of readNpz(file)) if (/^det\d+_/.test(k)) out.set(k, Array.from(a.data as ArrayLike<unknown>));
  return out;
}

describe("examples/export_heads.py (torchvision RetinaNet, random weights, generated images)", function () {
  const torchCheck = spawnSync(PY, ["-c", "import torch, torchvision; print(torch.__version__, torchvision.__version__)"], { encoding: "utf8" });
  // torch's vectorised CPU sigmoid and exp may round differently from the kernel's IEEE ones.
  const allowed = 2;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "rk-export-"));
  const common = ["--synthetic", "6", "--batch", "3", "--device", "cpu", "--min-size", "320", "--max-size", "480", "--num-classes", "12"];
  before(function () {
    if (torchCheck.status !== 0) {
      console.log(`      (skipped: ${PY} cannot import torch and torchvision; install python3-torch python3-torchvision (Debian) to run the exporter here)`);
      this.skip();
    }
    const shards = py([...common, "--out", path.join(dir, "shards")]);
    assert.strictEqual(shards.code, 0, shards.err);
    const cache = py([...common, "--cache", "0.05", "--out", path.join(dir, "torch.cache")]);
    assert.strictEqual(cache.code, 0, cache.err);
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it(`every shard: the kernel's detections on cpu and js are torchvision's within 2 ulp (torch, torchvision ${torchCheck.stdout.trim()})`, function () {
    const files = fs.readdirSync(path.join(dir, "shards")).filter((f) => f.endsWith(".npz")).sort();
    assert.deepStrictEqual(files, ["shard-00000.npz", "shard-00001.npz"]);
    let detections = 0;
    for (const f of files) {
      const want = dets(path.join(dir, "shards", f));
      for (const backend of ["cpu", "js"]) {
        const out = path.join(dir, `det-${f}-${backend}`);
        const r = kernel(["run", "--data", path.join(dir, "shards", f), "--out", out, "--backend", backend]);
        assert.strictEqual(r.code, 0, r.out + r.err);
        assert.match(r.out, /parity with the file's expected detections: exact/);
        sameDetections(dets(out), want, allowed, `${f} on ${backend}`);
      }
      for (const [k, v] of want) if (k.endsWith("_scores")) detections += v.length;
    }
    // Random weights calibrated to a trained head's score share: the check is not vacuous.
    assert.ok(detections >= 6 * 50, `${detections} detections`);
  });

  it("the cache the kernel builds from the shards, and the one torch wrote, give the shards' detections", function () {
    const built = kernel(["cache", "--data", path.join(dir, "shards"), "--out", path.join(dir, "kernel.cache")]);
    assert.strictEqual(built.code, 0, built.err);
    const want = new Map<string, unknown[]>();
    for (const [s, f] of ["shard-00000.npz", "shard-00001.npz"].entries()) {
      for (const [k, v] of dets(path.join(dir, "shards", f))) want.set(k.replace(/^det(\d+)/, (_, i) => `det${Number(i) + 3 * s}`), v);
    }
    for (const c of ["kernel.cache", "torch.cache"]) {
      const out = path.join(dir, `det-${c}.npz`);
      const r = kernel(["run", "--data", path.join(dir, c), "--out", out, "--backend", "cpu"]);
      assert.strictEqual(r.code, 0, r.out + r.err);
      assert.match(r.out, /parity with the file's expected detections: exact/);
      sameDetections(dets(out), want, allowed, c);
    }
  });

  it("bad arguments and missing frameworks: a message naming the parameter or the package, no output left", function () {
    const bad: [string[], RegExp][] = [
      [["--batch", "0"], /--batch >= 1 but received 0/],
      [["--cache", "2"], /--cache MIN_SCORE in \[0, 1\] but received 2/],
      [["--framework", "detectron2"], /--framework detectron2 needs the detectron2 package/],
      [["--framework", "odtk"], /--framework odtk needs NVIDIA retinanet-examples/],
      [["--framework", "mmdet"], /invalid choice: 'mmdet'/],
    ];
    for (const [args, message] of bad) {
      const out = path.join(dir, "bad");
      const r = py(["--synthetic", "2", "--device", "cpu", "--out", out, ...args]);
      assert.notStrictEqual(r.code, 0, args.join(" "));
      assert.match(r.err, message, args.join(" "));
      assert.ok(!fs.existsSync(out), `${args.join(" ")} left ${out}`);
    }
  });
});
