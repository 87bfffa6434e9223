/** %optimize: every available implementation checked and timed; the fastest exact one kept. */
import { tableBundle } from "../../display/render";
import { modulePath } from "../../runtime/prelude";
import { checkOutputPath } from "../../files";
import { Magic } from "../registry";
import { WorkflowArgError, fmt, stopSignal, wf } from "./workflow-common";

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
    if (v.save !== undefined) checkOutputPath(String(v.save), "--save");
    if (v["export-plugin"] !== undefined) {
      const out = wf().workbench.exportPlugin(String(v["export-plugin"]), { data: v.data as string | undefined, batch: v.batch as number | undefined, kind: v.plugin as never });
      const f = out.spec.fields;
      process.stdout.write(
        `Wrote ${out.spec.plugin} v${out.spec.version}: ${f.length} plugin fields to ${out.json} and the ONNX script to ${out.script}\n` +
          `  inputs ${out.spec.inputs.map((i) => `${i.name} [${i.shape.join(", ")}]`).join(", ")}\n` +
          `  outputs ${out.spec.outputs.map((o) => `${o.name} [${o.shape.join(", ")}]`).join(", ")}\n`,
      );
    }
    const target = wf().workbench.dataset(v.data as string | undefined);
    const onCache = "kind" in target && target.kind === "cache";
    const cands = onCache ? wf().workbench.cacheCandidates({ backend: v.backend as never }) : wf().workbench.candidates({ backend: v.backend as never, precision: v.precision as never });
    const available = cands.filter((c) => !c.unavailable).length;
    const bar = available > 0 ? ctx.display.progress(available, { label: "optimize" }) : undefined; // none: optimize says why
    const report = await wf().workbench.optimize(
      { data: v.data as string | undefined, backend: v.backend as never, precision: v.precision as never, batch: v.batch as number | undefined, iterations: v.iterations as number },
      bar,
      stopSignal(ctx),
    );
    const rows = report.rows.map((r) => [
      r.name,
      r.unavailable ? "unavailable (below)" : r.correct === undefined ? "-" : r.correct ? "yes" : `NO (${r.mismatch ?? "differs"})`,
      fmt(r.medianMs),
      fmt(r.p90Ms),
      r.speedup ? `${r.speedup.toFixed(1)}x` : "-",
    ]);
    const win = report.winner ? report.rows.indexOf(report.winner) : -1;
    ctx.display(
      tableBundle(["candidate", "correct", report.perImage ? "per image" : "median", "p90", "vs js reference"], rows, {
        caption:
          `%optimize on ${report.dataset} (${report.images} image${report.images > 1 ? "s" : ""})${report.winner ? `: fastest exact = ${report.winner.name}, bound as ${name}` : ": no correct candidate"}${report.interrupted ? " (interrupted)" : ""}` +
          (report.perImage ? `; a candidate cache: checked against the js reference on the first ${report.sample} images, timed per image over all (js: over the sample)` : ""),
        highlight: new Set(win >= 0 ? [win] : []),
        numeric: new Set([2, 3, 4]),
        notes: report.rows.filter((r) => r.unavailable).map((r) => `${r.name} unavailable: ${r.unavailable}`),
      }),
    );
    if (report.postprocessor && report.artifact) {
      wf().workbench.optimized.set(name, { postprocessor: report.postprocessor, report });
      wf().workbench.lastOptimized = name;
      ctx.executor.bind(name, report.postprocessor, `import("${modulePath("postprocess/api")}").Postprocessor`);
      if (v.save) {
        wf().saveOptimized(String(v.save), report.artifact, "--save");
        process.stdout.write(`Saved ${report.winner!.name} to ${v.save} (loadOptimized(${JSON.stringify(v.save)}) in a fresh kernel).\n`);
      }
    }
    if (report.interrupted) throw Object.assign(new Error("Interrupted by the user (the rows done are above)"), { name: "KeyboardInterrupt" });
    return {};
  },
};
