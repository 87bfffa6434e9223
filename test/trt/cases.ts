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
import { loadDataset } from "../../kernel/postprocess/dataset";
import { NdArray, toInt32 } from "../../kernel/postprocess/ndarray";
import { pluginExport } from "../../kernel/postprocess/plugin";
import { goldenCases, goldenConfig, isBuiltPreset } from "../helpers";

function raw(a: ArrayBufferView): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

export function writeCases(outDir: string): string[] {
  fs.mkdirSync(outDir, { recursive: true });
  const written: string[] = [];
  for (const c of goldenCases()) {
    if (!isBuiltPreset(c.preset) || !fs.existsSync(c.npz)) continue;
    const probe = loadDataset(c.npz);
    // Each case in the layout its framework feeds a plugin: per level where the file has it.
    const layout = probe.arrays.has("cls_p3") ? "per_level" : "concatenated";
    const ds = layout === "per_level" ? loadDataset(c.npz, { layout }) : probe;
    const config = resolveConfig(goldenConfig(c));
    const spec = pluginExport(config, ds);
    const dir = path.join(outDir, c.name);
    fs.mkdirSync(dir, { recursive: true });
    const lines = [`name ${c.name}`, `preset ${c.preset}`, "box_tolerance 1e-4"];
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
    written.push(c.name);
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
