/**
 * Presets: one framework's post-processing as plain data (../shared/SPEC.md sections 1-3). There is
 * one implementation; a preset only sets defaults and the few switches where frameworks differ.
 */

export type PresetName = "torchvision" | "detectron2" | "odtk";
export const PRESET_NAMES: readonly PresetName[] = ["torchvision", "detectron2", "odtk"];

export type AnchorCell = "torchvision" | "detectron2" | "odtk";
export type AnchorOrder = "ratio_major" | "size_major";
export type ClipBoxes = "none" | "image_before_nms" | "canvas_in_decode" | "output_after_nms";
export type ScoreInput = "logits" | "probabilities";
export type CandidateOrder = "anchor_major" | "class_major";
export type NmsAlgorithm = "torchvision_batched" | "greedy_per_class";
export type NmsDevice = "cpu" | "cuda";

/** Every parameter of the post-processing, in the frameworks' own names where they have one. */
export interface PostprocessConfig {
  /** Which framework the defaults and switches come from. */
  preset: PresetName;
  /** K; null takes it from the data (last dim of cls_logits, or channels / A per level). */
  num_classes: number | null;
  /** Keep candidates with score > f32(score_thresh). */
  score_thresh: number;
  /**
   * Per-class score thresholds, applied at the same point with the same strict `>` on the f32 score:
   * one number per class, or a map from label to number (score_thresh for the other classes);
   * null: score_thresh for every class.
   */
  score_thresh_per_class: number[] | Record<string, number> | null;
  /** Suppress a box when its IoU with a kept box of the same class is > nms_thresh. */
  nms_thresh: number;
  /** Candidates kept per image and level before NMS. */
  topk_candidates: number;
  /** Detections kept per image after NMS. */
  detections_per_img: number;
  /** Anchor sizes per level (P3 first): pixels, or multiples of the stride with anchor_cell "odtk". */
  anchor_sizes: number[][];
  /** Anchor aspect ratios h/w. */
  aspect_ratios: number[];
  /** The arithmetic of a cell anchor (SPEC 1(2), 2(2), 3(2)). */
  anchor_cell: AnchorCell;
  /** a = ri*S + si ("ratio_major", torchvision) or si*R + ri ("size_major", Detectron2, ODTK). */
  anchor_order: AnchorOrder;
  /** Per-level strides, or "padded_size": padded H // H_l and W // W_l (torchvision). */
  anchor_strides: number[] | "padded_size";
  /** Grid offset in strides: shift = (x + offset) * stride. */
  anchor_offset: number;
  /** Divisors of dx, dy, dw, dh (pixel_offset 0). */
  box_coder_weights: [number, number, number, number];
  /** Upper clamp of dw, dh before exp; null: none (ODTK). */
  bbox_xform_clip: number | null;
  /** 1: ODTK's +1 pixel convention in decode and IoU. */
  pixel_offset: 0 | 1;
  /** Where boxes are clipped. */
  clip_boxes: ClipBoxes;
  /** Drop boxes with width or height <= 0 after the cap (Detectron2). */
  remove_empty_boxes: boolean;
  /** Whether the class head holds logits or probabilities (ODTK engines apply the sigmoid). */
  score_input: ScoreInput;
  /** Flat index that orders equal scores. */
  candidate_order: CandidateOrder;
  /** torchvision's batched_nms (two paths by size) or ODTK's greedy NMS. */
  nms_algorithm: NmsAlgorithm;
  /** Whose batched_nms path switch to emulate; the goldens are CPU. */
  torchvision_nms_device: NmsDevice;
  /** Padding multiple of the batch tensor, used when the padded size is not given. */
  size_divisible: number;
}

const LN_1000_OVER_16 = Math.log(1000 / 16);
const LEVEL_BASES = [32, 64, 128, 256, 512];

function freezeDeep<T>(o: T): T {
  if (o && typeof o === "object") {
    for (const v of Object.values(o as object)) freezeDeep(v);
    Object.freeze(o);
  }
  return o;
}

