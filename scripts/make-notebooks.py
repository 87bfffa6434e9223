import json, sys
def nb(cells):
    """Cells are (kind, source) or (kind, source, tags); `npm start` and the tests read the outputs
    of the cells tagged "summary" (tutorial text stays text a reader wants)."""
    out = []
    for kind, src, *tags in cells:
        c = {"cell_type": kind, "metadata": {"tags": tags[0]} if tags else {}, "source": src.strip("\n").splitlines(True)}
        if kind == "code":
            c["execution_count"] = None
            c["outputs"] = []
        out.append(c)
    return {"cells": out, "metadata": {"kernelspec": {"display_name": "TypeScript (RetinaNet)", "language": "typescript", "name": "retinanet-kernel"},
            "language_info": {"name": "typescript"}}, "nbformat": 4, "nbformat_minor": 5}

quick = [
("markdown", """
# retinanet-kernel quickstart

Tune RetinaNet post-processing in a notebook: bring head outputs in, pick the fastest implementation
that is still exact, look at the detections, sweep thresholds by accuracy and latency, and save the
result. Every magic has a TypeScript twin on `rk.workbench`.
"""),
("code", "%devices"),
("markdown", "The session's config: the torchvision preset's defaults. `%config key=value` changes keys; an invalid value changes nothing."),
("code", "%config"),
("code", "%config detections_per_img=100 score_thresh=0.05"),
("markdown", "Synthetic head outputs with ground truth (or `%load NAME file.npz` for your model's heads in the golden format)."),
("code", "%synth demo --images 2 --size 480x640 --classes 20 --density 0.02 --seed 1"),
("markdown", "Every available implementation, checked against the TypeScript reference and timed; the fastest exact one is bound as `pp` and saved."),
("code", "%optimize --data demo --iterations 10 --as pp --save quickstart-optimized.json"),
("code", "%run pp --data demo --iterations 10 --show 1 --eval"),
("markdown", "The same from TypeScript:"),
("code", """
const r = await pp.run(demo);
const m = rk.workbench.evaluate(demo, r);
console.log(`The ${r.backend} backend found ${r.detections.map((d) => d.count).join(" + ")} detections: AP ${m.AP.toFixed(3)}, AP50 ${m.AP50.toFixed(3)}.`);
({ backend: r.backend, detections: r.detections.map((d) => d.count), AP: Number(m.AP.toFixed(3)), AP50: Number(m.AP50.toFixed(3)) })
""", ["summary"]),
("markdown", "Accuracy against latency over a grid of thresholds; the Pareto front is marked."),
("code", "%sweep score_thresh=0.05,0.2,0.5 nms_thresh=0.4:0.6:0.1 --data demo --iterations 3"),
("markdown", """Into TensorRT: the tuned configuration as the fields of the `RetinaNetPostprocess` plugin for these
shapes, and a script that adds the plugin node to your exported ONNX model
(`examples/torchvision_retinanet_trt.py` shows it on torchvision's RetinaNet). Writing them needs no
TensorRT; `%optimize --export-plugin FILE` does the same."""),
("code", """
const plugin = rk.workbench.exportPlugin("quickstart-plugin", { data: "demo" });
console.log(`${plugin.spec.plugin}: ${plugin.spec.fields.length} fields written to ${plugin.json}; ${plugin.script} adds the node to an ONNX model. Its outputs:`);
plugin.spec.outputs.map((o) => `${o.name} [${o.shape.join(", ")}] ${o.dtype}`)
""", ["summary"]),
("markdown", "A fresh kernel gets the same detections from the saved file:"),
("code", """
const again = loadOptimized("quickstart-optimized.json");
const same = rk.detectionsChecksum(await again.run(demo)) === rk.detectionsChecksum(await pp.run(demo));
console.log(`The reloaded ${again.backend} postprocessor gives ${same ? "the same" : "DIFFERENT"} detections.`);
({ reloaded: again.backend, sameDetections: same })
""", ["summary"]),
]
json.dump(nb(quick), open(sys.argv[1] + "/01-quickstart.ipynb", "w"), indent=1)

