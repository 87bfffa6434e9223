/**
 * The tuning workflow's magics, one file each: %config, %load, %synth, %datasets, %optimize, %run,
 * %sweep, %tune, %devices. Each is a thin layer over rk.workbench (kernel/postprocess/workbench.ts), which
 * cells can call directly; the magics parse arguments, show progress, and render tables and charts.
 * The post-processing modules load on a magic's first use, not at kernel start.
 */
import type { Postprocessor } from "../../postprocess/postprocessor";
import { Magic } from "../registry";
import { config } from "./config";
import { datasets } from "./datasets";
import { devices } from "./devices";
import { load } from "./load";
import { optimize } from "./optimize";
import { run } from "./run";
import { sweep } from "./sweep";
import { synth } from "./synth";
import { tune } from "./tune";
import { wf } from "./workflow-common";

/** loadOptimized for cells: the Postprocessor of a file written by %optimize --save. */
export function loadOptimizedForCell(file: string): Postprocessor {
  const { postprocessor, note } = wf().loadOptimized(file);
  if (note) process.stderr.write(`${note}\n`);
  return postprocessor;
}

export const workflowMagics: Magic[] = [config, load, synth, datasets, optimize, run, sweep, tune, devices];
