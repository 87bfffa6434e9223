/**
 * The TensorRT plugins' fields and export, without TensorRT: the addon's pluginFields /
 * parsePluginFields are the plugins' own writer and parser (native/trt/fields.cpp), so what is
 * checked here is what the plugins read inside an engine. The plugins themselves run through
 * test/trt/harness.cpp on a GPU machine (scripts/trt-check.sh); this file also compile-checks them
 * when RK_TRT_HEADERS names TensorRT's public headers.
 */
import * as assert from "assert";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

import { loadNative, PACKAGE_ROOT, PluginFieldValue } from "../kernel/native";
import { resolveConfig, toNativeParams } from "../kernel/postprocess/config";
import { loadDataset } from "../kernel/postprocess/dataset";
import { pluginExport, readPluginExport, writePluginExport } from "../kernel/postprocess/plugin";
import { PRESET_NAMES } from "../kernel/postprocess/presets";
import { synthesize } from "../kernel/postprocess/synth";
import { goldenCases, goldenConfig, isBuiltPreset, nativeAvailable } from "./helpers";
import { TestKernel } from "./kernel-client";

const field = (fields: PluginFieldValue[], name: string) => fields.find((f) => f.name === name);
const without = (fields: PluginFieldValue[], name: string) => fields.filter((f) => f.name !== name);
const replace = (fields: PluginFieldValue[], f: PluginFieldValue) => [...without(fields, f.name), f];

