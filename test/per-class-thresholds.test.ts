/**
 * score_thresh_per_class: one strict `score > f32(t_c)` per class at the point score_thresh applies,
 * on every backend present (js, cpu; cuda on a GPU machine), derived by hand on tiny scenes (a score
 * exactly at a class's threshold is dropped, the next f32 above it kept); the map form; per-class
 * thresholds all equal to score_thresh change nothing on any golden case; the candidate cache; the
 * TensorRT plugin field written and read back by the plugin's own parser; errors naming the field.
 */
import * as assert from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

import { loadNative } from "../kernel/native";
import { buildCacheFromHeads } from "./cache-helpers";
import { cacheBatches, checkConfigForCache } from "../kernel/postprocess/cache";
import { resolveConfig, toNativeParams } from "../kernel/postprocess/config";
import { loadDataset } from "../kernel/postprocess/dataset";
import { normalizeHeads, toHalfHeads } from "../kernel/postprocess/heads";
import { pluginExport } from "../kernel/postprocess/plugin";
import { availableBackends, BackendName, createPostprocessor } from "../kernel/postprocess/postprocessor";
import { PostprocessConfig } from "../kernel/postprocess/presets";
import { sigmoidF32 } from "../kernel/postprocess/reference";
import { scene, thresholdTie } from "./handmade";
import { goldenCases, goldenConfig, isBuiltPreset } from "./helpers";

const f = Math.fround;
const TV_LEVELS: [number, number][] = [[8, 8], [4, 4], [2, 2], [1, 1], [1, 1]]; // padded 64x64

/** Anchor a4 (ratio 1, size 40) of P3 at (y, x), zero deltas, clipped to the 64x64 image (SPEC 1(2), 1(6)). */
const box = (y: number, x: number) => [Math.max(0, 8 * x - 20), Math.max(0, 8 * y - 20), Math.min(64, 8 * x + 20), Math.min(64, 8 * y + 20)];

// Thresholds 0.3, 0.6, 0.9 for classes 0, 1, 2. Per class: a score exactly at its threshold
// (dropped), the next f32 above it (kept), and others above or below.
const T = [0.3, 0.6, 0.9];
const ties = T.map(thresholdTie);
const cells = [
  { y: 0, x: 2, label: 0, logit: ties[0].at }, //   0.3 exactly: dropped
  { y: 1, x: 1, label: 0, logit: ties[0].above }, // kept
  { y: 1, x: 5, label: 0, logit: 0 }, //             0.5 > 0.3: kept
  { y: 5, x: 1, label: 0, logit: 5 }, //             kept
  { y: 3, x: 3, label: 1, logit: ties[1].at }, //    0.6 exactly: dropped
  { y: 3, x: 6, label: 1, logit: ties[1].above }, // kept
  { y: 6, x: 3, label: 1, logit: 0 }, //             0.5 < 0.6: dropped
  { y: 6, x: 6, label: 1, logit: 4.5 }, //           kept
  { y: 0, x: 7, label: 2, logit: ties[2].at }, //    0.9 exactly: dropped
  { y: 7, x: 0, label: 2, logit: ties[2].above }, // kept
  { y: 7, x: 7, label: 2, logit: Math.log(0.8 / 0.2) }, // 0.8 < 0.9: dropped
  { y: 4, x: 4, label: 2, logit: 4 }, //             kept
];
const heads = () => scene(TV_LEVELS, 3, [64, 64], cells.map((c) => ({ level: 0, a: 4, ...c })));

/** The kept cells by hand: score descending (no ties among them). */
function expected(kept: typeof cells) {
  const rows = kept.map((c) => ({ score: sigmoidF32(f(c.logit)), label: c.label, box: box(c.y, c.x) })).sort((a, b) => b.score - a.score);
  return { scores: rows.map((r) => r.score), labels: rows.map((r) => r.label), boxes: rows.flatMap((r) => r.box) };
}
const KEPT = [1, 2, 3, 5, 7, 9, 11].map((i) => cells[i]);

async function detect(config: Partial<PostprocessConfig>, backend: BackendName) {
  const pp = createPostprocessor(config, { backend });
  const r = await pp.run(heads());
  await pp.dispose();
  const d = r.detections[0];
  return { scores: Array.from(d.scores), labels: Array.from(d.labels), boxes: Array.from(d.boxes) };
}

