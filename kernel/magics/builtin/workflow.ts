/**
 * The tuning workflow's magics: %config, %load, %synth, %datasets, %optimize, %run, %sweep,
 * %devices. Each is a thin layer over rk.workbench (kernel/postprocess/wf().workbench.ts), which cells
 * can call directly; the magics parse arguments, show progress, and render tables and charts.
 * The post-processing modules load on a magic's first use, not at kernel start.
 */
import { overlaySvg, tableBundle, vegaLiteToSvg } from "../../display/render";
import type { CocoMetrics } from "../../postprocess/eval";
import type { Postprocessor } from "../../postprocess/postprocessor";
import type { StopSignal } from "../../postprocess/workbench";
import { modulePath } from "../../runtime/prelude";
import { parseNumberList } from "../../args";
import { Magic, MagicContext } from "../registry";

type Workflow = typeof import("../../postprocess/workbench");
const wf = (): Workflow => require("../../postprocess/workbench") as Workflow;
const config_ = () => require("../../postprocess/config") as typeof import("../../postprocess/config");
class WorkflowArgError extends Error {
  readonly code = "ERR_RK_MAGIC_ARGS";
}

const fmt = (ms: number | undefined) => (ms === undefined || !Number.isFinite(ms) ? "-" : ms >= 100 ? `${ms.toFixed(0)} ms` : ms >= 1 ? `${ms.toFixed(2)} ms` : `${(ms * 1000).toFixed(0)} us`);
const show = (v: unknown) => (Array.isArray(v) ? JSON.stringify(v) : v === null ? "null" : String(v));

/** Set when the cell is interrupted; long loops check it between steps. */
function stopSignal(ctx: MagicContext): StopSignal {
  const s = { stopped: false };
  ctx.interrupts.arm().catch(() => {
    s.stopped = true;
  });
  return s;
}

export const config: Magic = {
  name: "config",
  kind: "line",
  summary: "show the post-processing config (changed values marked) or set keys: %config preset=detectron2 score_thresh=0.3",
  help: `Keys: the config's fields (%config lists them).\nValues: numbers, true/false, null, JSON lists ([32,64]), or words. The whole change is validated first: an invalid value changes nothing and says why.\n--reset goes back to the torchvision preset's defaults.`,
  args: { keyValues: true, options: [{ name: "reset", type: "bool", help: "back to the defaults" }] },
  async run(ctx, args) {
    if (args.values.reset) wf().workbench.resetConfig();
    if (args.pairs.length > 0) {
      const values: Record<string, unknown> = {};
      for (const [k, v] of args.pairs) values[k] = wf().parseConfigValue(v);
      const { before, after, changed } = wf().workbench.setConfig(values);
      if (changed.length === 0) {
        process.stdout.write("No value changed.\n");
      } else {
        ctx.display(tableBundle(["key", "was", "now"], changed.map((k) => [k, show(before[k as keyof typeof before]), show(after[k as keyof typeof after])]), { caption: `Changed ${changed.length} value${changed.length > 1 ? "s" : ""}` }));
      }
      return { value: undefined };
    }
    const rows = wf().workbench.configRows();
    ctx.display(
      tableBundle(
        ["key", "value", `${wf().workbench.config.preset} default`],
        rows.map((r) => [r.key, show(r.value), r.changed ? show(r.preset) : ""]),
        { caption: `Post-processing config (preset ${wf().workbench.config.preset}; changed values marked)`, highlight: new Set(rows.flatMap((r, i) => (r.changed ? [i] : []))) },
      ),
    );
    return {};
  },
};

