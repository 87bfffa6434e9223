/**
 * fp16 heads (Uint16Array of binary16 bits): every backend widens to f32 exactly and then follows the
 * f32 rules, so the oracle is the reference run on the widened values (SPEC "fp16 inputs").
 */
import * as assert from "assert";
import { spawnSync } from "child_process";

import { loadDataset } from "../kernel/postprocess/dataset";
import { NdArray, ndarray } from "../kernel/postprocess/ndarray";
import { createPostprocessor } from "../kernel/postprocess/postprocessor";
import { floatToHalf, halfToFloat } from "../kernel/postprocess/reference";
import { synthesize } from "../kernel/postprocess/synth";
import { goldenCases, goldenConfig, hostBackends, isBuiltPreset } from "./helpers";

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

  it("the SSE2 scans and NMS (RK_CPU_SIMD=sse2, as on a CPU without AVX2) give the reference's bits on f32 and fp16 heads", function () {
    if (!hostBackends().includes("cpu")) this.skip();
    this.timeout(300000);
    // A child process: the choice of SIMD path is made when the addon loads.
    const script = `
      const { createPostprocessor } = require(${JSON.stringify(require.resolve("../kernel/postprocess/postprocessor"))});
      const { loadDataset } = require(${JSON.stringify(require.resolve("../kernel/postprocess/dataset"))});
      const { synthesize } = require(${JSON.stringify(require.resolve("../kernel/postprocess/synth"))});
      const { toHalfHeads, normalizeHeads } = require(${JSON.stringify(require.resolve("../kernel/postprocess/heads"))});
      const { resolveConfig } = require(${JSON.stringify(require.resolve("../kernel/postprocess/config"))});
      const cases = JSON.parse(process.argv[1]);
      (async () => {
        const bad = [];
        const check = async (name, config, heads) => {
          const c = createPostprocessor(config, { backend: "cpu", threads: 2 });
          if (c.backend !== "cpu") throw new Error("no cpu backend in the child");
          const a = await c.run(heads);
          const b = await createPostprocessor(config, { backend: "js" }).run(heads);
          const same = ["boxes", "scores", "labels", "counts"].every((k) => a.padded[k].length === b.padded[k].length && a.padded[k].every((v, i) => Object.is(v, b.padded[k][i])));
          if (!same) bad.push(name);
        };
        for (const c of cases) {
          const ds = loadDataset(c.npz);
          const h = normalizeHeads(ds, resolveConfig(c.config));
          await check(c.name, c.config, h);
          await check(c.name + " fp16", c.config, toHalfHeads(h));
        }
        const dense = synthesize({ images: 2, size: [256, 320], classes: 20, bgMean: -3, seed: 9 });
        const h = normalizeHeads(dense, resolveConfig({ num_classes: 20 }));
        await check("dense", { num_classes: 20 }, h);
        await check("dense fp16", { num_classes: 20 }, toHalfHeads(h));
        console.log(JSON.stringify({ bad, checked: 2 * cases.length + 2 }));
      })().catch((e) => { console.error(e); process.exit(1); });`;
    const cases = goldenCases().filter((g) => isBuiltPreset(g.preset)).slice(0, 6).map((c) => ({ name: c.name, npz: c.npz, config: goldenConfig(c) }));
    const r = spawnSync(process.execPath, ["-e", script, JSON.stringify(cases)], { env: { ...process.env, RK_CPU_SIMD: "sse2" }, encoding: "utf8", maxBuffer: 16 << 20 });
    assert.strictEqual(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout.trim().split("\n").pop()!);
    assert.deepStrictEqual(out.bad, [], `differs from the reference with SSE2: ${out.bad.join(", ")}`);
    assert.strictEqual(out.checked, 2 * cases.length + 2);
  });

  it("synthetic fp16 heads (dense) agree across backends", async function () {
    const ds = synthesize({ images: 2, size: [256, 320], classes: 20, bgMean: -4, seed: 7, fp16: true });
    const results = await Promise.all(hostBackends().map((b) => createPostprocessor({}, { backend: b }).run(ds)));
    for (const r of results.slice(1)) {
      assert.deepStrictEqual(r.padded, results[0].padded);
    }
  });
});
