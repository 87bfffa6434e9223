/**
 * Memory safety of the native core: the C++ test of the core (native/tests/core_test.cpp, no Node)
 * built and run under AddressSanitizer + UndefinedBehaviorSanitizer, and the addon itself run
 * under valgrind's memcheck on a small golden case (run, runSync, a bad input in between).
 */
import * as assert from "assert";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";

import { PACKAGE_ROOT } from "../kernel/native";
import { GOLDEN_DIR, nativeAvailable } from "./helpers";

function have(cmd: string): boolean {
  return spawnSync("sh", ["-c", `command -v ${cmd}`]).status === 0;
}

describe("sanitizers", function () {
  this.timeout(900000);

  it("the core's C++ tests pass under ASan + UBSan", function () {
    assert.ok(have("cmake") && have("g++"), "cmake and g++ are needed (they build the addon too)");
    const dir = path.join(PACKAGE_ROOT, "build", "asan");
    const configure = spawnSync("cmake", ["-S", path.join(PACKAGE_ROOT, "native"), "-B", dir, "-DRK_BUILD_TESTS=ON", "-DRK_SANITIZE=address,undefined", "-DRK_WITH_CUDA=OFF", "-DCMAKE_BUILD_TYPE=RelWithDebInfo"], { encoding: "utf8" });
    assert.strictEqual(configure.status, 0, configure.stderr);
    const build = spawnSync("cmake", ["--build", dir, "--target", "rk_core_test", "-j", "2"], { encoding: "utf8" });
    assert.strictEqual(build.status, 0, build.stdout + build.stderr);
    assert.doesNotMatch(build.stdout + build.stderr, /warning:/, "the core builds without warnings");
    const run = spawnSync(path.join(dir, "rk_core_test"), [], { encoding: "utf8", env: { ...process.env, ASAN_OPTIONS: "detect_leaks=1:halt_on_error=1", UBSAN_OPTIONS: "print_stacktrace=1:halt_on_error=1" } });
    console.log(`      ${run.stdout.trim().split("\n").slice(-2).join(" / ")}`);
    assert.strictEqual(run.status, 0, run.stdout + run.stderr);
    assert.match(run.stdout, /all passed/);
    assert.doesNotMatch(run.stderr, /ERROR: AddressSanitizer|runtime error:/);
  });

  it("the addon runs clean under valgrind memcheck on a golden case", function () {
    if (!nativeAvailable()) assert.fail("the native addon is not loaded (see test/native-build.test.ts)");
    assert.ok(have("valgrind"), "valgrind is needed (Debian's valgrind; .ci/run installs it)");
    const golden = path.join(GOLDEN_DIR, "tv_k80_b1_highthr.npz");
    assert.ok(fs.existsSync(golden));
    const r = spawnSync("valgrind", ["--error-exitcode=9", "--leak-check=no", "-q", process.execPath, path.join(PACKAGE_ROOT, "test", "fixtures", "native-memcheck.js"), golden], { encoding: "utf8" });
    assert.strictEqual(r.status, 0, `valgrind exit ${r.status}:\n${r.stderr.slice(-3000)}`);
    assert.match(r.stdout, /detections equal the golden ones/);
  });
});
