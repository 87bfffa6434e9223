/**
 * What the workflow magics share: the workbench (loaded on first use, not at kernel start),
 * argument errors, number formatting, the interrupt signal of long loops and the datasets table.
 */
import { tableBundle } from "../../display/render";
import type { StopSignal } from "../../postprocess/workbench";
import { MagicContext } from "../registry";

export type Workflow = typeof import("../../postprocess/workbench");
export const wf = (): Workflow => require("../../postprocess/workbench") as Workflow;
export const config_ = () => require("../../postprocess/config") as typeof import("../../postprocess/config");
export class WorkflowArgError extends Error {
  readonly code = "ERR_RK_MAGIC_ARGS";
}

export const fmt = (ms: number | undefined) => (ms === undefined || !Number.isFinite(ms) ? "-" : ms >= 100 ? `${ms.toFixed(0)} ms` : ms >= 1 ? `${ms.toFixed(2)} ms` : `${(ms * 1000).toFixed(0)} us`);
export const show = (v: unknown) => (v !== null && typeof v === "object" ? JSON.stringify(v) : v === null ? "null" : String(v));

/** Set when the cell is interrupted; long loops check it between steps. */
export function stopSignal(ctx: MagicContext): StopSignal {
  const s = { stopped: false };
  ctx.interrupts.arm().catch(() => {
    s.stopped = true;
  });
  return s;
}


export function showDatasets(ctx: MagicContext, only?: string[]): void {
  const rows = wf().workbench.datasetRows().filter((r) => !only || only.includes(r.name));
  if (rows.length === 0) {
    process.stdout.write("No datasets: use %load NAME PATH or %synth NAME.\n");
    return;
  }
  ctx.display(
    tableBundle(
      ["name", "images", "classes", "layout", "dtype", "levels (HxW)", "MB", "on GPU (MB)", "candidates", "bounds", "gt", "expected", "source"],
      rows.map((r) => [r.name, String(r.images), String(r.classes), r.layout, r.dtype, r.levels, r.mb.toFixed(1), r.gpuMb > 0 ? r.gpuMb.toFixed(1) : "", r.candidates === undefined ? "" : String(r.candidates), r.bounds ?? "", r.gt ? "yes" : "", r.expected ? "yes" : "", r.source]),
      { numeric: new Set([1, 2, 6, 7, 8]) },
    ),
  );
}
