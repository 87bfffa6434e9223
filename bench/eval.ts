/**
 * bench/eval: COCO box evaluation at the size of COCO val: 5,000 images, about 36,000 annotations
 * (1% crowds, COCO's 80 category ids 1..90 with gaps), 100 detections per image (500,000). The pair
 * is generated (deterministic) into a folder, then `retinanet-kernel eval` runs as its own process
 * and is timed whole (start, reading both files, evaluation, summary), best and median of 3.
 * Target: <= 2 s on one core of the 2-core development machine.
 * pycocotools' time for the same files: `/usr/bin/python3 scripts/make_coco_fixtures.py
 * PATH/TO/pycocotools --time DIR/gt.json DIR/results.json` (pycocotools is not a dependency).
 * --large N: also writes an annotation file of N annotations with segmentation polygons over
 * 118,287 images (COCO train's counts for N = 860001) and times reading it, with the peak RSS.
 * Run: node dist/bench/eval.js [--dir DIR] [--images N] [--large 860001]
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

import { CocoDetections, CocoGroundTruth, writeCocoAnnotations, writeCocoResults } from "../kernel/data/coco";
import { PACKAGE_ROOT } from "../kernel/native";
import { Rng } from "../kernel/postprocess/synth";
import { machine, median } from "./stats";

/** COCO's 80 category ids. */
export const COCO_CATEGORY_IDS = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 27, 28, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64, 65, 67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84, 85, 86, 87, 88, 89, 90];

export function makeEvalPair(images: number, seed = 1): { gt: CocoGroundTruth; dt: CocoDetections } {
  const rng = new Rng(seed);
  const W = 640, H = 480;
  const gtRows: number[][] = [];
  const dtRows: number[][] = [];
  for (let i = 0; i < images; i++) {
    const imageId = 100000 + 3 * i;
    const n = Math.floor(rng.uniform() * 13.4) + 1; // ~7.2 per image
    const objs: number[][] = [];
    for (let j = 0; j < n; j++) {
      const w = 4 + rng.uniform() * (rng.uniform() < 0.4 ? 28 : 300), h = 4 + rng.uniform() * (rng.uniform() < 0.4 ? 28 : 300);
      const x = rng.uniform() * (W - w), y = rng.uniform() * (H - h);
      const cat = COCO_CATEGORY_IDS[Math.floor(rng.uniform() * 80)];
      const crowd = rng.uniform() < 0.01 ? 1 : 0;
      gtRows.push([gtRows.length + 1, imageId, cat, x, y, w, h, w * h * (0.6 + 0.4 * rng.uniform()), crowd]);
      objs.push([x, y, w, h, cat]);
    }
    for (let d = 0; d < 100; d++) {
      if (d < objs.length * 2) {
        const [x, y, w, h, cat] = objs[d % objs.length];
        const jit = () => (rng.uniform() - 0.5) * 0.2;
        dtRows.push([imageId, rng.uniform() < 0.9 ? cat : COCO_CATEGORY_IDS[Math.floor(rng.uniform() * 80)], x + jit() * w, y + jit() * h, w * (1 + jit()), h * (1 + jit()), 0.3 + 0.7 * rng.uniform()]);
      } else {
        const w = 4 + rng.uniform() * 200, h = 4 + rng.uniform() * 200;
        dtRows.push([imageId, COCO_CATEGORY_IDS[Math.floor(rng.uniform() * 80)], rng.uniform() * (W - w), rng.uniform() * (H - h), w, h, 0.5 * rng.uniform()]);
      }
    }
  }
  const col = (rows: number[][], j: number) => Float64Array.from(rows, (r) => Math.round(r[j] * 100) / 100);
  const gt: CocoGroundTruth = {
    images: Array.from({ length: images }, (_, i) => ({ id: 100000 + 3 * i, width: W, height: H, file_name: `${String(i).padStart(12, "0")}.jpg` })),
    categories: COCO_CATEGORY_IDS.map((id) => ({ id, name: `category${id}` })),
    count: gtRows.length,
    id: col(gtRows, 0),
    imageId: col(gtRows, 1),
    categoryId: col(gtRows, 2),
    x: col(gtRows, 3),
    y: col(gtRows, 4),
    w: col(gtRows, 5),
    h: col(gtRows, 6),
    area: col(gtRows, 7),
    iscrowd: Uint8Array.from(gtRows, (r) => r[8]),
  };
  const dt: CocoDetections = { count: dtRows.length, imageId: col(dtRows, 0), categoryId: col(dtRows, 1), x: col(dtRows, 2), y: col(dtRows, 3), w: col(dtRows, 4), h: col(dtRows, 5), score: Float64Array.from(dtRows, (r) => Math.round(r[6] * 1e5) / 1e5) };
  return { gt, dt };
}

