/**
 * The CUDA backend (run on a GPU machine by scripts/gpu-check.sh; skipped with the reason printed
 * where there is no usable device): parity with every golden case on both layouts, fp16 inputs,
 * both entry points (host arrays, and device-resident heads from upload()), the graph path, runs
 * back to back with changing shapes, the exact fallback of the selection, and errors that leave
 * the Postprocessor usable. The CPU backend is the second oracle: on the same inputs both must give
 * the same bits.
 */
import * as assert from "assert";
import { spawnSync } from "child_process";
import * as fs from "fs";

import { loadNative } from "../kernel/native";
import { compareDetections } from "../kernel/postprocess/compare";
import { loadDataset } from "../kernel/postprocess/dataset";
import { HeadOutputs, normalizeHeads } from "../kernel/postprocess/heads";
import { ndarray, NdArray } from "../kernel/postprocess/ndarray";
import { createPostprocessor } from "../kernel/postprocess/postprocessor";
import { resolveConfig } from "../kernel/postprocess/config";
import { PostprocessConfig } from "../kernel/postprocess/presets";
import { floatToHalf } from "../kernel/postprocess/reference";
import { synthesize } from "../kernel/postprocess/synth";
import { assertSameBits, cudaUnavailableReason, goldenCases, goldenConfig, isBuiltPreset, toPerLevel, withEnv } from "./helpers";

const assertSame = assertSameBits;

function toHalf(a: NdArray): NdArray {
  const src = a.data as Float32Array;
  const h = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) h[i] = floatToHalf(src[i]);
  return ndarray("float16", a.shape, h);
}

/** The same heads in the per-level layout ([N, A*K, H, W] and [N, A*4, H, W] per level). */
function asPerLevel(ds: HeadOutputs, config: Partial<PostprocessConfig>): HeadOutputs {
  const heads = normalizeHeads(ds, resolveConfig(config));
  return {
    cls_logits: toPerLevel(ds.cls_logits as NdArray, heads.featureSizes, heads.anchorsPerLocation),
    bbox_regression: toPerLevel(ds.bbox_regression as NdArray, heads.featureSizes, heads.anchorsPerLocation),
    anchors: ds.anchors,
    image_sizes: ds.image_sizes,
    padded_size: heads.paddedSize,
    output_sizes: ds.output_sizes,
  };
}

