/** The native addon was built by npm install, loads, and built without warnings. */
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";

import { PACKAGE_ROOT, loadNative, nativeStatus } from "../kernel/native";

describe("native build", function () {
  it("the addon loads (npm install built it)", function () {
    const s = nativeStatus();
    assert.ok(s.loaded, `the addon did not load: ${s.reason}`);
    assert.ok(s.backends.includes("cpu") && s.backends.includes("js"));
    const info = loadNative()!.buildInfo;
    assert.match(info.version, /^\d+\.\d+\.\d+/);
    assert.ok(info.hardwareConcurrency >= 1);
  });

  it("the build log has no warnings (-Wall -Wextra)", function () {
    const status = JSON.parse(fs.readFileSync(path.join(PACKAGE_ROOT, "build", "native-status.json"), "utf8")) as { ok: boolean; warnings: number; log: string };
    assert.ok(status.ok);
    const log = fs.readFileSync(status.log, "utf8");
    const warnings = log.split("\n").filter((l) => /warning:/i.test(l));
    assert.deepStrictEqual(warnings, []);
  });
});
