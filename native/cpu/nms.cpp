// Class-aware NMS of one image (SPEC 1(5), 3(5)).
//
// torchvision's batched_nms takes one of two paths by size: NMS per class on the original boxes,
// or one NMS over boxes shifted by label*(max + 1) in f32 (the "coordinate trick"). The shift
// rounds, so the preset emulates the path the framework would take. When every coordinate is >= 0
// the shifted classes cannot overlap, and per-class greedy NMS on the shifted boxes is the same
// computation as one NMS over all of them; with negative coordinates (Detectron2 boxes are not
// clipped before NMS) classes can interact through the shift, and the single NMS is run as is.
#include <algorithm>
#include <cstring>

#include "rk/stages.h"

namespace rk {
namespace {

struct NmsScratch {
  int32_t* order;     // indices by score desc, ties by input position
  int32_t* byclass;   // order regrouped by label, score order kept within a label
  int32_t* rank;      // position of each index in `order`
  uint8_t* suppressed;
  Box* shifted;
  float* area;
};

size_t Align(size_t bytes) { return (bytes + 63) & ~static_cast<size_t>(63); }

NmsScratch Carve(void* workspace, int32_t n) {
  auto* p = static_cast<uint8_t*>(workspace);
  NmsScratch s;
  const size_t ni = static_cast<size_t>(n);
  s.order = reinterpret_cast<int32_t*>(p); p += Align(ni * 4);
  s.byclass = reinterpret_cast<int32_t*>(p); p += Align(ni * 4);
  s.rank = reinterpret_cast<int32_t*>(p); p += Align(ni * 4);
  s.suppressed = p; p += Align(ni);
  s.shifted = reinterpret_cast<Box*>(p); p += Align(ni * sizeof(Box));
  s.area = reinterpret_cast<float*>(p);
  return s;
}

// Greedy NMS over `idx[0..m)` (already in score order), IoU on `boxes`.
void Greedy(const int32_t* idx, int32_t m, const Box* boxes, const float* area, float off,
            double thresh, bool in_double, uint8_t* suppressed) {
  for (int32_t a = 0; a < m; ++a) {
    const int32_t i = idx[a];
    if (suppressed[i]) continue;
    const Box bi = boxes[i];
    const float ai = area[i];
    for (int32_t b = a + 1; b < m; ++b) {
      const int32_t j = idx[b];
      if (suppressed[j]) continue;
      if (Suppresses(Iou(bi, ai, boxes[j], area[j], off), thresh, in_double)) suppressed[j] = 1;
    }
  }
}

}  // namespace

size_t NmsWorkspaceSize(int32_t n) {
  const size_t ni = static_cast<size_t>(n < 1 ? 1 : n);
  return 3 * Align(ni * 4) + Align(ni) + Align(ni * sizeof(Box)) + Align(ni * 4);
}

int32_t Nms(const NmsParams& p, int32_t pixel_offset, const Box* boxes, const float* scores,
            const int32_t* labels, int32_t n, int32_t* keep, void* workspace) {
  if (n <= 0) return 0;
  NmsScratch w = Carve(workspace, n);
  for (int32_t i = 0; i < n; ++i) w.order[i] = i;
  std::sort(w.order, w.order + n, [&](int32_t a, int32_t b) {
    if (scores[a] != scores[b]) return scores[a] > scores[b];
    return a < b;
  });
  for (int32_t r = 0; r < n; ++r) w.rank[w.order[r]] = r;
  std::memset(w.suppressed, 0, static_cast<size_t>(n));
  const float off = static_cast<float>(pixel_offset);

  const Box* nms_boxes = boxes;
  bool per_class = true;
  if (p.algorithm == NmsAlgorithm::kTorchvisionBatched) {
    const int64_t numel = static_cast<int64_t>(n) * 4;
    const int64_t vanilla_above = p.torchvision_device == NmsDevice::kCpu ? 4000 : 100000;
    if (numel <= vanilla_above) {
      // Coordinate trick: offsets = f32(label) * (max + 1), added to each coordinate in f32.
      float max_coord = -INFINITY, min_coord = INFINITY;
      for (int32_t i = 0; i < n; ++i) {
        const float c[4] = {boxes[i].x1, boxes[i].y1, boxes[i].x2, boxes[i].y2};
        for (float v : c) {
          max_coord = MaxLikeStd(max_coord, v);
          min_coord = MinLikeStd(min_coord, v);
        }
      }
      const float span = max_coord + 1.0f;
      for (int32_t i = 0; i < n; ++i) {
        const float shift = static_cast<float>(labels[i]) * span;
        w.shifted[i] = Box{boxes[i].x1 + shift, boxes[i].y1 + shift, boxes[i].x2 + shift,
                           boxes[i].y2 + shift};
      }
      nms_boxes = w.shifted;
      per_class = min_coord >= 0.0f;
    }
  }
  for (int32_t i = 0; i < n; ++i) w.area[i] = BoxArea(nms_boxes[i], off);

  if (per_class) {
    std::memcpy(w.byclass, w.order, static_cast<size_t>(n) * 4);
    std::sort(w.byclass, w.byclass + n, [&](int32_t a, int32_t b) {
      if (labels[a] != labels[b]) return labels[a] < labels[b];
      return w.rank[a] < w.rank[b];
    });
    for (int32_t start = 0; start < n;) {
      int32_t end = start + 1;
      while (end < n && labels[w.byclass[end]] == labels[w.byclass[start]]) ++end;
      Greedy(w.byclass + start, end - start, nms_boxes, w.area, off, p.iou_thresh,
             p.compare_in_double, w.suppressed);
      start = end;
    }
  } else {
    Greedy(w.order, n, nms_boxes, w.area, off, p.iou_thresh, p.compare_in_double, w.suppressed);
  }

  int32_t kept = 0;
  for (int32_t r = 0; r < n; ++r) {
    if (!w.suppressed[w.order[r]]) keep[kept++] = w.order[r];
  }
  return kept;
}

}  // namespace rk
