/**
 * fp16 heads (Uint16Array of binary16 bits): every backend widens to f32 exactly and then follows the
 * f32 rules, so the oracle is the reference run on the widened values (SPEC "fp16 inputs").
 */
import * as assert from "assert";

import { loadDataset } from "../kernel/postprocess/dataset";
import { NdArray, ndarray } from "../kernel/postprocess/ndarray";
import { createPostprocessor } from "../kernel/postprocess/postprocessor";
import { floatToHalf, halfToFloat } from "../kernel/postprocess/reference";
import { synthesize } from "../kernel/postprocess/synth";
import { goldenCases, goldenConfig, hostBackends } from "./helpers";

function toHalf(a: NdArray): { half: NdArray; widened: NdArray } {
  const src = a.data as Float32Array;
  const h = new Uint16Array(src.length);
  const w = new Float32Array(src.length);
  for (let i = 0; i < src.length; i++) {
    h[i] = floatToHalf(src[i]);
    w[i] = halfToFloat(h[i]);
  }
  return { half: ndarray("float16", a.shape, h), widened: ndarray("float32", a.shape, w) };
}

describe("fp16 inputs", function () {
  it("binary16 conversion is exact both ways on every finite half", function () {
    for (let h = 0; h < 65536; h++) {
      const v = halfToFloat(h);
      if (Number.isNaN(v)) continue;
      assert.strictEqual(floatToHalf(v), h === 0x8000 ? 0x8000 : h, `half ${h.toString(16)}`);
    }
    assert.strictEqual(floatToHalf(65520), 0x7c00); // rounds to +inf
    assert.strictEqual(floatToHalf(2 ** -25), 0); // ties to even at the bottom
  });

  const cases = goldenCases().filter((c) => ["tv_k80_b2_mixed", "d2_k20_b2_mixed", "odtk_k4_b1_dense"].includes(c.name));
  for (const c of cases) {
    for (const layout of ["concatenated", "per_level"] as const) {
      if (c.preset === "torchvision" && layout === "per_level") continue;
      it(`${c.name} (${layout}) as fp16: every backend equals the reference on the widened f32 values, bit for bit`, async function () {
        const ds = loadDataset(c.npz, { layout });
        const clsList = Array.isArray(ds.cls_logits) ? ds.cls_logits : [ds.cls_logits];
        const boxList = Array.isArray(ds.bbox_regression) ? ds.bbox_regression : [ds.bbox_regression];
        const cls = clsList.map(toHalf);
        const box = boxList.map(toHalf);
        const pick = (l: { half: NdArray; widened: NdArray }[], k: "half" | "widened") => (layout === "per_level" ? l.map((x) => x[k]) : l[0][k]);
        const half = { ...ds, cls_logits: pick(cls, "half"), bbox_regression: pick(box, "half") };
        const widened = { ...ds, cls_logits: pick(cls, "widened"), bbox_regression: pick(box, "widened") };
        const oracle = createPostprocessor(goldenConfig(c), { backend: "js" }).runSync(widened);
        assert.ok(oracle.detections.every((d) => d.count > 0));
        for (const backend of hostBackends()) {
          const r = await createPostprocessor(goldenConfig(c), { backend }).run(half);
          assert.deepStrictEqual(r.padded.counts, oracle.padded.counts, backend);
          assert.deepStrictEqual(r.padded.labels, oracle.padded.labels, backend);
          assert.deepStrictEqual(r.padded.scores, oracle.padded.scores, backend);
          assert.deepStrictEqual(r.padded.boxes, oracle.padded.boxes, backend);
        }
      });
    }
  }

  it("synthetic fp16 heads (dense) agree across backends", async function () {
    const ds = synthesize({ images: 2, size: [256, 320], classes: 20, bgMean: -4, seed: 7, fp16: true });
    const results = await Promise.all(hostBackends().map((b) => createPostprocessor({}, { backend: b }).run(ds)));
    for (const r of results.slice(1)) {
      assert.deepStrictEqual(r.padded, results[0].padded);
    }
  });
});
