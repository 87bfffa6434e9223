/** %sweep: a grid over config keys, accuracy against latency with the Pareto front. */
import { parseNumberList } from "../../args";
import { tableBundle, vegaLiteToSvg } from "../../display/render";
import { Magic } from "../registry";
import { wf, WorkflowArgError, fmt, show, stopSignal } from "./workflow-common";

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
    const points = wf().workbench.sweepGrid(axes, wf().workbench.dataset(args.values.data as string | undefined)).length;
    const bar = ctx.display.progress(points, { label: "sweep" });
    const v = args.values;
    const { rows, metric, interrupted, evalShared } = await wf().workbench.sweep(axes, { data: v.data as string | undefined, metric: v.metric as string | undefined, iterations: v.iterations as number, backend: v.backend as never }, bar, stopSignal(ctx));
    const keys = Object.keys(axes);
    // With --metric detections (no ground truth) the metric is the detections column itself.
    const byCount = metric === "detections";
    const table = tableBundle(
      [...keys, "median", ...(byCount ? [] : [metric]), "detections", "Pareto"],
      rows.map((r) => [...keys.map((k) => show(r.values[k])), fmt(r.medianMs), ...(byCount ? [] : [r.metric.toFixed(4)]), String(r.detections), r.pareto ? "yes" : ""]),
      { caption: `%sweep: ${rows.length} of ${points} points${interrupted ? " (interrupted)" : ""}${evalShared > 0 ? `; ${evalShared} evaluated from the matching of a lower score_thresh (their detections are exactly its detections above the threshold)` : ""}`, highlight: new Set(rows.flatMap((r, i) => (r.pareto ? [i] : []))), numeric: new Set(byCount ? [keys.length, keys.length + 1] : [keys.length, keys.length + 1, keys.length + 2]) },
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
      const front = rows.filter((r) => r.pareto).map((r) => `${keys.map((k) => `${k}=${show(r.values[k])}`).join(" ")} (${fmt(r.medianMs)}, ${metric} ${metric === "detections" ? r.metric : r.metric.toFixed(4)})`);
      ctx.display.vegalite(spec, { svg, text: `${metric} vs median latency, ${rows.length} of ${points} points; Pareto front: ${front.join("; ") || "none"}` });
    }
    if (interrupted) throw Object.assign(new Error("Interrupted by the user (the rows done are above)"), { name: "KeyboardInterrupt" });
    return {};
  },
};
