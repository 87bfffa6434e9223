/**
 * Bad inputs: each is a clear error naming what was expected and what was received, and the
 * Postprocessor (and the process) keeps working afterwards. NaN / -inf logits are never selected and
 * +inf scores 1.0, as torchvision computes them; a NaN delta of a selected candidate is an error.
 */
import * as assert from "assert";

import { loadNative } from "../kernel/native";
import { toNativeParams, resolveConfig } from "../kernel/postprocess/config";
import { datasetFromArrays } from "../kernel/postprocess/dataset";
import { HeadOutputs } from "../kernel/postprocess/heads";
import { ndarray } from "../kernel/postprocess/ndarray";
import { createPostprocessor } from "../kernel/postprocess/postprocessor";
import { hostBackends } from "./helpers";

// 64x64 image: levels 8x8, 4x4, 2x2, 1x1, 1x1 -> (64 + 16 + 4 + 1 + 1) * 9 = 774 anchors.
const HWA = 774;
const K = 3;

function tiny(fill = -10): { cls: Float32Array; box: Float32Array; heads: () => HeadOutputs } {
  const cls = new Float32Array(HWA * K).fill(fill);
  const box = new Float32Array(HWA * 4);
  return {
    cls,
    box,
    heads: () => ({
      cls_logits: ndarray("float32", [1, HWA, K], cls),
      bbox_regression: ndarray("float32", [1, HWA, 4], box),
      image_sizes: [[64, 64]],
    }),
  };
}

const shapeError = (re: RegExp) => (e: Error & { code?: string }) => e.code === "ERR_RK_SHAPE" && re.test(e.message);

