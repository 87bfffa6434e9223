/**
 * The candidate cache on disk: the CLI round trip (`cache`, then `run` on the cache with the same
 * det{i}_* output and parity report), folders of shards read one at a time (memory bounded by a
 * shard, measured), the workbench's %load of shards and caches, and bad input: shards that
 * disagree, a truncated shard, a cache of another version, preset or with a truncated column; an
 * interrupted build. Nothing half-written is ever left.
 */
import * as assert from "assert";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

import { PACKAGE_ROOT } from "../kernel/native";
import { buildCache, CacheError, cacheBatches, isCacheDir, openCache } from "../kernel/postprocess/cache";
import { resolveConfig } from "../kernel/postprocess/config";
import { ndarray, NdArray } from "../kernel/postprocess/ndarray";
import { readNpz, writeNpz } from "../kernel/postprocess/npz";
import { createPostprocessor } from "../kernel/postprocess/postprocessor";
import { synthesize } from "../kernel/postprocess/synth";
import { Workbench } from "../kernel/postprocess/workbench";
import { goldenCases, nativeAvailable } from "./helpers";

const CLI = path.join(PACKAGE_ROOT, "dist", "kernel", "main.js");

function cli(args: string[]): { code: number; out: string; err: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8" });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}

/** Writes `count` shards of `images` synthetic images each (image ids 1..), returns their total bytes. */
function writeShards(dir: string, count: number, images: number, size: [number, number], classes: number, seed = 1): number {
  fs.mkdirSync(dir, { recursive: true });
  let bytes = 0;
  for (let s = 0; s < count; s++) {
    const ds = synthesize({ images, size, classes, density: 0.01, seed: seed + s });
    const arrays = new Map<string, NdArray>(ds.arrays);
    arrays.set("image_ids", ndarray("int64", [images], BigInt64Array.from({ length: images }, (_, i) => BigInt(s * images + i + 1))));
    const file = path.join(dir, `shard-${String(s).padStart(3, "0")}.npz`);
    writeNpz(file, arrays);
    bytes += fs.statSync(file).size;
  }
  return bytes;
}

/** Files left in a folder whose names look like a partial write. */
function leftovers(dir: string): string[] {
  return fs.readdirSync(dir).filter((f) => f.includes(".partial"));
}

describe("candidate cache files: CLI, shards, memory, bad input", function () {
  this.timeout(600000);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "rk-cache-io-"));
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it("retinanet-kernel cache, then run --data CACHE: the same det{i}_* file as run on the heads, and the parity report", function () {
    for (const c of goldenCases().filter((g) => ["tv_k80_b2_mixed", "d2_k20_b2_mixed", "odtk_k20_b2_mixed"].includes(g.name))) {
      const dir = path.join(tmp, `cli-${c.name}`);
      const made = cli(["cache", "--data", c.npz, "--out", dir, "--min-score", "0.02", "--max-topk", "2000"]);
      assert.strictEqual(made.code, 0, made.err);
      assert.match(made.out, new RegExp(`2 images, \\d+ candidates .*preset ${c.preset}, min_score 0.02, max_topk 2000, from 1 shard`));
      const a = cli(["run", "--data", dir, "--out", path.join(tmp, "a.npz"), "--backend", nativeAvailable() ? "cpu" : "js"]);
      const b = cli(["run", "--data", c.npz, "--out", path.join(tmp, "b.npz"), "--backend", nativeAvailable() ? "cpu" : "js"]);
      assert.strictEqual(a.code, 0, a.err);
      assert.strictEqual(b.code, 0, b.err);
      assert.match(a.out, /parity with the file's expected detections: exact/);
      assert.ok(fs.readFileSync(path.join(tmp, "a.npz")).equals(fs.readFileSync(path.join(tmp, "b.npz"))), `${c.name}: the two det files differ`);
      const bad = cli(["run", "--data", dir, "--out", path.join(tmp, "c.npz"), "--score-thresh", "0.01"]);
      assert.strictEqual(bad.code, 1);
      assert.match(bad.err, /Expected score_thresh >= 0\.02 \(the min_score bound of the candidate cache .*\) but received 0\.01/);
      assert.ok(!fs.existsSync(path.join(tmp, "c.npz")), "no output file after an error");
    }
  });

  it("a folder of shards: read one at a time into one cache; ids, ground truth and detections as from each shard", async function () {
    const shards = path.join(tmp, "shards");
    writeShards(shards, 5, 2, [256, 320], 20);
    const out = path.join(tmp, "from-shards");
    const r = cli(["cache", "--data", shards, "--out", out, "--min-score", "0.05", "--max-topk", "300"]);
    assert.strictEqual(r.code, 0, r.err);
    assert.match(r.out, /10 images, \d+ candidates .* from 5 shard\(s\)/);
    const cache = openCache(out);
    assert.deepStrictEqual(Array.from(cache.imageIds!, Number), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    assert.strictEqual(cache.meta.gt, true);
    const config = resolveConfig({ score_thresh: 0.1, topk_candidates: 200, detections_per_img: 50 });
    const pp = createPostprocessor(config, { backend: nativeAvailable() ? "cpu" : "js" });
    const fromCache = await pp.run(cacheBatches(cache)[0]);
    const files = fs.readdirSync(shards).sort();
    for (let s = 0; s < files.length; s++) {
      const arrays = readNpz(path.join(shards, files[s]));
      const heads = { cls_logits: arrays.get("cls_logits")!, bbox_regression: arrays.get("bbox_regression")!, image_sizes: arrays.get("image_sizes")!, feature_sizes: arrays.get("feature_sizes")! };
      const direct = await pp.run(heads);
      for (let n = 0; n < 2; n++) {
        const a = direct.detections[n];
        const b = fromCache.detections[s * 2 + n];
        assert.strictEqual(b.count, a.count, `shard ${s} image ${n}`);
        assert.deepStrictEqual(Array.from(b.boxes), Array.from(a.boxes));
        assert.deepStrictEqual(Array.from(b.scores), Array.from(a.scores));
        assert.deepStrictEqual(Array.from(b.labels), Array.from(a.labels));
      }
      assert.deepStrictEqual(Array.from(cache.gt!.labels.subarray(Number(cache.gt!.offsets[s * 2]), Number(cache.gt!.offsets[s * 2 + 1]))), Array.from(arrays.get("gt0_labels")!.data as Int32Array));
    }
    await pp.dispose();
  });

  it("memory while caching shards is bounded by about a shard, not their sum: peak RSS measured in a child process over 12 shards", function () {
    const shards = path.join(tmp, "big-shards");
    const total = writeShards(shards, 12, 2, [512, 640], 80, 50);
    const perShard = total / 12;
    const script = `
      const { buildCache } = require(${JSON.stringify(path.join(PACKAGE_ROOT, "dist/kernel/postprocess/cache.js"))});
      const { resolveConfig } = require(${JSON.stringify(path.join(PACKAGE_ROOT, "dist/kernel/postprocess/config.js"))});
      global.gc();
      const base = process.memoryUsage().rss;
      let peak = base;
      const m = buildCache(${JSON.stringify(shards)}, ${JSON.stringify(path.join(tmp, "big-cache"))}, resolveConfig({}), { minScore: 0.05, maxTopk: 1000 },
        { update: () => { peak = Math.max(peak, process.memoryUsage().rss); } });
      peak = Math.max(peak, process.memoryUsage().rss);
      console.log(JSON.stringify({ base, peak, images: m.images }));`;
    const r = spawnSync(process.execPath, ["--expose-gc", "-e", script], { encoding: "utf8" });
    assert.strictEqual(r.status, 0, r.stderr);
    const { base, peak, images } = JSON.parse(r.stdout.trim().split("\n").pop()!);
    const growth = peak - base;
    console.log(`      12 shards, ${(total / 1e6).toFixed(0)} MB in all (${(perShard / 1e6).toFixed(0)} MB each): RSS grew ${(growth / 1e6).toFixed(0)} MB (base ${(base / 1e6).toFixed(0)} MB)`);
    assert.strictEqual(images, 24);
    // Held at once: one shard, its candidates, and what the collector has not yet freed; never all of them.
    assert.ok(growth < total / 2, `RSS grew ${(growth / 1e6).toFixed(0)} MB, half of all the shards (${(total / 1e6).toFixed(0)} MB)`);
  });

  it("%load of a shard folder builds FOLDER.cache once and reuses it; %load of a cache; %datasets rows", function () {
    const shards = path.join(tmp, "load-shards");
    writeShards(shards, 3, 2, [256, 320], 20, 7);
    const wb = new Workbench();
    const ds = wb.load("val", shards);
    assert.ok("kind" in ds && ds.kind === "cache");
    assert.ok(isCacheDir(`${shards}.cache`));
    const created = openCache(`${shards}.cache`).meta.created;
    wb.load("again", shards);
    assert.strictEqual(openCache(`${shards}.cache`).meta.created, created, "the cache was reused, not rebuilt");
    wb.load("direct", `${shards}.cache`);
    const rows = wb.datasetRows();
    assert.deepStrictEqual(rows.map((r) => [r.name, r.images, r.layout, r.bounds]), [
      ["val", 6, "cache (concatenated)", "score_thresh >= 0.05, topk_candidates <= 1000"],
      ["again", 6, "cache (concatenated)", "score_thresh >= 0.05, topk_candidates <= 1000"],
      ["direct", 6, "cache (concatenated)", "score_thresh >= 0.05, topk_candidates <= 1000"],
    ]);
    // Bounds belong to the shards' cache: on a cache they would be ignored, so they are an error.
    assert.throws(() => wb.load("bounded", `${shards}.cache`, { minScore: 0.5 }), /^WorkflowError: Expected a folder of shards for --min-score \/ --max-topk \(they set the bounds of the candidate cache built from it\) but .*load-shards\.cache is a candidate cache, whose bounds were set when it was built/);
    assert.strictEqual(wb.datasetRows().length, 3, "nothing was added");
    const other = new Workbench();
    other.setConfig({ preset: "detectron2" });
    assert.throws(() => other.load("x", `${shards}.cache`), /Expected a candidate cache built for the session preset detectron2 but .*load-shards\.cache was built for torchvision/);
  });

  it("bad input: shards of different K, a truncated shard, another version, a truncated column; nothing half-written", function () {
    const mixed = path.join(tmp, "mixed");
    writeShards(mixed, 1, 1, [256, 320], 20, 1);
    const other = synthesize({ images: 1, size: [256, 320], classes: 7, seed: 3 });
    writeNpz(path.join(mixed, "shard-001.npz"), other.arrays);
    const out = path.join(tmp, "mixed-cache");
    assert.throws(() => buildCache(mixed, out, resolveConfig({}), { minScore: 0.05, maxTopk: 100 }), (e: CacheError) => {
      assert.match(e.message, /Expected every shard of .*mixed to have K = 20, the concatenated layout and float32 \(as .*shard-000\.npz\) but .*shard-001\.npz has K = 7/);
      return true;
    });
    assert.ok(!fs.existsSync(out));
    assert.deepStrictEqual(leftovers(tmp), []);

    const cut = path.join(tmp, "cut");
    writeShards(cut, 2, 1, [256, 320], 20, 1);
    const f = path.join(cut, "shard-001.npz");
    fs.truncateSync(f, Math.floor(fs.statSync(f).size / 2));
    const r = cli(["cache", "--data", cut, "--out", path.join(tmp, "cut-cache")]);
    assert.strictEqual(r.code, 1);
    assert.match(r.err, /Expected a whole shard of head outputs at .*shard-001\.npz but reading it failed/);
    assert.ok(!fs.existsSync(path.join(tmp, "cut-cache")));
    assert.deepStrictEqual(leftovers(tmp), []);

    if (fs.existsSync("/proc/self")) {
      // A parent folder that exists but takes no folders of ours (procfs): an error naming the cache, nothing left.
      const r2 = cli(["cache", "--data", cut, "--out", "/proc/rk-cache"]);
      assert.strictEqual(r2.code, 1);
      // (as root procfs answers ENOENT when the folder is made; as another user, access() refuses it first)
      assert.match(r2.err, /(Expected a folder where the cache \/proc\/rk-cache can be written but files cannot be made in "\/proc" \(ENOENT\)|Expected a writable folder path for --out but received "\/proc\/rk-cache": "\/proc" cannot be written \(EACCES\))/);
    }

    const good = path.join(tmp, "good-cache");
    buildCache(goldenCases().find((c) => c.name === "tv_k80_b2_mixed")!.npz, good, resolveConfig({}), { minScore: 0.05, maxTopk: 1000 });
    const metaFile = path.join(good, "cache.json");
    const meta = JSON.parse(fs.readFileSync(metaFile, "utf8"));
    fs.writeFileSync(metaFile, JSON.stringify({ ...meta, version: 99 }));
    assert.throws(() => openCache(good), /Expected version 1 of the candidate cache format in .*good-cache\/cache\.json but received 99/);
    fs.writeFileSync(metaFile, JSON.stringify(meta));
    const values = path.join(good, "values.npy");
    fs.truncateSync(values, fs.statSync(values).size - 8);
    assert.throws(() => openCache(good), /Expected a whole \.npy file at .*good-cache\/values\.npy but reading it failed: .*truncated/);
  });

  it("an interrupted build leaves nothing; an existing cache is replaced only when the new one is whole", function () {
    const shards = path.join(tmp, "stop-shards");
    writeShards(shards, 3, 1, [256, 320], 20, 11);
    const out = path.join(tmp, "stop-cache");
    buildCache(shards, out, resolveConfig({}), { minScore: 0.05, maxTopk: 100 });
    const before = openCache(out).meta.created;
    const stop = { stopped: false };
    assert.throws(
      () => buildCache(shards, out, resolveConfig({}), { minScore: 0.1, maxTopk: 100 }, { update: () => (stop.stopped = true) }, stop),
      /Interrupted: the cache .*stop-cache was not written \(1 images had been read\)/,
    );
    assert.strictEqual(openCache(out).meta.created, before, "the old cache is untouched");
    assert.deepStrictEqual(leftovers(tmp), []);
    const notCache = path.join(tmp, "not-a-cache");
    fs.mkdirSync(notCache);
    fs.writeFileSync(path.join(notCache, "precious.txt"), "x");
    assert.throws(() => buildCache(shards, notCache, resolveConfig({}), { minScore: 0.05, maxTopk: 100 }), /Expected .*not-a-cache to be absent or a candidate cache \(it is replaced\) but it holds no cache\.json/);
    assert.ok(fs.existsSync(path.join(notCache, "precious.txt")));
    assert.deepStrictEqual(leftovers(tmp), []);
  });
  it("a cache opens by mapping its columns: views over whole files, writes stay in the process, a replaced cache leaves the open one intact", async function () {
    if (!nativeAvailable()) {
      console.log("      (skipped: mapping needs the native addon; without it the columns are read)");
      this.skip();
    }
    const dir = path.join(tmp, "mapped");
    const wb = new Workbench();
    wb.synthCache("m", dir, { images: 6, density: 0.02, seed: 4 });
    const before = fs.readFileSync(path.join(dir, "values.npy"));
    const cache = openCache(dir);
    // The view's buffer is the whole file (header included), not a copy of the data.
    assert.strictEqual(cache.values.buffer.byteLength, before.length);
    const pp = createPostprocessor(resolveConfig({}), { backend: "cpu" });
    const want = await pp.run(cacheBatches(cache)[0]);
    const first = cache.values[0];
    cache.values[0] = -1000;
    assert.ok(fs.readFileSync(path.join(dir, "values.npy")).equals(before), "the file is unchanged by a write to the view");
    cache.values[0] = first;
    // Replaced on disk (a new folder renamed over it): the open cache still reads its own data.
    wb.synthCache("m", dir, { images: 6, density: 0.02, seed: 5 });
    const again = await pp.run(cacheBatches(cache)[0]);
    assert.deepStrictEqual(again.padded, want.padded);
    assert.ok(!fs.readFileSync(path.join(dir, "values.npy")).equals(before), "the new cache differs");
  });
});
