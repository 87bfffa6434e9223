// Score selection: one streaming pass over a level's class head, in storage order.
//
// The pass compares raw values against a cut in logit space (SSE2: 16 floats or 32 halves per
// test), which is only a prefilter: a value that passes is converted to its exact f32 score
// (SigmoidF32, as torch computes it) and the decision is `score > f32(t)` (SPEC 1(4)). Survivors
// go into a buffer of twice the top-k; when it fills, nth_element keeps the best k and the cut rises
// to the k-th score. The chunks of one level share that bound (LevelCut), and each level starts
// from a bound estimated on a sample of itself, so that after a few hundred survivors nearly every
// element is rejected by the SIMD compare alone and the pass runs at memory speed. The estimate is
// only a prefilter start: when fewer than k candidates reach it, the level is scanned again from
// the threshold (the caller does that), so the result never depends on it.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "rk/stages.h"

#include "simd.h"

namespace rk {
namespace {

// Key of the largest binary16 value <= cut, so that key(h) > this <=> HalfToFloat(h) > cut, with
// key(h) = h's magnitude, negated when h is negative (order-preserving for non-NaN values).
int16_t HalfKeyBelow(float cut) {
  if (std::isnan(cut)) return INT16_MAX;
  if (cut == -INFINITY) return static_cast<int16_t>(-0x7C00 - 1);  // below -inf: all non-NaN pass
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

#if defined(RK_HAVE_AVX2_PATH)
// Index of the first 64-float block in [i, stop) with a value > cut, or stop. AVX2, chosen at run
// time: twice the width of SSE2 and non-destructive compares.
__attribute__((target("avx2"))) int64_t NextHitAvx2(const float* x, int64_t i, int64_t stop, float cut) {
  const __m256 c = _mm256_set1_ps(cut);
  for (; i < stop; i += 64) {
    const __m256 a = _mm256_or_ps(_mm256_or_ps(_mm256_cmp_ps(_mm256_loadu_ps(x + i), c, _CMP_GT_OQ), _mm256_cmp_ps(_mm256_loadu_ps(x + i + 8), c, _CMP_GT_OQ)),
                                  _mm256_or_ps(_mm256_cmp_ps(_mm256_loadu_ps(x + i + 16), c, _CMP_GT_OQ), _mm256_cmp_ps(_mm256_loadu_ps(x + i + 24), c, _CMP_GT_OQ)));
    const __m256 b = _mm256_or_ps(_mm256_or_ps(_mm256_cmp_ps(_mm256_loadu_ps(x + i + 32), c, _CMP_GT_OQ), _mm256_cmp_ps(_mm256_loadu_ps(x + i + 40), c, _CMP_GT_OQ)),
                                  _mm256_or_ps(_mm256_cmp_ps(_mm256_loadu_ps(x + i + 48), c, _CMP_GT_OQ), _mm256_cmp_ps(_mm256_loadu_ps(x + i + 56), c, _CMP_GT_OQ)));
    if (_mm256_movemask_ps(_mm256_or_ps(a, b))) return i;
  }
  return stop;
}

// The same for binary16 bits against HalfKeyBelow(cut): 64 halves a block, compared as
// order-preserving 16-bit keys (sign ? -magnitude : magnitude).
__attribute__((target("avx2"))) int64_t NextHitF16Avx2(const uint16_t* x, int64_t i, int64_t stop, int16_t key_below) {
  const __m256i kc = _mm256_set1_epi16(key_below);
  const __m256i low = _mm256_set1_epi16(0x7FFF);
  for (; i < stop; i += 64) {
    __m256i any = _mm256_setzero_si256();
    for (int v = 0; v < 4; ++v) {
      const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + i + 16 * v));
      const __m256i sign = _mm256_srai_epi16(h, 15);
      const __m256i key = _mm256_sub_epi16(_mm256_xor_si256(_mm256_and_si256(h, low), sign), sign);
      any = _mm256_or_si256(any, _mm256_cmpgt_epi16(key, kc));
    }
    if (_mm256_movemask_epi8(any)) return i;
  }
  return stop;
}
#endif

// Index of the first 64-half block in [i, stop) with a half whose key is above key_below, or stop
// (AVX2 chosen at run time, else SSE2, else scalar).
int64_t NextHitF16(const uint16_t* x, int64_t i, int64_t stop, int16_t key_below) {
#if defined(RK_HAVE_AVX2_PATH)
  if (Avx2Enabled()) return NextHitF16Avx2(x, i, stop, key_below);
#endif
#if defined(__SSE2__)
  const __m128i kc = _mm_set1_epi16(key_below);
  const __m128i low = _mm_set1_epi16(0x7FFF);
  for (; i < stop; i += 64) {
    __m128i any = _mm_setzero_si128();
    for (int v = 0; v < 8; ++v) {
      const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(x + i + 8 * v));
      const __m128i sign = _mm_srai_epi16(h, 15);  // all ones where negative
      const __m128i key = _mm_sub_epi16(_mm_xor_si128(_mm_and_si128(h, low), sign), sign);  // sign ? -mag : mag
      any = _mm_or_si128(any, _mm_cmpgt_epi16(key, kc));
    }
    if (_mm_movemask_epi8(any)) return i;
  }
  return stop;
#else
  for (; i < stop; i += 64) {
    for (int j = 0; j < 64; ++j) {
      const int16_t k = static_cast<int16_t>(x[i + j] & 0x8000 ? -(x[i + j] & 0x7FFF) : (x[i + j] & 0x7FFF));
      if (k > key_below) return i;
    }
  }
  return stop;
#endif
}

