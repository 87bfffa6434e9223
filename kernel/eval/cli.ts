/**
 * `retinanet-kernel eval --annotations GT.json --results RES.json [--json OUT.json] [--no-cats]`:
 * pycocotools' box evaluation of a COCO results file against a COCO annotation file. Prints the
 * 12-line summary in pycocotools' wording and format, and writes
 * {"stats": [12 numbers in pycocotools' order], "per_category": {category id: {name, AP, AP50, gt, dt}}}
 * to OUT.json (whole or not at all).
 */

import { ArgSchema, parseArgs, usage } from "../args";
import { checkOutputPath, writeFileWhole } from "../files";
import { readCocoAnnotations, readCocoResults } from "../data/coco";
import { evaluateCocoBoxes, summaryLines } from "./coco";

export const EVAL_SCHEMA: ArgSchema = {
  options: [
    { name: "annotations", type: "string", required: true, help: "COCO annotation file (images, annotations, categories)" },
    { name: "results", type: "string", required: true, help: "COCO results file: [{image_id, category_id, bbox, score}]" },
    { name: "json", type: "string", help: "write the stats and per-category AP here" },
    { name: "no-cats", type: "bool", help: "pool categories (pycocotools' useCats=0)" },
    { name: "quiet", alias: "q", type: "bool", help: "print only the summary" },
    { name: "help", alias: "h", type: "bool", help: "show this help" },
  ],
};

export function evalCommand(argv: string[]): number {
  if (argv.includes("--help") || argv.includes("-h")) {
    console.log(usage("retinanet-kernel eval", EVAL_SCHEMA));
    return 0;
  }
  const { values } = parseArgs(argv, EVAL_SCHEMA);
  if (values.json !== undefined) checkOutputPath(values.json, "--json");
  const t0 = performance.now();
  const gt = readCocoAnnotations(String(values.annotations));
  const t1 = performance.now();
  const dt = readCocoResults(String(values.results), gt);
  const t2 = performance.now();
  const r = evaluateCocoBoxes(gt, dt, { useCats: values["no-cats"] !== true });
  const t3 = performance.now();
  if (!values.quiet) {
    console.log(`${gt.images.length} images, ${gt.count} annotations, ${gt.categories.length} categories; ${dt.count} detections`);
    console.log(`read annotations ${ms(t1 - t0)}, results ${ms(t2 - t1)}; evaluated in ${ms(t3 - t2)}`);
  }
  console.log(summaryLines(r.stats).join("\n"));
  if (values.json) {
    const perCategory = Object.fromEntries(r.perCategory.map((c) => [String(c.id), { name: c.name, AP: finite(c.AP), AP50: finite(c.AP50), gt: c.gt, dt: c.dt }]));
    writeFileWhole(String(values.json), "--json", `${JSON.stringify({ stats: r.stats, per_category: perCategory, useCats: values["no-cats"] !== true, images: r.counts.images }, null, 1)}\n`);
  }
  return 0;
}

const ms = (x: number) => `${(x / 1000).toFixed(2)} s`;
const finite = (x: number) => (Number.isFinite(x) ? x : null);