export const load: Magic = {
  name: "load",
  kind: "line",
  summary: "load head outputs: %load NAME PATH [--annotations GT.json] (.npz in the golden format, or a folder of .npy)",
  help: "The dataset gets NAME in %datasets and in --data of the other magics, and is bound in the cell scope as NAME. With --annotations, COCO ground truth is bound by image id (the heads' image_ids array, else the order of the file's images, which is said) and %run --eval / %sweep use pycocotools' evaluation on it; labels map to category ids by the session preset (torchvision: labels are the ids; detectron2, odtk: 0..K-1 over the sorted ids).",
  args: {
    positionals: [
      { name: "NAME", type: "string", help: "dataset name", required: true },
      { name: "PATH", type: "string", help: ".npz file or folder of .npy", required: true },
    ],
    options: [
      { name: "annotations", type: "string", help: "COCO annotation file (instances_val2017.json, ...)" },
      { name: "images", type: "string", help: "folder of the image files (by the annotations' file_name): %run --show draws on them" },
    ],
  },
  async run(ctx, args) {
    const ds = wf().workbench.load(String(args.values.NAME), String(args.values.PATH), { annotations: args.values.annotations as string | undefined, images: args.values.images as string | undefined });
    if (ds.coco) process.stdout.write(`Bound ${ds.coco.file}: ${ds.coco.imageIds.length} images by ${ds.coco.idSource === "image_ids" ? "the heads' image_ids" : "the order of the file's images (the heads carry no image_ids)"}; ${ds.coco.labels.describe}.\n`);
    ctx.executor.bind(ds.name, ds, `import("${modulePath("postprocess/api")}").Dataset`);
    showDatasets(ctx, [ds.name]);
    return {};
  },
};

export const synth: Magic = {
  name: "synth",
  kind: "line",
  summary: "synthetic heads with ground truth: %synth NAME --images 4 --size 800x1333 --classes 80 --density 0.02 --seed 1",
  help: "Background logits ~ N(mu, 1.5) with mu set by --density (share of scores above 0.05) or --bg-mean; a few objects per image whose anchors get high logits and exact deltas. Uses the session preset's anchors.",
  args: {
    positionals: [{ name: "NAME", type: "string", help: "dataset name", required: true }],
    options: [
      { name: "images", type: "int", help: "images in the batch", default: 2, min: 1, max: 64 },
      { name: "size", type: "size", help: "HxW of every image", default: [800, 1333] },
      { name: "classes", type: "int", help: "K", default: 80, min: 1, max: 10000 },
      { name: "density", type: "number", help: "share of background scores above 0.05", min: 0, max: 1 },
      { name: "bg-mean", type: "number", help: "background logit mean (instead of --density)" },
      { name: "objects", type: "int", help: "objects per image", default: 8, min: 0, max: 1000 },
      { name: "seed", type: "int", help: "random seed", default: 1, min: 0 },
      { name: "fp16", type: "bool", help: "store the heads as fp16" },
    ],
  },
  async run(ctx, args) {
    const v = args.values;
    const ds = wf().workbench.synth(String(v.NAME), {
      images: v.images as number,
      size: v.size as [number, number],
      classes: v.classes as number,
      ...(v.density !== undefined ? { density: v.density as number } : {}),
      ...(v.bgMean !== undefined ? { bgMean: v.bgMean as number } : {}),
      objects: v.objects as number,
      seed: v.seed as number,
      fp16: !!v.fp16,
    });
    ctx.executor.bind(ds.name, ds, `import("${modulePath("postprocess/api")}").Dataset`);
    showDatasets(ctx, [ds.name]);
    return {};
  },
};

function showDatasets(ctx: MagicContext, only?: string[]): void {
  const rows = wf().workbench.datasetRows().filter((r) => !only || only.includes(r.name));
  if (rows.length === 0) {
    process.stdout.write("No datasets: use %load NAME PATH or %synth NAME.\n");
    return;
  }
  ctx.display(
    tableBundle(
      ["name", "images", "classes", "layout", "dtype", "levels (HxW)", "MB", "gt", "expected", "source"],
      rows.map((r) => [r.name, String(r.images), String(r.classes), r.layout, r.dtype, r.levels, r.mb.toFixed(1), r.gt ? "yes" : "", r.expected ? "yes" : "", r.source]),
      { numeric: new Set([1, 2, 6]) },
    ),
  );
}

export const datasets: Magic = {
  name: "datasets",
  kind: "line",
  summary: "list the loaded datasets with their shapes and sizes",
  help: "",
  args: {},
  async run(ctx) {
    showDatasets(ctx);
    return {};
  },
};