// Index of the first 64-float block in [i, stop) with a value > cut, or stop (SSE2 or scalar).
int64_t NextHit(const float* x, int64_t i, int64_t stop, float cut) {
#if defined(RK_HAVE_AVX2_PATH)
  if (Avx2Enabled()) return NextHitAvx2(x, i, stop, cut);
#endif
#if defined(__SSE2__)
  const __m128 c = _mm_set1_ps(cut);
  for (; i < stop; i += 64) {
    __m128 any = _mm_setzero_ps();
    for (int v = 0; v < 16; v += 4) {
      any = _mm_or_ps(any, _mm_or_ps(_mm_or_ps(_mm_cmpgt_ps(_mm_loadu_ps(x + i + 4 * v), c), _mm_cmpgt_ps(_mm_loadu_ps(x + i + 4 * v + 4), c)),
                                     _mm_or_ps(_mm_cmpgt_ps(_mm_loadu_ps(x + i + 4 * v + 8), c), _mm_cmpgt_ps(_mm_loadu_ps(x + i + 4 * v + 12), c))));
    }
    if (_mm_movemask_ps(any)) return i;
  }
  return stop;
#else
  for (; i < stop; i += 64) {
    for (int j = 0; j < 64; ++j) {
      if (x[i + j] > cut) return i;
    }
  }
  return stop;
#endif
}

inline float RawValue(const void* base, DType dtype, int64_t i) {
  return dtype == DType::kFloat32 ? static_cast<const float*>(base)[i]
                                  : HalfToFloat(static_cast<const uint16_t*>(base)[i]);
}

// The prefilter cut for candidates whose score is >= s (logit or probability space).
float CutFor(const SelectParams& p, float s) {
  if (p.score_input == ScoreInput::kLogits) return LogitLowerBound(s);
  return std::nextafter(s, -INFINITY);
}

struct Selector {
  const SelectParams& p;
  const HeadShapes& s;
  Layout layout;
  int level;
  Candidate* buf;
  LevelCut* shared;
  int32_t topk;
  int32_t capacity;
  int32_t count = 0;
  int64_t reached_start = 0;
  float thresh;         // f32(t)
  float start_score;    // the sample's estimate; counted, not used to reject
  float min_score;      // survivors need score >= min_score once k are known
  float cut;            // prefilter in the input's space (logit or probability)

  Selector(const SelectParams& params, const HeadShapes& shapes, Layout lay, int l, Candidate* out, size_t cap, LevelCut* sh)
      : p(params), s(shapes), layout(lay), level(l), buf(out), shared(sh), topk(params.topk_candidates) {
    capacity = static_cast<int32_t>(cap);
    thresh = static_cast<float>(p.score_thresh);
    start_score = sh->start_score;
    min_score = sh->min_score.load(std::memory_order_relaxed);
    // A threshold at or below zero keeps every finite logit: let -inf pass the prefilter too.
    const bool everything = p.score_input == ScoreInput::kLogits && !(thresh > 0.0f);
    cut = everything ? -INFINITY : CutFor(p, thresh);
    Raise(std::max(start_score, min_score));
  }

