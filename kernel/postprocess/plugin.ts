/**
 * TensorRT plugin export: a tuned configuration as the fields of the RetinaNetPostprocess (or
 * RetinaNetDecode / RetinaNetNMS) plugin, written by the plugins' own field writer in the addon
 * (native/trt/fields.cpp), plus a Python script that adds the plugin node to an exported ONNX model.
 * Nothing here needs TensorRT; the plugin library itself is built only with TENSORRT_ROOT.
 */
import * as fs from "fs";
import * as path from "path";

import { checkOutputPath, writeFileWhole } from "../files";
import { loadNative, nativeStatus, PluginFieldValue, PluginKind } from "../native";
import { toNativeParams } from "./config";
import { PostprocessConfig } from "./presets";
import { HeadOutputs, NormalizedHeads, normalizeHeads } from "./heads";
import { ImageDetections } from "./postprocessor";
import { halfToFloat } from "./reference";

export const PLUGIN_NAMES: Record<PluginKind, string> = {
  postprocess: "RetinaNetPostprocess",
  decode: "RetinaNetDecode",
  nms: "RetinaNetNMS",
};
export const PLUGIN_VERSION = "1";
export const PLUGIN_LIBRARY = "libretinanet_kernel_trt.so";

export interface PluginTensor {
  name: string;
  dtype: string;
  /** "N" marks the batch dimension. */
  shape: (number | "N")[];
}

/** What --export-plugin writes as JSON. */
export interface PluginExport {
  plugin: string;
  version: string;
  namespace: string;
  library: string;
  fields: PluginFieldValue[];
  inputs: PluginTensor[];
  outputs: PluginTensor[];
  /** The kernel configuration the fields came from (for the record; the plugin reads only fields). */
  config: PostprocessConfig;
  createdBy: string;
}

function addon() {
  const a = loadNative();
  if (!a) {
    throw Object.assign(new Error(`Expected the native addon for the plugin fields (its writer is native/trt/fields.cpp) but it is not loaded: ${nativeStatus().reason ?? "unknown reason"}`), {
      code: "ERR_RK_UNAVAILABLE",
    });
  }
  return a;
}

/** The plugin description of a configuration on heads of the given shapes. */
export function pluginExport(config: PostprocessConfig, heads: HeadOutputs | NormalizedHeads, kind: PluginKind = "postprocess"): PluginExport {
  const h = "featureSizes" in heads && "imageSizes" in heads ? (heads as NormalizedHeads) : normalizeHeads(heads as HeadOutputs, config);
  const sizes = h.imageSizes;
  const uniform = Array.from({ length: h.batch }, (_, n) => n).every((n) => sizes[2 * n] === sizes[0] && sizes[2 * n + 1] === sizes[1]);
  const fields = addon().pluginFields(kind, {
    params: toNativeParams(config, h.numClasses),
    preset: config.preset,
    layout: h.layout,
    paddedSize: h.paddedSize,
    levelSizes: h.featureSizes,
    // One clip size for every image when the data has one; otherwise the engine takes image_sizes.
    imageSize: uniform ? [sizes[0], sizes[1]] : undefined,
  });
  const A = config.anchor_sizes[0].length * config.aspect_ratios.length;
  const K = h.numClasses;
  const rows = h.featureSizes.reduce((s, [fh, fw]) => s + fh * fw * A, 0);
  const headType = h.dtype === "float16" ? "float16" : "float32";
  const L = h.featureSizes.length;
  const D = config.detections_per_img;
  const S = L * config.topk_candidates;
  const imageSizes: PluginTensor = { name: "image_sizes", dtype: "int32", shape: ["N", 2] };
  let inputs: PluginTensor[];
  if (kind === "nms") {
    inputs = [
      { name: "scores", dtype: "float32", shape: ["N", S] },
      { name: "boxes", dtype: "float32", shape: ["N", S, 4] },
      { name: "classes", dtype: "int32", shape: ["N", S] },
      { name: "level_counts", dtype: "int32", shape: ["N", L] },
    ];
  } else if (h.layout === "concatenated") {
    inputs = [
      { name: "cls_logits", dtype: headType, shape: ["N", rows, K] },
      { name: "bbox_regression", dtype: headType, shape: ["N", rows, 4] },
    ];
  } else {
    inputs = [
      ...h.featureSizes.map(([fh, fw], l) => ({ name: `cls_p${l + 3}`, dtype: headType, shape: ["N", A * K, fh, fw] as PluginTensor["shape"] })),
      ...h.featureSizes.map(([fh, fw], l) => ({ name: `box_p${l + 3}`, dtype: headType, shape: ["N", A * 4, fh, fw] as PluginTensor["shape"] })),
    ];
  }
  inputs.push({ ...imageSizes, name: `${imageSizes.name} (optional)` });
  const outType = kind === "postprocess" ? headType : "float32";
  const outputs: PluginTensor[] =
    kind === "decode"
      ? [
          { name: "scores", dtype: "float32", shape: ["N", S] },
          { name: "boxes", dtype: "float32", shape: ["N", S, 4] },
          { name: "classes", dtype: "int32", shape: ["N", S] },
          { name: "level_counts", dtype: "int32", shape: ["N", L] },
        ]
      : [
          { name: "num_detections", dtype: "int32", shape: ["N", 1] },
          { name: "detection_boxes", dtype: outType, shape: ["N", D, 4] },
          { name: "detection_scores", dtype: outType, shape: ["N", D] },
          { name: "detection_classes", dtype: "int32", shape: ["N", D] },
        ];
  return {
    plugin: PLUGIN_NAMES[kind],
    version: PLUGIN_VERSION,
    namespace: "",
    library: PLUGIN_LIBRARY,
    fields,
    inputs,
    outputs,
    config: { ...config, num_classes: K },
    createdBy: `retinanet-kernel ${loadNative()?.buildInfo.version ?? ""}`.trim(),
  };
}

