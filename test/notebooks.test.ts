/**
 * The tutorial notebooks run end to end through the kernel with nbclient (a real Jupyter client):
 * every cell without an error, the key lines true, rich outputs present. Also what `npm start` does.
 */
import * as assert from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

import { PACKAGE_ROOT } from "../kernel/native";
import { ExecutedNotebook, executeNotebook, summaryOutputs } from "../kernel/quickstart";
import { GOLDEN_DIR } from "./helpers";
import { hasPythonModules, installTestKernelspec } from "./jupyter-env";

/** Runs f with the kernelspec installed in a temporary prefix (and extra environment). */
async function withKernelspec(f: () => Promise<void> | void, extra: Record<string, string> = {}): Promise<void> {
  const { env } = installTestKernelspec();
  const saved = { ...process.env };
  Object.assign(process.env, env, extra);
  try {
    await f();
  } finally {
    process.env = saved;
  }
}

interface Output {
  output_type: string;
  name?: string;
  text?: string | string[];
  data?: Record<string, unknown>;
  ename?: string;
  evalue?: string;
}

/** Executes a notebook; every cell without an error; returns its cells and the summary cells' text and value, one string each. */
function run(name: string): { cells: { source: string[]; outputs?: Output[] }[]; keys: string[] } {
  const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "rk-nb-")), name.replace(".ipynb", ".executed.ipynb"));
  const r = executeNotebook(path.join(PACKAGE_ROOT, "notebooks", name), out, "retinanet-kernel", 600);
  assert.ok(r.ok, `nbclient failed:\n${r.stderr.split("\n").slice(-25).join("\n")}`);
  const nb = JSON.parse(fs.readFileSync(out, "utf8"));
  for (const c of nb.cells) for (const o of (c.outputs ?? []) as Output[]) {
    if (o.output_type === "error") assert.fail(`cell ${c.source.join("").slice(0, 60)} failed: ${o.ename}: ${o.evalue}`);
  }
  const keys = summaryOutputs(nb as ExecutedNotebook).map((s) => `${s.text.trim()} ${s.value}`);
  return { cells: nb.cells, keys };
}

describe("tutorial notebooks (nbclient)", function () {
  this.timeout(600000);
  before(function () {
    if (!hasPythonModules("nbclient", "nbformat")) assert.fail("Debian's python3-nbclient is not installed (.ci/run installs it)");
  });

  it("01-quickstart: devices, config, synth, optimize, run with overlay and metrics, sweep chart, TensorRT plugin export, save and reload", async function () {
    await withKernelspec(async () => {
      const { cells, keys } = run("01-quickstart.ipynb");
      assert.ok(keys.some((k) => /AP \d\.\d{3}, AP50 \d\.\d{3}\./.test(k) && /AP: \d/.test(k)), keys.join("\n"));
      assert.ok(keys.some((k) => /gives the same detections\..*sameDetections: true/s.test(k)), keys.join("\n"));
      assert.ok(keys.some((k) => /RetinaNetPostprocess: \d+ fields written to quickstart-plugin\.json; quickstart-plugin\.py adds the node/.test(k)), keys.join("\n"));
      const mimes = new Set(cells.flatMap((c) => (c.outputs ?? []).flatMap((o) => Object.keys(o.data ?? {}))));
      for (const m of ["text/html", "image/svg+xml", "application/vnd.vegalite.v5+json"]) assert.ok(mimes.has(m), `an output of type ${m}`);
    });
  });

  it("03-validation-set: a synthetic validation set as a candidate cache (200 images here), a 5 x 5 sweep with AP, the pick, %optimize, %run --eval, the saved configuration gives the picked AP", async function () {
    await withKernelspec(
      async () => {
        const { cells, keys } = run("03-validation-set.ipynb");
        assert.ok(keys.some((k) => /Picked score_thresh [\d.]+, nms_thresh [\d.]+: AP \d\.\d{4} \(best \d\.\d{4}\)/.test(k)), keys.join("\n"));
        assert.ok(keys.some((k) => /on all 200 images: AP \d\.\d{4}.*sameAsPick: true/s.test(k)), keys.join("\n"));
        const text = JSON.stringify(cells);
        assert.match(text, /cache \(concatenated\)/, "%datasets shows the cache");
        assert.match(text, /score_thresh >= 0\.05, topk_candidates <= 1000/, "%datasets shows the bounds");
        assert.match(text, /checked against the js reference on the first 64 images/, "%optimize on the cache");
      },
      { RK_VALIDATION_IMAGES: "200" },
    );
  });

  it("04-deploy: %tune latency in fewer evaluations than the grid, its distance to the grid's answer said; per-class thresholds for precision 0.9, saved and in the plugin fields", async function () {
    await withKernelspec(
      async () => {
        const { cells, keys } = run("04-deploy.ipynb");
        // The grid's answer, or the distance to it (timings of near-equal points on 150 images are
        // as far apart as their noise: reported, not asserted; test/tune.test.ts asserts the agreement
        // on a deterministic space).
        assert.ok(keys.some((k) => /The search evaluated \d+ of \d+ points; the grid (agrees\.|answers otherwise \(\d+\.\d\dx\))/.test(k)), keys.join("\n"));
        const evals = keys.join(" ").match(/evaluations: (\d+), grid: (\d+)/);
        assert.ok(evals && Number(evals[1]) < Number(evals[2]), "fewer evaluations than the grid");
        assert.ok(keys.some((k) => /\d+ of \d+ classes reach precision 0\.9; the plugin fields carry 20 per-class thresholds\./.test(k)), keys.join("\n"));
        const text = JSON.stringify(cells);
        assert.match(text, /%tune path: \d+ evaluations of a \d+-point space/);
        assert.match(text, /per-class score thresholds for precision >= 0\.9 at IoU 0\.5/);
        const mimes = new Set(cells.flatMap((c) => (c.outputs ?? []).flatMap((o) => Object.keys(o.data ?? {}))));
        assert.ok(mimes.has("application/vnd.vegalite.v5+json"), "the precision/recall chart");
      },
      { RK_DEPLOY_IMAGES: "150" },
    );
  });

  it("05-tensorrt: plugin fields written and read back by the plugin's parser, the node added to an ONNX model", async function () {
    await withKernelspec(async () => {
      const { cells, keys } = run("05-tensorrt.ipynb");
      assert.ok(keys.some((k) => /parsed by the plugin: score_thresh 0\.3, nms_thresh 0\.5, detections_per_img 100.*exact: true/s.test(k)), keys.join("\n"));
      const onnx = hasPythonModules("onnx");
      const onnxKey = keys.find((k) => /onnx: (true|false)/.test(k))!;
      assert.ok(onnxKey, keys.join("\n"));
      if (onnx) assert.match(onnxKey, /RetinaNetPostprocess trt\.plugins \d+ attributes; outputs \[/);
      else console.log("      (Python's onnx is not installed: the notebook said so and did not add the node; .ci/run installs python3-onnx)");
      const mimes = new Set(cells.flatMap((c) => (c.outputs ?? []).flatMap((o) => Object.keys(o.data ?? {}))));
      assert.ok(mimes.has("text/markdown"), "the fields table");
    });
  });

  it("02-parity: every golden case on every backend is the same as its framework", async function () {
    if (!fs.existsSync(GOLDEN_DIR)) this.skip();
    await withKernelspec(async () => {
      const { keys } = run("02-parity.ipynb");
      assert.ok(keys.some((k) => /every detection is the same as the framework's\..*allSame: true/s.test(k)), keys.join("\n"));
    }, { RK_GOLDEN_DIR: GOLDEN_DIR });
  });
});
