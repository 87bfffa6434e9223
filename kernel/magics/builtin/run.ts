/** %run: latency, detections, overlays, COCO metrics and results files. */
import { overlaySvg, tableBundle, vegaLiteToSvg } from "../../display/render";
import type { CocoMetrics } from "../../postprocess/eval";
import type { Postprocessor } from "../../postprocess/postprocessor";
import { checkOutputPath } from "../../files";
import { Magic, MagicContext } from "../registry";
import { WorkflowArgError, config_, fmt, stopSignal, wf } from "./workflow-common";

const METRIC_KEYS = ["AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"] as const;

function metricsBundle(m: CocoMetrics, source: string): Record<string, unknown> {
  return tableBundle(
    [...METRIC_KEYS],
    [METRIC_KEYS.map((k) => (m[k] < 0 ? "-" : m[k].toFixed(3)))],
    { caption: `COCO box metrics, pycocotools' COCOeval numbers (${source}; ${m.gtCount} ground-truth boxes, ${m.dtCount} detections${m.unmapped ? `; ${m.unmapped} detections of labels without a category left out` : ""})` },
  );
}

/** Per-category AP table and the precision-recall curves (IoU 0.50 and 0.75, area all, 100 detections, mean over categories). */
async function showCocoDetails(ctx: MagicContext, m: CocoMetrics): Promise<void> {
  const cats = (m.perCategory ?? []).filter((c) => c.gt > 0 || c.dt > 0);
  if (cats.length > 0) {
    ctx.display(
      tableBundle(
        ["category", "name", "AP", "AP50", "ground truth", "detections"],
        cats.map((c) => [String(c.id), c.name, Number.isNaN(c.AP) ? "-" : c.AP.toFixed(3), Number.isNaN(c.AP50) ? "-" : c.AP50.toFixed(3), String(c.gt), String(c.dt)]),
        { caption: `AP per category (mean of precision over IoU 0.50:0.95 and recall, area all, 100 detections; "-": no ground truth)`, numeric: new Set([2, 3, 4, 5]) },
      ),
    );
  }
  const ev = m.evaluation;
  if (!ev) return;
  const { T, R, K, A, M } = ev.dims;
  const values: { recall: number; precision: number; iou: string }[] = [];
  for (const t of [0, 5]) {
    for (let r = 0; r < R; r++) {
      let sum = 0;
      let n = 0;
      for (let k = 0; k < K; k++) {
        const v = ev.precision[(((t * R + r) * K + k) * A + 0) * M + (M - 1)];
        if (v > -1) (sum += v), n++;
      }
      if (n > 0) values.push({ recall: r / (R - 1), precision: sum / n, iou: t === 0 ? "0.50" : "0.75" });
    }
  }
  if (values.length === 0 || T === 0) return;
  const spec = {
    $schema: "https://vega.github.io/schema/vega-lite/v5.json",
    title: "Precision-recall (mean over categories, area all, 100 detections)",
    width: 360,
    height: 240,
    data: { values },
    mark: { type: "line", point: false },
    encoding: {
      x: { field: "recall", type: "quantitative", scale: { domain: [0, 1] } },
      y: { field: "precision", type: "quantitative", scale: { domain: [0, 1] } },
      color: { field: "iou", type: "nominal", title: "IoU" },
    },
  };
  let svg: string | undefined;
  try {
    svg = await vegaLiteToSvg(spec);
  } catch (e) {
    process.stderr.write(`(the SVG rendering of the chart failed: ${(e as Error).message}; the Vega-Lite spec is still shown)\n`);
  }
  ctx.display.vegalite(spec, { svg, text: `precision-recall curves at IoU 0.50 and 0.75 (${values.length} points)` });
}

