/**
 * The native CPU backend computes the same function as the TypeScript reference on fresh random
 * inputs (every preset, both layouts, sparse and dense heads, 1 and several threads), bit for bit,
 * and the thread count never changes a result.
 */
import * as assert from "assert";

import { loadNative } from "../kernel/native";
import { resolveConfig } from "../kernel/postprocess/config";
import { Box, nms } from "../kernel/postprocess/reference";
import { HeadOutputs, normalizeHeads } from "../kernel/postprocess/heads";
import { NdArray } from "../kernel/postprocess/ndarray";
import { createPostprocessor } from "../kernel/postprocess/postprocessor";
import { PresetName } from "../kernel/postprocess/presets";
import { synthesize } from "../kernel/postprocess/synth";
import { nativeAvailable, toPerLevel } from "./helpers";

describe("native equals the reference on random inputs", function () {
  before(function () {
    if (!nativeAvailable()) {
      console.log("      (skipped: the native addon is not loaded; test/native-build.test.ts says why)");
      this.skip();
    }
  });
  const seed = Date.now() % 100000;
  const presetsToTry: PresetName[] = ["torchvision", "detectron2", "odtk"];
  for (const preset of presetsToTry) {
    for (const bgMean of [-6, -3.5]) {
      it(`${preset}, background mean ${bgMean}, both layouts, 1 and 3 threads (seed ${seed})`, async function () {
        const config = resolveConfig({ preset, topk_candidates: 300, detections_per_img: 150 });
        const ds = synthesize({ images: 2, size: [[200, 260], [256, 192]], classes: 7, bgMean, objects: 12, seed: seed + bgMean * 10, config: { preset } });
        const heads = normalizeHeads(ds, config);
        const variants: [string, HeadOutputs][] = [["concatenated", ds]];
        const A = heads.anchorsPerLocation;
        variants.push([
          "per_level",
          {
            cls_logits: toPerLevel(ds.cls_logits as NdArray, heads.featureSizes, A),
            bbox_regression: toPerLevel(ds.bbox_regression as NdArray, heads.featureSizes, A),
            image_sizes: ds.image_sizes,
            padded_size: heads.paddedSize,
          },
        ]);
        const oracle = createPostprocessor(config, { backend: "js" }).runSync(ds);
        assert.ok(oracle.detections.every((d) => d.count > 10), "the case has detections");
        for (const [layout, h] of variants) {
          for (const threads of [1, 3]) {
            const r = await createPostprocessor(config, { backend: "cpu", threads }).run(h);
            const what = `${layout}, ${threads} threads`;
            assert.deepStrictEqual(r.padded.counts, oracle.padded.counts, what);
            assert.deepStrictEqual(r.padded.labels, oracle.padded.labels, what);
            assert.deepStrictEqual(r.padded.scores, oracle.padded.scores, what);
            assert.deepStrictEqual(r.padded.boxes, oracle.padded.boxes, what);
          }
        }
      });
    }
  }

  it("top-k far below the survivors (the select buffer shrinks many times) keeps the exact top-k", async function () {
    const config = resolveConfig({ topk_candidates: 5, detections_per_img: 1000, nms_thresh: 1 });
    const ds = synthesize({ images: 1, size: [512, 512], classes: 30, bgMean: -2, objects: 0, seed: seed + 1 });
    const want = createPostprocessor(config, { backend: "js" }).runSync(ds);
    const got = await createPostprocessor(config, { backend: "cpu", threads: 2 }).run(ds);
    assert.strictEqual(got.detections[0].count, 25); // 5 levels x 5, nothing suppressed at IoU 1
    assert.deepStrictEqual(got.padded, want.padded);
  });

  it("torchvision's NMS path switch: > 1000 boxes per-class path, <= 1000 coordinate trick, cuda emulation", async function () {
    const ds = synthesize({ images: 1, size: [320, 320], classes: 5, bgMean: -2.5, objects: 20, seed: seed + 2 });
    for (const device of ["cpu", "cuda"] as const) {
      for (const topk of [150, 1000]) {
        const config = resolveConfig({ topk_candidates: topk, torchvision_nms_device: device });
        const want = createPostprocessor(config, { backend: "js" }).runSync(ds);
        const got = createPostprocessor(config, { backend: "cpu" }).runSync(ds);
        assert.deepStrictEqual(got.padded, want.padded, `${device} topk ${topk}`);
      }
    }
  });
  it("NMS with IoUs within a few ulps of the threshold: the native greedy loop (8 lanes, decided by the cut's bounds) equals the reference", function () {
    const addon = loadNative()!;
    let rng = (seed * 7919 + 13) >>> 0;
    const rand = () => ((rng = (Math.imul(rng, 1664525) + 1013904223) >>> 0) / 2 ** 32);
    const f = Math.fround;
    let checked = 0;
    for (let trial = 0; trial < 120; trial++) {
      const thresh = [0.5, 0.3, 0.45, 0.7, 0.6000000000000001, 0.33333334][trial % 6];
      const off = trial % 5 === 4 ? 1 : 0;
      // One cluster per class: boxes shifted from a base so that the IoU with it is t within ulps.
      const boxes: Box[] = [];
      const scores: number[] = [];
      const labels: number[] = [];
      for (let c = 0; c < 3; c++) {
        const x = f(rand() * 500), y = f(rand() * 500), w = f(4 + rand() * 200), h = f(4 + rand() * 200);
        boxes.push([x, y, f(x + w), f(y + h)]);
        scores.push(f(0.99 - c * 0.01));
        labels.push(c);
        for (let k = 0; k < 40; k++) {
          // IoU of [x, x + w] with [x + d, x + w + d] (same h): (w - d) / (w + d) = t  =>  d = w (1 - t) / (1 + t).
          const d = (w * (1 - thresh)) / (1 + thresh);
          const jitter = (rand() - 0.5) * 8 * 2 ** -23 * (w + d);
          const dx = f(d + jitter);
          const b: Box = k % 7 === 6 ? [f(x + dx), y, f(x + w + dx), f(y + h + (k % 2 ? 1e-6 : 0))] : [f(x + dx), y, f(x + w + dx), f(y + h)];
          if (k === 13) b[2] = NaN;
          if (k === 17) b.splice(0, 4, x, y, f(x + 1e-30), f(y + 1e-30));
          boxes.push(b);
          scores.push(f(0.5 + rand() * 0.4));
          labels.push(c);
        }
      }
      for (const compareInDouble of [true, false]) {
        for (const algorithm of ["torchvision_batched", "greedy_per_class"] as const) {
          const o = { iouThresh: thresh, algorithm, torchvisionDevice: "cpu" as const, compareInDouble, pixelOffset: off };
          const want = nms(boxes, scores, labels, o);
          const got = addon.nms(Float32Array.from(boxes.flat()), Float32Array.from(scores), Int32Array.from(labels), o);
          assert.deepStrictEqual(Array.from(got), want, `trial ${trial}, thresh ${thresh}, offset ${off}, compare in double ${compareInDouble}, ${algorithm}`);
          checked++;
        }
      }
    }
    assert.strictEqual(checked, 480);
  });
});
