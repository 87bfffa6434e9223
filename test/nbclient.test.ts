/** nbclient (a real Jupyter client) executes a test notebook through the installed kernelspec. */
import * as assert from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

import { PACKAGE_ROOT } from "../kernel/native";
import { executeNotebook } from "../kernel/quickstart";
import { hasPythonModules, installTestKernelspec } from "./jupyter-env";

interface Output {
  output_type: string;
  name?: string;
  text?: string | string[];
  data?: Record<string, string | string[]>;
  ename?: string;
}

const text = (v: string | string[] | undefined) => (Array.isArray(v) ? v.join("") : (v ?? ""));

describe("nbclient executes a notebook", function () {
  this.timeout(300000);
  it("runs every cell; outputs are the expected MIME bundles", function () {
    if (!hasPythonModules("nbclient", "nbformat")) assert.fail("Debian's python3-nbclient is not installed (.ci/run installs it)");
    const { env } = installTestKernelspec();
    const saved = { ...process.env };
    Object.assign(process.env, env);
    const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "rk-nb-")), "executed.ipynb");
    let r;
    try {
      r = executeNotebook(path.join(PACKAGE_ROOT, "test", "fixtures", "kernel-basics.ipynb"), out, "retinanet-kernel", 240);
    } finally {
      process.env = saved;
    }
    assert.ok(r.ok, r.stderr.slice(-3000));
    const nb = JSON.parse(fs.readFileSync(out, "utf8")) as { cells: { cell_type: string; outputs?: Output[]; execution_count?: number }[] };
    const code = nb.cells.filter((c) => c.cell_type === "code");
    assert.deepStrictEqual(code.map((c) => c.execution_count), [1, 2, 3, 4, 5, 6]);
    assert.strictEqual(text(code[0].outputs![0].data!["text/plain"]), "5");
    const o1 = code[1].outputs!;
    assert.deepStrictEqual(o1.map((o) => o.output_type), ["stream", "stream", "display_data", "display_data"]);
    assert.strictEqual(text(o1[0].text), "stdout line\n");
    assert.strictEqual(o1[1].name, "stderr");
    assert.strictEqual(text(o1[2].data!["text/html"]), "<b>bold</b>");
    assert.strictEqual(text(o1[3].data!["text/markdown"]), "**md**");
    assert.match(text(code[2].outputs![0].text), /Wall time/);
    assert.strictEqual(text(code[2].outputs![1].data!["text/plain"]), "[ 3, 6, 9 ]");
    assert.match(text(code[3].outputs![0].text), /\bp\b/);
    const progress = code[4].outputs!.find((o) => o.output_type === "display_data")!;
    assert.match(text(progress.data!["text/plain"]), /steps \[#{30}\] 3\/3 .* done/);
    assert.strictEqual(text(code[5].outputs![0].data!["text/plain"]), "300");
    assert.ok(nb.cells.every((c) => !(c.outputs ?? []).some((o) => o.output_type === "error")));
  });
});
