/**
 * The candidate cache's invariant (kernel/postprocess/cache.ts): for every config within its bounds,
 * the detections from the cache are identical (bit for bit) to those from the heads it was built
 * from, on every golden case, both layouts, fp32 and fp16, on each host backend; configs outside the
 * bounds are errors naming the bound.
 */
import * as assert from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

import { resolveConfig } from "../kernel/postprocess/config";
import { loadDataset } from "../kernel/postprocess/dataset";
import { normalizeHeads, toHalfHeads } from "../kernel/postprocess/heads";
import { availableBackends, createPostprocessor, PostprocessResult } from "../kernel/postprocess/postprocessor";
import { cacheBatches, checkConfigForCache } from "../kernel/postprocess/cache";
import { buildCacheFromHeads } from "./cache-helpers";
import { goldenCases, goldenConfig, hostBackends, isBuiltPreset, toPerLevel } from "./helpers";

function samePadded(a: PostprocessResult, b: PostprocessResult): string | undefined {
  const pa = a.padded;
  const pb = b.padded;
  for (let n = 0; n < pa.counts.length; n++) {
    if (pa.counts[n] !== pb.counts[n]) return `image ${n}: ${pa.counts[n]} detections from the heads, ${pb.counts[n]} from the cache`;
  }
  const bits = (x: Float32Array) => new Uint32Array(x.buffer, x.byteOffset, x.length);
  const eq = (x: ArrayLike<number>, y: ArrayLike<number>) => x.length === y.length && Array.prototype.every.call(x, (v: number, i: number) => v === y[i]);
  if (!eq(bits(pa.boxes), bits(pb.boxes))) return "boxes differ";
  if (!eq(bits(pa.scores), bits(pb.scores))) return "scores differ";
  if (!eq(pa.labels, pb.labels)) return "labels differ";
  return undefined;
}

