/** Config validation: presets as data, one error shape naming the field, the expected and the received value. */
import * as assert from "assert";

import { changedKeys, resolveConfig } from "../kernel/postprocess/config";
import { presets } from "../kernel/postprocess/presets";

describe("config", function () {
  it("presets are plain frozen objects with the frameworks' defaults (SPEC 'Defaults' table)", function () {
    assert.strictEqual(presets.torchvision.detections_per_img, 300);
    assert.strictEqual(presets.detectron2.detections_per_img, 100);
    assert.strictEqual(presets.odtk.detections_per_img, 100);
    assert.deepStrictEqual(presets.torchvision.anchor_sizes[0], [32, 40, 50]);
    assert.deepStrictEqual(presets.torchvision.anchor_sizes[4], [512, 645, 812]);
    assert.strictEqual(presets.detectron2.anchor_sizes[0][1], 32 * 2 ** (1 / 3));
    assert.deepStrictEqual(presets.odtk.aspect_ratios, [1, 2, 0.5]);
    for (const p of Object.values(presets)) {
      assert.strictEqual(p.score_thresh, 0.05);
      assert.strictEqual(p.nms_thresh, 0.5);
      assert.strictEqual(p.topk_candidates, 1000);
      assert.ok(Object.isFrozen(p) && Object.isFrozen(p.anchor_sizes));
    }
  });

  it("a partial config takes the preset's defaults", function () {
    const c = resolveConfig({ preset: "detectron2", score_thresh: 0.3 });
    assert.strictEqual(c.score_thresh, 0.3);
    assert.strictEqual(c.anchor_cell, "detectron2");
    assert.deepStrictEqual(changedKeys(c), ["score_thresh"]);
  });

  const bad: [string, Record<string, unknown>, "TypeError" | "RangeError", RegExp][] = [
    ["score_thresh above 1", { score_thresh: 1.5 }, "RangeError", /^Expected a number in \[0, 1\] for score_thresh but received 1\.5$/],
    ["score_thresh negative", { score_thresh: -0.1 }, "RangeError", /for score_thresh but received -0\.1/],
    ["score_thresh NaN", { score_thresh: NaN }, "RangeError", /for score_thresh but received NaN/],
    ["score_thresh as a string", { score_thresh: "0.3" }, "TypeError", /^Expected a number in \[0, 1\] for score_thresh but received "0\.3"$/],
    ["nms_thresh above 1", { nms_thresh: 2 }, "RangeError", /for nms_thresh but received 2$/],
    ["topk_candidates fractional", { topk_candidates: 10.5 }, "RangeError", /^Expected an integer in \[1, 100000\] for topk_candidates but received 10\.5$/],
    ["topk_candidates zero", { topk_candidates: 0 }, "RangeError", /for topk_candidates but received 0$/],
    ["detections_per_img as a string", { detections_per_img: "100" }, "TypeError", /for detections_per_img but received "100"/],
    ["num_classes zero", { num_classes: 0 }, "RangeError", /^Expected an integer in \[1, 100000\] for num_classes but received 0$/],
    ["an unknown preset", { preset: "yolo" }, "RangeError", /^Expected one of "torchvision", "detectron2", "odtk" for preset but received "yolo"$/],
    ["a misspelt key", { score_treshold: 0.2 }, "RangeError", /did you mean score_thresh\?/],
    ["a zero box weight", { box_coder_weights: [1, 0, 1, 1] }, "RangeError", /for box_coder_weights\[1\] but received 0/],
    ["pixel_offset 2", { pixel_offset: 2 }, "RangeError", /^Expected 0 or 1 for pixel_offset but received 2$/],
    ["a ragged anchor_sizes", { anchor_sizes: [[32, 40], [64]] }, "RangeError", /for anchor_sizes\[1\]/],
    ["a negative aspect ratio", { aspect_ratios: [0.5, -1] }, "RangeError", /for aspect_ratios\[1\] but received -1/],
    ["strides of the wrong count", { anchor_strides: [8, 16] }, "RangeError", /5 strides .* for anchor_strides/],
  ];
  for (const [what, cfg, type, message] of bad) {
    it(`rejects ${what} with a ${type}`, function () {
      assert.throws(
        () => resolveConfig(cfg),
        (e: Error & { code?: string }) => e.constructor.name === type && message.test(e.message) && e.code === "ERR_RK_CONFIG",
      );
    });
  }

  it("rejects a non-object config", function () {
    assert.throws(
      () => resolveConfig(42 as never),
      (e: Error) => e instanceof TypeError && e.message === "Expected an object of post-processing settings for config but received 42",
    );
  });
});
