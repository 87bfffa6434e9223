/**
 * The examples run as a user would run them: examples/api.ts (the API with no notebook) on a golden
 * case and on synthetic heads, and examples/drive_kernel.ts (the kernel through
 * @jupyterlab/services and a real jupyter server).
 */
import * as assert from "assert";
import { spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

import { PACKAGE_ROOT } from "../kernel/native";
import { GOLDEN_DIR } from "./helpers";
import { JupyterServer } from "./jupyter-env";
import { startServices } from "./jupyter-services-env";

const EX = path.join(PACKAGE_ROOT, "dist", "examples");

describe("examples", function () {
  this.timeout(300000);

  it("examples/api.ts: a golden case is the same as its framework, COCO AP, a results file", function () {
    const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "rk-ex-")), "res.json");
    const golden = path.join(GOLDEN_DIR, "d2_k20_b2_mixed.npz");
    const args = fs.existsSync(golden) ? [golden] : [];
    const r = spawnSync(process.execPath, [path.join(EX, "api.js"), ...args, "--out", out], { encoding: "utf8" });
    assert.strictEqual(r.status, 0, r.stderr);
    if (args.length) assert.match(r.stdout, /the same as detectron2's own detections: true/);
    assert.match(r.stdout, /COCO AP \d\.\d{3}, AP50/);
    assert.match(r.stdout, /wrote \d+ detections to .*res\.json/);
    assert.ok(Array.isArray(JSON.parse(fs.readFileSync(out, "utf8"))));
  });

  describe("examples/drive_kernel.ts through jupyter server", function () {
    let server: JupyterServer;
    before(async function () {
      ({ server } = await startServices());
    });
    after(async () => server?.stop());

    it("runs the session, interrupts, restarts and shuts down", async function () {
      const child = spawn(process.execPath, [path.join(EX, "drive_kernel.js"), "--url", server.baseUrl, "--token", server.token], { stdio: ["ignore", "pipe", "pipe"] });
      let out = "";
      child.stdout.on("data", (d: Buffer) => (out += d.toString()));
      child.stderr.on("data", (d: Buffer) => (out += d.toString()));
      const code = await new Promise<number | null>((resolve) => child.on("exit", resolve));
      assert.strictEqual(code, 0, out);
      assert.match(out, /started retinanet-kernel/);
      assert.match(out, /\[display_data: text\/html\].*COCO box metrics/);
      assert.match(out, /\[display_data: image\/svg\+xml\]/);
      assert.match(out, /\[display_data: application\/vnd\.vegalite\.v5\+json/);
      assert.match(out, /interrupted: error \(KeyboardInterrupt\)/);
      assert.match(out, /\[execute_result\] 'undefined'/);
      assert.match(out, /shut down/);
    });
  });
});
