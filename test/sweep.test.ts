/**
 * %sweep's shared matching: points that differ only in score_thresh run in ascending threshold, and
 * a point whose detections are exactly a lower threshold's above its own takes its COCO metrics
 * from that point's matching. The rows must be the ones evaluating every point on its own gives,
 * on a candidate cache and on heads, for each preset, and with per-class thresholds (never shared).
 */
import * as assert from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

import { Workbench } from "../kernel/postprocess/workbench";

describe("%sweep: points of one group share their COCO matching, with the same rows", function () {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "rk-sweep-"));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  const both = async (wb: Workbench, axes: Record<string, unknown[]>) => {
    const shared = await wb.sweep(axes, { data: "val", iterations: 1 });
    const alone = await wb.sweep(axes, { data: "val", iterations: 1, shareMatching: false });
    assert.strictEqual(alone.evalShared, 0);
    assert.deepStrictEqual(shared.rows.map((r) => r.values), alone.rows.map((r) => r.values), "rows in grid order");
    for (const metric of ["metric", "detections"] as const) {
      assert.deepStrictEqual(shared.rows.map((r) => r[metric]), alone.rows.map((r) => r[metric]), metric);
    }
    return shared;
  };

  it("a candidate cache (5 x 2 grid, thresholds listed out of order): 8 of 10 points shared, same AP", async function () {
    const wb = new Workbench();
    wb.synthCache("val", path.join(dir, "c"), { images: 40, density: 0.02, seed: 3 });
    const r = await both(wb, { nms_thresh: [0.5, 0.3], score_thresh: [0.3, 0.05, 0.95, 0.1, 0.9] });
    assert.strictEqual(r.evalShared, 8);
    // AP moves with the thresholds: the shared rows are not all one number.
    assert.ok(new Set(r.rows.map((x) => x.metric)).size > 2);
    const ap = await wb.sweep({ score_thresh: [0.3, 0.05, 0.95], nms_thresh: [0.5, 0.3] }, { data: "val", iterations: 1, metric: "AP75" });
    assert.ok(ap.evalShared >= 1);
  });

  for (const preset of ["torchvision", "detectron2", "odtk"]) {
    it(`heads of the ${preset} preset (3 x 2 grid): same rows shared or not`, async function () {
      const wb = new Workbench();
      wb.setConfig({ preset });
      wb.synth("val", { images: 3, size: [256, 320], classes: 6, density: 0.05, seed: 11 });
      const r = await both(wb, { score_thresh: [0.05, 0.4, 0.8], detections_per_img: [100, 10] });
      assert.ok(r.evalShared >= 2, `shared ${r.evalShared}`);
    });
  }

  it("per-class thresholds: each point matched on its own, the same rows", async function () {
    const wb = new Workbench();
    wb.synthCache("val", path.join(dir, "p"), { images: 20, density: 0.02, seed: 5 });
    // top-k 100 of the 1000 the cache keeps per level: levels it cut still hold enough that pass.
    wb.setConfig({ score_thresh_per_class: { 0: 0.4, 3: 0.6 }, topk_candidates: 100 });
    const r = await both(wb, { score_thresh: [0.05, 0.2, 0.3] });
    assert.strictEqual(r.evalShared, 0);
  });
});