describe("cuda backend", function () {
  this.timeout(120000);
  const reason = cudaUnavailableReason();
  before(function () {
    if (reason) {
      console.log(`      (cuda tests skipped: ${reason})`);
      this.skip();
    }
  });

  describe("golden parity", function () {
    it("finds the golden data (RK_GOLDEN_DIR on the GPU machine)", function () {
      assert.ok(goldenCases().length >= 10, `expected the golden cases, found ${goldenCases().length}`);
    });
    for (const c of goldenCases()) {
      if (!isBuiltPreset(c.preset)) {
        it(`${c.name}: preset "${c.preset}" is not built yet`);
        continue;
      }
      for (const layout of ["concatenated", "per_level"] as const) {
        it(`${c.name} (${layout}): same detections as ${c.preset}, and the same bits as the cpu backend`, async function () {
          // Cases stored in one layout only are permuted into the other (the same values).
          const stored = loadDataset(c.npz);
          let ds: HeadOutputs = stored;
          if (layout === "per_level") {
            if (stored.arrays.has("cls_p3")) {
              ds = loadDataset(c.npz, { layout });
            } else {
              ds = asPerLevel(stored, goldenConfig(c));
            }
          }
          const gpu = createPostprocessor(goldenConfig(c), { backend: "cuda" });
          const cpu = createPostprocessor(goldenConfig(c), { backend: "cpu" });
          const r = await gpu.run(ds);
          const report = compareDetections(r.detections, stored.expected!);
          const bad = report.images.filter((i) => !i.ok);
          assert.deepStrictEqual(bad, [], `mismatches: ${bad.map((i) => `image ${i.image}: ${i.mismatch}`).join("; ")}`);
          assertSame(r, await cpu.run(ds), "cuda vs cpu");
          await gpu.dispose();
          await cpu.dispose();
        });
      }
    }
  });

  it("fp16 heads: the same bits as the cpu backend on the same halves", async function () {
    for (const c of goldenCases().filter((g) => isBuiltPreset(g.preset)).slice(0, 6)) {
      const ds = loadDataset(c.npz);
      const half: HeadOutputs = {
        ...ds,
        cls_logits: Array.isArray(ds.cls_logits) ? ds.cls_logits.map(toHalf) : toHalf(ds.cls_logits),
        bbox_regression: Array.isArray(ds.bbox_regression) ? ds.bbox_regression.map(toHalf) : toHalf(ds.bbox_regression),
      };
      const gpu = createPostprocessor(goldenConfig(c), { backend: "cuda" });
      const cpu = createPostprocessor(goldenConfig(c), { backend: "cpu" });
      assertSame(await gpu.run(half), await cpu.run(half), `${c.name} fp16`);
    }
  });

  it("fp16 heads of every half bit pattern (subnormals, infinities, NaN) give the same bits as the cpu backend", async function () {
    // The device widens halves with its own conversion instruction, the host bit by bit: scores
    // given as probabilities keep the widened value itself, so any difference shows in the output.
    const ds = synthesize({ images: 1, size: [512, 640], classes: 16, density: 0.01, seed: 21 });
    const cls = toHalf(ds.cls_logits as NdArray);
    const box = toHalf(ds.bbox_regression as NdArray);
    const h = cls.data as Uint16Array;
    let seed = 5;
    for (let i = 0; i < h.length; i++) {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      h[i] = i < 65536 ? i : seed >>> 16;  // every pattern once, then random ones
    }
    const d = box.data as Uint16Array;
    for (let i = 0; i < d.length; i++) if (i % 4 < 2) d[i] = i % 2047;  // subnormal and small dx, dy
    const heads: HeadOutputs = { ...ds, cls_logits: cls, bbox_regression: box };
    for (const config of [
      { num_classes: 16, score_input: "probabilities", score_thresh: 0.0, topk_candidates: 1000 },
      { num_classes: 16, score_input: "logits", score_thresh: 0.05 },
    ] as Partial<PostprocessConfig>[]) {
      const gpu = createPostprocessor(config, { backend: "cuda" });
      const cpu = createPostprocessor(config, { backend: "cpu" });
      assertSame(await gpu.run(heads), await cpu.run(heads), `all halves ${JSON.stringify(config)}`);
      // Only subnormals and zeros above the threshold: their order decides the top-k.
      const tiny = new Uint16Array(h.length);
      for (let i = 0; i < tiny.length; i++) tiny[i] = (i * 7919) % 0x400;
      const small: HeadOutputs = { ...heads, cls_logits: ndarray("float16", cls.shape, tiny) };
      assertSame(await gpu.run(small), await cpu.run(small), `subnormal halves ${JSON.stringify(config)}`);
      await gpu.dispose();
      await cpu.dispose();
    }
  });

  it("device-resident heads (upload) give the same detections as host arrays, with no upload time", async function () {
    const ds = synthesize({ images: 2, size: [512, 640], classes: 80, density: 0.01, seed: 3 });
    const pp = createPostprocessor({ num_classes: 80 }, { backend: "cuda" });
    const host = await pp.run(ds);
    const dev = pp.upload(ds);
    try {
      const r1 = await pp.run(dev);
      const r2 = pp.runSync(dev);
      assertSame(r1, host, "device vs host");
      assertSame(r2, host, "device (sync) vs host");
      assert.ok(host.timings.uploadMs > 0, "host run reports its copy time");
      assert.ok(r2.timings.uploadMs < host.timings.uploadMs, "device run copies no heads");
    } finally {
      dev.free();
    }
    await assert.rejects(pp.run(dev), /freed/);
    const cpu = createPostprocessor({ num_classes: 80 }, { backend: "cpu" });
    assert.throws(() => cpu.runSync(dev), /Expected host arrays for the cpu backend/);
  });

  it("replays a captured graph for a fixed shape; graph off gives the same bits", async function () {
    const ds = synthesize({ images: 2, size: [480, 640], classes: 20, density: 0.02, seed: 5 });
    const g = createPostprocessor({ num_classes: 20 }, { backend: "cuda" });
    const e = createPostprocessor({ num_classes: 20 }, { backend: "cuda", graph: false });
    const dev = g.upload(ds);
    const first = await g.run(dev);
    const second = await g.run(dev);
    assert.strictEqual(first.timings.graphReplayed, false);
    assert.strictEqual(second.timings.graphReplayed, true);
    assertSame(second, first, "replay");
    const eager = await e.run(ds);
    assert.strictEqual(eager.timings.graphReplayed, false);
    assertSame(eager, first, "eager");
    dev.free();
  });

  it("many replays of one shape give the same bits, with and without the exact path", async function () {
    this.timeout(600000);
    // Races between the chain's kernels (chained launches let each start before the last ends) would
    // show as a replay that differs or never ends. Batch 1 of the benchmark's size; batch 3 with a
    // level of image 0 whose estimate is too high (the exact path runs there and not in the other
    // images); and a case where every slice takes the exact path.
    const wide = synthesize({ images: 1, size: [800, 1333], classes: 80, bgMean: -6, seed: 11 });
    const skew = synthesize({ images: 3, size: [640, 640], classes: 4, bgMean: -8, seed: 12 });
    const x = (skew.cls_logits as NdArray).data as Float32Array;
    for (let i = 0; i < x.length / 3; i += 4096 * 7) x.fill(3, i, Math.min(x.length, i + 512));
    const ties = synthesize({ images: 2, size: [256, 320], classes: 8, density: 0.01, seed: 13 });
    ((ties.cls_logits as NdArray).data as Float32Array).fill(0.25);
    for (const [name, ds, config, runs] of [
      ["batch 1, 800x1333, K 80", wide, { num_classes: 80 }, 200],
      ["skewed sample, batch 3", skew, { num_classes: 4 }, 100],
      ["all ties", ties, { num_classes: 8 }, 50],
    ] as [string, HeadOutputs, Partial<PostprocessConfig>, number][]) {
      const want = await createPostprocessor(config, { backend: "cpu" }).run(ds);
      const gpu = createPostprocessor(config, { backend: "cuda" });
      const dev = gpu.upload(ds);
      for (let r = 0; r < runs; r++) assertSame(await gpu.run(dev), want, `${name}, run ${r}`);
      dev.free();
    }
  });

  it("ranks by counting and by sorting give the same bits (golden cases, ties, fp16, both layouts, batches)", async function () {
    // The launchers rank the top-k candidates one of two ways: by counting (the default for these
    // shapes) or by sorting (larger shapes, or RK_CUDA_RANKS=sort); the counting path's top-k takes a
    // slice in one histogram (the span path) or, where the boundary bucket is crowded (the tied case)
    // or under RK_CUDA_TOPK=radix, by radix rounds. Every case here runs the three ways and is
    // compared with the cpu backend.
    type Case = { what: string; config: Partial<PostprocessConfig>; ds: HeadOutputs };
    const cases: Case[] = goldenCases()
      .filter((g) => isBuiltPreset(g.preset))
      .map((g) => ({ what: g.name, config: goldenConfig(g), ds: loadDataset(g.npz) as HeadOutputs }));
    const tied = synthesize({ images: 2, size: [512, 512], classes: 8, density: 0.01, seed: 7 });
    ((tied.cls_logits as NdArray).data as Float32Array).fill(0.25);  // every score ties, in every level
    cases.push({ what: "all tied", config: { num_classes: 8, score_thresh: 0.0, topk_candidates: 37 }, ds: tied });
    // Scores on a coarse grid: runs of equal scores inside a bucket, ranked by the rest of their key.
    const coarse = synthesize({ images: 2, size: [384, 512], classes: 8, density: 0.05, seed: 21 });
    const coarseLogits = (coarse.cls_logits as NdArray).data as Float32Array;
    for (let i = 0; i < coarseLogits.length; ++i) coarseLogits[i] = Math.round(coarseLogits[i] * 4) / 4;
    cases.push({ what: "coarse scores", config: { num_classes: 8, topk_candidates: 200 }, ds: coarse });
    const few = synthesize({ images: 3, size: [320, 480], classes: 80, density: 0.05, seed: 12 });
    const halves: HeadOutputs = { ...few, cls_logits: toHalf(few.cls_logits as NdArray), bbox_regression: toHalf(few.bbox_regression as NdArray) };
    cases.push({ what: "fp16, 3 images", config: { num_classes: 80, topk_candidates: 300 }, ds: halves });
    const d2: Partial<PostprocessConfig> = { preset: "detectron2", num_classes: 20 };
    const per = synthesize({ images: 2, size: [512, 640], classes: 20, density: 0.1, seed: 13, config: d2 });
    cases.push({ what: "detectron2, per-level layout", config: d2, ds: asPerLevel(per, d2) });
    const paths: [string, Record<string, string | undefined>][] = [
      ["count", { RK_CUDA_RANKS: undefined, RK_CUDA_TOPK: undefined }],
      ["count with the radix top-k", { RK_CUDA_RANKS: undefined, RK_CUDA_TOPK: "radix" }],
      ["sort", { RK_CUDA_RANKS: "sort", RK_CUDA_TOPK: undefined }],
    ];
    for (const c of cases) {
      const cpu = createPostprocessor(c.config, { backend: "cpu" });
      const want = await cpu.run(c.ds);
      for (const [path, env] of paths) {
        await withEnv(env, async () => {
          const gpu = createPostprocessor(c.config, { backend: "cuda" });
          assertSame(await gpu.run(c.ds), want, `${c.what}, ranks by ${path}`);
          await gpu.dispose();
        });
      }
      await cpu.dispose();
    }
  });

  it("back-to-back runs with changing shapes, batch sizes and thresholds equal the cpu backend", async function () {
    const shapes: { images: number; size: [number, number]; density: number }[] = [
      { images: 1, size: [800, 1333], density: 0.02 },
      { images: 3, size: [320, 480], density: 0.2 },
      { images: 1, size: [800, 1333], density: 0.02 },
      { images: 8, size: [256, 256], density: 0.05 },
      { images: 2, size: [600, 1000], density: 0.5 },
    ];
    for (const config of [{ num_classes: 80 }, { num_classes: 80, score_thresh: 0.3, topk_candidates: 200, detections_per_img: 50 }] as Partial<PostprocessConfig>[]) {
      const gpu = createPostprocessor(config, { backend: "cuda" });
      const cpu = createPostprocessor(config, { backend: "cpu" });
      let seed = 10;
      for (const s of shapes) {
        const ds = synthesize({ ...s, classes: 80, seed: seed++ });
        assertSame(await gpu.run(ds), await cpu.run(ds), `${JSON.stringify(s)} ${JSON.stringify(config)}`);
      }
    }
  });

  it("dense and tied inputs take the exact selection path and still equal the cpu backend", async function () {
    // Every logit equal: every score ties, every level overflows the sampled path's buffer.
    const ds = synthesize({ images: 2, size: [512, 512], classes: 8, density: 0.01, seed: 7 });
    const cls = ds.cls_logits as NdArray;
    (cls.data as Float32Array).fill(0.25);
    for (const config of [{ num_classes: 8, score_thresh: 0.05 }, { num_classes: 8, score_thresh: 0.0, topk_candidates: 37 }] as Partial<PostprocessConfig>[]) {
      const gpu = createPostprocessor(config, { backend: "cuda" });
      const cpu = createPostprocessor(config, { backend: "cpu" });
      assertSame(await gpu.run(ds), await cpu.run(ds), `ties ${JSON.stringify(config)}`);
    }
    // Mostly high logits in the sampled windows only: the estimate is too high, the exact path recovers.
    const skew = synthesize({ images: 1, size: [1024, 1024], classes: 4, bgMean: -8, seed: 8 });
    const x = (skew.cls_logits as NdArray).data as Float32Array;
    for (let i = 0; i < x.length; i += 4096 * 7) x.fill(3, i, Math.min(x.length, i + 512));
    const gpu = createPostprocessor({ num_classes: 4 }, { backend: "cuda" });
    const cpu = createPostprocessor({ num_classes: 4 }, { backend: "cpu" });
    assertSame(await gpu.run(skew), await cpu.run(skew), "skewed sample");
  });

  it("large top-k and large NMS groups equal the cpu backend (shared-memory sort, chunked bitmask, block-wide greedy, groups staged in global memory)", async function () {
    // Three classes and the top 2000 of each level: sorts of more keys than a block has threads, and
    // groups of more than 1024 members (block-wide greedy, staged in global memory, placed after the
    // lower classes' members); the top 300: groups of 257-1024 members, staged in shared memory, by
    // the bitmask of many chunks; the top 80: groups of about 130 dense members (a few chunks). Batch 1
    // gives each group a block of 1024 threads
    // (members from the labels per rank); a batch with more groups than the device has SMs (up to 192
    // SMs) gives them blocks of 256 (members from the class bitmaps).
    const sms = loadNative()!.devices!().devices[0].multiprocessors;
    for (const topk of [2000, 300, 80]) {
      const config: Partial<PostprocessConfig> = { num_classes: 3, topk_candidates: topk };
      const gpu = createPostprocessor(config, { backend: "cuda" });
      const cpu = createPostprocessor(config, { backend: "cpu" });
      for (const images of [1, Math.min(64, Math.floor(sms / 3) + 1)]) {
        for (const bgMean of [-1, -3]) {
          const ds = synthesize({ images, size: [256, 320], classes: 3, bgMean, seed: 30 + images });
          const want = await cpu.run(ds);
          assert.ok(want.detections[0].count > 0, "the case keeps detections");
          assertSame(await gpu.run(ds), want, `${images} images of 3 classes, top ${topk}, background ${bgMean}`);
        }
      }
    }
  });

  it("many classes (labels past 8 bits, more groups than ranks a warp reads) equal the cpu backend", async function () {
    // Labels up to 699 (more than a byte), and groups of one or two members among thousands of ranks,
    // found two ways: from the class bitmaps (ranks by counting, more groups than SMs) and from the
    // labels per rank, 16 bits at a time, eight a lane (ranks by sorting).
    const config: Partial<PostprocessConfig> = { num_classes: 700, topk_candidates: 300 };
    const cpu = createPostprocessor(config, { backend: "cpu" });
    for (const path of ["count", "sort"]) {
      await withEnv({ RK_CUDA_RANKS: path === "sort" ? "sort" : undefined }, async () => {
        const gpu = createPostprocessor(config, { backend: "cuda" });
        for (const images of [1, 3]) {
          const ds = synthesize({ images, size: [256, 320], classes: 700, density: 0.02, seed: 50 + images });
          const want = await cpu.run(ds);
          assert.ok(want.detections[0].count > 0, "the case keeps detections");
          assertSame(await gpu.run(ds), want, `${images} images of 700 classes, ranks by ${path}`);
        }
        await gpu.dispose();
      });
    }
  });

  it("a NaN delta of a selected box is an error naming the box; the Postprocessor stays usable", async function () {
    const ds = synthesize({ images: 1, size: [256, 256], classes: 4, density: 0.05, seed: 9 });
    const pp = createPostprocessor({ num_classes: 4 }, { backend: "cuda" });
    const good = await pp.run(ds);
    const box = (ds.bbox_regression as NdArray).data as Float32Array;
    const saved = box.slice();
    box.fill(NaN);
    await assert.rejects(pp.run(ds), (e: NodeJS.ErrnoException) => e.code === "ERR_RK_NONFINITE" && /bbox_regression/.test(e.message));
    box.set(saved);
    assertSame(await pp.run(ds), good, "after the error");
  });

  it("rejects bad device inputs with clear errors", function () {
    const addon = loadNative()!;
    const ds = synthesize({ images: 1, size: [256, 256], classes: 8, density: 0.05, seed: 2 });
    const pp = createPostprocessor({ num_classes: 8 }, { backend: "cuda" });
    const dev = pp.upload(ds);
    const h = { ...dev, cls: [dev.box[0]] };
    assert.throws(() => pp.runSync(h), /Expected \d+ bytes in the device array for cls_logits/);
    const bogus = { ...dev, cls: [{ pointer: 4096, bytes: dev.cls[0].bytes, device: 0, free() {} }] };
    assert.throws(() => pp.runSync(bogus), /not CUDA device memory/);
    assert.throws(() => addon.upload!("x" as unknown as Float32Array), /Expected a TypedArray for upload/);
    assert.throws(() => createPostprocessor({ num_classes: 4, topk_candidates: 50000 }, { backend: "cuda" }), /topk_candidates <= 16384/);
    assert.throws(() => createPostprocessor({ num_classes: 65536 }, { backend: "cuda" }), /num_classes <= 65535 for the cuda backend's NMS .* received 65536/);
    dev.free();
  });

  it("the one pass's tile sizes (RK_CUDA_TILE_VECTORS=2048, 4096 and 256), chained launches off (RK_CUDA_PDL=0) and a chain per image (RK_CUDA_SPLIT=1) give the cpu backend's bits, run and replayed, and name a NaN box's image", function () {
    this.timeout(600000);
    // A child process per setting: it is read once, when the pass first runs. 2048 vectors: the size
    // the pass takes for heads of 128 MB and more (these small cases take 1024 by default); 4096:
    // fewer, longer blocks, each gathering more candidates; 256: many tiles a level, most levels
    // ending in a partial tile. RK_CUDA_SPLIT=1: each image of a batch its own chain of kernels on a
    // stream of its own (the synthetic cases are batches of 3).
    const script = `
      const { createPostprocessor } = require(${JSON.stringify(require.resolve("../kernel/postprocess/postprocessor"))});
      const { loadDataset } = require(${JSON.stringify(require.resolve("../kernel/postprocess/dataset"))});
      const { synthesize } = require(${JSON.stringify(require.resolve("../kernel/postprocess/synth"))});
      const { toHalfHeads, normalizeHeads } = require(${JSON.stringify(require.resolve("../kernel/postprocess/heads"))});
      const { resolveConfig } = require(${JSON.stringify(require.resolve("../kernel/postprocess/config"))});
      const cases = JSON.parse(process.argv[1]);
      (async () => {
        const bad = [];
        let checked = 0;
        const check = async (name, config, heads) => {
          const cuda = createPostprocessor(config, { backend: "cuda" });
          const a = await cuda.run(heads);
          const replay = await cuda.run(heads);  // the captured graph, replayed
          const b = await createPostprocessor(config, { backend: "cpu" }).run(heads);
          const same = (x) => ["boxes", "scores", "labels", "counts"].every((k) => x.padded[k].length === b.padded[k].length && x.padded[k].every((v, i) => Object.is(v, b.padded[k][i])));
          if (!same(a)) bad.push(name);
          else if (!same(replay)) bad.push(name + " (replayed)");
          checked++;
        };
        for (const c of cases) {
          const h = normalizeHeads(loadDataset(c.npz), resolveConfig(c.config));
          await check(c.name, c.config, h);
          await check(c.name + " fp16", c.config, toHalfHeads(h));
        }
        for (const [bgMean, seed] of [[-3, 9], [-6, 10]]) {
          const ds = synthesize({ images: 3, size: [512, 640], classes: 20, bgMean, seed });
          const h = normalizeHeads(ds, resolveConfig({ num_classes: 20 }));
          await check("synthetic bg " + bgMean, { num_classes: 20 }, h);
          await check("synthetic bg " + bgMean + " fp16", { num_classes: 20 }, toHalfHeads(h));
        }
        {  // a NaN box in the last image of three is named by its index in the batch
          const ds = synthesize({ images: 3, size: [256, 256], classes: 4, density: 0.05, seed: 9 });
          const box = ds.bbox_regression.data;
          box.fill(NaN, (2 * box.length) / 3);
          let message = "no error";
          await createPostprocessor({ num_classes: 4 }, { backend: "cuda" }).run(ds).catch((e) => { message = e.message; });
          if (!/received NaN at image 2,/.test(message)) bad.push("NaN in image 2: " + message);
          checked++;
        }
        console.log(JSON.stringify({ bad, checked }));
      })().catch((e) => { console.error(e); process.exit(1); });`;
    const cases = goldenCases().filter((g) => isBuiltPreset(g.preset)).slice(0, 6).map((c) => ({ name: c.name, npz: c.npz, config: goldenConfig(c) }));
    for (const env of [{ RK_CUDA_TILE_VECTORS: "2048" }, { RK_CUDA_TILE_VECTORS: "4096" }, { RK_CUDA_TILE_VECTORS: "256" }, { RK_CUDA_PDL: "0" }, { RK_CUDA_SPLIT: "1" }]) {
      const r = spawnSync(process.execPath, ["-e", script, JSON.stringify(cases)], { env: { ...process.env, ...env }, encoding: "utf8", maxBuffer: 16 << 20 });
      assert.strictEqual(r.status, 0, `${JSON.stringify(env)}: ${r.stderr}`);
      const out = JSON.parse(r.stdout.trim().split("\n").pop()!);
      assert.deepStrictEqual(out.bad, [], `${JSON.stringify(env)}: differs from the cpu backend on ${out.bad.join(", ")}`);
      assert.strictEqual(out.checked, 2 * cases.length + 5);
    }
  });

  it("devices() names the GPU, its SM and memory", function () {
    const d = loadNative()!.devices!();
    assert.ok(d.devices.length >= 1);
    assert.match(d.devices[0].name, /\w/);
    assert.match(d.devices[0].sm, /^\d+\.\d+$/);
    assert.ok(d.devices[0].memoryBytes > 1e9);
    assert.ok(fs.existsSync("/dev/nvidiactl") || d.driverVersion > 0);
  });
});

describe("cuda backend on a machine without a usable device", function () {
  const reason = cudaUnavailableReason();
  before(function () {
    if (!reason) {
      console.log("      (skipped: this machine has a CUDA device)");
      this.skip();
    }
  });
  it("backend \"cuda\" is a clear error and \"auto\" picks the cpu", function () {
    assert.throws(
      () => createPostprocessor({ num_classes: 4 }, { backend: "cuda" }),
      (e: NodeJS.ErrnoException) => e.code === "ERR_RK_UNAVAILABLE" && /cuda/i.test(e.message),
    );
    const pp = createPostprocessor({ num_classes: 4 }, { backend: "auto" });
    assert.notStrictEqual(pp.backend, "cuda");
  });
  it("devices() (when compiled in) says why there is none", function () {
    const addon = loadNative();
    if (!addon?.devices) this.skip();
    const d = addon!.devices!();
    assert.strictEqual(d.devices.length, 0);
    assert.match(d.reason ?? "", /driver|device/);
  });
});