function main(): string {
  const arg = (name: string) => {
    const i = process.argv.indexOf(name);
    return i > 0 ? process.argv[i + 1] : undefined;
  };
  const images = Number(arg("--images") ?? 5000);
  const dir = arg("--dir") ?? fs.mkdtempSync(path.join(os.tmpdir(), "rk-bench-eval-"));
  fs.mkdirSync(dir, { recursive: true });
  const gtFile = path.join(dir, "gt.json");
  const resFile = path.join(dir, "results.json");
  const { gt, dt } = makeEvalPair(images);
  writeCocoAnnotations(gtFile, gt);
  writeCocoResults(resFile, dt);
  const crowds = gt.iscrowd.reduce((a, b) => a + b, 0);
  console.log(`bench/eval: ${images} images, ${gt.count} annotations (${crowds} crowds), ${dt.count} detections, 80 categories (${machine()})`);
  console.log(`files: ${gtFile} (${(fs.statSync(gtFile).size / 1e6).toFixed(1)} MB), ${resFile} (${(fs.statSync(resFile).size / 1e6).toFixed(1)} MB)`);
  const times: number[] = [];
  let out = "";
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now();
    // One core: the process is pinned to CPU 0 where taskset exists.
    const cmd = [process.execPath, path.join(PACKAGE_ROOT, "dist", "kernel", "main.js"), "eval", "--annotations", gtFile, "--results", resFile];
    const r = fs.existsSync("/usr/bin/taskset") ? spawnSync("/usr/bin/taskset", ["-c", "0", ...cmd], { encoding: "utf8" }) : spawnSync(cmd[0], cmd.slice(1), { encoding: "utf8" });
    times.push(performance.now() - t0);
    if (r.status !== 0) throw new Error(`eval failed: ${r.stderr}`);
    out = r.stdout;
  }
  console.log(out.trimEnd());
  const best = Math.min(...times);
  console.log(`\nretinanet-kernel eval, whole process on one core: best ${(best / 1000).toFixed(2)} s, median ${(median(times) / 1000).toFixed(2)} s of 3 (target <= 2 s: ${median(times) <= 2000 ? "met" : "MISSED"})`);
  return dir;
}

/** An annotation file the size of COCO train (polygons included, which the reader skips). */
function writeLarge(file: string, n: number): void {
  const I = 118287;
  const fd = fs.openSync(file, "w");
  fs.writeSync(fd, `{"info": {"year": 2017}, "images": [${Array.from({ length: I }, (_, i) => `{"id": ${i + 1}, "width": 640, "height": 480, "file_name": "${String(i + 1).padStart(12, "0")}.jpg"}`).join(",")}], "annotations": [`);
  let rows: string[] = [];
  for (let i = 0; i < n; i++) {
    const x = (i * 7) % 600, y = (i * 13) % 440;
    const poly = Array.from({ length: 24 }, (_, j) => (x + j * 1.37).toFixed(2)).join(",");
    rows.push(`{"segmentation": [[${poly}]], "area": ${(i % 5000) + 10.5}, "iscrowd": 0, "image_id": ${(i % I) + 1}, "bbox": [${x}.5, ${y}.25, 33.1, 21.7], "category_id": ${COCO_CATEGORY_IDS[i % 80]}, "id": ${i + 1}}`);
    if (rows.length === 10000 || i === n - 1) {
      fs.writeSync(fd, (i >= rows.length ? "," : "") + rows.join(","));
      rows = [];
    }
  }
  fs.writeSync(fd, `], "categories": [${COCO_CATEGORY_IDS.map((id) => `{"id": ${id}, "name": "category${id}"}`).join(",")}]}`);
  fs.closeSync(fd);
}

function large(dir: string, n: number): void {
  const file = path.join(dir, "large-annotations.json");
  writeLarge(file, n);
  const code = `const t0 = performance.now(); const g = require(${JSON.stringify(path.join(PACKAGE_ROOT, "dist", "kernel", "data", "coco.js"))}).readCocoAnnotations(${JSON.stringify(file)}); console.log(JSON.stringify({ n: g.count, images: g.images.length, s: (performance.now() - t0) / 1000, rssMb: process.resourceUsage().maxRSS / 1024 }))`;
  const r = spawnSync(process.execPath, ["-e", code], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(r.stderr);
  const o = JSON.parse(r.stdout) as { n: number; images: number; s: number; rssMb: number };
  console.log(`\nlarge annotation file: ${(fs.statSync(file).size / 1e6).toFixed(0)} MB, ${o.n} annotations with polygons, ${o.images} images: read in ${o.s.toFixed(2)} s, peak RSS of the reading process ${o.rssMb.toFixed(0)} MB`);
  fs.rmSync(file);
}

if (require.main === module) {
  const dir = main();
  const i = process.argv.indexOf("--large");
  if (i > 0) large(dir, Number(process.argv[i + 1]));
}