/** The Python (onnx package) script that adds the plugin node to an exported ONNX model. */
export function onnxScript(exp: PluginExport, jsonName: string): string {
  return `#!/usr/bin/env python3
"""Adds the ${exp.plugin} TensorRT plugin (retinanet-kernel) to an exported ONNX model.

Written by \`%optimize --export-plugin\` together with ${jsonName} (the plugin fields). The node reads
the model's head outputs and replaces the graph outputs with the plugin's:
${exp.outputs.map((o) => `  ${o.name} [${o.shape.join(", ")}] ${o.dtype}`).join("\n")}

  python3 ${jsonName.replace(/\.json$/, ".py")} MODEL.onnx OUT.onnx --inputs ${exp.inputs.filter((i) => !i.name.endsWith("(optional)")).map((i) => i.name.toUpperCase().replace(/[^A-Z0-9]/g, "_")).join(" ")} [--image-sizes]

Then load the plugin library before parsing, e.g.
  trtexec --onnx=OUT.onnx --dynamicPlugins=/path/to/${exp.library}
or in Python: builder.get_plugin_registry().load_library("/path/to/${exp.library}").
ONNX attributes have no float64: float64 fields are written as decimal text, which the plugin reads
exactly (so a threshold of 0.3 stays the double 0.3 of the framework).
Requires the \`onnx\` package (pip install onnx).
"""
import argparse
import json
import os
import sys

import onnx
from onnx import TensorProto, helper

HERE = os.path.dirname(os.path.abspath(__file__))
SPEC = json.load(open(os.path.join(HERE, ${JSON.stringify(jsonName)})))
HEAD_INPUTS = [i for i in SPEC["inputs"] if not i["name"].endswith("(optional)")]
DTYPES = {"float32": TensorProto.FLOAT, "float16": TensorProto.FLOAT16, "int32": TensorProto.INT32}


def attribute(field):
    name, kind, value = field["name"], field["type"], field["value"]
    if kind == "char":
        return helper.make_attribute(name, value)
    if kind == "float64":
        return helper.make_attribute(name, " ".join(repr(float(v)) for v in value))
    return helper.make_attribute(name, [int(v) for v in value])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("out")
    ap.add_argument("--inputs", nargs=len(HEAD_INPUTS), required=True, metavar="TENSOR",
                    help="the model's tensors feeding " + ", ".join(i["name"] for i in HEAD_INPUTS))
    ap.add_argument("--image-sizes", action="store_true",
                    help="add a graph input image_sizes [N, 2] int32 (per-image clip sizes)")
    args = ap.parse_args(argv)
    model = onnx.load(args.model)
    graph = model.graph
    produced = {o for n in graph.node for o in n.output} | {i.name for i in graph.input}
    for t in args.inputs:
        if t not in produced:
            sys.exit("no tensor named %r in %s (outputs: %s)" % (t, args.model, ", ".join(o.name for o in graph.output)))
    inputs = list(args.inputs)
    if args.image_sizes:
        graph.input.append(helper.make_tensor_value_info("image_sizes", TensorProto.INT32, ["N", 2]))
        inputs.append("image_sizes")
    outputs = [o["name"] for o in SPEC["outputs"]]
    node = helper.make_node(SPEC["plugin"], inputs, outputs, name=SPEC["plugin"].lower(), domain="trt.plugins")
    node.attribute.extend(attribute(f) for f in SPEC["fields"])
    node.attribute.append(helper.make_attribute("plugin_version", SPEC["version"]))
    node.attribute.append(helper.make_attribute("plugin_namespace", SPEC["namespace"]))
    graph.node.append(node)
    del graph.output[:]
    for o in SPEC["outputs"]:
        graph.output.append(helper.make_tensor_value_info(o["name"], DTYPES[o["dtype"]], o["shape"]))
    if not any(op.domain == "trt.plugins" for op in model.opset_import):
        model.opset_import.append(helper.make_opsetid("trt.plugins", 1))
    onnx.save(model, args.out)
    print("wrote %s: %s(%s) -> %s" % (args.out, SPEC["plugin"], ", ".join(inputs), ", ".join(outputs)))


if __name__ == "__main__":
    main()
`;
}