describe("per-class score thresholds", function () {
  this.timeout(300000);
  for (const backend of availableBackends().available) {
    it(`${backend}: by hand, thresholds [0.3, 0.6, 0.9]: a score at a class's threshold is dropped, the next f32 above it kept`, async function () {
      assert.deepStrictEqual(await detect({ score_thresh: 0.05, score_thresh_per_class: T }, backend), expected(KEPT));
    });

    it(`${backend}: the map form {1: 0.6, 2: 0.9} with score_thresh 0.3 for the rest gives the same; without it, score_thresh alone`, async function () {
      assert.deepStrictEqual(await detect({ score_thresh: 0.3, score_thresh_per_class: { 1: 0.6, 2: 0.9 } }, backend), expected(KEPT));
      // Unset: 0.3 for every class keeps class 1's 0.5, its tie at 0.6 and class 2's 0.8 and tie.
      const uniform = cells.filter((c) => sigmoidF32(f(c.logit)) > f(0.3));
      assert.deepStrictEqual(await detect({ score_thresh: 0.3 }, backend), expected(uniform));
    });

    it(`${backend}: detectron2 and odtk presets apply them at the same point (labels and scores; NMS off: their anchors overlap differently)`, async function () {
      for (const preset of ["detectron2", "odtk"] as const) {
        const got = await detect({ preset, score_thresh_per_class: T, nms_thresh: 1 }, backend);
        const want = expected(KEPT);
        assert.deepStrictEqual([got.labels, got.scores], [want.labels, want.scores], preset);
      }
    });
  }

  it("thresholds all equal to score_thresh change nothing: every golden case, fp32 and fp16, every backend", async function () {
    for (const c of goldenCases().filter((g) => isBuiltPreset(g.preset))) {
      const gc = goldenConfig(c);
      const K = c.meta.num_classes as number;
      const ds = loadDataset(c.npz);
      for (const backend of availableBackends().available) {
        for (const half of [false, true]) {
          const h = half ? toHalfHeads(normalizeHeads(ds, resolveConfig(gc))) : ds;
          const a = await createPostprocessor(gc, { backend }).run(h);
          const b = await createPostprocessor({ ...gc, score_thresh_per_class: new Array(K).fill(gc.score_thresh) }, { backend }).run(h);
          assert.deepStrictEqual([Array.from(b.padded.counts), Array.from(b.padded.scores), Array.from(b.padded.boxes), Array.from(b.padded.labels)],
            [Array.from(a.padded.counts), Array.from(a.padded.scores), Array.from(a.padded.boxes), Array.from(a.padded.labels)], `${c.name} ${backend} ${half ? "fp16" : "fp32"}`);
        }
      }
    }
  });

  it("a candidate cache serves per-class thresholds within its bound exactly, and names the class below it", async function () {
    const c = goldenCases().find((g) => g.name === "tv_k80_b2_mixed")!;
    const gc = goldenConfig(c);
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "rk-perclass-"));
    try {
      const config = resolveConfig(gc);
      const h = normalizeHeads(loadDataset(c.npz), config);
      // max_topk above every level's candidates: no list is cut, so any class thresholds are served
      // (a cut list is checked in test/candidate-cache.test.ts).
      const cache = buildCacheFromHeads(path.join(tmp, "c"), h, config, { minScore: 0.05, maxTopk: 100000 });
      const per = Array.from({ length: 80 }, (_, k) => 0.05 + (k % 7) * 0.05);
      const point = resolveConfig({ ...gc, score_thresh_per_class: per });
      for (const backend of availableBackends().available) {
        const pp = createPostprocessor(point, { backend });
        const a = await pp.run(h);
        const b = await pp.run(cacheBatches(cache)[0]);
        assert.deepStrictEqual([Array.from(b.padded.counts), Array.from(b.padded.scores), Array.from(b.padded.boxes)], [Array.from(a.padded.counts), Array.from(a.padded.scores), Array.from(a.padded.boxes)], backend);
        assert.ok(a.padded.counts[0] > 0);
      }
      assert.throws(() => checkConfigForCache(resolveConfig({ ...gc, score_thresh_per_class: { 3: 0.01 } }), cache), /Expected every score_thresh_per_class >= 0\.05 .* but received 0\.0099999\d* for class 3/);
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });

  it("the TensorRT plugin field: exported with the config, read back by the plugin's parser, checked against K", function () {
    const addon = loadNative();
    if (!addon) this.skip();
    const config = resolveConfig({ score_thresh_per_class: T });
    const params = toNativeParams(config, 3);
    assert.deepStrictEqual(params.select.classThresh, T.map(f));
    assert.strictEqual(params.select.scoreThresh, f(0.3));
    const fields = addon!.pluginFields("postprocess", { params, preset: "torchvision", layout: "per_level", paddedSize: [64, 64] });
    const field = fields.find((x) => x.name === "score_thresh_per_class");
    assert.ok(field && field.type === "float32", "the field is written, as float32");
    const back = addon!.parsePluginFields("postprocess", fields);
    assert.deepStrictEqual(back.params.select.classThresh, T.map(f));
    assert.strictEqual(back.params.select.scoreThresh, f(0.3));
    const exp = pluginExport(config, heads());
    assert.ok(exp.fields.some((x) => x.name === "score_thresh_per_class"), "--export-plugin carries it");
    // With num_classes in the fields (written for a known K), the count is checked by the parser;
    // without it, by the plugin when it sees the class head (onShapeChange).
    assert.ok(fields.some((x) => x.name === "num_classes"));
    const wrong = fields.map((x) => (x.name === "score_thresh_per_class" ? { ...x, value: [0.3, 0.6] } : x));
    assert.throws(() => addon!.parsePluginFields("postprocess", wrong), /plugin field "score_thresh_per_class": expected 3 numbers \(num_classes\) but received 2 numbers/);
  });

  it("errors name the field, the expected value and what was received", async function () {
    assert.throws(() => resolveConfig({ score_thresh_per_class: [0.3, 1.5] }), /Expected a number in \[0, 1\] for score_thresh_per_class\[1\] but received 1\.5/);
    assert.throws(() => resolveConfig({ score_thresh_per_class: { cat: 0.3 } as never }), /Expected labels that are integers in \[0, 99999\] for score_thresh_per_class but received "\\"cat\\""/);
    assert.throws(() => resolveConfig({ score_thresh_per_class: "0.3" as never }), /Expected null, an array of numbers in \[0, 1\] \(one per class\), or a map from labels to numbers in \[0, 1\] for score_thresh_per_class but received "0\.3"/);
    for (const backend of availableBackends().available) {
      const pp = createPostprocessor({ score_thresh_per_class: [0.3, 0.6] }, { backend });
      await assert.rejects(pp.run(heads()), /Expected 3 thresholds \(one per class of the data\) for score_thresh_per_class but received 2$/);
      const pp2 = createPostprocessor({ score_thresh_per_class: { 5: 0.3 } }, { backend });
      await assert.rejects(pp2.run(heads()), /Expected labels in \[0, 2\] \(the data has 3 classes\) for score_thresh_per_class but received "label 5"/);
    }
  });
});
