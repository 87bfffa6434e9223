/**
 * Parity on every case in ../shared/golden/ (detections, per the SPEC's comparison rules), for each
 * host backend and each layout the case carries; the NMS-only keep lists; a case whose preset is
 * not built is reported as pending, by name.
 */
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";

import { loadNative } from "../kernel/native";
import { compareDetections } from "../kernel/postprocess/compare";
import { loadDataset } from "../kernel/postprocess/dataset";
import { readNpz } from "../kernel/postprocess/npz";
import { createPostprocessor } from "../kernel/postprocess/postprocessor";
import { Box, nms } from "../kernel/postprocess/reference";
import { GOLDEN_DIR, goldenCases, goldenConfig, hostBackends, isBuiltPreset } from "./helpers";

describe("golden parity", function () {
  const cases = goldenCases();
  it("finds the golden data", function () {
    assert.ok(fs.existsSync(GOLDEN_DIR), `golden data expected at ${GOLDEN_DIR}`);
    assert.ok(cases.length >= 10, `expected the golden cases, found ${cases.length}`);
  });

  for (const c of cases) {
    describe(c.name, function () {
      if (!isBuiltPreset(c.preset)) {
        it(`preset "${c.preset}" is not built yet`);
        return;
      }
      const arrays = fs.existsSync(c.npz) ? readNpz(c.npz) : new Map();
      const layouts = [
        ...(arrays.has("cls_logits") ? (["concatenated"] as const) : []),
        ...(arrays.has("cls_p3") ? (["per_level"] as const) : []),
      ];
      for (const backend of hostBackends()) {
        for (const layout of layouts) {
          it(`${backend}, ${layout} layout: same detections as ${c.preset}`, async function () {
            const ds = loadDataset(c.npz, { layout });
            const pp = createPostprocessor(goldenConfig(c), { backend });
            const r = await pp.run(ds);
            await pp.dispose();
            const report = compareDetections(r.detections, ds.expected!);
            const bad = report.images.filter((i) => !i.ok);
            assert.deepStrictEqual(bad, [], `mismatches: ${bad.map((i) => `image ${i.image}: ${i.mismatch}`).join("; ")}`);
            assert.deepStrictEqual(
              r.detections.map((d) => d.count),
              c.meta.counts,
            );
          });
        }
      }
      if (c.preset === "detectron2") {
        it("js: boxes before the empty-box filter equal nms{i}_boxes (clipped, Detectron2 golden caveat)", async function () {
          const ds = loadDataset(c.npz);
          const pp = createPostprocessor({ ...goldenConfig(c), remove_empty_boxes: false }, { backend: "js" });
          const r = await pp.run(ds);
          ds.expectedBeforeFilter!.forEach((want, n) => {
            const got = r.detections[n].boxes;
            assert.strictEqual(got.length, want.length, `image ${n} count`);
            for (let i = 0; i < want.length; i++) assert.ok(Math.abs(got[i] - want[i]) <= 1e-4 * Math.max(1, Math.abs(want[i])), `image ${n} value ${i}`);
          });
        });
      }
    });
  }

  describe("nms_clustered_3000 (torchvision batched_nms keep lists)", function () {
    const file = path.join(GOLDEN_DIR, "nms_clustered_3000.npz");
    const z = fs.existsSync(file) ? readNpz(file) : undefined;
    for (const key of ["keep_03", "keep_05", "keep_07"]) {
      const thresh = Number(key.slice(5)) / 10;
      it(`js reference reproduces ${key} in order`, function () {
        assert.ok(z, `missing ${file}`);
        const b = z.get("boxes")!.data as Float32Array;
        const scores = z.get("scores")!.data as Float32Array;
        const labels = Array.from(z.get("labels")!.data as BigInt64Array, Number);
        const boxes: Box[] = [];
        for (let i = 0; i < scores.length; i++) boxes.push([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]]);
        const keep = nms(boxes, scores, labels, { iouThresh: thresh, algorithm: "torchvision_batched", torchvisionDevice: "cpu", compareInDouble: true, pixelOffset: 0 });
        assert.deepStrictEqual(keep, Array.from(z.get(key)!.data as BigInt64Array, Number));
      });
      it(`native reproduces ${key} in order`, function () {
        const addon = loadNative();
        if (!addon) this.skip();
        assert.ok(z, `missing ${file}`);
        const labels = Int32Array.from(z.get("labels")!.data as BigInt64Array, Number);
        const keep = addon!.nms(z.get("boxes")!.data as Float32Array, z.get("scores")!.data as Float32Array, labels, {
          iouThresh: thresh,
          algorithm: "torchvision_batched",
          torchvisionDevice: "cpu",
          compareInDouble: true,
          pixelOffset: 0,
        });
        assert.deepStrictEqual(Array.from(keep), Array.from(z.get(key)!.data as BigInt64Array, Number));
      });
    }
  });
});