/** The two files of an export to FILE: FILE(.json) and the same with .py; checked to be writable. */
export function pluginExportFiles(file: string): { json: string; script: string } {
  if (typeof file !== "string" || file.length === 0) {
    throw Object.assign(new TypeError(`Expected a file name for --export-plugin but received ${JSON.stringify(file)}`), { code: "ERR_RK_FILE" });
  }
  const json = file.endsWith(".json") ? file : `${file}.json`;
  const script = json.replace(/\.json$/, ".py");
  checkOutputPath(json, "--export-plugin");
  checkOutputPath(script, "--export-plugin");
  return { json, script };
}

/** Writes FILE (.json: the plugin description) and FILE with .py (the ONNX script), each whole. */
export function writePluginExport(file: string, exp: PluginExport): { json: string; script: string } {
  const { json, script } = pluginExportFiles(file);
  writeFileWhole(json, "--export-plugin", JSON.stringify(exp, null, 1) + "\n");
  writeFileWhole(script, "--export-plugin", onnxScript(exp, path.basename(json)), 0o755);
  return { json, script };
}

/** Reads an exported plugin description back through the plugins' own parser (every field checked). */
export function readPluginExport(file: string): PluginExport & { parsed: ReturnType<ReturnType<typeof addon>["parsePluginFields"]> } {
  let exp: PluginExport;
  try {
    exp = JSON.parse(fs.readFileSync(file, "utf8")) as PluginExport;
  } catch (e) {
    throw Object.assign(new Error(`Expected a plugin description (JSON from --export-plugin) in ${JSON.stringify(file)} but reading it failed: ${(e as Error).message}`), { code: "ERR_RK_FILE" });
  }
  const kind = (Object.keys(PLUGIN_NAMES) as PluginKind[]).find((k) => PLUGIN_NAMES[k] === exp.plugin);
  if (!kind) {
    throw Object.assign(new Error(`Expected plugin ${Object.values(PLUGIN_NAMES).join(", ")} in ${file} but received ${JSON.stringify(exp.plugin)}`), { code: "ERR_RK_FILE" });
  }
  return { ...exp, parsed: addon().parsePluginFields(kind, exp.fields) };
}

/**
 * `%optimize --backend tensorrt`: the RetinaNetPostprocess plugin in a small TensorRT engine (built by
 * libnvinfer through the engine runner beside the addon), run `iterations` times on these heads.
 * Throws ERR_RK_UNAVAILABLE naming what is missing (plugin library, runner, libnvinfer).
 */
export function runTensorrt(config: PostprocessConfig, h: NormalizedHeads, iterations: number): { detections: ImageDetections[]; timesMs: number[] } {
  const a = addon();
  const trt = a.buildInfo.tensorrt;
  if (!trt.compiled || !a.tensorrtRun) {
    throw Object.assign(new Error(`no TensorRT plugins in this build: ${trt.reason ?? "the addon has no tensorrtRun"}`), { code: "ERR_RK_UNAVAILABLE" });
  }
  const exp = pluginExport(config, h);
  const N = h.batch;
  const data = [...h.cls, ...h.box, h.imageSizes];
  const inputs = exp.inputs.map((t, i) => ({
    name: t.name.replace(/ \(optional\)$/, ""),
    dtype: t.dtype,
    shape: t.shape.map((d) => (d === "N" ? N : d)) as number[],
    data: data[i],
  }));
  const r = a.tensorrtRun({ plugin: exp.plugin, fields: exp.fields, inputs, iterations });
  const [counts, boxes, scores, labels] = r.outputs;
  const D = config.detections_per_img;
  const f32 = (o: { dtype: string; data: ArrayBufferView }) =>
    o.dtype === "float16" ? Float32Array.from(o.data as Uint16Array, halfToFloat) : (o.data as Float32Array);
  const bx = f32(boxes);
  const sc = f32(scores);
  const lb = labels.data as Int32Array;
  const detections = Array.from({ length: N }, (_, n) => {
    const count = (counts.data as Int32Array)[n];
    return { count, boxes: bx.subarray(n * D * 4, n * D * 4 + count * 4), scores: sc.subarray(n * D, n * D + count), labels: lb.subarray(n * D, n * D + count) };
  });
  return { detections, timesMs: r.timesMs };
}
