/**
 * Jupyter's conformance suite (jupyter_kernel_test, Debian's python3-jupyter-kernel-test) against
 * the installed kernelspec, every standard check enabled; plus stdin, interrupt, stop_on_error and
 * shutdown/restart through jupyter_client (test/conformance/test_kernel.py). All must pass, none skip.
 */
import * as assert from "assert";
import { spawnSync } from "child_process";
import * as path from "path";

import { PACKAGE_ROOT } from "../kernel/native";
import { debianPython, hasPythonModules, installTestKernelspec } from "./jupyter-env";

describe("Jupyter conformance suite (jupyter_kernel_test) and jupyter_client", function () {
  this.timeout(600000);
  it("passes every check, none skipped", function () {
    if (!hasPythonModules("jupyter_kernel_test", "jupyter_client")) {
      assert.fail("Debian's python3-jupyter-kernel-test is not installed (.ci/run installs it)");
    }
    const { env } = installTestKernelspec();
    const r = spawnSync(debianPython()!, ["-m", "unittest", "-v", "test_kernel"], { cwd: path.join(PACKAGE_ROOT, "test", "conformance"), env, encoding: "utf8", timeout: 580000 });
    const out = r.stdout + r.stderr;
    const results = out.split("\n").filter((l) => / \.\.\. (ok|FAIL|ERROR|skipped)/.test(l));
    console.log(results.map((l) => `      ${l.replace(/\(test_kernel\.\w+\.(\w+)\)/, "").trim()}`).join("\n"));
    assert.strictEqual(r.status, 0, out.slice(-4000));
    assert.match(out, /\nOK\n/);
    assert.doesNotMatch(out, /skipped|SkipTest/);
    const ran = Number(/Ran (\d+) tests/.exec(out)?.[1]);
    assert.ok(ran >= 19, `ran ${ran} tests`);
    const standard = ["kernel_info", "execute_stdout", "execute_stderr", "execute_result", "display_data", "error", "completion", "inspect", "is_complete", "history", "clear_output", "pager"];
    for (const s of standard) assert.ok(results.some((l) => l.startsWith(`test_${s} `) && l.endsWith("ok")), `test_${s} passed`);
  });
});