export const optimize: Magic = {
  name: "optimize",
  kind: "line",
  summary: "build, check and time every available implementation; keep the fastest exact one: %optimize --data NAME --as pp",
  help:
    "Candidates: backend (cpu threads 1 and all, cuda with and without a CUDA Graph and device-resident, js) x precision. Each is checked against the TypeScript reference on the data (the same detections, SPEC parity rules; fp16 against the reference on the widened halves) and timed (warm-up, median, p90 of --iterations runs).\nThe winner is bound in the cell scope (--as, default pp); --save FILE writes it as JSON for loadOptimized(FILE) in a fresh kernel. A TensorRT candidate is listed with the reason when the plugins are not built.\n--export-plugin FILE writes the configuration as the fields of the TensorRT plugin (--plugin postprocess, decode or nms) for the dataset's shapes (FILE.json) and a Python script that adds the plugin node to an exported ONNX model (FILE.py); it needs no TensorRT.",
  args: {
    options: [
      { name: "data", type: "string", help: "dataset (default: the last loaded)" },
      { name: "backend", type: "choice", choices: ["auto", "cpu", "cuda", "tensorrt", "js"], default: "auto", help: "candidates of one backend" },
      { name: "precision", type: "choice", choices: ["fp32", "fp16"], help: "input precision (default fp32)" },
      { name: "batch", type: "int", help: "first N images of the dataset", min: 1 },
      { name: "iterations", type: "int", help: "timed runs per candidate", default: 20, min: 1, max: 100000 },
      { name: "as", type: "string", help: "variable for the winner", default: "pp" },
      { name: "save", type: "string", help: "write the winner's artifact (JSON) here" },
      { name: "export-plugin", type: "string", help: "write the TensorRT plugin fields (FILE.json) and the ONNX script (FILE.py)" },
      { name: "plugin", type: "choice", choices: ["postprocess", "decode", "nms"], default: "postprocess", help: "which plugin --export-plugin describes" },
    ],
  },
  async run(ctx, args) {
    const v = args.values;
    const name = String(v.as);
    if (!/^[A-Za-z_$][\w$]*$/.test(name)) throw new WorkflowArgError(`Expected an identifier for --as but received ${JSON.stringify(name)}`);
    if (v["export-plugin"] !== undefined) {
      const out = wf().workbench.exportPlugin(String(v["export-plugin"]), { data: v.data as string | undefined, batch: v.batch as number | undefined, kind: v.plugin as never });
      const f = out.spec.fields;
      process.stdout.write(
        `Wrote ${out.spec.plugin} v${out.spec.version}: ${f.length} plugin fields to ${out.json} and the ONNX script to ${out.script}\n` +
          `  inputs ${out.spec.inputs.map((i) => `${i.name} [${i.shape.join(", ")}]`).join(", ")}\n` +
          `  outputs ${out.spec.outputs.map((o) => `${o.name} [${o.shape.join(", ")}]`).join(", ")}\n`,
      );
    }
    const cands = wf().workbench.candidates({ backend: v.backend as never, precision: v.precision as never });
    const bar = ctx.display.progress(cands.filter((c) => !c.unavailable).length, { label: "optimize" });
    const report = await wf().workbench.optimize(
      { data: v.data as string | undefined, backend: v.backend as never, precision: v.precision as never, batch: v.batch as number | undefined, iterations: v.iterations as number },
      bar,
      stopSignal(ctx),
    );
    const rows = report.rows.map((r) => [
      r.name,
      r.unavailable ? `unavailable: ${r.unavailable}` : r.correct === undefined ? "-" : r.correct ? "yes" : `NO (${r.mismatch ?? "differs"})`,
      fmt(r.medianMs),
      fmt(r.p90Ms),
      r.speedup ? `${r.speedup.toFixed(1)}x` : "-",
    ]);
    const win = report.winner ? report.rows.indexOf(report.winner) : -1;
    ctx.display(
      tableBundle(["candidate", "correct", "median", "p90", "vs js reference"], rows, {
        caption: `%optimize on ${report.dataset} (${report.images} image${report.images > 1 ? "s" : ""})${report.winner ? `: fastest exact = ${report.winner.name}, bound as ${name}` : ": no correct candidate"}${report.interrupted ? " (interrupted)" : ""}`,
        highlight: new Set(win >= 0 ? [win] : []),
        numeric: new Set([2, 3, 4]),
      }),
    );
    if (report.postprocessor && report.artifact) {
      wf().workbench.optimized.set(name, { postprocessor: report.postprocessor, report });
      wf().workbench.lastOptimized = name;
      ctx.executor.bind(name, report.postprocessor, `import("${modulePath("postprocess/api")}").Postprocessor`);
      if (v.save) {
        wf().saveOptimized(String(v.save), report.artifact);
        process.stdout.write(`Saved ${report.winner!.name} to ${v.save} (loadOptimized(${JSON.stringify(v.save)}) in a fresh kernel).\n`);
      }
    }
    if (report.interrupted) throw Object.assign(new Error("Interrupted by the user (the rows done are above)"), { name: "KeyboardInterrupt" });
    return {};
  },
};

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
    const { stats, result } = await wf().workbench.latency(pp, ds, v.iterations as number, stopSignal(ctx));
    ctx.display(
      tableBundle(
        ["postprocessor", "backend", "images", "runs", "median", "p90", "min", "compute", "copy in", "copy out", "detections"],
        [[label, result.backend, String(result.detections.length), String(stats.runs), fmt(stats.medianMs), fmt(stats.p90Ms), fmt(stats.minMs), fmt(stats.computeMs), fmt(stats.uploadMs), fmt(stats.downloadMs), result.detections.map((d) => d.count).join(" ")]],
        { caption: `%run on ${ds.name}`, numeric: new Set([2, 3, 4, 5, 6, 7, 8, 9]) },
      ),
    );
    const heads = pp.prepare(ds);
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
      const saved = wf().workbench.saveResults(ds, result, file);
      process.stdout.write(`Wrote ${saved.count} detections to ${file} (COCO results format${ds.coco ? "" : "; image ids 1..N and labels as category ids, as no annotations are bound"}${saved.unmapped ? `; ${saved.unmapped} of labels without a category left out` : ""}).\n`);
    }
    return {};
  },
};

