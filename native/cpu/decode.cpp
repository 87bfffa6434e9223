// Box decode and clip of the selected candidates (SPEC 1(3), 1(6), 2(3), 3(3)).
#include <algorithm>
#include <cmath>
#include <string>

#include "rk/stages.h"

namespace rk {
namespace {

inline float Load(const void* base, DType dtype, int64_t i) {
  return dtype == DType::kFloat32 ? static_cast<const float*>(base)[i]
                                  : HalfToFloat(static_cast<const uint16_t*>(base)[i]);
}

}  // namespace

Status DecodeOne(const PostprocessParams& p, const HeadShapes& s, const AnchorGrid& grid, int l, int64_t row,
                 int32_t label, const Box& anchor, const float d[4], int32_t image_h, int32_t image_w,
                 int32_t image_index, Box* out) {
  const float canvas_w = static_cast<float>(s.levels[l].width * grid.stride_x[l]);
  const float canvas_h = static_cast<float>(s.levels[l].height * grid.stride_y[l]);
  Box b = DecodeBox(anchor, d[0], d[1], d[2], d[3], p.decode, canvas_w, canvas_h);
  if (p.decode.clip == ClipMode::kImageBeforeNms) {
    b = ClipBox(b, static_cast<float>(image_h), static_cast<float>(image_w));
  }
  if (std::isnan(b.x1) || std::isnan(b.y1) || std::isnan(b.x2) || std::isnan(b.y2)) {
    const bool bad_anchor = std::isnan(anchor.x1) || std::isnan(anchor.y1) ||
                            std::isnan(anchor.x2) || std::isnan(anchor.y2);
    return Status(Code::kNonFinite,
                  std::string("Expected finite ") + (bad_anchor ? "anchors" : "bbox_regression") +
                      " for a selected candidate but received NaN at image " +
                      std::to_string(image_index) + ", level P" + std::to_string(l + 3) +
                      ", anchor row " + std::to_string(row) + " (class " +
                      std::to_string(label) + "): the box cannot be decoded");
  }
  *out = b;
  return Status::Ok();
}

Status DecodeCandidates(const PostprocessParams& p, const HeadShapes& s, Layout layout, DType dtype,
                        const ImageDeltas& deltas, const AnchorGrid& grid, const float* anchors,
                        int32_t image_h, int32_t image_w, const Candidate* cands, int32_t n,
                        Box* boxes, int32_t image_index) {
  const int A = s.anchors_per_loc;
  int64_t level_offset[kMaxLevels];
  for (int l = 0; l < s.num_levels; ++l) level_offset[l] = s.LevelAnchorOffset(l);
  // The candidates' deltas sit at scattered rows: fetch a few candidates ahead of the decode.
  constexpr int32_t kAhead = 8;
  auto prefetch = [&](int32_t i) {
    const Candidate& c = cands[i];
    const size_t elem = DTypeSize(dtype);
    if (layout == Layout::kConcatenated) {
      __builtin_prefetch(static_cast<const uint8_t*>(deltas.box[0]) + (level_offset[c.level] + c.row) * 4 * elem);
    } else {
      const int64_t hw = static_cast<int64_t>(s.levels[c.level].height) * s.levels[c.level].width;
      const int64_t a = c.row % A, loc = c.row / A;
      for (int j = 0; j < 4; ++j) __builtin_prefetch(static_cast<const uint8_t*>(deltas.box[c.level]) + ((a * 4 + j) * hw + loc) * elem);
    }
  };
  for (int32_t i = 0; i < std::min(n, kAhead); ++i) prefetch(i);
  for (int32_t i = 0; i < n; ++i) {
    if (i + kAhead < n) prefetch(i + kAhead);
    const Candidate& c = cands[i];
    const int l = c.level;
    const int64_t row = c.row;
    float d[4];
    if (layout == Layout::kConcatenated) {
      const int64_t base = (level_offset[l] + row) * 4;  // [sum(HWA), 4]
      for (int j = 0; j < 4; ++j) d[j] = Load(deltas.box[0], dtype, base + j);
    } else {
      const int64_t hw = static_cast<int64_t>(s.levels[l].height) * s.levels[l].width;
      const int64_t a = row % A, loc = row / A;
      for (int j = 0; j < 4; ++j) d[j] = Load(deltas.box[l], dtype, (a * 4 + j) * hw + loc);  // [A*4, H, W]
    }
    Box anchor;
    if (anchors != nullptr) {
      const float* q = anchors + (level_offset[l] + row) * 4;
      anchor = Box{q[0], q[1], q[2], q[3]};
    } else {
      anchor = GridAnchor(grid, s, l, row);
    }
    Box b;
    RK_RETURN_IF_ERROR(DecodeOne(p, s, grid, l, row, c.label, anchor, d, image_h, image_w, image_index, &b));
    boxes[i] = b;
  }
  return Status::Ok();
}

}  // namespace rk
