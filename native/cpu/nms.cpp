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
#include <vector>

#include "rk/stages.h"

#include "simd.h"

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

// Whether box i (area ai) suppresses box j (area aj). Pairs whose intersection is empty have IoU
// exactly 0 (0 / union, or NaN for a zero union), which never suppresses for a threshold >= 0: they
// are decided before the division. The IoU of intersecting pairs is always the scalar Iou(), so the
// result does not depend on the path that asks.
inline bool PairSuppresses(const Box& bi, float ai, const Box& bj, float aj, float off, double thresh, bool in_double) {
  if (!(MinLikeStd(bi.x2, bj.x2) - MaxLikeStd(bi.x1, bj.x1) + off > 0.0f) ||
      !(MinLikeStd(bi.y2, bj.y2) - MaxLikeStd(bi.y1, bj.y1) + off > 0.0f)) {
    return false;
  }
  return Suppresses(Iou(bi, ai, bj, aj, off), thresh, in_double);
}

// Greedy NMS over `idx[0..m)` (already in score order), IoU on `boxes`.
void GreedyScalar(const int32_t* idx, int32_t m, const Box* boxes, const float* area, float off,
                  double thresh, bool in_double, uint8_t* suppressed) {
  for (int32_t a = 0; a < m; ++a) {
    const int32_t i = idx[a];
    if (suppressed[i]) continue;
    const Box bi = boxes[i];
    const float ai = area[i];
    for (int32_t b = a + 1; b < m; ++b) {
      const int32_t j = idx[b];
      if (suppressed[j]) continue;
      if (PairSuppresses(bi, ai, boxes[j], area[j], off, thresh, in_double)) suppressed[j] = 1;
    }
  }
}

#if defined(RK_HAVE_AVX2_PATH)
// The same, 8 later boxes at a time (structure of arrays of the group). Each lane's test is decided
// in f32 by the bounds of the IoU cut (QuickRatio, math.h: a lane is decided only when its union is
// a finite normal float above the cut's floor, so no coordinate is NaN and the intersection and
// union are the scalar path's values); the lanes it leaves open take the scalar test above.
__attribute__((target("avx2"))) void GreedyAvx2(const int32_t* idx, int32_t m, const Box* boxes, const float* area, float off,
                                                double thresh, bool in_double, const IouCut& cut, uint8_t* suppressed) {
  thread_local std::vector<float> soa;
  const size_t stride = static_cast<size_t>(m) + 8;
  if (soa.size() < stride * 5) soa.resize(stride * 5);
  float* x1 = soa.data();
  float* y1 = x1 + stride;
  float* x2 = y1 + stride;
  float* y2 = x2 + stride;
  float* ar = y2 + stride;
  for (int32_t b = 0; b < m; ++b) {
    const Box& bx = boxes[idx[b]];
    x1[b] = bx.x1;
    y1[b] = bx.y1;
    x2[b] = bx.x2;
    y2[b] = bx.y2;
    ar[b] = area[idx[b]];
  }
  const __m256 zero = _mm256_setzero_ps();
  const __m256 voff = _mm256_set1_ps(off);
  const __m256 up = _mm256_set1_ps(cut.up), down = _mm256_set1_ps(cut.down);
  const __m256 min_uni = _mm256_set1_ps(cut.min_uni), inf = _mm256_set1_ps(INFINITY);
  for (int32_t a = 0; a < m; ++a) {
    const int32_t i = idx[a];
    if (suppressed[i]) continue;
    const Box bi = boxes[i];
    const float ai = area[i];
    const __m256 ix1 = _mm256_set1_ps(bi.x1), iy1 = _mm256_set1_ps(bi.y1), ix2 = _mm256_set1_ps(bi.x2), iy2 = _mm256_set1_ps(bi.y2);
    const __m256 vai = _mm256_set1_ps(ai);
    for (int32_t b = a + 1; b < m; b += 8) {
      const __m256 w = _mm256_max_ps(_mm256_add_ps(_mm256_sub_ps(_mm256_min_ps(ix2, _mm256_loadu_ps(x2 + b)), _mm256_max_ps(ix1, _mm256_loadu_ps(x1 + b))), voff), zero);
      const __m256 h = _mm256_max_ps(_mm256_add_ps(_mm256_sub_ps(_mm256_min_ps(iy2, _mm256_loadu_ps(y2 + b)), _mm256_max_ps(iy1, _mm256_loadu_ps(y1 + b))), voff), zero);
      const __m256 inter = _mm256_mul_ps(w, h);
      const __m256 uni = _mm256_sub_ps(_mm256_add_ps(vai, _mm256_loadu_ps(ar + b)), inter);
      const __m256 sure = _mm256_and_ps(_mm256_cmp_ps(uni, min_uni, _CMP_GE_OQ), _mm256_cmp_ps(uni, inf, _CMP_LT_OQ));
      const __m256 pass = _mm256_cmp_ps(inter, _mm256_mul_ps(up, uni), _CMP_GT_OQ);
      const __m256 fail = _mm256_cmp_ps(inter, _mm256_mul_ps(down, uni), _CMP_LT_OQ);
      const unsigned valid = b + 8 > m ? (1u << (m - b)) - 1u : 0xFFu;
      unsigned hits = static_cast<unsigned>(_mm256_movemask_ps(_mm256_and_ps(sure, pass))) & valid;
      unsigned open = ~static_cast<unsigned>(_mm256_movemask_ps(_mm256_and_ps(sure, _mm256_or_ps(pass, fail)))) & valid;
      while (hits) {
        const int32_t lane = __builtin_ctz(hits);
        hits &= hits - 1;
        suppressed[idx[b + lane]] = 1;
      }
      while (open) {
        const int32_t lane = __builtin_ctz(open);
        open &= open - 1;
        const int32_t j = idx[b + lane];
        if (suppressed[j]) continue;
        if (PairSuppresses(bi, ai, boxes[j], area[j], off, thresh, in_double)) suppressed[j] = 1;
      }
    }
  }
}
#endif

