/** %tune: a deployment configuration for an objective (latency under a metric constraint, or per-class thresholds). */
import { parseNumberList } from "../../args";
import { tableBundle, vegaLiteToSvg } from "../../display/render";
import { modulePath } from "../../runtime/prelude";
import type { ThresholdReport, TuneLatencyReport } from "../../postprocess/tune";
import { checkOutputPath } from "../../files";
import { Magic, MagicContext } from "../registry";
import { fmt, show, stopSignal, wf, WorkflowArgError } from "./workflow-common";

function axisValues(key: string, raw: string): unknown[] {
  if (/^[\d.:,eE+-]+$/.test(raw)) return parseNumberList(raw, key);
  return raw.split(",").filter((s) => s.length > 0).map((x) => wf().parseConfigValue(x));
}

async function chart(ctx: MagicContext, spec: Record<string, unknown>, text: string): Promise<void> {
  let svg: string | undefined;
  try {
    svg = await vegaLiteToSvg(spec);
  } catch (e) {
    process.stderr.write(`(the SVG rendering of the chart failed: ${(e as Error).message}; the Vega-Lite spec is still shown)\n`);
  }
  ctx.display.vegalite(spec, { svg, text });
}

function showLatency(ctx: MagicContext, r: TuneLatencyReport): void {
  const keys = Object.keys(r.winner.values);
  const unit = r.perImage ? "per image" : "median";
  ctx.display(
    tableBundle(
      ["#", "step", ...keys, r.metric, unit, "feasible"],
      r.path.map((p) => [String(p.index), p.step, ...keys.map((k) => show(p.values[k])), p.metric.toFixed(4), fmt(p.ms), p.metric >= (r.keep.relative ? r.best - r.keep.value : r.keep.value) - 1e-12 ? "yes" : ""]),
      {
        caption: `%tune path: ${r.evaluations} evaluations of a ${r.gridSize}-point space (coordinate search: the metric raised one axis at a time, then latency lowered one axis at a time within ${r.keep.text}; best ${r.metric} seen ${r.best.toFixed(4)})`,
        highlight: new Set([r.path.indexOf(r.winner)]),
        numeric: new Set([0, keys.length + 2, keys.length + 3]),
      },
    ),
  );
  const w = r.winner;
  const lines = [
    `Winner: ${keys.map((k) => `${k}=${show(w.values[k])}`).join(" ")}: ${r.metric} ${w.metric.toFixed(4)} (best ${r.best.toFixed(4)}, constraint ${r.keep.text}), ${fmt(w.ms)} ${unit}${r.perImage ? " (the stages after selection, on the candidate cache)" : ""}.`,
    `Evaluations: ${r.evaluations} of the grid's ${r.gridSize}.`,
  ];
  if (r.grid) {
    lines.push(
      r.grid.same
        ? `The full grid (${r.grid.evaluations} points) gives the same answer.`
        : `The full grid (${r.grid.evaluations} points) answers ${Object.keys(r.grid.answer.values).map((k) => `${k}=${show(r.grid!.answer.values[k])}`).join(" ")}: ${r.metric} ${r.grid.answer.metric.toFixed(4)}, ${fmt(r.grid.answer.ms)}; the search's winner is ${r.grid.latencyRatio.toFixed(2)}x its latency and ${r.grid.metricGap.toFixed(4)} below its ${r.metric}.`,
    );
  }
  process.stdout.write(lines.join("\n") + "\n");
}

