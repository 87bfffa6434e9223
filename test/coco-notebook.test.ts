/**
 * COCO evaluation in the notebook and on the command line, on a small generated validation set:
 * heads with image_ids, a COCO annotation file (more images than the heads, crowds, a category
 * without annotations, ids that are not 0..N-1). `%load --annotations` binds it by image id,
 * `%run --eval` shows pycocotools' numbers with a per-category table and a precision-recall chart,
 * `%run --save-results` writes a COCO results file, and `retinanet-kernel eval` on that file gives
 * the same 12 stats as the kernel. Bad input: a results file with an unknown image or category id,
 * a negative box, a NaN score, a truncated file: an error that names the entry.
 */
import * as assert from "assert";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

import { CocoGroundTruth, readCocoAnnotations, readCocoResults, writeCocoAnnotations } from "../kernel/data/coco";
import { PACKAGE_ROOT } from "../kernel/native";
import { ndarray } from "../kernel/postprocess/ndarray";
import { writeNpz } from "../kernel/postprocess/npz";
import { synthesize } from "../kernel/postprocess/synth";
import { TestKernel } from "./kernel-client";

const CLI = path.join(PACKAGE_ROOT, "dist", "kernel", "main.js");

describe("COCO evaluation in the notebook and the CLI", function () {
  this.timeout(180000);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "rk-coco-nb-"));
  const heads = path.join(dir, "val-heads.npz");
  const gtFile = path.join(dir, "instances_val.json");
  const resFile = path.join(dir, "results.json");
  const imageIds = [139, 285, 632];
  let k: TestKernel;

  before(async function () {
    const ds = synthesize({ images: 3, size: [256, 320], classes: 8, objects: 5, seed: 7 });
    const arrays = new Map(ds.arrays);
    arrays.set("image_ids", ndarray("int64", [3], BigInt64Array.from(imageIds.map(BigInt))));
    writeNpz(heads, arrays);
    // Ground truth from the synthetic objects (labels are category ids, torchvision's convention),
    // an extra image without heads, one crowd, a category nobody has.
    const rows: number[][] = [];
    ds.gt!.forEach((g, i) => {
      for (let j = 0; j < g.labels.length; j++) {
        const [x1, y1, x2, y2] = [0, 1, 2, 3].map((c) => g.boxes[4 * j + c]);
        rows.push([imageIds[i], g.labels[j], x1, y1, x2 - x1, y2 - y1, j === 0 && i === 1 ? 1 : 0]);
      }
    });
    rows.push([999, 2, 10, 10, 50, 50, 0]);
    const col = (c: number) => Float64Array.from(rows, (r) => r[c]);
    const gt: CocoGroundTruth = {
      images: [...imageIds, 999].map((id) => ({ id, width: 320, height: 256, file_name: `${id}.jpg` })),
      categories: Array.from({ length: 10 }, (_, i) => ({ id: i, name: `class${i}` })),
      count: rows.length,
      id: Float64Array.from(rows, (_, i) => 5000 + i),
      imageId: col(0),
      categoryId: col(1),
      x: col(2),
      y: col(3),
      w: col(4),
      h: col(5),
      area: Float64Array.from(rows, (r) => r[4] * r[5] * 0.8),
      iscrowd: Uint8Array.from(rows, (r) => r[6]),
    };
    writeCocoAnnotations(gtFile, gt);
    k = await TestKernel.start({ cwd: dir });
  });
  after(async () => {
    await k?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("%load --annotations binds by image_ids; %run --eval shows pycocotools' numbers, AP per category, a PR chart; --save-results writes the file", async function () {
    // A 1x1 PNG as the first image's file: %run --show draws the boxes on it.
    fs.mkdirSync(path.join(dir, "images"));
    fs.writeFileSync(path.join(dir, "images", "139.jpg"), Buffer.from("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==", "base64"));
    const load = await k.execute(`%load val ${heads} --annotations ${gtFile} --images ${path.join(dir, "images")}`);
    assert.strictEqual(load.status, "ok", JSON.stringify(load.error));
    assert.match(load.stdout, /3 images by the heads' image_ids; labels are COCO category ids \(torchvision\)/);
    const run = await k.execute(`%run --data val --iterations 1 --show 1 --eval --save-results ${resFile}`);
    assert.strictEqual(run.status, "ok", JSON.stringify(run.error));
    const shown = run.iopub.filter((m) => m.msg_type === "display_data").map((m) => m.content.data as Record<string, string>);
    const metrics = shown.find((d) => /pycocotools' COCOeval numbers/.test(d["text/plain"] ?? ""));
    assert.ok(metrics, "the metrics table");
    const overlay = shown.find((d) => d["image/svg+xml"] !== undefined && /<rect/.test(d["image/svg+xml"]) && /ground truth dashed/.test(d["image/svg+xml"]));
    assert.ok(overlay, "the overlay");
    assert.match(overlay!["image/svg+xml"], /<image href="data:image\/jpeg;base64,iVBORw0KGgo/);
    assert.match(overlay!["image/svg+xml"], /stroke-dasharray/);
    assert.ok(shown.some((d) => /AP per category/.test(d["text/plain"] ?? "")), "the per-category table");
    assert.ok(shown.some((d) => d["application/vnd.vegalite.v5+json"] !== undefined && /Precision-recall/.test(JSON.stringify(d["application/vnd.vegalite.v5+json"]))), "the precision-recall chart");
    assert.match(run.stdout, /Wrote \d+ detections to .*results\.json \(COCO results format\)/);
    // The kernel's AP, to compare with the CLI's.
    const ap = await k.execute("const r = await rk.workbench.evaluate(val, await rk.createPostprocessor(rk.workbench.config, { backend: \"cpu\" }).run(val)); JSON.stringify([r.AP, r.AP50, r.AR100])");
    assert.strictEqual(ap.status, "ok", JSON.stringify(ap.error));
    const kernelStats = JSON.parse(String(ap.result!["text/plain"]).slice(1, -1)) as number[];

    const out = path.join(dir, "stats.json");
    const cli = spawnSync(process.execPath, [CLI, "eval", "--annotations", gtFile, "--results", resFile, "--json", out], { encoding: "utf8" });
    assert.strictEqual(cli.status, 0, cli.stderr);
    assert.match(cli.stdout, / Average Precision {2}\(AP\) @\[ IoU=0\.50:0\.95 \| area= {3}all \| maxDets=100 \] = \d\.\d{3}/);
    const stats = (JSON.parse(fs.readFileSync(out, "utf8")) as { stats: number[] }).stats;
    assert.strictEqual(stats.length, 12);
    // The file covers the 4 images of the annotations, the kernel its 3: image 999 has ground truth
    // and no detections, so the CLI's recall is lower; evaluate the same images to compare.
    const gt = readCocoAnnotations(gtFile);
    const dt = readCocoResults(resFile, gt);
    const { evaluateCocoBoxes } = await import("../kernel/eval/coco");
    const same = evaluateCocoBoxes(gt, dt, { imgIds: imageIds }).stats;
    assert.deepStrictEqual([same[0], same[1], same[8]], kernelStats);
    assert.ok(stats[8] <= same[8]);
  });

  it("%load --annotations without image_ids uses the file's order and says so; unknown ids are errors", async function () {
    const noIds = path.join(dir, "no-ids.npz");
    const ds = synthesize({ images: 2, size: [128, 160], classes: 4, seed: 2 });
    writeNpz(noIds, ds.arrays);
    const r = await k.execute(`%load plain ${noIds} --annotations ${gtFile}`);
    assert.strictEqual(r.status, "ok", JSON.stringify(r.error));
    assert.match(r.stdout, /by the order of the file's images \(the heads carry no image_ids\)/);
    const bad = path.join(dir, "bad-ids.npz");
    const arrays = new Map(ds.arrays);
    arrays.set("image_ids", ndarray("int64", [2], BigInt64Array.from([139n, 4242n])));
    writeNpz(bad, arrays);
    const e = await k.execute(`%load wrong ${bad} --annotations ${gtFile}`);
    assert.strictEqual(e.status, "error");
    assert.match(e.error!.evalue, /image id 4242 is not there/);
    const still = await k.execute("%datasets");
    assert.strictEqual(still.status, "ok");
  });

  it("bad results files: an error that names the entry, nothing loaded", function () {
    const gt = readCocoAnnotations(gtFile);
    const cases: [string, RegExp][] = [
      ['[{"image_id": 139, "category_id": 1, "bbox": [1, 2, 3, 4], "score": 0.5}, {"image_id": 77, "category_id": 1, "bbox": [1, 2, 3, 4], "score": 0.5}]', /results\[1\] has image_id 77, which is not an image of the annotations/],
      ['[{"image_id": 139, "category_id": 55, "bbox": [1, 2, 3, 4], "score": 0.5}]', /results\[0\] has category_id 55, which is not a category/],
      ['[{"image_id": 139, "category_id": 1, "bbox": [1, 2, -3, 4], "score": 0.5}]', /results\[0\]: expected bbox width and height >= 0 but received \[1,2,-3,4\]/],
      ['[{"image_id": 139, "category_id": 1, "bbox": [1, 2, 3, 4], "score": NaN}]', /results\[0\]: expected score to be a finite number but received null/],
      ['[{"image_id": 139, "category_id": 1, "bbox": [1, 2, 3, 4], "score": 0.5}, {"image_id": 139, "categ', /ends at byte \d+ .*truncated/],
      ['{"image_id": 139}', /expected an array \(a COCO results file/],
    ];
    for (const [text, re] of cases) {
      const f = path.join(dir, "bad.json");
      fs.writeFileSync(f, text);
      assert.throws(() => readCocoResults(f, gt), re);
      const cli = spawnSync(process.execPath, [CLI, "eval", "--annotations", gtFile, "--results", f], { encoding: "utf8" });
      assert.strictEqual(cli.status, 1);
      assert.match(cli.stderr, re);
    }
    const badGt = path.join(dir, "bad-gt.json");
    fs.writeFileSync(badGt, '{"images": [{"id": 1}], "categories": [{"id": 1, "name": "a"}], "annotations": [{"id": 9, "image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5], "iscrowd": 0}]}');
    assert.throws(() => readCocoAnnotations(badGt), /annotations\[0\] \(id 9\): expected area to be a number >= 0/);
  });
});
