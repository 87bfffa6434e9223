// Shapes and non-owning views of the head outputs and of the detections.
#pragma once

#include <cstddef>
#include <cstdint>

#include "rk/params.h"

namespace rk {

enum class DType : int32_t { kFloat32 = 0, kFloat16 = 1 };
inline size_t DTypeSize(DType t) { return t == DType::kFloat16 ? 2 : 4; }

// Concatenated: cls [N, sum(HWA), K], box [N, sum(HWA), 4] (levels P3.. back to back, within a
// level row = (y*W + x)*A + a). Per level: cls_l [N, A*K, H_l, W_l] (channel a*K + k),
// box_l [N, A*4, H_l, W_l] (channel a*4 + j), the heads before any permutation.
enum class Layout : int32_t { kConcatenated = 0, kPerLevel = 1 };

struct LevelShape {
  int32_t height = 0;
  int32_t width = 0;
};

struct HeadShapes {
  int32_t batch = 0;             // N
  int32_t num_levels = 0;        // L
  int32_t anchors_per_loc = 0;   // A
  int32_t num_classes = 0;       // K
  LevelShape levels[kMaxLevels];
  int32_t padded_height = 0;     // the batch tensor's size, for strides derived from it
  int32_t padded_width = 0;

  int64_t LevelAnchors(int l) const {  // H*W*A
    return static_cast<int64_t>(levels[l].height) * levels[l].width * anchors_per_loc;
  }
  int64_t LevelElements(int l) const { return LevelAnchors(l) * num_classes; }  // H*W*A*K
  int64_t TotalAnchors() const {
    int64_t total = 0;
    for (int l = 0; l < num_levels; ++l) total += LevelAnchors(l);
    return total;
  }
  int64_t LevelAnchorOffset(int l) const {  // first row of level l in the concatenated layout
    int64_t offset = 0;
    for (int i = 0; i < l; ++i) offset += LevelAnchors(i);
    return offset;
  }
};

// Pointers into the caller's memory (host or device, as the backend expects). Never owned.
struct HeadTensors {
  DType dtype = DType::kFloat32;
  Layout layout = Layout::kConcatenated;
  const void* cls[kMaxLevels] = {};  // concatenated: cls[0] only
  const void* box[kMaxLevels] = {};
  // Optional anchors, f32 [sum(HWA), 4] shared by the batch or [N, sum(HWA), 4]; null = generated.
  const float* anchors = nullptr;
  bool anchors_per_image = false;
  const int32_t* image_sizes = nullptr;   // [N, 2] (h, w) before padding: the clip bounds
  const int32_t* output_sizes = nullptr;  // optional [N, 2] (h, w) for Detectron2's rescale + clip
};

// The padded output form, as TensorRT's NMS plugins emit it; rows past counts[n] are zeros.
struct Detections {
  int32_t max_detections = 0;  // D
  int32_t* counts = nullptr;   // [N]
  float* boxes = nullptr;      // [N, D, 4] (x1, y1, x2, y2)
  float* scores = nullptr;     // [N, D]
  int32_t* labels = nullptr;   // [N, D]
};

}  // namespace rk