parity = [
("markdown", """
# Parity with the frameworks

Runs every case of the golden data (`../../shared/golden/`, produced by torchvision, Detectron2 and
NVIDIA's retinanet-examples) through every available backend and reports whether the detections are
the same as the framework's, by the SPEC's parity rules.
"""),
("code", """
import * as fs from "fs";
const dir = process.env.RK_GOLDEN_DIR ?? "../../shared/golden";
const cases = fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith(".json")) : [];
const backends = rk.availableBackends().available;
const rows: string[][] = [];
let allSame = true;
for (const f of cases) {
  const meta = JSON.parse(fs.readFileSync(`${dir}/${f}`, "utf8"));
  const ds = rk.loadDataset(`${dir}/${f.replace(/\\.json$/, ".npz")}`);
  const cfg = { preset: meta.preset, score_thresh: meta.score_thresh, nms_thresh: meta.nms_thresh, topk_candidates: meta.topk_candidates, detections_per_img: meta.detections_per_img, num_classes: meta.num_classes };
  const row = [f.replace(/\\.json$/, ""), meta.preset];
  for (const b of backends) {
    const r = await rk.createPostprocessor(cfg, { backend: b }).run(ds);
    const ok = rk.compareDetections(r.detections, ds.expected!).ok;
    allSame &&= ok;
    row.push(ok ? "same" : "DIFFERENT");
  }
  rows.push(row);
}
display.markdown(["| case | preset | " + backends.join(" | ") + " |", "|---|---|" + backends.map(() => "---|").join(""), ...rows.map((r) => `| ${r.join(" | ")} |`)].join("\\n"));
console.log(`${cases.length} golden cases on ${backends.length} backends: ${allSame ? "every detection is the same as the framework's" : "SOME DIFFER (see the table)"}.`);
({ cases: cases.length, backends, allSame })
""", ["summary"]),
("markdown", "Switching presets shows which values change:"),
("code", "%config preset=detectron2"),
("code", "%config preset=odtk"),
("code", "%config --reset"),
]
json.dump(nb(parity), open(sys.argv[1] + "/02-parity.ipynb", "w"), indent=1)

validation = [
("markdown", """
# Tuning on a whole validation set

A model's head outputs for one 800x1333 image with 80 classes are 68 MB, so a validation set of
5,000 images does not fit in memory as heads. What post-processing reads of them does: the
**candidate cache** keeps, per image and level, every element that a config with
`score_thresh >= min_score` and `topk_candidates <= max_topk` can select, with its raw value,
deltas and anchor row. Any such config gives exactly the detections it gives on the heads (the
kernel decides each candidate again with its own arithmetic); a config outside the bounds is an error.

With your own model:

    python3 examples/export_heads.py --images val2017/ --annotations instances_val2017.json --out shards/

then `%load val shards/ --annotations instances_val2017.json` (the cache is built on the fly, one
shard at a time) or `retinanet-kernel cache --data shards/ --out val.cache`. Here the validation
set is synthetic: 5,000 images of 800x1333 with 80 classes, written straight to a cache.
**The tests run this notebook with `RK_VALIDATION_IMAGES=200`**, to keep CI short; the code is the same.
"""),
("code", """
const IMAGES = Number(process.env.RK_VALIDATION_IMAGES ?? 5000);
const val = rk.workbench.synthCache("val", "validation-cache", { images: IMAGES, size: [800, 1333], classes: 80, minScore: 0.05, maxTopk: 1000 });
console.log(`A candidate cache of ${val.cache.meta.images} images: ${val.cache.meta.candidates} candidates.`);
"""),
("markdown", "`%synth val --images 5000 --cache validation-cache` does the same with a progress bar. The loaded datasets, with the cache's bounds:"),
("code", "%datasets"),
("markdown", "A 5 x 5 grid with pycocotools' AP per point. On a cache only the stages after selection run, so the time column is per image of those stages."),
("code", "%sweep score_thresh=0.05,0.1,0.2,0.3,0.4 nms_thresh=0.3:0.7:0.1 --data val"),
("markdown", "Pick: the highest `score_thresh` (fewest candidates to decode and suppress) whose AP is within 0.002 of the best, then set it."),
("code", """
const rows = rk.workbench.lastSweep!.rows;
const best = Math.max(...rows.map((r) => r.metric));
const pick = rows.filter((r) => r.metric >= best - 0.002).sort((a, b) => Number(b.values.score_thresh) - Number(a.values.score_thresh) || b.metric - a.metric)[0];
rk.workbench.setConfig(pick.values);
console.log(`Picked score_thresh ${pick.values.score_thresh}, nms_thresh ${pick.values.nms_thresh}: AP ${pick.metric.toFixed(4)} (best ${best.toFixed(4)}).`);
({ score_thresh: pick.values.score_thresh, nms_thresh: pick.values.nms_thresh, AP: Number(pick.metric.toFixed(4)), bestAP: Number(best.toFixed(4)) })
""", ["summary"]),
("markdown", "The fastest exact implementation for the picked config (checked on a sample, timed on every image), saved, with the TensorRT plugin fields for these shapes:"),
("code", "%optimize --data val --as pp --save validation-optimized.json --export-plugin validation-plugin"),
("code", "%run pp --data val --eval --show 1"),
("code", """
const again = loadOptimized("validation-optimized.json");
const r = await rk.workbench.runDataset(again, val);
const m = rk.workbench.evaluate(val, r.result);
console.log(`The saved configuration on all ${r.result.detections.length} images: AP ${m.AP.toFixed(4)}, AP50 ${m.AP50.toFixed(4)}; plugin fields in validation-plugin.json.`);
({ images: r.result.detections.length, AP: Number(m.AP.toFixed(4)), sameAsPick: Number(m.AP.toFixed(4)) === Number(pick.metric.toFixed(4)) })
""", ["summary"]),
]
json.dump(nb(validation), open(sys.argv[1] + "/03-validation-set.ipynb", "w"), indent=1)

