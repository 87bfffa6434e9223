// Score selection: one streaming pass over a level's class head, in storage order.
//
// The pass compares raw values against a cut in logit space (SSE2: 16 floats or 32 halves per
// test), which is only a prefilter: a value that passes is converted to its exact f32 score
// (SigmoidF32, as torch computes it) and the decision is `score > f32(t)` (SPEC 1(4)). Survivors
// go into a buffer of twice the top-k; when it fills, nth_element keeps the best k and the cut rises
// to the k-th score, so after the first few thousand survivors nearly every element is rejected by
// the SIMD compare alone and the pass runs at memory speed.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "rk/stages.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace rk {
namespace {

// Order-preserving int16 key of a binary16 value (for non-NaN values: a < b <=> key(a) < key(b)).
inline int16_t HalfKey(uint16_t h) {
  const int16_t magnitude = static_cast<int16_t>(h & 0x7FFF);
  return (h & 0x8000) ? static_cast<int16_t>(-magnitude) : magnitude;
}

// Key of the largest binary16 value <= cut, so that key(h) > this <=> HalfToFloat(h) > cut.
int16_t HalfKeyBelow(float cut) {
  if (std::isnan(cut)) return INT16_MAX;
  if (cut == -INFINITY) return static_cast<int16_t>(-0x7C00 - 1);  // below -inf: all non-NaN pass
  // Binary search over the ordered keys [-0x7C00, 0x7C00] (-inf .. +inf).
  int lo = -0x7C00, hi = 0x7C00;
  auto value = [](int key) {
    const uint16_t h = key < 0 ? static_cast<uint16_t>(0x8000 | (-key)) : static_cast<uint16_t>(key);
    return HalfToFloat(h);
  };
  if (value(lo) > cut) return static_cast<int16_t>(lo - 1);
  while (lo < hi) {  // largest key with value(key) <= cut
    const int mid = lo + (hi - lo + 1) / 2;
    if (value(mid) <= cut) lo = mid; else hi = mid - 1;
  }
  return static_cast<int16_t>(lo);
}

struct Selector {
  const SelectParams& p;
  const HeadShapes& s;
  Layout layout;
  int level;
  Candidate* buf;
  int32_t topk;
  int32_t capacity;
  int32_t count = 0;
  float thresh;         // f32(t)
  float min_score;      // survivors need score >= min_score once the buffer has been cut
  float cut;            // prefilter in the input's space (logit or probability)

  Selector(const SelectParams& params, const HeadShapes& shapes, Layout lay, int l, Candidate* out,
           size_t cap)
      : p(params), s(shapes), layout(lay), level(l), buf(out), topk(params.topk_candidates) {
    capacity = static_cast<int32_t>(cap);
    thresh = static_cast<float>(p.score_thresh);
    min_score = -INFINITY;
    cut = p.score_input == ScoreInput::kLogits ? LogitLowerBound(thresh) : thresh;
    // A threshold at or below zero keeps every finite logit: let -inf pass the prefilter too.
    if (p.score_input == ScoreInput::kLogits && !(thresh > 0.0f)) cut = -INFINITY;
    if (p.score_input == ScoreInput::kProbabilities) cut = std::nextafter(thresh, -INFINITY);
  }

  // Element `pos` of the level slice (storage order) with raw value v passed the prefilter.
  void Offer(int64_t pos, float v) {
    const float score = p.score_input == ScoreInput::kLogits ? SigmoidF32(v) : v;
    if (!(score > thresh) || score < min_score) return;
    const int K = s.num_classes;
    const int A = s.anchors_per_loc;
    Candidate c;
    c.score = score;
    c.level = level;
    int64_t row;
    if (layout == Layout::kConcatenated) {  // pos = row*K + k
      row = pos / K;
      c.label = static_cast<int32_t>(pos - row * K);
    } else {  // pos = ((a*K + k)*H + y)*W + x
      const int64_t hw = static_cast<int64_t>(s.levels[level].height) * s.levels[level].width;
      const int64_t channel = pos / hw;
      const int64_t loc = pos - channel * hw;
      const int64_t a = channel / K;
      c.label = static_cast<int32_t>(channel - a * K);
      row = loc * A + a;
    }
    c.row = static_cast<int32_t>(row);
    if (p.candidate_order == CandidateOrder::kAnchorMajor) {
      c.order = row * K + c.label;
    } else {
      const int64_t hw = static_cast<int64_t>(s.levels[level].height) * s.levels[level].width;
      const int64_t a = row % A, loc = row / A;
      c.order = (a * K + c.label) * hw + loc;
    }
    buf[count++] = c;
    // A buffer no larger than top-k holds the whole chunk (the capacity covers it) and never shrinks.
    if (count == capacity && count > topk) Shrink();
  }