async function showThresholds(ctx: MagicContext, r: ThresholdReport, chartClasses: number[] | undefined): Promise<void> {
  const goal = r.target.kind === "f1" ? "the best F1" : `${r.target.kind} >= ${r.target.value}`;
  ctx.display(
    tableBundle(
      ["label", "category", "name", "threshold", "precision", "recall", "F1", "support", "detections", "target"],
      r.classes.map((c) => [String(c.label), String(c.category), c.name, c.threshold.toFixed(4), c.precision.toFixed(3), c.recall.toFixed(3), c.f1.toFixed(3), String(c.support), String(c.detections), c.unreachable ? `cannot reach: ${c.note}` : "met"]),
      {
        caption: `%tune thresholds: per-class score thresholds for ${goal} at IoU ${r.iou} over ${r.images} images (detections of the session config at score_thresh ${r.base}; a class that cannot reach the target keeps ${r.base})`,
        highlight: new Set(r.classes.flatMap((c, i) => (c.unreachable ? [i] : []))),
        numeric: new Set([0, 1, 3, 4, 5, 6, 7, 8]),
      },
    ),
  );
  const chosen = chartClasses ?? [...r.classes].filter((c) => !c.unreachable).sort((a, b) => b.support - a.support).slice(0, 4).map((c) => c.label);
  const values = r.classes
    .filter((c) => chosen.includes(c.label))
    .flatMap((c) => c.curve.flatMap((p) => [
      { class: `${c.label} ${c.name}`, threshold: p.threshold, value: p.precision, measure: "precision" },
      { class: `${c.label} ${c.name}`, threshold: p.threshold, value: p.recall, measure: "recall" },
    ]));
  if (values.length === 0) return;
  const rules = r.classes.filter((c) => chosen.includes(c.label) && !c.unreachable).map((c) => ({ class: `${c.label} ${c.name}`, threshold: c.threshold }));
  const spec = {
    $schema: "https://vega.github.io/schema/vega-lite/v5.json",
    title: `Precision and recall against the score threshold (IoU ${r.iou}); chosen thresholds as rules`,
    width: 420,
    height: 240,
    layer: [
      {
        data: { values },
        mark: { type: "line", interpolate: "step-after" },
        encoding: {
          x: { field: "threshold", type: "quantitative", scale: { domain: [0, 1] } },
          y: { field: "value", type: "quantitative", scale: { domain: [0, 1] } },
          color: { field: "class", type: "nominal" },
          strokeDash: { field: "measure", type: "nominal" },
        },
      },
      { data: { values: rules }, mark: { type: "rule", strokeWidth: 1 }, encoding: { x: { field: "threshold", type: "quantitative" }, color: { field: "class", type: "nominal" } } },
    ],
  };
  await chart(ctx, spec, `precision and recall against the threshold for classes ${chosen.join(", ")}`);
}