/** `key=0.05,0.1` / `key=0.4:0.7:0.1` / `key=a,b` -> values (numbers when they parse as numbers). */
function axisValues(key: string, raw: string): unknown[] {
  if (/^[\d.:,eE+-]+$/.test(raw)) return parseNumberList(raw, key);
  return raw.split(",").filter((s) => s.length > 0).map((x) => wf().parseConfigValue(x));
}

export const sweep: Magic = {
  name: "sweep",
  kind: "line",
  summary: "grid over config keys, accuracy vs latency with the Pareto front: %sweep score_thresh=0.05,0.1,0.3 nms_thresh=0.4:0.7:0.1",
  help: "Each grid point runs the session config with those values (backend auto) on --data, --iterations times, and its --metric (AP, AP50, AP75, APs, APm, APl, AR1, AR10, AR100 with ground truth; detections without). Interrupt keeps the rows done. The chart is Vega-Lite with an SVG rendering and the table as text.",
  args: {
    keyValues: true,
    options: [
      { name: "data", type: "string", help: "dataset (default: the last loaded)" },
      { name: "metric", type: "string", help: "AP (default with ground truth) ... or detections" },
      { name: "iterations", type: "int", help: "timed runs per point", default: 5, min: 1, max: 10000 },
      { name: "backend", type: "choice", choices: ["auto", "cpu", "cuda", "js"], default: "auto", help: "backend of every point" },
    ],
  },
  async run(ctx, args) {
    if (args.pairs.length === 0) throw new WorkflowArgError("Expected at least one key=values axis (e.g. score_thresh=0.05,0.1) for %sweep but received none");
    const axes: Record<string, unknown[]> = {};
    for (const [k, raw] of args.pairs) axes[k] = axisValues(k, raw);
    const points = wf().workbench.sweepGrid(axes).length;
    const bar = ctx.display.progress(points, { label: "sweep" });
    const v = args.values;
    const { rows, metric, interrupted } = await wf().workbench.sweep(axes, { data: v.data as string | undefined, metric: v.metric as string | undefined, iterations: v.iterations as number, backend: v.backend as never }, bar, stopSignal(ctx));
    const keys = Object.keys(axes);
    const table = tableBundle(
      [...keys, "median", metric, "detections", "Pareto"],
      rows.map((r) => [...keys.map((k) => show(r.values[k])), fmt(r.medianMs), metric === "detections" ? String(r.metric) : r.metric.toFixed(4), String(r.detections), r.pareto ? "yes" : ""]),
      { caption: `%sweep: ${rows.length} of ${points} points${interrupted ? " (interrupted)" : ""}`, highlight: new Set(rows.flatMap((r, i) => (r.pareto ? [i] : []))), numeric: new Set([keys.length, keys.length + 1, keys.length + 2]) },
    );
    ctx.display(table);
    if (rows.length > 0) {
      const values = rows.map((r) => ({ ...Object.fromEntries(keys.map((k) => [k, show(r.values[k])])), point: keys.map((k) => `${k}=${show(r.values[k])}`).join(" "), latency_ms: r.medianMs, [metric]: r.metric, front: r.pareto ? "Pareto front" : "dominated" }));
      const spec: Record<string, unknown> = {
        $schema: "https://vega.github.io/schema/vega-lite/v5.json",
        title: `${metric} vs latency`,
        width: 420,
        height: 260,
        data: { values },
        layer: [
          {
            transform: [{ filter: "datum.front === 'Pareto front'" }],
            mark: { type: "line", color: "#2ca02c" },
            encoding: { x: { field: "latency_ms", type: "quantitative", sort: "ascending" }, y: { field: metric, type: "quantitative" } },
          },
          {
            mark: { type: "point", filled: true, size: 60 },
            encoding: {
              x: { field: "latency_ms", type: "quantitative", title: "median latency (ms)", scale: { zero: false } },
              y: { field: metric, type: "quantitative", title: metric, scale: { zero: false } },
              color: { field: "front", type: "nominal", scale: { domain: ["Pareto front", "dominated"], range: ["#2ca02c", "#999999"] }, title: null },
              tooltip: [{ field: "point" }, { field: "latency_ms", format: ".3f" }, { field: metric, format: ".4f" }],
            },
          },
        ],
      };
      let svg: string | undefined;
      try {
        svg = await vegaLiteToSvg(spec);
      } catch (e) {
        process.stderr.write(`(the SVG rendering of the chart failed: ${(e as Error).message}; the Vega-Lite spec is still shown)\n`);
      }
      ctx.display.vegalite(spec, { svg, text: String(table["text/plain"]) });
    }
    if (interrupted) throw Object.assign(new Error("Interrupted by the user (the rows done are above)"), { name: "KeyboardInterrupt" });
    return {};
  },
};

