#!/usr/bin/env node
// Runs the mocha suite (compiled tests in dist/test) and ends with the plain line
// "N passed, N failed" that CI records. Arguments are test file globs (default: every test).
"use strict";
const path = require("path");
const fs = require("fs");
const Mocha = require("mocha");

const root = path.resolve(__dirname, "..");
const testDir = path.join(root, "dist", "test");
if (!fs.existsSync(testDir)) {
  console.error("dist/test is missing: run `npm run build` (npm install does it) first");
  console.log("0 passed, 1 failed");
  process.exit(1);
}
const filters = process.argv.slice(2);
const files = fs
  .readdirSync(testDir)
  .filter((f) => f.endsWith(".test.js"))
  .filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)))
  .sort();
// RK_TEST_GREP: only tests whose full title matches (a regular expression), e.g. under a sanitizer.
const grep = process.env.RK_TEST_GREP ? new RegExp(process.env.RK_TEST_GREP) : undefined;
const mocha = new Mocha({ reporter: "spec", timeout: 120000, slow: 2000, ...(grep ? { grep } : {}) });
for (const f of files) mocha.addFile(path.join(testDir, f));
const runner = mocha.run((failures) => {
  const s = runner.stats || { passes: 0, failures, pending: 0 };
  if (s.pending) console.log(`${s.pending} pending (named above)`);
  console.log(`${s.passes} passed, ${s.failures} failed`);
  process.exitCode = failures ? 1 : 0;
});