describe("candidate cache: exact within its bounds", function () {
  this.timeout(600000);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "rk-cache-"));
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));
  const cases = goldenCases().filter((c) => isBuiltPreset(c.preset));
  it("finds the golden cases", () => assert.ok(cases.length >= 10, `found ${cases.length}`));

  for (const c of cases) {
    for (const layout of ["concatenated", "per_level"] as const) {
      for (const dtype of ["fp32", "fp16"] as const) {
        it(`${c.name}, ${layout}, ${dtype}: cache = heads on a grid of score_thresh x topk x nms x detections, ${hostBackends().join(" and ")}`, async function () {
          const gc = goldenConfig(c);
          const config = resolveConfig(gc);
          const ds = loadDataset(c.npz);
          let heads = normalizeHeads(ds, config);
          if (layout === "per_level" && heads.layout === "concatenated") {
            const cls = toPerLevel(ds.cls_logits as never, heads.featureSizes, heads.anchorsPerLocation);
            const box = toPerLevel(ds.bbox_regression as never, heads.featureSizes, heads.anchorsPerLocation);
            heads = normalizeHeads({ ...ds, cls_logits: cls, bbox_regression: box, feature_sizes: undefined, padded_size: heads.paddedSize }, config);
          } else if (layout === "concatenated" && heads.layout === "per_level") {
            this.skip();
          }
          assert.strictEqual(heads.layout, layout);
          if (dtype === "fp16") heads = toHalfHeads(heads);
          // Bounds that bind: half the golden threshold, and a max_topk below the golden top-k so
          // that ties and the cut at the k-th place are exercised.
          const bounds = { minScore: config.score_thresh / 2, maxTopk: 40 };
          const cache = buildCacheFromHeads(path.join(tmp, `${c.name}-${layout}-${dtype}`), heads, config, bounds);
          assert.ok(cache.meta.candidates > 0);
          const batches = cacheBatches(cache);
          assert.strictEqual(batches.length, 1);
          let points = 0;
          for (const backend of hostBackends()) {
            const thresholds = backend === "js" ? [bounds.minScore, config.score_thresh * 1.5] : [bounds.minScore, config.score_thresh, config.score_thresh * 1.5, 0.5];
            for (const score_thresh of thresholds) {
              for (const topk_candidates of backend === "js" ? [7, 40] : [1, 7, 40]) {
                for (const nms_thresh of backend === "js" ? [0.5] : [0.3, 0.5, 0.7]) {
                  for (const detections_per_img of [5, config.detections_per_img]) {
                    const point = resolveConfig({ ...gc, score_thresh, topk_candidates, nms_thresh, detections_per_img });
                    checkConfigForCache(point, cache);
                    const pp = createPostprocessor(point, { backend });
                    const fromHeads = pp.runSync(heads);
                    const fromCache = await pp.run(batches[0]);
                    await pp.dispose();
                    const diff = samePadded(fromHeads, fromCache);
                    assert.strictEqual(diff, undefined, `${backend} t=${score_thresh} k=${topk_candidates} nms=${nms_thresh} D=${detections_per_img}: ${diff}`);
                    points++;
                  }
                }
              }
            }
          }
          assert.ok(points >= 8);
        });
      }
    }
  }

  it("cuda: the cuda backend on the cache (its device path) = on the heads, every golden case, fp32 and fp16, per-class thresholds too", async function () {
    if (!availableBackends().available.includes("cuda")) {
      console.log(`      (skipped: ${availableBackends().unavailable.cuda}; scripts/gpu-check.sh runs it on the GPU machine)`);
      this.skip();
    }
    for (const c of cases) {
      const gc = goldenConfig(c);
      const config = resolveConfig(gc);
      for (const dtype of ["fp32", "fp16"] as const) {
        let heads = normalizeHeads(loadDataset(c.npz), config);
        if (dtype === "fp16") heads = toHalfHeads(heads);
        const cache = buildCacheFromHeads(path.join(tmp, `cuda-${c.name}-${dtype}`), heads, config, { minScore: config.score_thresh / 2, maxTopk: 40 });
        const K = heads.numClasses;
        const points = [];
        for (const score_thresh of [config.score_thresh / 2, config.score_thresh, config.score_thresh * 1.5]) {
          for (const topk_candidates of [1, 7, 40]) {
            for (const nms_thresh of [0.3, 0.5]) {
              for (const detections_per_img of [5, config.detections_per_img]) points.push({ score_thresh, topk_candidates, nms_thresh, detections_per_img });
            }
          }
        }
        points.push({ score_thresh: config.score_thresh / 2, topk_candidates: 7, score_thresh_per_class: Array.from({ length: K }, (_, k) => (k % 3 === 0 ? config.score_thresh * 2 : config.score_thresh / 2)) });
        for (const values of points) {
          const point = resolveConfig({ ...gc, ...values });
          checkConfigForCache(point, cache);
          const gpu = createPostprocessor(point, { backend: "cuda" });
          const fromHeads = await gpu.run(heads);
          const fromCache = await gpu.run(cacheBatches(cache)[0]);
          await gpu.dispose();
          assert.strictEqual(fromCache.backend, "cuda");
          const diff = samePadded(fromHeads, fromCache);
          assert.strictEqual(diff, undefined, `${c.name} ${dtype} ${JSON.stringify(values)}: ${diff}`);
        }
      }
    }
  });

  it("lists in any order, or holding a NaN value, give the reference's detections on the cpu core (and on cuda, which leaves them to it)", async function () {
    if (!hostBackends().includes("cpu")) this.skip();
    const c = cases.find((x) => x.name.startsWith("tv_k80_b2"))!;
    const config = resolveConfig(goldenConfig(c));
    const heads = normalizeHeads(loadDataset(c.npz), config);
    const cache = buildCacheFromHeads(path.join(tmp, "shuffled"), heads, config, { minScore: 0.05, maxTopk: 1000 });
    const b = cacheBatches(cache)[0];
    // Reverse each (image, level) list but the first (no longer in ranking order), and put a NaN
    // value in the middle of the first, still in ranking order (another tool's cache could hold one).
    const L = cache.meta.levels;
    const perm = new Int32Array(cache.meta.candidates);
    for (let s = 0; s < 2 * L; s++) {
      const a = Number(cache.offsets[s]), e = Number(cache.offsets[s + 1]);
      for (let i = a; i < e; i++) perm[i] = s === 0 ? i : e - 1 - (i - a);
    }
    const pick = <T extends Int32Array | Float32Array>(x: T, w: number): T => {
      const out = new (x.constructor as { new (n: number): T })(x.length);
      for (let i = 0; i < perm.length; i++) for (let j = 0; j < w; j++) out[i * w + j] = x[perm[i] * w + j];
      return out;
    };
    const values = pick(cache.values, 1);
    values[1] = NaN; // second in the first list: a wrong early stop would drop the rest of the level
    const lists = { ...b.lists, rows: pick(cache.rows, 1), labels: pick(cache.labels, 1), values, deltas: pick(cache.deltas, 4) };
    const batch = { ...b, lists };
    const cpu = await createPostprocessor(config, { backend: "cpu" }).run(batch);
    const js = await createPostprocessor(config, { backend: "js" }).run(batch);
    assert.strictEqual(samePadded(js, cpu), undefined);
    assert.ok(cpu.padded.counts[0] > 0);
    if (availableBackends().available.includes("cuda")) {
      const gpu = createPostprocessor(config, { backend: "cuda" });
      assert.strictEqual(samePadded(js, await gpu.run(batch)), undefined, "cuda, lists out of order");
      // And the same cache in order on the device path, after the host fallback.
      assert.strictEqual(samePadded(await createPostprocessor(config, { backend: "cpu" }).run(b), await gpu.run(b)), undefined, "cuda, lists in order");
      await gpu.dispose();
    }
  });

  it("per-class thresholds on lists the cache cut at max_topk: exact while top-k of a cut level pass, else an error naming both (js, cpu, cuda)", async function () {
    const c = cases.find((x) => x.name.startsWith("tv_k80_b2"))!;
    const gc = goldenConfig(c);
    const config = resolveConfig(gc);
    const heads = normalizeHeads(loadDataset(c.npz), config);
    const cache = buildCacheFromHeads(path.join(tmp, "cut"), heads, config, { minScore: config.score_thresh, maxTopk: 30 });
    const b = cacheBatches(cache)[0];
    const L = cache.meta.levels;
    const cut = Array.from({ length: 2 * L }, (_, s) => Number(cache.offsets[s + 1] - cache.offsets[s])).filter((n) => n >= 30).length;
    assert.ok(cut > 0, "some level is cut at max_topk");
    // Every class but 0 at the bound, class 0 high: a cut level keeps most of its 30.
    const K = heads.numClasses;
    const perClass = Array.from({ length: K }, (_, k) => (k === 0 ? 0.9 : config.score_thresh));
    for (const backend of [...hostBackends(), ...(availableBackends().available.includes("cuda") ? ["cuda" as const] : [])]) {
      const ok = resolveConfig({ ...gc, topk_candidates: 10, score_thresh_per_class: perClass });
      const pp = createPostprocessor(ok, { backend });
      assert.strictEqual(samePadded(pp.runSync(heads), await pp.run(b)), undefined, `${backend}: top-k 10 of 30`);
      await pp.dispose();
      const tooMany = createPostprocessor(resolveConfig({ ...gc, topk_candidates: 30, score_thresh_per_class: Array.from({ length: K }, (_, k) => (k % 2 ? 0.9 : config.score_thresh)) }), { backend });
      await assert.rejects(tooMany.run(b), /Expected topk_candidates \(30\) candidates passing score_thresh_per_class in image \d, level P\d of the candidate cache, which holds only the best 30 \(max_topk\) of the level, but \d+ of them pass.*--max-topk/, backend);
      await tooMany.dispose();
    }
  });

  it("a config outside the bounds, or with other fixed keys, is an error naming the bound", function () {
    const c = cases.find((x) => x.name.startsWith("tv_k80_b2"))!;
    const config = resolveConfig(goldenConfig(c));
    const heads = normalizeHeads(loadDataset(c.npz), config);
    const cache = buildCacheFromHeads(path.join(tmp, "bounds"), heads, config, { minScore: 0.05, maxTopk: 100 });
    assert.throws(() => checkConfigForCache({ ...config, score_thresh: 0.04 }, cache), /Expected score_thresh >= 0.05 \(the min_score bound of the candidate cache .*bounds\) but received 0.04/);
    assert.throws(() => checkConfigForCache({ ...config, topk_candidates: 101 }, cache), /Expected topk_candidates <= 100 \(the max_topk bound .*\) but received 101/);
    assert.throws(() => checkConfigForCache(resolveConfig({ ...goldenConfig(c), anchor_offset: 0.5 }), cache), /Expected anchor_offset 0 \(fixed by the candidate cache .*\) but received 0.5/);
    assert.throws(() => checkConfigForCache(resolveConfig({ preset: "detectron2" }), cache), /Expected preset "torchvision" .* but received "detectron2"/);
    assert.doesNotThrow(() => checkConfigForCache({ ...config, score_thresh: 0.05, topk_candidates: 100, nms_thresh: 0.9, detections_per_img: 1 }, cache));
  });
});