  // Keep the best topk; survivors from now on must reach the k-th score.
  void Shrink() {
    std::nth_element(buf, buf + topk - 1, buf + count, RanksBefore);
    count = topk;
    const float kth = buf[topk - 1].score;
    if (kth > min_score) {
      min_score = kth;
      const float c = p.score_input == ScoreInput::kLogits ? LogitLowerBound(kth)
                                                           : std::nextafter(kth, -INFINITY);
      if (c > cut) cut = c;
    }
  }

  int32_t Finish() {
    if (count > topk) {
      std::nth_element(buf, buf + topk - 1, buf + count, RanksBefore);
      count = topk;
    }
    std::sort(buf, buf + count, RanksBefore);
    return count;
  }

  void ScanF32(const float* x, int64_t begin, int64_t end) {
    int64_t i = begin;
#if defined(__SSE2__)
    while (i + 16 <= end) {
      const __m128 c = _mm_set1_ps(cut);
      const __m128 m0 = _mm_cmpgt_ps(_mm_loadu_ps(x + i), c);
      const __m128 m1 = _mm_cmpgt_ps(_mm_loadu_ps(x + i + 4), c);
      const __m128 m2 = _mm_cmpgt_ps(_mm_loadu_ps(x + i + 8), c);
      const __m128 m3 = _mm_cmpgt_ps(_mm_loadu_ps(x + i + 12), c);
      const int any = _mm_movemask_ps(_mm_or_ps(_mm_or_ps(m0, m1), _mm_or_ps(m2, m3)));
      if (any) {
        for (int64_t j = i; j < i + 16; ++j) {
          if (x[j] > cut) Offer(j, x[j]);
        }
      }
      i += 16;
    }
#endif
    for (; i < end; ++i) {
      if (x[i] > cut) Offer(i, x[i]);
    }
  }

  void ScanF16(const uint16_t* x, int64_t begin, int64_t end) {
    int64_t i = begin;
    int16_t key_cut = HalfKeyBelow(cut);
    float key_cut_for = cut;
#if defined(__SSE2__)
    while (i + 32 <= end) {
      if (key_cut_for != cut) {
        key_cut = HalfKeyBelow(cut);
        key_cut_for = cut;
      }
      const __m128i kc = _mm_set1_epi16(key_cut);
      const __m128i low = _mm_set1_epi16(0x7FFF);
      __m128i any = _mm_setzero_si128();
      for (int v = 0; v < 4; ++v) {
        const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(x + i + 8 * v));
        const __m128i sign = _mm_srai_epi16(h, 15);  // all ones where negative
        const __m128i mag = _mm_and_si128(h, low);
        const __m128i key = _mm_sub_epi16(_mm_xor_si128(mag, sign), sign);  // sign ? -mag : mag
        any = _mm_or_si128(any, _mm_cmpgt_epi16(key, kc));
      }
      if (_mm_movemask_epi8(any)) {
        for (int64_t j = i; j < i + 32; ++j) {
          const float v = HalfToFloat(x[j]);
          if (v > cut) Offer(j, v);
        }
      }
      i += 32;
    }
#endif
    (void)key_cut;
    for (; i < end; ++i) {
      const float v = HalfToFloat(x[i]);
      if (v > cut) Offer(i, v);
    }
  }
};

}  // namespace

size_t SelectChunkCapacity(int32_t topk, int64_t chunk_elements) {
  const int64_t wanted = std::max<int64_t>(2 * static_cast<int64_t>(topk), 256);
  return static_cast<size_t>(std::max<int64_t>(1, std::min(wanted, chunk_elements)));
}

int32_t SelectChunk(const SelectParams& p, const HeadShapes& s, Layout layout, DType dtype,
                    int level, const void* slice, int64_t begin, int64_t end, Candidate* out,
                    size_t capacity) {
  if (p.topk_candidates <= 0 || end <= begin) return 0;
  if (capacity < SelectChunkCapacity(p.topk_candidates, end - begin)) return 0;
  Selector sel(p, s, layout, level, out, SelectChunkCapacity(p.topk_candidates, end - begin));
  if (dtype == DType::kFloat32) {
    sel.ScanF32(static_cast<const float*>(slice), begin, end);
  } else {
    sel.ScanF16(static_cast<const uint16_t*>(slice), begin, end);
  }
  return sel.Finish();
}

int32_t MergeTopK(Candidate* const* lists, const int32_t* counts, int num_lists, int32_t topk,
                  Candidate* out) {
  // k-way merge of sorted lists, stopping at topk.
  std::vector<int32_t> pos(static_cast<size_t>(num_lists), 0);
  int32_t n = 0;
  while (n < topk) {
    int best = -1;
    for (int i = 0; i < num_lists; ++i) {
      if (pos[i] < counts[i] && (best < 0 || RanksBefore(lists[i][pos[i]], lists[best][pos[best]]))) {
        best = i;
      }
    }
    if (best < 0) break;
    out[n++] = lists[best][pos[best]++];
  }
  return n;
}

}  // namespace rk
