/** Anchor generation per preset: the SPEC's worked examples and the frameworks' own anchors in the goldens. */
import * as assert from "assert";

import { loadNative } from "../kernel/native";
import { resolveConfig, toNativeParams } from "../kernel/postprocess/config";
import { loadDataset } from "../kernel/postprocess/dataset";
import { fpnFeatureSizes, normalizeHeads } from "../kernel/postprocess/heads";
import { generateAnchors } from "../kernel/postprocess/reference";
import { goldenCases, goldenConfig, isBuiltPreset } from "./helpers";

function rows(a: Float32Array, first: number, count: number): number[][] {
  const out: number[][] = [];
  for (let i = first; i < first + count; i++) out.push(Array.from(a.subarray(i * 4, i * 4 + 4)));
  return out;
}

function close(got: number[][], want: number[][], tol: number): void {
  assert.strictEqual(got.length, want.length);
  got.forEach((r, i) => r.forEach((v, j) => assert.ok(Math.abs(v - want[i][j]) <= tol, `row ${i} col ${j}: ${v} vs ${want[i][j]}`)));
}

describe("anchors", function () {
  it("torchvision P3 cell anchors and (y 0, x 1) match SPEC 1(2)", function () {
    const c = resolveConfig({ preset: "torchvision" });
    const a = generateAnchors(c, fpnFeatureSizes([800, 1344], 5), [800, 1344]);
    assert.deepStrictEqual(rows(a, 0, 9), [
      [-23, -11, 23, 11], [-28, -14, 28, 14], [-35, -18, 35, 18],
      [-16, -16, 16, 16], [-20, -20, 20, 20], [-25, -25, 25, 25],
      [-11, -23, 11, 23], [-14, -28, 14, 28], [-18, -35, 18, 35],
    ]);
    assert.deepStrictEqual(rows(a, 9, 1), [[-15, -11, 31, 11]]);
  });

  it("torchvision strides come from the padded size: 800 rows at P6 (13 rows) give stride 61", function () {
    const c = resolveConfig({ preset: "torchvision" });
    const fs = fpnFeatureSizes([800, 1344], 5);
    assert.deepStrictEqual(fs[3], [13, 21]);
    const a = generateAnchors(c, fs, [800, 1344]);
    const p6 = fs.slice(0, 3).reduce((s, [h, w]) => s + h * w * 9, 0);
    // row (y 1, x 0, a 0) of P6: shift y = 1 * (800 // 13) = 61
    const cell = rows(a, p6, 1)[0];
    const next = rows(a, p6 + 21 * 9, 1)[0];
    assert.strictEqual(next[1] - cell[1], 61);
  });

  it("detectron2 P3 cell anchors match SPEC 2(2)", function () {
    const c = resolveConfig({ preset: "detectron2" });
    const a = generateAnchors(c, fpnFeatureSizes([256, 320], 5), [256, 320]);
    close(rows(a, 0, 5), [
      [-22.627417, -11.313708, 22.627417, 11.313708],
      [-16, -16, 16, 16],
      [-11.313708, -22.627417, 11.313708, 22.627417],
      [-28.508759, -14.254379, 28.508759, 14.254379],
      [-20.158737, -20.158737, 20.158737, 20.158737],
    ], 1e-5);
    close(rows(a, 9, 1), [[-14.627417, -11.313708, 30.627417, 11.313708]], 1e-5);
  });

  it("odtk P3 cell anchors match SPEC 3(2)", function () {
    const c = resolveConfig({ preset: "odtk" });
    const a = generateAnchors(c, fpnFeatureSizes([256, 384], 5), [256, 384]);
    close(rows(a, 0, 4), [
      [-12, -12, 20, 20],
      [-7.3137083, -18.627417, 15.313708, 26.627417],
      [-18.627417, -7.3137083, 26.627417, 15.313708],
      [-16.158737, -16.158737, 24.158737, 24.158737],
    ], 1e-5);
  });

  for (const c of goldenCases()) {
    if (!isBuiltPreset(c.preset)) continue;
    it(`${c.name}: generated anchors equal the framework's, bit for bit (js and native)`, function () {
      const ds = loadDataset(c.npz);
      if (!ds.anchors) this.skip();
      const config = resolveConfig(goldenConfig(c));
      const heads = normalizeHeads(ds, config);
      const want = ds.anchors!.data as Float32Array;
      const per = want.length / heads.batch;
      const js = generateAnchors(config, heads.featureSizes, heads.paddedSize);
      assert.strictEqual(js.length, per);
      const firstDiff = js.findIndex((v, i) => v !== want[i]);
      assert.strictEqual(firstDiff, -1, `first difference at ${firstDiff}: ${js[firstDiff]} vs ${want[firstDiff]}`);
      const addon = loadNative();
      if (addon) {
        const native = addon.anchors(toNativeParams(config, heads.numClasses), { featureSizes: heads.featureSizes, paddedSize: heads.paddedSize });
        assert.deepStrictEqual(native, js);
      }
    });
  }
});
