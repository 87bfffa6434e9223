/**
 * `retinanet-kernel quickstart` (npm start): executes notebooks/01-quickstart.ipynb through the
 * installed kernel with nbclient (a real Jupyter client), writes the executed copy and prints what
 * the cells tagged "summary" showed (their printed text and their value).
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";

import { kernelspecCommand } from "./kernelspec";
import { PACKAGE_ROOT } from "./native";

export function jupyterPythonBin(): string {
  for (const py of ["/usr/bin/python3", "python3"]) {
    const r = spawnSync(py, ["-c", "import nbclient, nbformat"], { encoding: "utf8" });
    if (r.status === 0) return py;
  }
  throw new Error("Expected a Python with nbclient (Debian: apt-get install python3-nbclient) but found none");
}

/** Executes a notebook through the kernelspec `kernelName`; returns the executed notebook's path. */
export function executeNotebook(notebook: string, out: string, kernelName = "retinanet-kernel", timeoutS = 1200): { ok: boolean; stderr: string } {
  const py = jupyterPythonBin();
  const script = [
    "import sys, nbformat, nbclient",
    "nb = nbformat.read(sys.argv[1], as_version=4)",
    `client = nbclient.NotebookClient(nb, kernel_name=sys.argv[3], timeout=${timeoutS}, resources={"metadata": {"path": sys.argv[4]}})`,
    "try:",
    "    client.execute()",
    "finally:",
    "    nbformat.write(nb, sys.argv[2])",
  ].join("\n");
  const r = spawnSync(py, ["-c", script, notebook, out, kernelName, path.dirname(path.resolve(notebook))], { encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
  return { ok: r.status === 0, stderr: r.stderr };
}

export async function quickstartCommand(argv: string[]): Promise<number> {
  const nb = path.join(PACKAGE_ROOT, "notebooks", "01-quickstart.ipynb");
  const outIdx = argv.indexOf("--out");
  const out = outIdx >= 0 ? path.resolve(argv[outIdx + 1]) : path.join(PACKAGE_ROOT, "notebooks", "01-quickstart.executed.ipynb");
  if (!fs.existsSync(nb)) throw new Error(`Expected the quickstart notebook at ${nb} but it is missing`);
  kernelspecCommand("install", ["--user"]);
  console.log(`Executing ${path.relative(process.cwd(), nb)} through the retinanet-kernel kernel (nbclient)...`);
  const t0 = Date.now();
  const r = executeNotebook(nb, out);
  const secs = ((Date.now() - t0) / 1000).toFixed(1);
  if (!r.ok) {
    console.error(r.stderr.split("\n").slice(-30).join("\n"));
    console.error(`The quickstart failed after ${secs} s; the partly executed notebook is ${out}`);
    return 1;
  }
  console.log(`Executed in ${secs} s -> ${out}`);
  const summary = summaryOutputs(JSON.parse(fs.readFileSync(out, "utf8")) as ExecutedNotebook);
  const indent = (t: string, pad: string) => t.trim().split("\n").join(`\n${pad}`);
  if (summary.length) console.log(`Summary:\n${summary.map((s) => [`  ${indent(s.text, "  ")}`, s.value ? `    ${indent(s.value, "    ")}` : ""].filter(Boolean).join("\n")).join("\n")}`);
  return 0;
}

export interface ExecutedNotebook {
  cells: { metadata?: { tags?: string[] }; outputs?: { output_type: string; text?: string | string[]; data?: Record<string, unknown> }[] }[];
}

/** What each cell tagged "summary" printed (stream text) and returned (text/plain of its result). */
export function summaryOutputs(nb: ExecutedNotebook): { text: string; value: string }[] {
  const join = (t: unknown) => (Array.isArray(t) ? t.join("") : typeof t === "string" ? t : "");
  return nb.cells
    .filter((c) => c.metadata?.tags?.includes("summary"))
    .map((c) => ({
      text: (c.outputs ?? []).filter((o) => o.output_type === "stream").map((o) => join(o.text)).join(""),
      value: join((c.outputs ?? []).find((o) => o.output_type === "execute_result")?.data?.["text/plain"]),
    }));
}
