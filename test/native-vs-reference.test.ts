/**
 * The native CPU backend computes the same function as the TypeScript reference on fresh random
 * inputs (every preset, both layouts, sparse and dense heads, 1 and several threads), bit for bit,
 * and the thread count never changes a result.
 */
import * as assert from "assert";

import { resolveConfig } from "../kernel/postprocess/config";
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
});
