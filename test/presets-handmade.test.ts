/**
 * Each preset on tiny scenes whose expected detections are derived by hand from SPEC.md's formulas:
 * a few anchors, boxes and scores small enough to compute exactly, ties at the score threshold,
 * IoU exactly at the NMS threshold, boxes at the image (or canvas) border. Run on every backend
 * present here (js, cpu; cuda on a GPU machine).
 */
import * as assert from "assert";

import { HeadOutputs } from "../kernel/postprocess/heads";
import { scene, thresholdTie } from "./handmade";
import { BackendName, availableBackends, createPostprocessor } from "../kernel/postprocess/postprocessor";
import { PostprocessConfig, PresetName } from "../kernel/postprocess/presets";

const f = Math.fround;

/** SPEC 1(3) / 2(3), weights 1, step by step in f32. */
function specDecode(a: number[], d: number[]): number[] {
  const w = f(a[2] - a[0]);
  const h = f(a[3] - a[1]);
  const cx = f(a[0] + f(0.5 * w));
  const cy = f(a[1] + f(0.5 * h));
  const px = f(f(d[0] * w) + cx);
  const py = f(f(d[1] * h) + cy);
  const pw = f(f(Math.exp(d[2])) * w);
  const ph = f(f(Math.exp(d[3])) * h);
  return [f(px - f(0.5 * pw)), f(py - f(0.5 * ph)), f(px + f(0.5 * pw)), f(py + f(0.5 * ph))];
}

/** SPEC 2(2): Detectron2's cell anchor in f64, each corner rounded once to f32. */
function specCellD2(size: number, ratio: number): number[] {
  const w = Math.sqrt((size * size) / ratio);
  const h = ratio * w;
  return [f(-w / 2), f(-h / 2), f(w / 2), f(h / 2)];
}

const TV_LEVELS: [number, number][] = [[8, 8], [4, 4], [2, 2], [1, 1], [1, 1]]; // padded 64x64, /32
const OD_LEVELS: [number, number][] = [[16, 16], [8, 8], [4, 4], [2, 2], [1, 1]]; // padded 128x128, /128

function backends(): BackendName[] {
  return availableBackends().available;
}

async function detect(preset: PresetName, heads: HeadOutputs, extra: Partial<PostprocessConfig>, backend: BackendName) {
  const pp = createPostprocessor({ preset, ...extra }, { backend });
  const r = await pp.run(heads);
  await pp.dispose();
  const d = r.detections[0];
  return { boxes: Array.from(d.boxes), scores: Array.from(d.scores), labels: Array.from(d.labels), count: d.count };
}