void Greedy(const int32_t* idx, int32_t m, const Box* boxes, const float* area, float off,
            double thresh, bool in_double, const IouCut& cut, uint8_t* suppressed) {
#if defined(RK_HAVE_AVX2_PATH)
  if (Avx2Enabled() && m > 8) return GreedyAvx2(idx, m, boxes, area, off, thresh, in_double, cut, suppressed);
#else
  (void)cut;
#endif
  GreedyScalar(idx, m, boxes, area, off, thresh, in_double, suppressed);
}

}  // namespace

size_t NmsWorkspaceSize(int32_t n) {
  const size_t ni = static_cast<size_t>(n < 1 ? 1 : n);
  return 3 * Align(ni * 4) + Align(ni) + Align(ni * sizeof(Box)) + Align(ni * 4);
}

// A key whose ascending order is score descending, then index ascending (NaN scores last).
inline uint64_t RankKey(float score, int32_t index) {
  uint32_t b = FloatToBits(score);
  b = (b & 0x80000000u) ? ~b : (b | 0x80000000u);  // ascending float order as unsigned
  if (score != score) b = 0;                       // NaN: after every number
  return (static_cast<uint64_t>(~b) << 32) | static_cast<uint32_t>(index);
}

int32_t Nms(const NmsParams& p, int32_t pixel_offset, const Box* boxes, const float* scores,
            const int32_t* labels, int32_t n, int32_t* keep, void* workspace) {
  if (n <= 0) return 0;
  NmsScratch w = Carve(workspace, n);
  {
    // Score order by one integer sort of packed keys.
    thread_local std::vector<uint64_t> keys;
    keys.resize(static_cast<size_t>(n));
    for (int32_t i = 0; i < n; ++i) keys[static_cast<size_t>(i)] = RankKey(scores[i], i);
    // The keys are distinct (the index is in them), so any correct sort gives the same order. Lists
    // that arrive as a few runs already in this order (the levels of an image, each in ranking
    // order) are merged run by run; others are sorted.
    int32_t runs = 1;
    for (int32_t i = 1; i < n && runs <= 8; ++i) runs += keys[static_cast<size_t>(i)] < keys[static_cast<size_t>(i) - 1];
    if (runs <= 8) {
      int32_t end = 1;
      while (end < n && keys[static_cast<size_t>(end)] > keys[static_cast<size_t>(end) - 1]) ++end;
      while (end < n) {
        int32_t next = end + 1;
        while (next < n && keys[static_cast<size_t>(next)] > keys[static_cast<size_t>(next) - 1]) ++next;
        std::inplace_merge(keys.begin(), keys.begin() + end, keys.begin() + next);
        end = next;
      }
    } else {
      std::sort(keys.begin(), keys.begin() + n);
    }
    for (int32_t r = 0; r < n; ++r) w.order[r] = static_cast<int32_t>(keys[static_cast<size_t>(r)] & 0xFFFFFFFFu);
  }
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
  const IouCut cut = MakeIouCut(p.iou_thresh, p.compare_in_double);

  if (per_class) {
    // Group by label, score order kept within a label: a counting sort of `order` by label.
    int32_t lo = labels[0], hi = labels[0];
    for (int32_t i = 1; i < n; ++i) {
      lo = std::min(lo, labels[i]);
      hi = std::max(hi, labels[i]);
    }
    std::vector<int32_t> start(static_cast<size_t>(hi - lo) + 2, 0);
    for (int32_t i = 0; i < n; ++i) ++start[static_cast<size_t>(labels[i] - lo) + 1];
    for (size_t c = 1; c < start.size(); ++c) start[c] += start[c - 1];
    for (int32_t r = 0; r < n; ++r) {
      const int32_t i = w.order[r];
      w.byclass[start[static_cast<size_t>(labels[i] - lo)]++] = i;
    }
    for (int32_t start = 0; start < n;) {
      int32_t end = start + 1;
      while (end < n && labels[w.byclass[end]] == labels[w.byclass[start]]) ++end;
      Greedy(w.byclass + start, end - start, nms_boxes, w.area, off, p.iou_thresh,
             p.compare_in_double, cut, w.suppressed);
      start = end;
    }
  } else {
    Greedy(w.order, n, nms_boxes, w.area, off, p.iou_thresh, p.compare_in_double, cut, w.suppressed);
  }

  int32_t kept = 0;
  for (int32_t r = 0; r < n; ++r) {
    if (!w.suppressed[w.order[r]]) keep[kept++] = w.order[r];
  }
  return kept;
}

}  // namespace rk
