/**
 * Label <-> COCO category id, per framework: torchvision's RetinaNet labels are COCO's category ids
 * themselves (91 classes, 0 the unused background, gaps where COCO has none); Detectron2 and
 * NVIDIA's retinanet-examples (ODTK) label contiguously 0..K-1 in the order of the sorted category
 * ids (Detectron2's thing_dataset_id_to_contiguous_id). A dataset can give its own map instead.
 */
import type { PresetName } from "../postprocess/presets";

export interface LabelMap {
  /** How labels were mapped, for the reader. */
  describe: string;
  /** The category id of a label; undefined when it has none (such detections are left out). */
  category(label: number): number | undefined;
  /** The label of a category id; undefined when none maps to it. */
  label(categoryId: number): number | undefined;
}

export function labelMapFor(preset: PresetName | "identity", categoryIds: readonly number[], explicit?: Record<number, number>): LabelMap {
  if (explicit) {
    const inverse = new Map(Object.entries(explicit).map(([l, c]) => [c, Number(l)]));
    return { describe: `the dataset's own map (${Object.keys(explicit).length} labels)`, category: (l) => explicit[l], label: (c) => inverse.get(c) };
  }
  if (preset === "torchvision" || preset === "identity") {
    const ids = new Set(categoryIds);
    return { describe: "labels are COCO category ids (torchvision)", category: (l) => (ids.has(l) ? l : undefined), label: (c) => (ids.has(c) ? c : undefined) };
  }
  const sorted = [...new Set(categoryIds)].sort((a, b) => a - b);
  const index = new Map(sorted.map((c, i) => [c, i]));
  return {
    describe: `labels 0..${sorted.length - 1} are the sorted category ids (${preset === "detectron2" ? "Detectron2" : "ODTK"})`,
    category: (l) => sorted[l],
    label: (c) => index.get(c),
  };
}
