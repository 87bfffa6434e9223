/** Output forms: per-image views and the padded [N, D, ...] + counts form with zero padding rows. */
import * as assert from "assert";

import { loadDataset } from "../kernel/postprocess/dataset";
import { createPostprocessor } from "../kernel/postprocess/postprocessor";
import { goldenCases, goldenConfig, hostBackends } from "./helpers";

describe("padded output", function () {
  const c = goldenCases().find((x) => x.name === "d2_k20_b2_mixed")!;
  for (const backend of hostBackends()) {
    it(`${backend}: [N, D, 4] boxes, [N, D] scores and labels, counts; rows past the count are zeros`, async function () {
      const ds = loadDataset(c.npz);
      const r = await createPostprocessor(goldenConfig(c), { backend }).run(ds);
      const D = c.meta.detections_per_img as number;
      const { padded } = r;
      assert.strictEqual(padded.maxDetections, D);
      assert.strictEqual(padded.boxes.length, 2 * D * 4);
      assert.strictEqual(padded.scores.length, 2 * D);
      assert.strictEqual(padded.labels.length, 2 * D);
      assert.deepStrictEqual(Array.from(padded.counts), [48, 44]); // Detectron2 drops empty boxes after the cap of 50
      for (let n = 0; n < 2; n++) {
        const count = padded.counts[n];
        assert.ok(padded.scores.subarray(n * D + count, (n + 1) * D).every((v) => v === 0));
        assert.ok(padded.labels.subarray(n * D + count, (n + 1) * D).every((v) => v === 0));
        assert.ok(padded.boxes.subarray((n * D + count) * 4, (n + 1) * D * 4).every((v) => v === 0));
        // the per-image views share memory with the padded arrays
        const d = r.detections[n];
        assert.strictEqual(d.count, count);
        assert.strictEqual(d.boxes.buffer, padded.boxes.buffer);
        assert.strictEqual(d.boxes.length, count * 4);
        assert.deepStrictEqual(Array.from(d.scores), Array.from(padded.scores.subarray(n * D, n * D + count)));
      }
    });
  }
});