deploy = [
("markdown", """
# From a validation set to a deployment configuration

Two questions of every deployment: *which configuration is fastest while AP stays within 0.002 of
the best?* and *which score threshold per class gives precision >= 0.9 on my data?* `%tune` answers
both on a validation set, here a synthetic one held as a candidate cache (see
`03-validation-set.ipynb`), and the answer is a postprocessor, a saved file and TensorRT plugin
fields (`score_thresh_per_class` is a field of the plugins).
**The tests run this notebook with `RK_DEPLOY_IMAGES=150`** (1,000 by default).
"""),
("code", """
const IMAGES = Number(process.env.RK_DEPLOY_IMAGES ?? 1000);
const val = rk.workbench.synthCache("val", "deploy-cache", { images: IMAGES, size: [800, 1333], classes: 20, density: 0.02, seed: 7 });
console.log(`${val.cache.meta.images} images, ${val.cache.meta.candidates} candidates.`);
"""),
("markdown", """The fastest configuration within 0.002 AP of the best, over score_thresh x topk_candidates x
nms_thresh x detections_per_img (the default space). The search evaluates far fewer points than the
grid; `--grid` runs the grid too and says whether it agrees. On a cache, the time is per image of the
stages after selection, which is what differs between these configurations."""),
("code", "%tune --objective latency --keep AP>=best-0.002 --grid --as fast"),
("code", """
const lat = rk.workbench.lastTuneLatency!;
console.log(`The search evaluated ${lat.evaluations} of ${lat.gridSize} points; the grid ${lat.grid!.same ? "agrees" : `answers otherwise (${lat.grid!.latencyRatio.toFixed(2)}x)`}.`);
({ evaluations: lat.evaluations, grid: lat.gridSize, sameAsGrid: lat.grid!.same, AP: Number(lat.winner.metric.toFixed(4)), best: Number(lat.best.toFixed(4)) })
""", ["summary"]),
("markdown", "Per-class score thresholds for precision >= 0.9 at IoU 0.5, applied on top of that configuration, saved with the TensorRT plugin fields:"),
("code", "%tune thresholds --target precision=0.9 --iou 0.5 --as deploy --save deploy.json --export-plugin deploy-plugin"),
("code", "%run deploy --data val --eval --show 1"),
("code", """
const th = rk.workbench.lastTuneThresholds!;
const met = th.classes.filter((c) => !c.unreachable).length;
const fields = JSON.parse(require("fs").readFileSync("deploy-plugin.json", "utf8"));
const perClass = (fields.fields ?? fields).find((x: { name: string }) => x.name === "score_thresh_per_class");
console.log(`${met} of ${th.classes.length} classes reach precision 0.9; the plugin fields carry ${perClass ? perClass.value.length : 0} per-class thresholds.`);
({ classes: th.classes.length, met, pluginThresholds: perClass ? perClass.value.length : 0 })
""", ["summary"]),
]
json.dump(nb(deploy), open(sys.argv[1] + "/04-deploy.ipynb", "w"), indent=1)