export const run: Magic = {
  name: "run",
  kind: "line",
  summary: "run a postprocessor: latency, detections, overlays, COCO metrics: %run [pp] --data NAME --show 2 --eval",
  help: "NAME is a variable holding a Postprocessor (default: the last %optimize winner, else one built from %config on the best backend).",
  args: {
    positionals: [{ name: "NAME", type: "string", help: "Postprocessor variable" }],
    options: [
      { name: "data", type: "string", help: "dataset (default: the last loaded)" },
      { name: "iterations", type: "int", help: "timed runs", default: 20, min: 1, max: 100000 },
      { name: "show", type: "int", help: "images to show (table and overlay)", default: 1, min: 0, max: 64 },
      { name: "eval", type: "bool", help: "COCO metrics against the dataset's ground truth (pycocotools' numbers), AP per category, precision-recall curves" },
      { name: "save-results", type: "string", help: "write the detections as a COCO results file (image and category ids of the bound annotations)" },
    ],
  },
  async run(ctx, args) {
    const v = args.values;
    let pp: Postprocessor;
    let label: string;
    if (v.NAME !== undefined) {
      const value = ctx.executor.exports[String(v.NAME)];
      if (!(value instanceof (require("../../postprocess/postprocessor") as typeof import("../../postprocess/postprocessor")).Postprocessor)) throw new WorkflowArgError(`Expected a Postprocessor in variable ${v.NAME} but received ${value === undefined ? "nothing (no such variable)" : typeof value}`);
      pp = value as Postprocessor;
      label = String(v.NAME);
    } else if (wf().workbench.lastOptimized !== undefined && wf().workbench.optimized.has(wf().workbench.lastOptimized!)) {
      label = wf().workbench.lastOptimized!;
      pp = wf().workbench.optimized.get(label)!.postprocessor;
    } else {
      pp = (require("../../postprocess/postprocessor") as typeof import("../../postprocess/postprocessor")).createPostprocessor(config_().resolveConfig(wf().workbench.config), { backend: "auto" });
      label = `config (${pp.backend})`;
    }
    const ds = wf().workbench.dataset(v.data as string | undefined);
    if (v["save-results"] !== undefined) checkOutputPath(String(v["save-results"]), "--save-results");
    if (v.eval) wf().workbench.requireGroundTruth(ds);
    const isCache = "kind" in ds && ds.kind === "cache";
    // A config the cache cannot serve exactly is an error before any image runs.
    if (isCache) (require("../../postprocess/cache") as typeof import("../../postprocess/cache")).checkConfigForCache(pp.config, ds.cache);
    const bar = isCache ? ctx.display.progress(wf().workbench.shapesOf(ds).batch, { label: "images" }) : undefined;
    const { stats, result, perImage } = await wf().workbench.runDataset(pp, ds, v.iterations as number, stopSignal(ctx), bar);
    const counts = result.detections.map((d) => d.count);
    const countText = counts.length <= 16 ? counts.join(" ") : `${counts.reduce((a, b) => a + b, 0)} in all (${(counts.reduce((a, b) => a + b, 0) / counts.length).toFixed(1)} per image)`;
    ctx.display(
      tableBundle(
        ["postprocessor", "backend", "images", "runs", perImage ? "per image" : "median", "p90", "min", "compute", "copy in", "copy out", "detections"],
        [[label, result.backend, String(result.detections.length), String(stats.runs), fmt(stats.medianMs), fmt(stats.p90Ms), fmt(stats.minMs), fmt(stats.computeMs), fmt(stats.uploadMs), fmt(stats.downloadMs), countText]],
        {
          caption: perImage
            ? `%run on ${ds.name}: the candidate cache, one pass over every image; times are per image of the stages after selection (on the CPU core)`
            : stats.resident
              ? `%run on ${ds.name}: heads read from their copy resident on the GPU (${stats.resident.uploadMs > 0 ? `uploaded by this call in ${fmt(stats.resident.uploadMs)}` : "uploaded by an earlier call"}; kept for %run, %sweep, %tune and %optimize until the dataset is replaced)`
              : stats.residentSkipped !== undefined
                ? `%run on ${ds.name}: heads copied in from host arrays at every run (they could not be kept on the GPU: ${stats.residentSkipped})`
                : `%run on ${ds.name}`,
          numeric: new Set([2, 3, 4, 5, 6, 7, 8, 9]),
        },
      ),
    );
    const heads = wf().workbench.shapesOf(ds);
    for (let n = 0; n < Math.min(v.show as number, result.detections.length); n++) {
      const d = result.detections[n];
      const top = Math.min(d.count, 10);
      const rows = Array.from({ length: top }, (_, i) => [String(i), String(d.labels[i]), d.scores[i].toFixed(4), ...[0, 1, 2, 3].map((j) => d.boxes[4 * i + j].toFixed(1))]);
      ctx.display(tableBundle(["#", "label", "score", "x1", "y1", "x2", "y2"], rows, { caption: `image ${n}: ${d.count} detections (first ${top})`, numeric: new Set([2, 3, 4, 5, 6]) }));
      const boxes = Array.from({ length: d.count }, (_, i) => ({ x1: d.boxes[4 * i], y1: d.boxes[4 * i + 1], x2: d.boxes[4 * i + 2], y2: d.boxes[4 * i + 3], label: d.labels[i], score: d.scores[i] }));
      const gt = ds.gt?.[n];
      let gtBoxes = gt ? Array.from({ length: gt.labels.length }, (_, i) => ({ x1: gt.boxes[4 * i], y1: gt.boxes[4 * i + 1], x2: gt.boxes[4 * i + 2], y2: gt.boxes[4 * i + 3], label: gt.labels[i] })) : [];
      if (ds.coco) {
        // COCO ground truth is in the original image's pixels: back to the heads' input size for the overlay.
        const c = ds.coco;
        const [sx, sy] = c.scale[n] ?? [1, 1];
        gtBoxes = [];
        for (let i = 0; i < c.gt.count; i++) {
          if (c.gt.imageId[i] !== c.imageIds[n]) continue;
          const x = c.gt.x[i] / sx, y = c.gt.y[i] / sy;
          gtBoxes.push({ x1: x, y1: y, x2: x + c.gt.w[i] / sx, y2: y + c.gt.h[i] / sy, label: c.labels.label(c.gt.categoryId[i]) ?? c.gt.categoryId[i] });
        }
      }
      const size: [number, number] = [heads.imageSizes[2 * n], heads.imageSizes[2 * n + 1]];
      const file = wf().workbench.imageFile(ds, n);
      const mime = file && /\.png$/i.test(file) ? "image/png" : "image/jpeg";
      const image = file ? `data:${mime};base64,${require("fs").readFileSync(file).toString("base64")}` : undefined;
      ctx.display({ "image/svg+xml": overlaySvg(size, boxes.slice(0, 25), gtBoxes, {
        image, title: `image ${n} (${size[1]}x${size[0]}): top ${Math.min(25, boxes.length)} of ${boxes.length} detections${gtBoxes.length ? ", ground truth dashed" : ""}` }), "text/plain": `[overlay of the top ${Math.min(25, boxes.length)} boxes on image ${n}]` });
    }
    if (v.eval) {
      const m = wf().workbench.evaluate(ds, result);
      ctx.display(metricsBundle(m, ds.coco ? `${ds.coco.file}, ${ds.coco.imageIds.length} images; ${ds.coco.labels.describe}` : "the dataset's gt arrays"));
      await showCocoDetails(ctx, m);
    }
    if (v["save-results"] !== undefined) {
      const file = String(v["save-results"]);
      const saved = wf().workbench.saveResults(ds, result, file, "--save-results");
      process.stdout.write(`Wrote ${saved.count} detections to ${file} (COCO results format${ds.coco ? "" : "; image ids 1..N and labels as category ids, as no annotations are bound"}${saved.unmapped ? `; ${saved.unmapped} of labels without a category left out` : ""}).\n`);
    }
    return {};
  },
};

/** `key=0.05,0.1` / `key=0.4:0.7:0.1` / `key=a,b` -> values (numbers when they parse as numbers). */