/** torchvision.models.detection.RetinaNet (SPEC 1). */
const torchvision: PostprocessConfig = {
  preset: "torchvision",
  num_classes: null,
  score_thresh: 0.05,
  score_thresh_per_class: null,
  nms_thresh: 0.5,
  topk_candidates: 1000,
  detections_per_img: 300,
  // (s, int(s * 2^(1/3)), int(s * 2^(2/3)))
  anchor_sizes: LEVEL_BASES.map((s) => [s, Math.trunc(s * 2 ** (1 / 3)), Math.trunc(s * 2 ** (2 / 3))]),
  aspect_ratios: [0.5, 1.0, 2.0],
  anchor_cell: "torchvision",
  anchor_order: "ratio_major",
  anchor_strides: "padded_size",
  anchor_offset: 0,
  box_coder_weights: [1, 1, 1, 1],
  bbox_xform_clip: LN_1000_OVER_16,
  pixel_offset: 0,
  clip_boxes: "image_before_nms",
  remove_empty_boxes: false,
  score_input: "logits",
  candidate_order: "anchor_major",
  nms_algorithm: "torchvision_batched",
  torchvision_nms_device: "cpu",
  size_divisible: 32,
};

/** detectron2.modeling.meta_arch.RetinaNet with Base-RetinaNet.yaml (SPEC 2). */
const detectron2: PostprocessConfig = {
  ...torchvision,
  preset: "detectron2",
  detections_per_img: 100,
  anchor_sizes: LEVEL_BASES.map((s) => [s, s * 2 ** (1.0 / 3), s * 2 ** (2.0 / 3)]),
  anchor_cell: "detectron2",
  anchor_order: "size_major",
  anchor_strides: [8, 16, 32, 64, 128],
  clip_boxes: "output_after_nms",
  remove_empty_boxes: true,
};

/** NVIDIA retinanet-examples (ODTK) CUDA decode + NMS (SPEC 3). */
const odtk: PostprocessConfig = {
  ...torchvision,
  preset: "odtk",
  detections_per_img: 100,
  // scales 4 * 2^(i/3) of the stride, the same on every level
  anchor_sizes: LEVEL_BASES.map(() => [0, 1, 2].map((i) => 4 * 2 ** (i / 3))),
  aspect_ratios: [1.0, 2.0, 0.5],
  anchor_cell: "odtk",
  anchor_order: "size_major",
  anchor_strides: [8, 16, 32, 64, 128],
  bbox_xform_clip: null,
  pixel_offset: 1,
  clip_boxes: "canvas_in_decode",
  candidate_order: "class_major",
  nms_algorithm: "greedy_per_class",
  size_divisible: 128,
};

/** The presets, frozen: copy one (`{ ...presets.torchvision, score_thresh: 0.3 }`) to change it. */
export const presets: Readonly<Record<PresetName, Readonly<PostprocessConfig>>> = freezeDeep({ torchvision, detectron2, odtk });

/** What each switch means, for help texts and the README's behaviour table. */
export const SWITCH_DOCS: Record<string, string> = {
  anchor_cell: "arithmetic of a cell anchor: torchvision (f32, rounded half to even), detectron2 (f64 -> f32), odtk (stride-relative, centred at s/2)",
  anchor_order: "anchor index at a location: ratio_major a = ri*S + si, size_major a = si*R + ri",
  anchor_strides: "per-level strides, or padded_size (padded H // H_l, W // W_l)",
  anchor_offset: "grid offset in strides: shift = (x + offset) * stride",
  bbox_xform_clip: "upper clamp of dw, dh before exp (null: none)",
  pixel_offset: "1: ODTK's +1 pixel convention in decode and IoU",
  clip_boxes: "where boxes are clipped: image_before_nms, canvas_in_decode, output_after_nms, none",
  remove_empty_boxes: "drop boxes with width or height <= 0 after the cap",
  score_input: "logits (sigmoid applied) or probabilities",
  candidate_order: "flat index that orders equal scores: anchor_major (row*K + k) or class_major (ODTK's storage order)",
  nms_algorithm: "torchvision_batched (per-class or coordinate-offset path by size) or greedy_per_class (ODTK)",
  torchvision_nms_device: "whose batched_nms path switch to emulate: cpu (> 1000 boxes per class path) or cuda (> 25000)",
};