describe("TensorRT plugin fields and export", function () {
  this.timeout(120000);
  before(function () {
    if (!nativeAvailable()) {
      console.log("    (skipped: the native addon is not built, and the plugin fields are its code)");
      this.skip();
    }
  });
  const addon = () => loadNative()!;

  for (const preset of PRESET_NAMES) {
    it(`${preset}: fields written and read back give the same native params, for all three plugins`, function () {
      const config = resolveConfig({ preset, nms_thresh: 0.3, score_thresh: 0.07 });
      const params = toNativeParams(config, 80);
      for (const kind of ["postprocess", "decode", "nms"] as const) {
        const fields = addon().pluginFields(kind, { params, preset, layout: "per_level", paddedSize: [512, 640] });
        assert.strictEqual(field(fields, "serial_version")?.value[0], 1);
        const back = addon().parsePluginFields(kind, fields);
        if (kind === "postprocess") assert.deepStrictEqual(back.params, params);
        if (kind !== "decode") assert.strictEqual(back.params.nms.iouThresh, 0.3, "0.3 stays the double 0.3");
        if (kind !== "nms") assert.strictEqual(back.params.select.scoreThresh, 0.07);
        assert.strictEqual(back.preset, preset);
      }
    });
  }

  it("float64 fields written as decimal text (the ONNX script's form) read back exactly", function () {
    const config = resolveConfig({ preset: "detectron2", nms_thresh: 0.3 });
    const params = toNativeParams(config, 20);
    const fields = addon().pluginFields("postprocess", { params, preset: "detectron2", layout: "per_level", paddedSize: [256, 256] });
    const asText = fields.map((f) => (f.type === "float64" ? { ...f, type: "char" as const, value: (f.value as number[]).map((v) => String(v)).join(" ") } : f));
    assert.deepStrictEqual(addon().parsePluginFields("postprocess", asText).params, params);
    // float32 fields are accepted too (widened): the value is then f32's.
    const f32 = replace(fields, { name: "nms_thresh", type: "float32", value: [0.3] });
    assert.strictEqual(addon().parsePluginFields("postprocess", f32).params.nms.iouThresh, Math.fround(0.3));
  });

  it("every golden case: the exported fields describe its shapes and parse", function () {
    const cases = goldenCases().filter((c) => isBuiltPreset(c.preset) && fs.existsSync(c.npz));
    if (cases.length === 0) this.skip();
    for (const c of cases) {
      const ds = loadDataset(c.npz);
      const config = resolveConfig(goldenConfig(c));
      const exp = pluginExport(config, ds);
      const parsed = addon().parsePluginFields("postprocess", exp.fields);
      assert.deepStrictEqual(parsed.params, toNativeParams(config, c.meta.num_classes as number), c.name);
      assert.strictEqual(parsed.layout, "concatenated");
      const fs5 = Array.from((ds.feature_sizes as { data: Int32Array }).data);
      assert.deepStrictEqual(parsed.levelSizes!.flat(), fs5, `${c.name}: level_sizes are the file's feature_sizes`);
      assert.deepStrictEqual(parsed.paddedSize, c.meta.padded_size, c.name);
      assert.deepStrictEqual(exp.outputs.map((o) => o.name), ["num_detections", "detection_boxes", "detection_scores", "detection_classes"]);
      assert.deepStrictEqual(exp.outputs[1].shape, ["N", config.detections_per_img, 4]);
    }
  });

  const bad: [string, (f: PluginFieldValue[]) => PluginFieldValue[], RegExp][] = [
    ["a missing field", (f) => without(f, "nms_thresh"), /RetinaNetPostprocess: missing plugin field "nms_thresh" \(float64: .*--export-plugin/],
    ["an unknown field", (f) => [...f, { name: "nms_threshold", type: "float64", value: [0.5] }], /unknown plugin field "nms_threshold" \(did you mean "nms_thresh"\?\)/],
    ["a value out of range", (f) => replace(f, { name: "topk_candidates", type: "int32", value: [0] }), /plugin field "topk_candidates": expected an integer in \[1, 100000\] but received 0/],
    ["a wrong choice", (f) => replace(f, { name: "clip_boxes", type: "char", value: "everywhere" }), /plugin field "clip_boxes": expected one of "none", .* but received "everywhere"/],
    ["text that is not a number", (f) => replace(f, { name: "score_thresh", type: "char", value: "high" }), /plugin field "score_thresh": expected numbers .* but received "high"/],
    ["anchor sizes that do not split into levels", (f) => replace(f, { name: "anchor_sizes", type: "float64", value: [32, 40, 50, 64] }), /plugin field "anchor_sizes": expected num_levels \(5\) x 1..8 sizes but received 4 values/],
    ["a fractional integer", (f) => replace(f, { name: "detections_per_img", type: "float64", value: [10.5] }), /"detections_per_img": expected an integer in \[1, 100000\] but received 10.5/],
    ["a serialization of another version", (f) => replace(f, { name: "serial_version", type: "int32", value: [7] }), /"serial_version": expected serial_version 1 .* but received 7/],
    ["a concatenated layout without level_sizes", (f) => without(f, "level_sizes"), /missing plugin field "level_sizes" .* required with layout "concatenated"/],
    ["a duplicated field", (f) => [...f, f[0]], /plugin field "preset": expected one field of that name but received it twice/],
  ];
  for (const [what, edit, message] of bad) {
    it(`the plugins' parser refuses ${what}, naming the field`, function () {
      const params = toNativeParams(resolveConfig({}), 80);
      const fields = addon().pluginFields("postprocess", { params, preset: "torchvision", layout: "concatenated", paddedSize: [256, 320], levelSizes: [[32, 40], [16, 20], [8, 10], [4, 5], [2, 3]] });
      assert.doesNotThrow(() => addon().parsePluginFields("postprocess", fields));
      assert.throws(() => addon().parsePluginFields("postprocess", edit(fields)), (e: Error & { code?: string }) => {
        assert.strictEqual(e.code, "ERR_RK_PARAM");
        assert.match(e.message, message);
        return true;
      });
    });
  }

  it("RetinaNetNMS needs num_classes; RetinaNetDecode does not read the NMS fields", function () {
    const params = toNativeParams(resolveConfig({}), 80);
    const fields = addon().pluginFields("nms", { params, preset: "torchvision", layout: "concatenated", paddedSize: [256, 320] });
    assert.ok(!field(fields, "anchor_sizes"), "the NMS plugin's own fields do not carry anchors");
    assert.throws(() => addon().parsePluginFields("nms", without(fields, "num_classes")), /RetinaNetNMS: missing plugin field "num_classes"/);
    const decode = addon().pluginFields("decode", { params, preset: "torchvision", layout: "per_level", paddedSize: [256, 320] });
    assert.ok(!field(decode, "nms_thresh"));
    assert.doesNotThrow(() => addon().parsePluginFields("decode", decode));
  });

  it("the field specs list every field with its type and which plugin requires it", function () {
    const specs = addon().pluginFieldSpecs();
    const names = specs.map((s) => s.name);
    for (const f of addon().pluginFields("postprocess", { params: toNativeParams(resolveConfig({}), 3), preset: "torchvision", layout: "per_level", paddedSize: [64, 64] })) {
      assert.ok(names.includes(f.name), f.name);
    }
    assert.deepStrictEqual(specs.find((s) => s.name === "num_classes")!.required, { postprocess: false, decode: false, nms: true });
  });

  it("writePluginExport writes the JSON and a Python script that compiles; readPluginExport checks every field", function () {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "rk-plugin-"));
    const ds = synthesize({ images: 2, size: [256, 320], classes: 5, seed: 3, name: "s" });
    const exp = pluginExport(resolveConfig({ preset: "torchvision", score_thresh: 0.1 }), ds);
    const { json, script } = writePluginExport(path.join(dir, "retina"), exp);
    assert.strictEqual(path.basename(json), "retina.json");
    assert.strictEqual(path.basename(script), "retina.py");
    const back = readPluginExport(json);
    assert.strictEqual(back.plugin, "RetinaNetPostprocess");
    assert.strictEqual(back.parsed.params.select.scoreThresh, 0.1);
    assert.deepStrictEqual(back.inputs.map((i) => i.name), ["cls_logits", "bbox_regression", "image_sizes (optional)"]);
    const src = fs.readFileSync(script, "utf8");
    assert.match(src, /retina\.json/);
    assert.match(src, /--dynamicPlugins=\/path\/to\/libretinanet_kernel_trt\.so/);
    const py = spawnSync("/usr/bin/python3", ["-m", "py_compile", script], { encoding: "utf8" });
    if (py.error) console.log(`    (python3 not found: ${py.error.message}; the script was not compiled)`);
    else assert.strictEqual(py.status, 0, py.stderr);
    // An edited file is refused by the plugins' parser, naming the field.
    const edited = JSON.parse(fs.readFileSync(json, "utf8"));
    edited.fields = edited.fields.filter((f: PluginFieldValue) => f.name !== "anchor_cell");
    fs.writeFileSync(json, JSON.stringify(edited));
    assert.throws(() => readPluginExport(json), /missing plugin field "anchor_cell"/);
  });

  it("compiles the plugin library against TensorRT's public headers (RK_TRT_HEADERS)", function () {
    const headers = process.env.RK_TRT_HEADERS;
    if (!headers) {
      console.log("    (skipped: set RK_TRT_HEADERS to a folder with TensorRT's public include/; scripts/trt-check.sh does the same check and, on a GPU, runs the harness)");
      this.skip();
    }
    this.timeout(900000);
    const r = spawnSync("bash", [path.join(PACKAGE_ROOT, "scripts", "trt-check.sh"), headers!], { encoding: "utf8", env: { ...process.env, OUT: fs.mkdtempSync(path.join(os.tmpdir(), "rk-trt-")) } });
    assert.strictEqual(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /ok {3}exported symbols: getCreators setLoggerFinder/);
  });
});

