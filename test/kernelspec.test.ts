/** `retinanet-kernel install / uninstall / --help / --version`, and Jupyter finding the kernelspec. */
import * as assert from "assert";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

import { PACKAGE_ROOT } from "../kernel/native";
import { debianPython } from "./jupyter-env";

const BIN = path.join(PACKAGE_ROOT, "bin", "retinanet-kernel");
const cli = (args: string[], env: NodeJS.ProcessEnv = process.env) => spawnSync(process.execPath, [BIN, ...args], { encoding: "utf8", env });

describe("kernelspec and CLI", function () {
  this.timeout(60000);
  it("--version and --help", function () {
    const v = cli(["--version"]);
    assert.strictEqual(v.stdout.trim(), JSON.parse(fs.readFileSync(path.join(PACKAGE_ROOT, "package.json"), "utf8")).version);
    const h = cli(["--help"]);
    assert.match(h.stdout, /retinanet-kernel kernel -f <connection_file>/);
    assert.match(h.stdout, /install \[--user \| --prefix P \| --sys-prefix\] \[--name N\] \[--display-name D\]/);
    const bad = cli(["frobnicate"]);
    assert.strictEqual(bad.status, 2);
    assert.match(bad.stderr, /Expected a command .* but received "frobnicate"/);
  });

  it("install --prefix writes kernel.json from the template; jupyter kernelspec list finds it; uninstall removes it", function () {
    const prefix = fs.mkdtempSync(path.join(os.tmpdir(), "rk-spec-"));
    const r = cli(["install", "--prefix", prefix, "--name", "rk-test", "--display-name", "RK Test"]);
    assert.strictEqual(r.status, 0, r.stderr);
    const dir = path.join(prefix, "share", "jupyter", "kernels", "rk-test");
    const spec = JSON.parse(fs.readFileSync(path.join(dir, "kernel.json"), "utf8"));
    assert.deepStrictEqual(spec.argv, [process.execPath, "--no-force-async-hooks-checks", "--max-semi-space-size=2", path.join(PACKAGE_ROOT, "dist", "kernel", "main.js"), "kernel", "-f", "{connection_file}"]);
    assert.strictEqual(spec.display_name, "RK Test");
    assert.strictEqual(spec.language, "typescript");
    assert.strictEqual(spec.interrupt_mode, "message");
    assert.ok(spec.metadata.retinanet_kernel.version);
    assert.ok(fs.existsSync(path.join(dir, "logo-svg.svg")));
    const py = debianPython();
    if (py) {
      const list = spawnSync(py, ["-m", "jupyter_client.kernelspecapp", "list"], { encoding: "utf8", env: { ...process.env, JUPYTER_PATH: path.join(prefix, "share", "jupyter") } });
      assert.match(list.stdout, /rk-test\s+\S*rk-test/);
    }
    const u = cli(["uninstall", "--prefix", prefix, "--name", "rk-test"]);
    assert.strictEqual(u.status, 0);
    assert.ok(!fs.existsSync(dir));
    const again = cli(["uninstall", "--prefix", prefix, "--name", "rk-test"]);
    assert.strictEqual(again.status, 1);
  });

  it("install --user honours JUPYTER_DATA_DIR; conflicting flags and bad names are errors", function () {
    const data = fs.mkdtempSync(path.join(os.tmpdir(), "rk-data-"));
    const r = cli(["install", "--user"], { ...process.env, JUPYTER_DATA_DIR: data });
    assert.strictEqual(r.status, 0, r.stderr);
    assert.ok(fs.existsSync(path.join(data, "kernels", "retinanet-kernel", "kernel.json")));
    assert.match(cli(["install", "--user", "--prefix", data]).stderr, /at most one of --user, --prefix, --sys-prefix/);
    assert.match(cli(["install", "--prefix", data, "--name", "bad name"]).stderr, /kernelspec name of letters/);
  });

  it("install --prefix where no folder can be made: an error naming --prefix and the folder, at once (no endless mkdir)", function () {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "rk-prefix-"));
    const file = path.join(tmp, "a-file");
    fs.writeFileSync(file, "");
    const dangling = path.join(tmp, "dangling");
    fs.symlinkSync(path.join(tmp, "no-target"), dangling);
    const cases: [string, RegExp][] = [
      [path.join(file, "x"), /"[^"]*a-file" is not a folder/],
      [dangling, /"[^"]*dangling" is not a folder/],
      // procfs answers ENOENT for a child it cannot hold, where Node's recursive mkdir loops forever.
      ...(fs.existsSync("/proc/self") ? ([["/proc/rk-no-such", /("\/proc\/rk-no-such" cannot be made there \(ENOENT\)|"\/proc" cannot be written \(EACCES\))/]] as [string, RegExp][]) : []),
    ];
    for (const [prefix, why] of cases) {
      const r = spawnSync(process.execPath, [BIN, "install", "--prefix", prefix], { encoding: "utf8", timeout: 20000 });
      assert.strictEqual(r.signal, null, `${prefix}: ended by itself`);
      assert.strictEqual(r.status, 1, prefix);
      assert.match(r.stderr, /^retinanet-kernel install: Expected a folder that can be made for --prefix but received ".*share\/jupyter\/kernels\/retinanet-kernel": /, prefix);
      assert.match(r.stderr, why, prefix);
    }
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it("kernel without a connection file, or with an unreadable one, exits with a clear error", function () {
    const r = cli(["kernel"]);
    assert.strictEqual(r.status, 1);
    assert.match(r.stderr, /Expected -f <connection_file>/);
    const r2 = cli(["kernel", "-f", "/nonexistent/conn.json"]);
    assert.match(r2.stderr, /Expected a readable connection file but received "\/nonexistent\/conn\.json" \(ENOENT\)/);
  });
});
