/**
 * COCO evaluation against pycocotools' own numbers: each fixture in test/fixtures/coco was made by
 * scripts/make_coco_fixtures.py, which runs pycocotools' COCOeval (iouType "bbox") on a generated
 * case (crowds, categories without ground truth, images without annotations, more than 100
 * detections per image, equal scores, tiny and huge boxes and areas on the range edges, a ground
 * truth id 0, useCats off, no detections) and stores the 12 stats, the per-category AP and the
 * summary it printed. Here the case goes through files (annotation file, results file) like a user's.
 */
import * as assert from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

import { readCocoAnnotations, readCocoResults } from "../kernel/data/coco";
import { evaluateCocoBoxes, summaryLines } from "../kernel/eval/coco";
import { PACKAGE_ROOT } from "../kernel/native";

const DIR = path.join(PACKAGE_ROOT, "test", "fixtures", "coco");

interface Fixture {
  case: string;
  useCats: number;
  stats: number[];
  per_category: Record<string, number | null>;
  summary: string[];
  gt: unknown;
  results: unknown[];
}

describe("COCO evaluation equals pycocotools (fixtures made by its COCOeval)", function () {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "rk-coco-"));
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));
  const files = fs.readdirSync(DIR).filter((f) => f.endsWith(".json")).sort();
  it("has the fixtures", () => assert.ok(files.length >= 10, `${files.length} fixtures`));
  for (const f of files) {
    const fx = JSON.parse(fs.readFileSync(path.join(DIR, f), "utf8")) as Fixture;
    it(`${fx.case}${fx.useCats ? "" : " (useCats=0)"}: the 12 stats and per-category AP to 1e-9, the summary text`, function () {
      const gtFile = path.join(tmp, `${fx.case}.gt.json`);
      const resFile = path.join(tmp, `${fx.case}.res.json`);
      fs.writeFileSync(gtFile, JSON.stringify(fx.gt));
      fs.writeFileSync(resFile, JSON.stringify(fx.results));
      const gt = readCocoAnnotations(gtFile);
      const dt = readCocoResults(resFile, gt);
      const r = evaluateCocoBoxes(gt, dt, { useCats: fx.useCats === 1 });
      for (let i = 0; i < 12; i++) assert.ok(Math.abs(r.stats[i] - fx.stats[i]) <= 1e-9, `stat ${i}: ${r.stats[i]} vs pycocotools ${fx.stats[i]}`);
      for (const c of r.perCategory) {
        const want = fx.per_category[String(c.id)];
        if (want === null) assert.ok(Number.isNaN(c.AP), `category ${c.id}: ${c.AP} vs pycocotools none`);
        else assert.ok(Math.abs(c.AP - want) <= 1e-9, `category ${c.id}: ${c.AP} vs pycocotools ${want}`);
      }
      assert.strictEqual(r.perCategory.length, fx.useCats ? Object.keys(fx.per_category).length : 0);
      assert.deepStrictEqual(summaryLines(r.stats), fx.summary);
    });
  }
});