  void Raise(float score) {
    if (score == -INFINITY) return;
    const float c = CutFor(p, score);
    if (c > cut) cut = c;
  }

  // Picks up a bound another chunk of this level found.
  void Refresh() {
    const float m = shared->min_score.load(std::memory_order_relaxed);
    if (m > min_score) {
      min_score = m;
      Raise(m);
    }
  }

  // Element `pos` of the level slice (storage order) with raw value v passed the prefilter.
  void Offer(int64_t pos, float v) {
    const float score = p.score_input == ScoreInput::kLogits ? SigmoidF32(v) : v;
    if (!(score > thresh)) return;
    // 32-bit index arithmetic: a level slice has fewer than 2^31 elements (ValidateShapes).
    const uint32_t K = static_cast<uint32_t>(s.num_classes);
    const uint32_t A = static_cast<uint32_t>(s.anchors_per_loc);
    const uint32_t upos = static_cast<uint32_t>(pos);
    Candidate c;
    c.score = score;
    c.level = level;
    uint32_t row;
    if (layout == Layout::kConcatenated) {  // pos = row*K + k
      row = upos / K;
      c.label = static_cast<int32_t>(upos - row * K);
    } else {  // pos = ((a*K + k)*H + y)*W + x
      const uint32_t hw = static_cast<uint32_t>(s.levels[level].height) * static_cast<uint32_t>(s.levels[level].width);
      const uint32_t channel = upos / hw;
      const uint32_t loc = upos - channel * hw;
      const uint32_t a = channel / K;
      c.label = static_cast<int32_t>(channel - a * K);
      row = loc * A + a;
    }
    // Per-class thresholds: the same strict test with the class's own bound (thresh is their minimum).
    if (p.class_thresh != nullptr && !(score > p.class_thresh[c.label])) return;
    if (score >= start_score) ++reached_start;
    if (score < min_score) return;
    c.row = static_cast<int32_t>(row);
    if (p.candidate_order == CandidateOrder::kAnchorMajor) {
      c.order = static_cast<int64_t>(row) * K + static_cast<uint32_t>(c.label);
    } else {
      const uint32_t hw = static_cast<uint32_t>(s.levels[level].height) * static_cast<uint32_t>(s.levels[level].width);
      const uint32_t a = row % A, loc = row / A;
      c.order = (static_cast<int64_t>(a) * K + static_cast<uint32_t>(c.label)) * hw + loc;
    }
    buf[count++] = c;
    // A buffer no larger than top-k holds the whole chunk (the capacity covers it) and never shrinks.
    if (count == capacity && count > topk) Shrink();
  }

  // Keep the best topk; survivors from now on must reach the k-th score, here and in other chunks.
  void Shrink() {
    std::nth_element(buf, buf + topk - 1, buf + count, RanksBefore);
    count = topk;
    const float kth = buf[topk - 1].score;
    if (kth > min_score) {
      min_score = kth;
      Raise(kth);
      float seen = shared->min_score.load(std::memory_order_relaxed);
      while (kth > seen && !shared->min_score.compare_exchange_weak(seen, kth, std::memory_order_relaxed)) {
      }
    }
  }

  int32_t Finish() {
    shared->reached_start.fetch_add(reached_start, std::memory_order_relaxed);
    if (count > topk) {
      std::nth_element(buf, buf + topk - 1, buf + count, RanksBefore);
      count = topk;
    }
    std::sort(buf, buf + count, RanksBefore);
    return count;
  }

