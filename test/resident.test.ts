/**
 * Datasets resident on the GPU and the copy in from host arrays (issue 19): a loaded dataset's
 * heads are uploaded once and read in place by %run, %sweep, %tune and %optimize on cuda; the
 * copy from host arrays goes through a ring of pinned staging buffers (heads larger than the ring
 * wrap it several times). Both must give the bits of the cpu backend. GPU parts skip, with the
 * reason printed, where there is no usable device.
 */
import * as assert from "assert";

import { createPostprocessor } from "../kernel/postprocess/postprocessor";
import { HeadOutputs, normalizeHeads, toHalfHeads } from "../kernel/postprocess/heads";
import { NdArray } from "../kernel/postprocess/ndarray";
import { resolveConfig } from "../kernel/postprocess/config";
import { synthesize } from "../kernel/postprocess/synth";
import { Workbench } from "../kernel/postprocess/workbench";
import { assertSameBits, cudaUnavailableReason, toPerLevel } from "./helpers";

const assertSame = assertSameBits;

describe("resident datasets and the copy in from host", function () {
  this.timeout(300000);

  it("on the cpu backend, latency() reads the host arrays (nothing is uploaded)", async function () {
    const wb = new Workbench();
    const ds = wb.addDataset("small", synthesize({ images: 1, size: [256, 320], classes: 8, seed: 2 }));
    wb.setConfig({ num_classes: 8 });
    const pp = createPostprocessor(wb.config, { backend: "cpu" });
    const { stats } = await wb.latency(pp, ds, 2);
    assert.strictEqual(stats.resident, undefined);
    assert.strictEqual(wb.residentBytes(), 0);
    await pp.dispose();
  });

  describe("on the GPU", function () {
    const reason = cudaUnavailableReason();
    before(function () {
      if (reason) {
        console.log(`      (resident-dataset GPU tests skipped: ${reason})`);
        this.skip();
      }
    });

    it("heads larger than the pinned staging ring, from host arrays, equal device-resident heads and the cpu backend (f32 and f16, both layouts)", async function () {
      // 2 images at 800x1333, K = 80: 128 MB of f32 heads, four times the 32 MB ring.
      const ds = synthesize({ images: 2, size: [800, 1333], classes: 80, bgMean: -5, seed: 11 });
      const config = resolveConfig({ num_classes: 80 });
      const gpu = createPostprocessor(config, { backend: "cuda" });
      const cpu = createPostprocessor(config, { backend: "cpu" });
      const h32 = normalizeHeads(ds, config);
      for (const heads of [h32, toHalfHeads(h32)]) {
        const want = await cpu.run(heads);
        for (let round = 0; round < 3; round++) assertSame(await gpu.run(heads), want, `${heads.dtype} from host, round ${round}`);
        const dev = gpu.upload(heads);
        try {
          assertSame(await gpu.run(dev), want, `${heads.dtype} device-resident`);
        } finally {
          dev.free();
        }
      }
      // Per-level arrays: ten copies of sizes that are not multiples of a chunk or of 64 bytes.
      const flat = synthesize({ images: 3, size: [333, 517], classes: 7, bgMean: -3, seed: 12 });
      const c7 = resolveConfig({ num_classes: 7 });
      const nh = normalizeHeads(flat, c7);
      const odd: HeadOutputs = {
        cls_logits: toPerLevel(flat.cls_logits as NdArray, nh.featureSizes, nh.anchorsPerLocation),
        bbox_regression: toPerLevel(flat.bbox_regression as NdArray, nh.featureSizes, nh.anchorsPerLocation),
        image_sizes: flat.image_sizes,
        padded_size: nh.paddedSize,
      };
      const g7 = createPostprocessor(c7, { backend: "cuda" });
      const p7 = createPostprocessor(c7, { backend: "cpu" });
      assertSame(await g7.run(odd), await p7.run(odd), "per-level heads from host");
      for (const pp of [gpu, cpu, g7, p7]) await pp.dispose();
    });

    it("a loaded dataset is uploaded once and reused by latency(), %sweep and %optimize; replacing it frees the copy", async function () {
      const wb = new Workbench();
      wb.setConfig({ num_classes: 80 });
      const ds = wb.addDataset("val", synthesize({ images: 2, size: [512, 640], classes: 80, seed: 4 }));
      const gpu = createPostprocessor(wb.config, { backend: "cuda" });
      const cpu = createPostprocessor(wb.config, { backend: "cpu" });
      // From host arrays, each run copies the heads in; from the resident copy only the image sizes go in.
      const fromHost = await gpu.run(normalizeHeads(ds, wb.config));
      const first = await wb.latency(gpu, ds, 3);
      assert.ok(first.stats.resident && first.stats.resident.uploadMs > 0, "the first call uploads");
      assert.ok(first.stats.uploadMs < fromHost.timings.uploadMs / 5, `copy in per run ${first.stats.uploadMs} ms, from host ${fromHost.timings.uploadMs} ms`);
      const held = wb.residentBytes();
      assert.ok(held > 10e6, `resident bytes ${held}`);
      assert.strictEqual(wb.datasetRows().find((r) => r.name === "val")!.gpuMb, held / 1e6, "%datasets shows the GPU copy");
      const second = await wb.latency(gpu, ds, 3);
      assert.deepStrictEqual(second.stats.resident, { uploadMs: 0 }, "the second call reuses the copy");
      assert.strictEqual(wb.residentBytes(), held);
      assertSame(second.result, (await wb.latency(cpu, ds, 1)).result, "resident cuda vs cpu");
      // A sweep on cuda: every point reads the same resident copy.
      const sweep = await wb.sweep({ score_thresh: [0.05, 0.3] }, { backend: "cuda", metric: "detections", iterations: 2 });
      assert.strictEqual(sweep.rows.length, 2);
      assert.strictEqual(wb.residentBytes(), held, "the sweep uploaded nothing more");
      // %optimize's device-resident rows too (fp16 adds its own copy of the half heads).
      const report = await wb.optimize({ backend: "cuda", iterations: 2 });
      const dev = report.rows.filter((r) => r.deviceResident && !r.unavailable);
      assert.ok(dev.length >= 1 && dev.every((r) => r.correct), JSON.stringify(report.rows.map((r) => [r.name, r.correct, r.mismatch])));
      assert.ok(wb.residentBytes() >= held);
      // Replacing the dataset under its name frees its copies.
      wb.addDataset("val", synthesize({ images: 1, size: [256, 320], classes: 80, seed: 5 }));
      assert.strictEqual(wb.residentBytes(), 0);
      await report.postprocessor?.dispose();
      await gpu.dispose();
      await cpu.dispose();
    });
  });
});
