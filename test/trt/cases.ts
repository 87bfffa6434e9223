/**
 * Writes the golden cases for the TensorRT plugin harness (test/trt/harness.cpp): per case a folder
 * with case.txt (the plugin fields, written by the plugins' own field writer through
 * %optimize --export-plugin's code path; the input tensors; the expected detections) and raw
 * little-endian tensors. The harness needs no Node and no numpy, so the GPU machine runs it alone.
 *   node dist/test/trt/cases.js OUT_DIR          (golden data: ../shared/golden or RK_GOLDEN_DIR)
 */
import * as fs from "fs";
import * as path from "path";

import { resolveConfig } from "../../kernel/postprocess/config";
import { BoxSet, Dataset, loadDataset } from "../../kernel/postprocess/dataset";
import { createPostprocessor } from "../../kernel/postprocess/postprocessor";
import { PostprocessConfig } from "../../kernel/postprocess/presets";
import { NdArray, toInt32 } from "../../kernel/postprocess/ndarray";
import { pluginExport } from "../../kernel/postprocess/plugin";
import { goldenCases, goldenConfig, isBuiltPreset } from "../helpers";

/** The reference's detections (TypeScript stages) of a config on a dataset, as expected boxes. */
function expectedFromReference(config: PostprocessConfig, ds: Dataset): BoxSet[] {
  const r = createPostprocessor(config, { backend: "js" }).runSync(ds);
  return r.detections.map((d) => ({ boxes: Float32Array.from(d.boxes), scores: Float32Array.from(d.scores), labels: Int32Array.from(d.labels) }));
}

function raw(a: ArrayBufferView): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

export function writeCases(outDir: string): string[] {
  fs.mkdirSync(outDir, { recursive: true });
  const written: string[] = [];
  // Every golden case with its framework's detections; and each again with per-class score
  // thresholds, whose expected detections are the TypeScript reference's on the same heads.
  const runs = goldenCases().flatMap((c) => [{ c, perClass: false }, { c, perClass: true }]);
  for (const { c, perClass } of runs) {
    if (!isBuiltPreset(c.preset) || !fs.existsSync(c.npz)) continue;
    const probe = loadDataset(c.npz);
    // Each case in the layout its framework feeds a plugin: per level where the file has it.
    const layout = probe.arrays.has("cls_p3") ? "per_level" : "concatenated";
    const ds = layout === "per_level" ? loadDataset(c.npz, { layout }) : probe;
    const K = c.meta.num_classes as number;
    const base = goldenConfig(c);
    const config = resolveConfig(perClass ? { ...base, score_thresh_per_class: Array.from({ length: K }, (_, k) => [base.score_thresh!, 0.2, 0.5, 0.9][k % 4]) } : base);
    if (perClass) ds.expected = expectedFromReference(config, ds);
    const spec = pluginExport(config, ds);
    const name = perClass ? `${c.name}_per_class` : c.name;
    const dir = path.join(outDir, name);
    fs.mkdirSync(dir, { recursive: true });
    const lines = [`name ${name}`, `preset ${c.preset}`, "box_tolerance 1e-4"];
    for (const f of spec.fields) {
      lines.push(`field ${f.name} ${f.type} ${typeof f.value === "string" ? f.value : f.value.map((v) => String(v)).join(" ")}`);
    }
    const heads = [...(Array.isArray(ds.cls_logits) ? ds.cls_logits : [ds.cls_logits]), ...(Array.isArray(ds.bbox_regression) ? ds.bbox_regression : [ds.bbox_regression])];
    const names = layout === "per_level" ? heads.map((_, i) => (i < heads.length / 2 ? `cls_p${i + 3}` : `box_p${i - heads.length / 2 + 3}`)) : ["cls_logits", "bbox_regression"];
    heads.forEach((a: NdArray, i) => {
      if (!(a.data instanceof Float32Array)) throw new TypeError(`Expected float32 heads in ${c.npz} but ${names[i]} is ${a.dtype}`);
      fs.writeFileSync(path.join(dir, `${names[i]}.bin`), raw(a.data));
      lines.push(`input ${names[i]} float32 ${a.shape.length} ${a.shape.join(" ")} ${names[i]}.bin`);
    });
    const sizes = toInt32(ds.image_sizes as NdArray, "image_sizes");
    fs.writeFileSync(path.join(dir, "image_sizes.bin"), raw(sizes));
    lines.push(`input image_sizes int32 2 ${sizes.length / 2} 2 image_sizes.bin`);
    (ds.expected ?? []).forEach((e, n) => {
      const count = e.labels.length;
      const rec = Buffer.alloc(count * 24);
      for (let i = 0; i < count; i++) {
        for (let k = 0; k < 4; k++) rec.writeFloatLE(e.boxes[4 * i + k], i * 24 + 4 * k);
        rec.writeFloatLE(e.scores![i], i * 24 + 16);
        rec.writeInt32LE(e.labels[i], i * 24 + 20);
      }
      fs.writeFileSync(path.join(dir, `det${n}.bin`), rec);
      lines.push(`expect ${n} ${count} det${n}.bin`);
    });
    fs.writeFileSync(path.join(dir, "case.txt"), lines.join("\n") + "\n");
    written.push(name);
  }
  return written;
}

if (require.main === module) {
  const out = process.argv[2];
  if (!out) {
    console.error("usage: node dist/test/trt/cases.js OUT_DIR");
    process.exit(2);
  }
  const names = writeCases(out);
  console.log(`${names.length} cases in ${out}: ${names.join(", ")}`);
}
