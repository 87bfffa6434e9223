// Parameters of each post-processing stage: plain structs, filled once from a validated config
// (kernel/postprocess/config.ts does the validation) and read by the CPU, CUDA and TensorRT paths.
// Every switch is named after the behaviour it selects; ../../../shared/SPEC.md section numbers
// are given where the frameworks differ.
#pragma once

#include <cstdint>

namespace rk {

constexpr int kMaxLevels = 8;
constexpr int kMaxSizes = 8;
constexpr int kMaxRatios = 8;
constexpr int kMaxAnchors = kMaxSizes * kMaxRatios;

// How a cell anchor is computed from one size and one aspect ratio (h/w).
enum class AnchorCell : int32_t {
  // f32: hr = sqrt(r), wr = 1/hr, (-wr*s, -hr*s, wr*s, hr*s) / 2, rounded half to even (SPEC 1(2)).
  kTorchvision = 0,
  // f64: w = sqrt(s^2 / r), h = r*w, (-w/2, -h/2, w/2, h/2), each rounded once to f32 (SPEC 2(2)).
  kDetectron2 = 1,
  // f32, sizes are scales c of the stride s: ws = sqrt(s*s/r), hs = ws*r,
  // (0.5(s - ws*c), 0.5(s - hs*c), 0.5(s + ws*c), 0.5(s + hs*c)) (SPEC 3(2)).
  kOdtk = 2,
};

// Anchor index a at one location: ratio-outer (a = ri*S + si) or size-outer (a = si*R + ri).
enum class AnchorOrder : int32_t { kRatioMajor = 0, kSizeMajor = 1 };

struct AnchorParams {
  AnchorCell cell = AnchorCell::kTorchvision;
  AnchorOrder order = AnchorOrder::kRatioMajor;
  int32_t num_sizes = 3;   // S sizes per level
  int32_t num_ratios = 3;  // R aspect ratios
  double sizes[kMaxLevels][kMaxSizes] = {};  // px for kTorchvision/kDetectron2, x stride for kOdtk
  double ratios[kMaxRatios] = {};
  // Strides from the padded batch (H_pad // H_l, W_pad // W_l; torchvision) or fixed per level.
  bool strides_from_padded_size = true;
  double strides[kMaxLevels] = {};
  // Grid shift of location (y, x): f32((offset + x) * stride) computed in f64 (Detectron2's arange).
  double offset = 0.0;

  int32_t AnchorsPerLocation() const { return num_sizes * num_ratios; }
};

// Whether the class head carries logits (sigmoid applied here) or probabilities (ODTK exports).
enum class ScoreInput : int32_t { kLogits = 0, kProbabilities = 1 };

// Which flat index breaks ties between equal scores: anchor-major i = row*K + k (torchvision,
// Detectron2) or class-major i = ((a*K + k)*H + y)*W + x as ODTK reads its heads (SPEC 3(4)).
enum class CandidateOrder : int32_t { kAnchorMajor = 0, kClassMajor = 1 };

struct SelectParams {
  // Keep score > f32(score_thresh); with per-class thresholds, their minimum (the prefilter's bound).
  double score_thresh = 0.05;
  // Per-class thresholds: f32(t_c) for each of the K classes, or null (score_thresh for every class).
  // When set, an element of class c is kept when score > class_thresh[c], the same strict test at
  // the same point. Host memory for the CPU core; the CUDA engine and the TensorRT plugin point
  // their own copy at device memory holding the same values.
  const float* class_thresh = nullptr;
  int32_t topk_candidates = 1000;  // per image and level
  ScoreInput score_input = ScoreInput::kLogits;
  CandidateOrder candidate_order = CandidateOrder::kAnchorMajor;
};

// Where boxes are clipped (SPEC 1(6), 2(6), 3(3)).
enum class ClipMode : int32_t {
  kNone = 0,
  kImageBeforeNms = 1,   // torchvision: x to [0, w_i], y to [0, h_i] of the unpadded image
  kCanvasInDecode = 2,   // ODTK: max(0, x1), min(x2, W_l*s - 1) to the padded canvas, in decode
  kOutputAfterNms = 3,   // Detectron2: after NMS and the cap, to the output size
};

struct DecodeParams {
  float weights[4] = {1.f, 1.f, 1.f, 1.f};  // dx, dy, dw, dh divisors
  bool clamp_dwdh = true;                   // dw, dh = min(dw, bbox_xform_clip)
  double bbox_xform_clip = 4.135166556742356;  // ln(1000/16)
  // 0: widths x2 - x1 and centres x1 + 0.5w; 1: ODTK's +1 convention, centre (dx*w + x1) + 0.5w,
  // x2/y2 - 1 (SPEC 3(3)). Also selects the +1 in NMS IoU.
  int32_t pixel_offset = 0;
  ClipMode clip = ClipMode::kImageBeforeNms;
};

// torchvision's batched_nms (two paths, chosen by size as the device would) or ODTK's greedy NMS.
enum class NmsAlgorithm : int32_t { kTorchvisionBatched = 0, kGreedyPerClass = 1 };
// Which device's batched_nms to emulate: the path switch differs (SPEC 1(5)).
enum class NmsDevice : int32_t { kCpu = 0, kCuda = 1 };

struct NmsParams {
  double iou_thresh = 0.5;  // suppress when IoU > thresh
  NmsAlgorithm algorithm = NmsAlgorithm::kTorchvisionBatched;
  NmsDevice torchvision_device = NmsDevice::kCpu;
  // Compare the f32 IoU with the threshold as f64 (torchvision CPU) or as f32 (CUDA kernels).
  bool compare_in_double = true;
};

struct OutputParams {
  int32_t detections_per_img = 300;
  bool remove_empty = false;  // Detectron2: drop boxes with width or height <= 0 after the cap
};

struct PostprocessParams {
  int32_t num_classes = 0;  // K
  AnchorParams anchors;
  SelectParams select;
  DecodeParams decode;
  NmsParams nms;
  OutputParams output;
};

}  // namespace rk