  // Blocks of 64 floats tested at once (AVX2 or SSE2, see NextHit); a block with a value over the
  // cut is then read element by element. Between segments of 16K elements the shared bound is read
  // again. Only the scalar test and Offer decide; the block test is a prefilter with the cut as it
  // was when the search started (lower or equal: it only lets more through).
  void ScanF32(const float* x, int64_t begin, int64_t end) {
    int64_t i = begin;
    while (i + 64 <= end) {
      const int64_t stop = std::min(end - 63, i + 16384);
      while (i < stop) {
        i = NextHit(x, i, stop, cut);
        if (i >= stop) break;
        for (int64_t j = i; j < i + 64; ++j) {
          if (x[j] > cut) Offer(j, x[j]);
        }
        i += 64;
      }
      i = std::max(i, stop);
      Refresh();
    }
    for (; i < end; ++i) {
      if (x[i] > cut) Offer(i, x[i]);
    }
  }

  // Blocks of 64 halves tested at once as 16-bit keys (NextHitF16), as ScanF32 does for floats;
  // the key is recomputed when the cut rises.
  void ScanF16(const uint16_t* x, int64_t begin, int64_t end) {
    int64_t i = begin;
    float key_cut = NAN;  // the cut `key` was computed for
    int16_t key = 0;
    while (i + 64 <= end) {
      const int64_t stop = std::min(end - 63, i + 16384);
      while (i < stop) {
        if (!(cut == key_cut)) {
          key = HalfKeyBelow(cut);
          key_cut = cut;
        }
        i = NextHitF16(x, i, stop, key);
        if (i >= stop) break;
        for (int64_t j = i; j < i + 64; ++j) {
          const float v = HalfToFloat(x[j]);
          if (v > cut) Offer(j, v);
        }
        i += 64;
      }
      i = std::max(i, stop);
      Refresh();
    }
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

float EstimateStartScore(const SelectParams& p, DType dtype, const void* slice, int64_t elements) {
  // 4 contiguous runs of 4096 elements, spread over the level: 64 KiB of f32 in runs long enough
  // for the hardware prefetcher.
  constexpr int kBlocks = 4;
  constexpr int64_t kBlock = 4096;
  const int64_t sampled = kBlocks * kBlock;
  const int64_t k = p.topk_candidates;
  if (elements < 8 * sampled || getenv("RK_NO_ESTIMATE")) return -INFINITY;  // small levels: nothing to gain
  // About 2k candidates of the whole level are expected at or above the m-th best sample.
  const int64_t m = std::max<int64_t>(8, static_cast<int64_t>(std::ceil(2.0 * static_cast<double>(k) * sampled / elements)));
  // Only sampled values above the threshold's prefilter cut are kept: a start must pass the
  // threshold, and when the m-th largest sample does, all m largest are above the cut, so the
  // selection among the kept ones gives the same value (and fewer than m kept means no start).
  const float thresh = static_cast<float>(p.score_thresh);
  const bool everything = p.score_input == ScoreInput::kLogits && !(thresh > 0.0f);
  const float cut = everything ? -INFINITY : CutFor(p, thresh);
  thread_local std::vector<float> values;
  values.clear();
  values.reserve(static_cast<size_t>(sampled));
  const int64_t stride = elements / kBlocks;
  for (int b = 0; b < kBlocks; ++b) {
    const int64_t start = b * stride + (stride - kBlock) / 2;
    for (int64_t i = start; i < start + kBlock; ++i) {
      const float v = RawValue(slice, dtype, i);
      if (v > cut || (everything && v == v)) values.push_back(v);  // NaN never counts
    }
  }
  if (static_cast<int64_t>(values.size()) < m) return -INFINITY;
  std::nth_element(values.begin(), values.begin() + (m - 1), values.end(), [](float a, float b) { return a > b; });
  const float v = values[static_cast<size_t>(m - 1)];
  const float score = p.score_input == ScoreInput::kLogits ? SigmoidF32(v) : v;
  return score > static_cast<float>(p.score_thresh) ? score : -INFINITY;
}

int32_t SelectChunk(const SelectParams& p, const HeadShapes& s, Layout layout, DType dtype,
                    int level, const void* slice, int64_t begin, int64_t end, Candidate* out,
                    size_t capacity, LevelCut* cut) {
  if (p.topk_candidates <= 0 || end <= begin) return 0;
  if (capacity < SelectChunkCapacity(p.topk_candidates, end - begin)) return -1;
  Selector sel(p, s, layout, level, out, SelectChunkCapacity(p.topk_candidates, end - begin), cut);
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