trt = [
("markdown", """
# Into TensorRT

The post-processing tuned in the notebook becomes the `RetinaNetPostprocess` TensorRT plugin
(`IPluginV3`, in `native/trt/`): one node that takes the model's head outputs and gives boxes,
scores, labels and counts, the same detections as the framework bit for bit. This notebook writes
the plugin's fields for a configuration, reads them back through the plugin's own parser, and adds
the plugin node to an ONNX model.

What needs what:
- the fields and the ONNX node (this notebook): nothing of TensorRT; the ONNX step needs Python's
  `onnx` package (Debian: `apt-get install python3-onnx`);
- building the plugin library `libretinanet_kernel_trt.so`: a TensorRT SDK (`TENSORRT_ROOT=/path/to/TensorRT npm run build:native`);
- an engine and its detections: TensorRT's runtime on a GPU (`trtexec --onnx=... --dynamicPlugins=libretinanet_kernel_trt.so`,
  or `%optimize --backend tensorrt`, which compares them with the reference).
"""),
("code", "%devices"),
("markdown", "The shapes of the deployed network (one 512×640 image, torchvision's 91 classes) and the tuned thresholds:"),
("code", "%synth shapes --images 1 --size 512x640 --classes 91 --objects 4 --seed 5"),
("code", "%config score_thresh=0.3 nms_thresh=0.5 detections_per_img=100"),
("code", """
const plugin = rk.workbench.exportPlugin("retina", { data: "shapes" });
display.markdown(["| field | type | value |", "|---|---|---|", ...plugin.spec.fields.map((f) => `| ${f.name} | ${f.type} | ${JSON.stringify(f.value)} |`)].join("\\n"));
console.log(`${plugin.spec.plugin}: ${plugin.spec.fields.length} fields in ${plugin.json}; inputs ${plugin.spec.inputs.map((i) => i.name).join(", ")}`);
plugin.spec.outputs.map((o) => `${o.name} [${o.shape.join(", ")}] ${o.dtype}`)
"""),
("markdown", "Read back through the plugin's own field parser (the code TensorRT calls when it deserializes the node): every field is checked, the thresholds stay the framework's doubles."),
("code", """
const back = rk.readPluginExport(plugin.json);
const p = back.parsed.params;
console.log(`parsed by the plugin: score_thresh ${p.select.scoreThresh}, nms_thresh ${p.nms.iouThresh}, detections_per_img ${p.output.detectionsPerImg}, ${back.parsed.numLevels} levels`);
({ scoreThresh: p.select.scoreThresh, exact: p.select.scoreThresh === 0.3 && p.nms.iouThresh === 0.5 })
""", ["summary"]),
("markdown", """The node in an ONNX model. A real model comes from `torch.onnx.export` of the network up to its
head outputs (`examples/torchvision_retinanet_trt.py` does it for torchvision's RetinaNet); here a
stand-in model whose outputs are the heads, so that the step runs anywhere `onnx` is installed."""),
("code", """
import { spawnSync } from "child_process";
const py = "/usr/bin/python3";
const hasOnnx = spawnSync(py, ["-c", "import onnx"]).status === 0;
if (!hasOnnx) {
  console.log("Python's onnx package is not installed here (apt-get install python3-onnx): the node is not added; the fields above are complete.");
} else {
  const make = [
    "import onnx, sys",
    "from onnx import helper, TensorProto as T",
    "ins = [helper.make_tensor_value_info(n + '_in', T.FLOAT, ['N', 61380, k]) for n, k in (('cls_logits', 91), ('bbox_regression', 4))]",
    "nodes = [helper.make_node('Identity', [n + '_in'], [n]) for n in ('cls_logits', 'bbox_regression')]",
    "outs = [helper.make_tensor_value_info(n, T.FLOAT, None) for n in ('cls_logits', 'bbox_regression')]",
    "onnx.save(helper.make_model(helper.make_graph(nodes, 'heads', ins, outs)), sys.argv[1])",
  ].join("\\n");
  spawnSync(py, ["-c", make, "heads.onnx"], { encoding: "utf8" });
  const add = spawnSync(py, [plugin.script, "heads.onnx", "heads_trt.onnx", "--inputs", "cls_logits", "bbox_regression"], { encoding: "utf8" });
  const show = spawnSync(py, ["-c", "import onnx, sys; m = onnx.load(sys.argv[1]); n = m.graph.node[-1]; print(n.op_type, n.domain, len(n.attribute), 'attributes; outputs', [o.name for o in m.graph.output])", "heads_trt.onnx"], { encoding: "utf8" });
  console.log(add.status === 0 ? show.stdout.trim() : `adding the node failed: ${add.stderr}`);
}
({ onnx: hasOnnx })
""", ["summary"]),
("markdown", """With a TensorRT SDK and a GPU:

```sh
TENSORRT_ROOT=/opt/TensorRT npm run build:native          # builds libretinanet_kernel_trt.so beside the addon
trtexec --onnx=heads_trt.onnx --dynamicPlugins=build/Release/libretinanet_kernel_trt.so --saveEngine=retina.plan
```

and in the notebook `%optimize --backend tensorrt` builds the plugin into an engine and checks its
detections against the reference, like every other candidate. The plugins' verification record is
in `docs/tensorrt.md`."""),
]
json.dump(nb(trt), open(sys.argv[1] + "/05-tensorrt.ipynb", "w"), indent=1)
