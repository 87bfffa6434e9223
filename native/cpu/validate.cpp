// Checks of the C++ API's inputs. The TypeScript layer validates configs with better messages first;
// these guard callers that reach the core directly (the TensorRT plugins, the C++ tests).
#include <cmath>
#include <string>

#include "rk/stages.h"

namespace rk {
namespace {

Status Param(const std::string& name, const std::string& expected, const std::string& received) {
  return Status(Code::kInvalidArgument, "Expected " + expected + " for " + name + " but received " + received);
}

std::string Num(double v) {
  std::string s = std::to_string(v);
  return s;
}

}  // namespace

Status ValidateParams(const PostprocessParams& p) {
  if (p.num_classes < 1) return Param("num_classes", "an integer >= 1", std::to_string(p.num_classes));
  const double t = p.select.score_thresh;
  if (!(t >= 0.0 && t <= 1.0)) return Param("score_thresh", "a number in [0, 1]", Num(t));
  if (p.select.topk_candidates < 1 || p.select.topk_candidates > 100000) {
    return Param("topk_candidates", "an integer in [1, 100000]", std::to_string(p.select.topk_candidates));
  }
  const double iou = p.nms.iou_thresh;
  if (!(iou >= 0.0 && iou <= 1.0)) return Param("nms_thresh", "a number in [0, 1]", Num(iou));
  if (p.output.detections_per_img < 1 || p.output.detections_per_img > 100000) {
    return Param("detections_per_img", "an integer in [1, 100000]",
                 std::to_string(p.output.detections_per_img));
  }
  const AnchorParams& a = p.anchors;
  if (a.num_sizes < 1 || a.num_sizes > kMaxSizes) {
    return Param("anchor sizes per level", "1.." + std::to_string(kMaxSizes), std::to_string(a.num_sizes));
  }
  if (a.num_ratios < 1 || a.num_ratios > kMaxRatios) {
    return Param("aspect_ratios", "1.." + std::to_string(kMaxRatios) + " ratios", std::to_string(a.num_ratios));
  }
  for (int i = 0; i < a.num_ratios; ++i) {
    if (!(a.ratios[i] > 0.0) || !std::isfinite(a.ratios[i])) {
      return Param("aspect_ratios[" + std::to_string(i) + "]", "a finite number > 0", Num(a.ratios[i]));
    }
  }
  for (int i = 0; i < 4; ++i) {
    if (!(p.decode.weights[i] != 0.0f) || !std::isfinite(p.decode.weights[i])) {
      return Param("box_coder_weights[" + std::to_string(i) + "]", "a finite non-zero number",
                   Num(p.decode.weights[i]));
    }
  }
  if (p.decode.pixel_offset != 0 && p.decode.pixel_offset != 1) {
    return Param("pixel_offset", "0 or 1", std::to_string(p.decode.pixel_offset));
  }
  return Status::Ok();
}

Status ValidateShapes(const PostprocessParams& p, const HeadShapes& s) {
  if (s.batch < 1) return Param("batch (N)", "an integer >= 1", std::to_string(s.batch));
  if (s.num_levels < 1 || s.num_levels > kMaxLevels) {
    return Param("levels", "1.." + std::to_string(kMaxLevels) + " levels", std::to_string(s.num_levels));
  }
  if (s.num_classes != p.num_classes) {
    return Status(Code::kShapeMismatch, "Expected " + std::to_string(p.num_classes) +
                                            " classes (num_classes) but the class head has " +
                                            std::to_string(s.num_classes));
  }
  if (s.anchors_per_loc != p.anchors.AnchorsPerLocation()) {
    return Status(Code::kShapeMismatch,
                  "Expected " + std::to_string(p.anchors.AnchorsPerLocation()) +
                      " anchors per location but the head has " + std::to_string(s.anchors_per_loc));
  }
  for (int l = 0; l < s.num_levels; ++l) {
    if (s.levels[l].height < 1 || s.levels[l].width < 1) {
      return Param("feature size of level " + std::to_string(l), "H, W >= 1",
                   std::to_string(s.levels[l].height) + "x" + std::to_string(s.levels[l].width));
    }
    if (!p.anchors.strides_from_padded_size && !(p.anchors.strides[l] > 0.0)) {
      return Param("anchor_strides[" + std::to_string(l) + "]", "a number > 0", Num(p.anchors.strides[l]));
    }
  }
  if (p.anchors.strides_from_padded_size) {
    for (int l = 0; l < s.num_levels; ++l) {
      if (s.padded_height < s.levels[l].height || s.padded_width < s.levels[l].width) {
        return Status(Code::kShapeMismatch,
                      "Expected padded_size >= every feature size but received " +
                          std::to_string(s.padded_height) + "x" + std::to_string(s.padded_width) +
                          " with level " + std::to_string(l) + " of " +
                          std::to_string(s.levels[l].height) + "x" + std::to_string(s.levels[l].width));
      }
    }
  }
  for (int l = 0; l < s.num_levels; ++l) {
    if (s.LevelElements(l) >= (int64_t{1} << 31)) {
      return Status(Code::kShapeMismatch, "Expected fewer than 2^31 class scores per image and level but level " + std::to_string(l) +
                                              " has " + std::to_string(s.LevelElements(l)));
    }
  }
  return Status::Ok();
}

}  // namespace rk
