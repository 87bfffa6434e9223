#!/usr/bin/env node
// Builds the native addon with cmake-js (run by `npm install`). A failed build never fails the
// install: the TypeScript API then loads with the js backend and kernel/native.ts says why, from
// build/native-status.json and build/native-build.log.
//   --verbose      print the build output
//   RK_WITH_CUDA   AUTO (default: CUDA when nvcc is found), ON, OFF
//   TENSORRT_ROOT  a TensorRT SDK: also build the TensorRT plugin library
"use strict";
const { spawnSync } = require("child_process");
const fs = require("fs");
const path = require("path");

const root = path.resolve(__dirname, "..");
const buildDir = path.join(root, "build");
const logFile = path.join(buildDir, "native-build.log");
const statusFile = path.join(buildDir, "native-status.json");
const verbose = process.argv.includes("--verbose");

fs.mkdirSync(buildDir, { recursive: true });
const cmakeJs = path.join(root, "node_modules", "cmake-js", "bin", "cmake-js");
const args = [cmakeJs, "compile", "-l", "warn", `--CDRK_WITH_CUDA=${process.env.RK_WITH_CUDA || "AUTO"}`];
if (process.env.TENSORRT_ROOT) args.push(`--CDTENSORRT_ROOT=${process.env.TENSORRT_ROOT}`);
if (process.env.CMAKE_BUILD_PARALLEL_LEVEL === undefined) process.env.CMAKE_BUILD_PARALLEL_LEVEL = String(require("os").availableParallelism());

const started = Date.now();
let result;
if (!fs.existsSync(cmakeJs)) {
  result = { status: 1, stdout: "", stderr: "cmake-js is not installed (node_modules/cmake-js missing)" };
} else {
  result = spawnSync(process.execPath, args, { cwd: root, encoding: "utf8", env: process.env, maxBuffer: 64 * 1024 * 1024 });
}
const output = `${result.stdout || ""}${result.stderr || ""}${result.error ? String(result.error) : ""}`;
fs.writeFileSync(logFile, `$ ${args.slice(1).join(" ")}\n${output}`);
const addon = path.join(buildDir, "Release", "retinanet_kernel.node");
const ok = result.status === 0 && fs.existsSync(addon);
const warnings = output.split("\n").filter((l) => /\bwarning\b/i.test(l) && !/Unknown user config/.test(l));
let reason;
if (!ok) {
  const lines = output.split("\n").filter((l) => /error|not found|No such file/i.test(l));
  reason = lines.length ? lines.slice(0, 3).join(" | ").trim() : `cmake-js exited with ${result.status}`;
}
// Whether the CUDA backend is in: the built addon says (a build with nothing to redo prints nothing about it).
const probe = ok
  ? spawnSync(process.execPath, ["-e", `process.stdout.write(String(require(${JSON.stringify(addon)}).buildInfo.cuda.compiled))`], { encoding: "utf8" })
  : undefined;
const cuda = probe !== undefined && probe.status === 0 && probe.stdout === "true";
fs.writeFileSync(statusFile, JSON.stringify({ ok, reason, log: logFile, seconds: (Date.now() - started) / 1000, warnings: warnings.length, cuda }, null, 1));
if (verbose) process.stdout.write(output);
if (ok) {
  console.log(`retinanet-kernel: native addon built in ${((Date.now() - started) / 1000).toFixed(0)} s (${warnings.length} warnings; log ${path.relative(root, logFile)})`);
} else {
  console.warn(`retinanet-kernel: the native addon did not build (${reason}).\n  The js backend still works; the log is ${path.relative(root, logFile)}. Fix and run: npm run build:native`);
}
process.exit(0);