describe("%optimize --export-plugin in a running kernel", function () {
  this.timeout(180000);
  let k: TestKernel;
  before(async function () {
    if (!nativeAvailable()) {
      console.log("    (skipped: the native addon is not built)");
      this.skip();
    }
    k = await TestKernel.start();
  });
  after(() => k?.stop());

  it("writes the plugin fields and the ONNX script, and the kernel says what TensorRT lacks here", async function () {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "rk-export-"));
    const file = path.join(dir, "tuned");
    await k.execute("%synth s --images 2 --size 256x320 --classes 4 --seed 2");
    await k.execute("%config preset=detectron2 score_thresh=0.2");
    const r = await k.execute(`%optimize --backend tensorrt --export-plugin ${file}`);
    const out = r.iopub.filter((m) => m.msg_type === "stream").map((m) => String(m.content.text)).join("");
    assert.match(out, /Wrote RetinaNetPostprocess v1: \d+ plugin fields to .*tuned\.json and the ONNX script to .*tuned\.py/);
    assert.match(out, /inputs cls_logits \[N, \d+, 4\], bbox_regression \[N, \d+, 4\]/);
    // No TensorRT build here: the error says exactly what is missing, and the kernel lives on.
    assert.strictEqual(r.status, "error");
    assert.match(r.error!.evalue, /tensorrt fp32: no TensorRT plugins in this build: TENSORRT_ROOT did not name a TensorRT SDK/);
    const spec = JSON.parse(fs.readFileSync(`${file}.json`, "utf8"));
    assert.strictEqual(spec.config.preset, "detectron2");
    assert.strictEqual(spec.fields.find((f: PluginFieldValue) => f.name === "score_thresh").value[0], 0.2);
    const alive = await k.execute("1 + 1");
    assert.strictEqual(alive.result!["text/plain"], "2");
    const nms = await k.execute(`%optimize --backend js --iterations 1 --export-plugin ${path.join(dir, "nms")} --plugin nms`);
    assert.strictEqual(nms.status, "ok", nms.error?.evalue);
    assert.strictEqual(JSON.parse(fs.readFileSync(path.join(dir, "nms.json"), "utf8")).plugin, "RetinaNetNMS");
  });
});