export const tune: Magic = {
  name: "tune",
  kind: "line",
  summary: "a deployment config for an objective: %tune --objective latency --keep AP>=best-0.002 [--over key=values ...] | %tune thresholds --target precision=0.9|recall=0.8|f1 [--iou 0.5]",
  help:
    "%tune --objective latency: the fastest config whose metric keeps --keep (METRIC>=best-DELTA or METRIC>=VALUE), searched over the axes given as key=values (after --over, the %sweep syntax) or a default space (score_thresh, topk_candidates, nms_thresh, detections_per_img) by coordinate search: the metric raised one axis at a time, then latency lowered one axis at a time within the constraint; the table is the path it took. --grid also runs the full grid and says how far the search's answer is from the grid's. On a candidate cache the latency is per image of the stages after selection.\n" +
    "%tune thresholds: per-class score thresholds (score_thresh_per_class) from the dataset's detections matched to its ground truth at --iou (COCO matching), for --target precision=P (the most recall with precision >= P), recall=R (the highest threshold with recall >= R) or f1; a table per class (classes that cannot reach the target keep score_thresh and are marked) and a chart of precision and recall against the threshold.\n" +
    "Either binds a Postprocessor of the result (--as, default pp); --save FILE writes it for loadOptimized(FILE); --export-plugin FILE writes its TensorRT plugin fields and ONNX script.",
  args: {
    keyValues: true,
    positionals: [{ name: "MODE", type: "string", help: "thresholds (per-class thresholds); without it: --objective" }],
    options: [
      { name: "objective", type: "choice", choices: ["latency"], help: "what to minimise (latency)" },
      { name: "keep", type: "string", help: "metric constraint, e.g. AP>=best-0.002 or AP50>=0.6", default: "AP>=best-0.002" },
      { name: "over", type: "bool", help: "the key=values after it are the space (the default space without any)" },
      { name: "grid", type: "bool", help: "also run the full grid and compare" },
      { name: "target", type: "string", help: "thresholds: precision=P, recall=R or f1", default: "f1" },
      { name: "iou", type: "number", help: "thresholds: IoU of a match", default: 0.5, min: 0.01, max: 1 },
      { name: "classes", type: "string", help: "thresholds: labels to chart (default: the 4 with the most ground truth)" },
      { name: "data", type: "string", help: "dataset (default: the last loaded)" },
      { name: "backend", type: "choice", choices: ["auto", "cpu", "cuda", "js"], default: "auto", help: "backend of the bound Postprocessor (and of the timing on heads)" },
      { name: "iterations", type: "int", help: "timed runs per point on heads", default: 5, min: 1, max: 10000 },
      { name: "as", type: "string", help: "variable for the result", default: "pp" },
      { name: "save", type: "string", help: "write the result's artifact (JSON) here" },
      { name: "export-plugin", type: "string", help: "write the TensorRT plugin fields (FILE.json) and the ONNX script (FILE.py)" },
    ],
  },
  async run(ctx, args) {
    const v = args.values;
    const name = String(v.as);
    if (!/^[A-Za-z_$][\w$]*$/.test(name)) throw new WorkflowArgError(`Expected an identifier for --as but received ${JSON.stringify(name)}`);
    const mode = v.MODE === undefined ? undefined : String(v.MODE);
    if (mode !== undefined && mode !== "thresholds") throw new WorkflowArgError(`Expected "thresholds" or nothing before the options of %tune but received ${JSON.stringify(mode)}`);
    if (mode === undefined && v.objective === undefined) throw new WorkflowArgError("Expected --objective latency (or %tune thresholds --target ...) but received neither");
    // The arguments are checked before any work starts (a run of the dataset can take minutes).
    const chartClasses = v.classes === undefined ? undefined : String(v.classes).split(",").map((x) => Number(x));
    if (chartClasses?.some((x) => !Number.isInteger(x) || x < 0)) throw new WorkflowArgError(`Expected labels (integers >= 0, comma-separated) for --classes but received ${JSON.stringify(v.classes)}`);
    if (v.save !== undefined) checkOutputPath(String(v.save), "--save");
    if (v["export-plugin"] !== undefined) (require("../../postprocess/plugin") as typeof import("../../postprocess/plugin")).pluginExportFiles(String(v["export-plugin"]));
    const { parseKeep, parseTarget } = require("../../postprocess/tune") as typeof import("../../postprocess/tune");
    if (mode === "thresholds") parseTarget(String(v.target));
    else parseKeep(String(v.keep));
    const stop = stopSignal(ctx);
    let result: import("../../postprocess/workbench").TuneResult<ThresholdReport | TuneLatencyReport>;
    if (mode === "thresholds") {
      if (args.pairs.length > 0) throw new WorkflowArgError(`Expected no key=values with %tune thresholds but received ${args.pairs.map((p) => p.join("=")).join(" ")}`);
      const bar = ctx.display.progress(wf().workbench.shapesOf(wf().workbench.dataset(v.data as string | undefined)).batch, { label: "images" });
      result = await wf().workbench.tuneThresholds({ target: v.target as string, iou: v.iou as number, data: v.data as string | undefined, backend: v.backend as never }, bar, stop);
      await showThresholds(ctx, result.report as ThresholdReport, chartClasses);
    } else {
      const over: Record<string, unknown[]> = {};
      for (const [k, raw] of args.pairs) over[k] = axisValues(k, raw);
      if (v.over && args.pairs.length === 0) throw new WorkflowArgError("Expected key=values after --over (e.g. --over score_thresh=0.05,0.1,0.2) but received none");
      const ds = wf().workbench.dataset(v.data as string | undefined);
      const space = Object.keys(over).length > 0 ? over : wf().workbench.defaultTuneSpace(ds);
      const bar = ctx.display.progress(wf().workbench.sweepGrid(space, ds).length, { label: "evaluations (at most)" });
      result = await wf().workbench.tuneLatency({ keep: v.keep as string, over, data: v.data as string | undefined, grid: !!v.grid, backend: v.backend as never, iterations: v.iterations as number }, bar, stop);
      showLatency(ctx, result.report as TuneLatencyReport);
      if ((result.report as TuneLatencyReport).interrupted) {
        throw Object.assign(new Error("Interrupted by the user (the path so far is above; nothing was bound)"), { name: "KeyboardInterrupt" });
      }
    }
    wf().workbench.optimized.set(name, { postprocessor: result.postprocessor, report: { dataset: "", images: 0, rows: [], interrupted: false, postprocessor: result.postprocessor, artifact: result.artifact } });
    wf().workbench.lastOptimized = name;
    wf().workbench.lastTune = result.report;
    ctx.executor.bind(name, result.postprocessor, `import("${modulePath("postprocess/api")}").Postprocessor`);
    const changed = wf().workbench.setConfig(
      mode === "thresholds"
        ? { score_thresh_per_class: result.report.config.score_thresh_per_class }
        : Object.fromEntries(Object.keys((result.report as TuneLatencyReport).winner.values).map((k) => [k, (result.report.config as unknown as Record<string, unknown>)[k]])),
    );
    process.stdout.write(`Bound as ${name}; the session config now has ${changed.changed.join(", ") || "no changes"} from the result.\n`);
    if (v.save) {
      wf().saveOptimized(String(v.save), result.artifact, "--save");
      process.stdout.write(`Saved to ${v.save} (loadOptimized(${JSON.stringify(v.save)}) in a fresh kernel).\n`);
    }
    if (v["export-plugin"] !== undefined) {
      const out = wf().workbench.exportPlugin(String(v["export-plugin"]), { data: v.data as string | undefined });
      process.stdout.write(`Wrote ${out.spec.plugin}: ${out.spec.fields.length} plugin fields to ${out.json} and the ONNX script to ${out.script}.\n`);
    }
    return {};
  },
};