describe("bad input", function () {
  for (const backend of hostBackends()) {
    describe(`${backend} backend`, function () {
      const pp = createPostprocessor({ num_classes: K }, { backend });
      after(() => pp.dispose());

      it("wrong dtype: int32 logits", async function () {
        const h = tiny().heads();
        h.cls_logits = ndarray("int32", [1, HWA, K], new Int32Array(HWA * K));
        await assert.rejects(pp.run(h), (e: Error) => e instanceof TypeError && /Expected float32 \(Float32Array\) or float16 .* for cls_logits but received int32 \(Int32Array\)/.test(e.message));
      });

      it("length not matching the declared shape", async function () {
        const h = tiny().heads();
        h.cls_logits = { dtype: "float32", shape: [1, HWA, K], data: new Float32Array(HWA * K - 1) };
        await assert.rejects(pp.run(h), shapeError(new RegExp(`Expected ${HWA * K} elements for cls_logits of shape \\[1, ${HWA}, ${K}\\] but received ${HWA * K - 1}`)));
      });

      it("anchors count not matching the padded size", async function () {
        const h = tiny().heads();
        h.cls_logits = ndarray("float32", [1, 700, K], new Float32Array(700 * K));
        await assert.rejects(pp.run(h), shapeError(/Expected cls_logits of shape \[1, 774, K\] \(sum of H\*W\*A over feature sizes 8x8, 4x4, 2x2, 1x1, 1x1 with A = 9, padded size 64x64\) but received \[1, 700, 3\]/));
      });

      it("K = 0", async function () {
        const any = createPostprocessor({}, { backend });
        const h = tiny().heads();
        h.cls_logits = ndarray("float32", [1, HWA, 0], new Float32Array(0));
        await assert.rejects(any.run(h), shapeError(/Expected K >= 1 classes in cls_logits but received shape \[1, 774, 0\]/));
      });

      it("N = 0", async function () {
        const h = tiny().heads();
        h.cls_logits = ndarray("float32", [0, HWA, K], new Float32Array(0));
        await assert.rejects(pp.run(h), shapeError(/Expected at least one image \(N >= 1\) in cls_logits but received shape \[0, 774, 3\]/));
      });

      it("a class count different from num_classes", async function () {
        const h = tiny().heads();
        h.cls_logits = ndarray("float32", [1, HWA, 4], new Float32Array(HWA * 4));
        await assert.rejects(pp.run(h), shapeError(/Expected 3 classes \(num_classes\) but cls_logits has 4/));
      });

      it("image_sizes of the wrong count, and sizes beyond the padded size", async function () {
        const h = tiny().heads();
        h.image_sizes = [[64, 64], [64, 64]];
        await assert.rejects(pp.run(h), shapeError(/Expected 1 \(h, w\) rows for image_sizes \(one per image\) but received 2/));
        const h2 = tiny().heads();
        h2.padded_size = [64, 64];
        h2.image_sizes = [[65, 64]];
        await assert.rejects(pp.run(h2), shapeError(/Expected image_sizes\[0\] within the padded size 64x64 but received 65x64/));
      });

      it("no heads at all: null, undefined or a number for run() and runSync()", async function () {
        for (const bad of [null, undefined, 3]) {
          const re = new RegExp(`^Expected head outputs for run\\(\\) \\(a dataset, \\{cls_logits, bbox_regression, image_sizes\\}, or heads from upload\\(\\)\\) but received ${bad === null ? "null" : bad === undefined ? "undefined" : "number"}$`);
          await assert.rejects(pp.run(bad as unknown as HeadOutputs), (e: Error) => e instanceof TypeError && re.test(e.message));
          assert.throws(() => pp.runSync(bad as unknown as HeadOutputs), (e: Error) => e instanceof TypeError && re.test(e.message));
        }
      });

      it("a missing array in a dataset", function () {
        const arrays = new Map([["cls_logits", ndarray("float32", [1, HWA, K], new Float32Array(HWA * K))], ["bbox_regression", ndarray("float32", [1, HWA, 4], new Float32Array(HWA * 4))]]);
        assert.throws(() => datasetFromArrays(arrays, "x", "x.npz"), /Expected image_sizes \[N, 2\] in x\.npz but it is missing/);
      });

      it("NaN and -inf logits are never selected; +inf scores 1.0 (as torchvision)", async function () {
        const t = tiny();
        t.cls[0] = NaN;
        t.cls[1] = -Infinity;
        t.cls[5 * K + 2] = Infinity;
        const r = await pp.run(t.heads());
        assert.strictEqual(r.detections[0].count, 1);
        assert.strictEqual(r.detections[0].scores[0], 1);
        assert.strictEqual(r.detections[0].labels[0], 2);
      });

      it("a NaN delta of a selected candidate names the image, level and anchor", async function () {
        const t = tiny();
        t.cls[40 * K + 1] = 5;
        t.box[40 * 4 + 2] = NaN;
        await assert.rejects(pp.run(t.heads()), (e: Error & { code?: string }) =>
          e.code === "ERR_RK_NONFINITE" && /Expected finite bbox_regression for a selected candidate but received NaN at image 0, level P3, anchor row 40 \(class 1\)/.test(e.message),
        );
      });

      it("infinite deltas follow torchvision's arithmetic: dw clamped, dx clipped to the image", async function () {
        const t = tiny();
        t.cls[40 * K + 1] = 5;
        t.box.set([Infinity, -Infinity, Infinity, 0], 40 * 4);
        const r = await pp.run(t.heads());
        const b = Array.from(r.detections[0].boxes);
        assert.strictEqual(r.detections[0].count, 1);
        assert.ok(b.every(Number.isFinite), `finite box ${b}`);
        assert.deepStrictEqual([b[0], b[2]], [64, 64]);
      });

      it("keeps working after every error above", async function () {
        const t = tiny();
        t.cls[40 * K + 1] = 5;
        const r = await pp.run(t.heads());
        assert.strictEqual(r.detections[0].count, 1);
      });
    });
  }

  it("thresholds outside [0, 1] and non-integer counts are refused when the Postprocessor is built", function () {
    assert.throws(() => createPostprocessor({ score_thresh: 1.01 }), /Expected a number in \[0, 1\] for score_thresh but received 1\.01/);
    assert.throws(() => createPostprocessor({ nms_thresh: -1 }), RangeError);
    assert.throws(() => createPostprocessor({ detections_per_img: 2.5 }), /Expected an integer in \[1, 100000\] for detections_per_img but received 2\.5/);
    assert.throws(() => createPostprocessor({}, { threads: 0 }), /Expected an integer in \[1, 1024\] for threads but received 0/);
    assert.throws(() => createPostprocessor({}, { backend: "gpu" as never }), /Expected one of "auto", "cpu", "cuda", "js" for backend but received "gpu"/);
  });

  it("the native binding type-checks what it receives even without the TS layer", function () {
    const addon = loadNative();
    if (!addon) this.skip();
    const params = toNativeParams(resolveConfig({}), 3);
    assert.throws(() => new addon!.Postprocessor({ ...params, numClasses: "3" } as never), (e: Error & { code?: string }) => e instanceof TypeError && e.code === "ERR_RK_PARAM" && /numClasses/.test(e.message));
    assert.throws(() => new addon!.Postprocessor({ ...params, select: { ...params.select, scoreInput: "x" } } as never), /Expected one of "logits", "probabilities" for select\.scoreInput but received "x"/);
    const p = new addon!.Postprocessor(params, { backend: "cpu", threads: 1 });
    const inputs = {
      layout: "concatenated" as const,
      dtype: "float32" as const,
      batch: 1,
      numClasses: 3,
      anchorsPerLocation: 9,
      featureSizes: [[8, 8], [4, 4], [2, 2], [1, 1], [1, 1]] as [number, number][],
      paddedSize: [64, 64] as [number, number],
      cls: [new Float32Array(HWA * K - 3)],
      box: [new Float32Array(HWA * 4)],
      imageSizes: Int32Array.from([64, 64]),
    };
    assert.throws(() => p.runSync(inputs), (e: Error & { code?: string }) => e.code === "ERR_RK_SHAPE" && /Expected 2322 elements for cls_logits/.test(e.message));
    assert.throws(() => p.runSync({ ...inputs, cls: [new Uint16Array(HWA * K)] }), /Expected a Float32Array for cls_logits but received Uint16Array/);
    assert.throws(() => p.runSync({ ...inputs, cls: [new Float32Array(HWA * K)], featureSizes: [[8, 8]] }), /Expected 1728 elements for cls_logits \(from the declared shapes\) but received 2322/);
    const ok = p.runSync({ ...inputs, cls: [new Float32Array(HWA * K).fill(-9)] });
    assert.strictEqual(ok.counts[0], 0);
  });
});