for (const backend of backends()) {
  describe(`presets derived by hand (${backend})`, function () {
    describe("torchvision (SPEC 1)", function () {
      it("anchor (y 1, x 2, a 4) of P3, zero deltas: the anchor itself, clipped to the image", async function () {
        // a4 = ratio 1, size 40: (-20, -20, 20, 20); shift (x*8, y*8) = (16, 8) -> (-4, -12, 36, 28)
        // clip to the 64x64 image: (0, 0, 36, 28). score = sigmoid_f32(2).
        const h = scene(TV_LEVELS, 3, [64, 64], [{ level: 0, y: 1, x: 2, a: 4, label: 1, logit: 2 }]);
        const d = await detect("torchvision", h, {}, backend);
        assert.deepStrictEqual(d.boxes, [0, 0, 36, 28]);
        assert.deepStrictEqual(d.scores, [f(1 / f(1 + f(Math.exp(-2))))]);
        assert.deepStrictEqual(d.labels, [1]);
      });

      it("decode with weights 1 and the dw clamp, at the image border", async function () {
        // same anchor (-4, -12, 36, 28): w = h = 40, centre (16, 8)
        // dx 0.5, dy -0.25 -> centre (36, -2); dw = dh = 0 -> size 40: (16, -22, 56, 18) -> clip (16, 0, 56, 18)
        // dw = 10 is clamped to ln(1000/16): width 40 * exp(4.1351666) = 2500 -> x from -1214 to 1286 -> clip 0..64
        const h = scene(TV_LEVELS, 3, [64, 64], [
          { level: 0, y: 1, x: 2, a: 4, label: 0, logit: 3, deltas: [0.5, -0.25, 0, 0] },
          { level: 0, y: 1, x: 2, a: 4, label: 2, logit: 1, deltas: [0.5, -0.25, 0, 0] },
          { level: 0, y: 6, x: 6, a: 4, label: 1, logit: 2, deltas: [0, 0, 10, 0] },
        ]);
        const d = await detect("torchvision", h, {}, backend);
        assert.deepStrictEqual(d.labels, [0, 1, 2]);
        assert.deepStrictEqual(d.boxes.slice(0, 4), [16, 0, 56, 18]);
        // (6, 6): shift (48, 48); a4 -> (28, 28, 68, 68); width 40 -> 40*exp(clip) = 2500.0002 -> 0..64 after clip
        assert.deepStrictEqual(d.boxes.slice(4, 8), [0, 28, 64, 64]);
        assert.deepStrictEqual(d.boxes.slice(8, 12), [16, 0, 56, 18]);
      });

      it("score exactly at the threshold is not kept (strict >); the next f32 above is", async function () {
        const { at, above } = thresholdTie(0.05);
        const h = scene(TV_LEVELS, 2, [64, 64], [
          { level: 0, y: 0, x: 0, a: 4, label: 0, logit: at },
          { level: 0, y: 4, x: 4, a: 4, label: 1, logit: above },
        ]);
        const d = await detect("torchvision", h, {}, backend);
        assert.deepStrictEqual(d.labels, [1]);
        assert.ok(d.scores[0] > f(0.05));
      });

      it("NMS: IoU exactly 0.5 does not suppress (IoU > thr); above does; other classes never", async function () {
        // given anchors = boxes (zero deltas): A (0,0,10,10) 0.9; B (0,0,10,20): IoU 100/200 = 0.5 -> kept;
        // C (1,0,11,10): IoU with A 90/110 = 0.818 -> suppressed; D = A in class 1 -> kept
        const anchors = [[4, 0, 0, 10, 10], [13, 0, 0, 10, 20], [22, 1, 0, 11, 10], [31, 0, 0, 10, 10]];
        const rows = [4, 13, 22, 31].map((r) => ({ y: Math.floor(r / 9 / 8), x: Math.floor(r / 9) % 8, a: r % 9 }));
        const logits = [2.2, 1.5, 1.4, 2.0];
        const labels = [0, 0, 0, 1];
        const h = scene(TV_LEVELS, 2, [64, 64], rows.map((p, i) => ({ level: 0, ...p, label: labels[i], logit: logits[i] })), anchors);
        const d = await detect("torchvision", h, {}, backend);
        assert.deepStrictEqual(d.labels, [0, 1, 0]);
        assert.deepStrictEqual(d.boxes, [0, 0, 10, 10, 0, 0, 10, 10, 0, 0, 10, 20]);
        const capped = await detect("torchvision", h, { detections_per_img: 2 }, backend);
        assert.strictEqual(capped.count, 2);
        assert.deepStrictEqual(capped.labels, [0, 1]);
      });
    });

    describe("detectron2 (SPEC 2)", function () {
      it("cell anchors in f64 -> f32, size-outer order; no clip before NMS, clip and empty removal after", async function () {
        // P3 (0, 1): a0 = size 32, ratio 0.5: w = sqrt(1024/0.5) = 45.254834, h = 22.627417
        // (-22.627417, -11.313708, 22.627417, 11.313708) + shift 8 -> (-14.627417, -11.313708, 30.627417, 11.313708)
        // after NMS: clip to 64x64 -> (0, 0, 30.627417, 11.313708)
        // a box entirely above the image, (y 0, x 4, a 2: h 45.25 centred at 0, shifted up by dy -1):
        //   y2 = -0.0 ... < 0 -> clipped to height 0 -> removed after the cap
        const h = scene(TV_LEVELS, 2, [64, 64], [
          { level: 0, y: 0, x: 1, a: 0, label: 0, logit: 3 },
          { level: 0, y: 0, x: 4, a: 2, label: 1, logit: 2, deltas: [0, -1, 0, 0] },
        ]);
        const d = await detect("detectron2", h, {}, backend);
        assert.strictEqual(d.count, 1);
        const cell = specCellD2(32, 0.5);
        const anchor = [f(8 + cell[0]), f(0 + cell[1]), f(8 + cell[2]), f(0 + cell[3])];
        const box = specDecode(anchor, [0, 0, 0, 0]);
        assert.deepStrictEqual(d.boxes, [0, 0, box[2], box[3]]); // x1, y1 < 0 clipped after NMS
        assert.ok(Math.abs(box[2] - 30.627417) < 1e-5 && Math.abs(box[3] - 11.313708) < 1e-5);
        assert.deepStrictEqual(d.labels, [0]);
        const kept = await detect("detectron2", h, { remove_empty_boxes: false }, backend);
        assert.strictEqual(kept.count, 2);
        assert.strictEqual(kept.boxes[7], 0); // y2 clipped to 0: empty, kept when removal is off
      });

      it("boxes that overlap only outside the image still suppress each other (NMS before the clip)", async function () {
        // given anchors: A (-40, 0, -10, 30) and B (-38, 0, -8, 30): IoU 28*30 / (900 + 900 - 840) = 0.875
        // (unclipped) -> B suppressed; after NMS A is clipped to width 0 and removed.
        const anchors = [[4, -40, 0, -10, 30], [13, -38, 0, -8, 30]];
        const cells = [4, 13].map((r, i) => ({ level: 0, y: 0, x: Math.floor(r / 9), a: r % 9, label: 0, logit: i === 0 ? 3 : 2 }));
        const h = scene(TV_LEVELS, 1, [64, 64], cells, anchors);
        const d = await detect("detectron2", h, { remove_empty_boxes: false }, backend);
        assert.strictEqual(d.count, 1);
        assert.deepStrictEqual(d.boxes, [0, 0, 0, 30]);
      });
    });

    describe("odtk (SPEC 3)", function () {
      it("+1 convention and one-sided clamps to the padded canvas, in decode", async function () {
        // P3 (0, 0) a0 = scale 4, ratio 1: (-12, -12, 20, 20); zero deltas:
        // w = 20 - (-12) + 1 = 33, centre -12 + 16.5 = 4.5 -> (-12, -12, 20, 20) -> max(0, .) -> (0, 0, 20, 20)
        // P3 (15, 15): shift 120 -> (108, 108, 140, 140) -> min(x2, 16*8 - 1 = 127) -> (108, 108, 127, 127)
        const h = scene(OD_LEVELS, 2, [100, 100], [
          { level: 0, y: 0, x: 0, a: 0, label: 1, logit: 3 },
          { level: 0, y: 15, x: 15, a: 0, label: 0, logit: 2 },
        ]);
        const d = await detect("odtk", h, {}, backend);
        assert.deepStrictEqual(d.boxes, [0, 0, 20, 20, 108, 108, 127, 127]);
        assert.deepStrictEqual(d.labels, [1, 0]);
      });

      it("IoU with +1 suppresses where torchvision's IoU sits exactly at the threshold", async function () {
        // given anchors A (0,0,10,10), B (0,0,10,20); zero deltas keep them (+1 in and -1 out cancel):
        // +1 IoU = 11*11 / (121 + 231 - 121) = 121/231 = 0.5238 > 0.5 -> B suppressed (torchvision: 0.5, kept)
        const anchors = [[4, 0, 0, 10, 10], [13, 0, 0, 10, 20]];
        const cells = [4, 13].map((r, i) => ({ level: 0, y: 0, x: Math.floor(r / 9), a: r % 9, label: 0, logit: i === 0 ? 2 : 1 }));
        const od = await detect("odtk", scene(OD_LEVELS, 1, [100, 100], cells, anchors), {}, backend);
        assert.strictEqual(od.count, 1);
        const tv = await detect("torchvision", scene(TV_LEVELS, 1, [64, 64], cells, anchors), {}, backend);
        assert.strictEqual(tv.count, 2);
      });

      it("equal scores are ordered by ODTK's class-major flat index; probabilities input", async function () {
        // two candidates with the same score at P3: (y 0, x 5, a 0, class 1) and (y 3, x 0, a 0, class 0).
        // anchor-major order (row*K + k) puts (0,5) first (row 45 < row 432); ODTK's index
        // ((a*K + k)*H + y)*W + x puts class 0 first: (0*16 + 3)*16 + 0 = 48 < (1*16 + 0)*16 + 5 = 261.
        const cells = [
          { level: 0, y: 0, x: 5, a: 0, label: 1, logit: 0.3 },
          { level: 0, y: 3, x: 0, a: 0, label: 0, logit: 0.3 },
        ];
        const od = await detect("odtk", scene(OD_LEVELS, 2, [100, 100], cells), {}, backend);
        assert.deepStrictEqual(od.labels, [0, 1]);
        const am = await detect("odtk", scene(OD_LEVELS, 2, [100, 100], cells), { candidate_order: "anchor_major" }, backend);
        assert.deepStrictEqual(am.labels, [1, 0]);
        // probabilities in: the head already holds scores; 0.3 > 0.05 kept as is
        const probs = await detect("odtk", scene(OD_LEVELS, 2, [100, 100], cells), { score_input: "probabilities" }, backend);
        assert.deepStrictEqual(probs.scores, [f(0.3), f(0.3)]);
      });
    });
  });
}
