/**
 * COCO box evaluation (kernel/postprocess/eval.ts) on hand-made cases whose metrics follow from
 * pycocotools' definitions by hand: perfect detections, IoU exactly between thresholds, a false
 * positive ranked first, a missed object, maxDets caps, area ranges, ignored categories.
 */
import * as assert from "assert";

import { accumulateCoco, evaluateCocoBoxes, matchCoco } from "../kernel/eval/coco";
import { detectionsToCoco, evaluateCoco, EvalImage, gtFromArrays } from "../kernel/postprocess/eval";

const img = (gt: number[][], gl: number[], dt: number[][], ds: number[], dl: number[]): EvalImage => ({
  gt: { boxes: gt.flat(), labels: gl },
  dt: { boxes: dt.flat(), scores: ds, labels: dl },
});

const close = (a: number, b: number, what: string) => assert.ok(Math.abs(a - b) < 1e-12, `${what}: ${a}, expected ${b}`);

describe("COCO evaluation (pycocotools definitions)", function () {
  it("perfect detections: every AP and AR is 1", function () {
    const m = evaluateCoco([img([[0, 0, 100, 100], [200, 200, 220, 220]], [1, 2], [[0, 0, 100, 100], [200, 200, 220, 220]], [0.9, 0.8], [1, 2])]);
    for (const k of ["AP", "AP50", "AP75", "AR1", "AR10", "AR100"] as const) close(m[k], 1, k);
    close(m.APs, 1, "APs (the 20x20 box)");
    close(m.APl, 1, "APl (the 100x100 box)");
    close(m.APm, -1, "APm: no medium ground truth");
  });

  it("one detection at IoU 0.6 matches the thresholds 0.50, 0.55, 0.60 only: AP = 3/10", function () {
    // gt 100x100 at 0; dt shifted right by 25: inter 75*100, union 125*100 -> IoU 0.6 exactly.
    const m = evaluateCoco([img([[0, 0, 100, 100]], [0], [[25, 0, 125, 100]], [0.5], [0])]);
    close(m.AP50, 1, "AP50");
    close(m.AP75, 0, "AP75");
    close(m.AP, 0.3, "AP");
    close(m.AR100, 0.3, "AR100");
  });

  it("a false positive ranked above the true positive: precision 1/2 at every recall, AP = 0.5", function () {
    const m = evaluateCoco([img([[0, 0, 50, 50]], [3], [[300, 300, 350, 350], [0, 0, 50, 50]], [0.9, 0.8], [3, 3])]);
    close(m.AP, 0.5, "AP");
    close(m.AR1, 0, "AR1: the top detection is the false positive");
    close(m.AR10, 1, "AR10");
  });

  it("a missed object halves recall and precision is 1 up to recall 0.5: AP = 51/101", function () {
    const m = evaluateCoco([img([[0, 0, 50, 50], [100, 100, 150, 150]], [0, 0], [[0, 0, 50, 50]], [0.9], [0])]);
    // recall points 0.00 .. 0.50 (51 of 101) have precision 1, the rest 0.
    close(m.AP, 51 / 101, "AP");
    close(m.AR100, 0.5, "AR100");
  });

  it("categories are averaged; a category with detections but no ground truth is left out", function () {
    const m = evaluateCoco([
      img([[0, 0, 50, 50], [100, 100, 150, 150]], [0, 1], [[0, 0, 50, 50], [400, 400, 450, 450], [600, 600, 650, 650]], [0.9, 0.8, 0.7], [0, 1, 2]),
    ]);
    // class 0: AP 1; class 1: AP 0; class 2: no ground truth (excluded).
    close(m.AP, 0.5, "AP");
  });

  it("maxDets caps detections per image by score before matching (AR1 vs AR10)", function () {
    const gts = [0, 1, 2, 3].map((i) => [i * 100, 0, i * 100 + 50, 50]);
    const m = evaluateCoco([img(gts, [0, 0, 0, 0], gts, [0.9, 0.8, 0.7, 0.6], [0, 0, 0, 0])]);
    close(m.AR1, 0.25, "AR1");
    close(m.AR10, 1, "AR10");
  });

  it("a ground truth outside an area range is ignored there, and so is a detection matching it", function () {
    // one small (10x10) and one large (200x200) object, both detected.
    const m = evaluateCoco([img([[0, 0, 10, 10], [300, 300, 500, 500]], [0, 0], [[0, 0, 10, 10], [300, 300, 500, 500]], [0.6, 0.9], [0, 0])]);
    close(m.APs, 1, "APs");
    close(m.APl, 1, "APl");
    close(m.AP, 1, "AP");
  });

  it("ties in score keep detection order across images (stable, as pycocotools' mergesort)", function () {
    const m = evaluateCoco([
      img([[0, 0, 50, 50]], [0], [[0, 0, 50, 50]], [0.5], [0]),
      img([[0, 0, 50, 50]], [0], [[200, 200, 250, 250]], [0.5], [0]),
    ]);
    // order: TP (image 0) then FP (image 1): precision 1 at recall 0.5, recall never reaches 1.
    close(m.AP, 51 / 101, "AP");
  });
  it("metrics above a score cut from one matching equal evaluating only the detections above it (ties at the cut, maxDets binding, crowds, areas)", function () {
    let s = 12345;
    const rand = () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32);
    const images: EvalImage[] = [];
    for (let i = 0; i < 12; i++) {
      const gt: number[][] = [], gl: number[] = [], dt: number[][] = [], ds: number[] = [], dl: number[] = [];
      for (let g = 0; g < 6; g++) {
        const x = rand() * 400, y = rand() * 400, w = 5 + rand() * 150, h = 5 + rand() * 150;
        gt.push([x, y, x + w, y + h]);
        gl.push(g % 3);
        // Detections near each object, and far more than maxDets (100) of one class in image 0.
        for (let d = 0; d < (i === 0 && g === 0 ? 150 : 6); d++) {
          const j = () => (rand() - 0.5) * w * 0.4;
          dt.push([x + j(), y + j(), x + w + j(), y + h + j()]);
          // Scores on a coarse grid: many ties, some exactly at the cuts below.
          ds.push(Math.fround(Math.round(rand() * 20) / 20));
          dl.push(rand() < 0.8 ? g % 3 : 3);
        }
      }
      images.push({ gt: { boxes: gt.flat(), labels: gl }, dt: { boxes: dt.flat(), scores: ds, labels: dl } });
    }
    const gt = gtFromArrays(images);
    gt.iscrowd[3] = 1;
    gt.iscrowd[20] = 1;
    const ids = images.map((_, i) => i + 1);
    const { dt } = detectionsToCoco(images.map((im) => im.dt), ids);
    const matching = matchCoco(gt, dt);
    for (const cut of [-Infinity, 0, 0.05, 0.3, Math.fround(0.5), 0.75, 0.95, 1]) {
      const keep = (v: number) => v > cut;
      const above = detectionsToCoco(images.map((im) => {
        const idx = Array.from(im.dt.scores, (_, j) => j).filter((j) => keep(Number(im.dt.scores[j])));
        return { boxes: idx.flatMap((j) => Array.from(im.dt.boxes).slice(4 * j, 4 * j + 4)), scores: idx.map((j) => im.dt.scores[j]), labels: idx.map((j) => im.dt.labels[j]) };
      }), ids).dt;
      const want = evaluateCocoBoxes(gt, above);
      const got = accumulateCoco(matching, cut);
      assert.deepStrictEqual(got.stats, want.stats, `stats above ${cut}`);
      assert.deepStrictEqual(got.precision, want.precision, `precision above ${cut}`);
      assert.deepStrictEqual(got.recall, want.recall, `recall above ${cut}`);
      assert.deepStrictEqual(got.perCategory, want.perCategory, `per category above ${cut}`);
      assert.deepStrictEqual(got.counts, want.counts, `counts above ${cut}`);
    }
    assert.notDeepStrictEqual(accumulateCoco(matching, 0.5).stats, accumulateCoco(matching).stats);
  });
});