export const devices: Magic = {
  name: "devices",
  kind: "line",
  summary: "what this machine offers: CPU, CUDA devices, TensorRT, compiled-in backends, addon build",
  help: "",
  args: {},
  async run(ctx) {
    const { info, text } = (require("../../postprocess/devices") as typeof import("../../postprocess/devices")).devicesReport();
    const rows: string[][] = [
      ["CPU", `${info.cpu.model}, ${info.cpu.cores} cores (${info.cpu.arch})`],
      ["CUDA", info.cuda.devices.length ? info.cuda.devices.map((d) => `#${d.index} ${d.name} (sm_${d.sm.replace(".", "")}, ${(d.memoryBytes / 2 ** 30).toFixed(0)} GiB)`).join("; ") : `none: ${info.cuda.reason ?? "not compiled"}`],
      ["CUDA in the addon", info.cuda.compiled ? `yes (runtime ${info.cuda.runtimeVersion}, ${info.cuda.architectures})` : "no"],
      ["TensorRT plugins", info.tensorrt.compiled ? `built: ${info.tensorrt.library} (TensorRT ${info.tensorrt.headersVersion} headers; engines need libnvinfer at run time)` : `not built: ${info.tensorrt.reason ?? ""}`],
      ["backends", `${info.backends.available.join(", ")}${Object.entries(info.backends.unavailable).filter(([, r]) => r).map(([b, r]) => `; ${b}: ${r}`).join("")}`],
      ["addon", info.addon.loaded ? `${info.addon.version}, ${info.addon.compiler}, ${info.addon.simd}, N-API ${info.addon.napiVersion}` : `not loaded: ${info.addon.reason}`],
      ["Node", info.node],
    ];
    ctx.display({ ...tableBundle(["", ""], rows), "text/plain": text });
    return { value: undefined };
  },
};

/** loadOptimized for cells: the Postprocessor of a file written by %optimize --save. */
export function loadOptimizedForCell(file: string): Postprocessor {
  const { postprocessor, note } = wf().loadOptimized(file);
  if (note) process.stderr.write(`${note}\n`);
  return postprocessor;
}

export const workflowMagics: Magic[] = [config, load, synth, datasets, optimize, run, sweep, devices];
