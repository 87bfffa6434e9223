// Selection on the GPU: threshold + per-level top-k in one pass over the class head.
//
// 1. Estimate: the m-th largest raw value of a sample of the level (32 runs of 1024 elements; the
//    whole level when small) gives a start score about 3k candidates of the level reach
//    (k = topk_candidates). One block per (image, level) loads the sample, keeps the values above
//    the threshold's cut in shared memory and radix-selects among them.
// 2. Select (one pass, 16-byte loads, a tile per block): an element whose raw value passes the
//    prefilter cut gets its exact score (SigmoidF32); score > f32(t) and score >= start -> appended
//    with its rank key, to the block's shared buffer (warp-aggregated shared atomics), then to the
//    level's buffer with one global atomic per tile. The decision is always on the exact score.
// 3. Fallback (cooperative, chained, exits at once when no level needs it): a level whose estimate
//    was too high (fewer than k reached it) or whose buffer overflowed is selected exactly: radix select of
//    the k-th score over the whole level, then of the tie-breaking index among equal scores, then a
//    collection pass; so the result never depends on the estimate.
#include <cooperative_groups.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>

#include "common.cuh"
#include "select.cuh"

namespace cg = cooperative_groups;

namespace rk {
namespace cuda {
namespace {

constexpr int kSampleRuns = 32;
constexpr int kSampleRun = 1024;
constexpr int64_t kSampleElements = int64_t{kSampleRuns} * kSampleRun;
constexpr int kBins = 2048;  // 11-bit digits: 11 + 11 + 10 bits

__device__ __forceinline__ float ScoreOf(float v, ScoreInput input) {
  return input == ScoreInput::kLogits ? SigmoidF32(v) : v;
}

__device__ __forceinline__ float CutFor(float s, ScoreInput input) {
  if (input == ScoreInput::kLogits) return LogitLowerBound(s);
  return nextafterf(s, -INFINITY);
}

// The two element types of the heads: a 16-byte vector holds kPer of them.
template <typename E>
struct Elems;
// Cut: the prefilter cut in the vectors' own terms; AnyAbove(q, c): whether any element of q, widened,
// is above the f32 cut that c was made from (c = MakeCut(cut)).
template <>
struct Elems<float> {
  static constexpr int kPer = 4;
  using Cut = float;
  __device__ __forceinline__ static float At(const uint4& q, int j) {
    return __uint_as_float(j == 0 ? q.x : j == 1 ? q.y : j == 2 ? q.z : q.w);
  }
  __device__ __forceinline__ static float Load(const float* x, int64_t i) { return x[i]; }
  __device__ __forceinline__ static Cut MakeCut(float cut) { return cut; }
  __device__ __forceinline__ static bool AnyAbove(const uint4& q, Cut c) {
    return (__uint_as_float(q.x) > c) | (__uint_as_float(q.y) > c) | (__uint_as_float(q.z) > c) | (__uint_as_float(q.w) > c);
  }
  // Bit j: element j is above the cut.
  __device__ __forceinline__ static uint32_t AboveBits(const uint4& q, Cut c) {
    return static_cast<uint32_t>(__uint_as_float(q.x) > c) | (static_cast<uint32_t>(__uint_as_float(q.y) > c) << 1) |
           (static_cast<uint32_t>(__uint_as_float(q.z) > c) << 2) | (static_cast<uint32_t>(__uint_as_float(q.w) > c) << 3);
  }
};
template <>
struct Elems<uint16_t> {
  static constexpr int kPer = 8;
  using Cut = __half2;
  __device__ __forceinline__ static float At(const uint4& q, int j) {
    const uint32_t w = (j >> 1) == 0 ? q.x : (j >> 1) == 1 ? q.y : (j >> 1) == 2 ? q.z : q.w;
    return HalfToFloat(static_cast<uint16_t>((j & 1) ? (w >> 16) : (w & 0xFFFFu)));
  }
  __device__ __forceinline__ static float Load(const uint16_t* x, int64_t i) { return HalfToFloat(x[i]); }
  // The f32 cut rounded down to a half, in both lanes. Widening is exact, so for every half h that
  // is not NaN, widen(h) > cut exactly when h > rd(cut): if cut is a half, rd(cut) == cut; if not,
  // the halves above rd(cut) are those at or above the next half, which is above cut. Cuts beyond the
  // largest finite half round to it (only +inf is above either), -inf stays -inf, and NaN compares
  // false both ways. So the four packed compares decide as eight widened ones would.
  __device__ __forceinline__ static Cut MakeCut(float cut) { return __half2half2(__float2half_rd(cut)); }
  __device__ __forceinline__ static bool AnyAbove(const uint4& q, Cut c) {
    const uint32_t m = __hgt2_mask(Pair(q.x), c) | __hgt2_mask(Pair(q.y), c) | __hgt2_mask(Pair(q.z), c) |
                       __hgt2_mask(Pair(q.w), c);
    return m != 0;
  }
  // Bit j: element j is above the cut (the same packed compares; each gives 0xFFFF per half above).
  __device__ __forceinline__ static uint32_t AboveBits(const uint4& q, Cut c) {
    const uint32_t w[4] = {__hgt2_mask(Pair(q.x), c), __hgt2_mask(Pair(q.y), c), __hgt2_mask(Pair(q.z), c), __hgt2_mask(Pair(q.w), c)};
    uint32_t bits = 0;
#pragma unroll
    for (int i = 0; i < 4; ++i) bits |= ((w[i] & 1u) | ((w[i] >> 15) & 2u)) << (2 * i);
    return bits;
  }
  __device__ __forceinline__ static __half2 Pair(uint32_t w) {
    __half2 h;
    static_assert(sizeof h == sizeof w, "a pair of halves is 32 bits");
    memcpy(&h, &w, sizeof w);
    return h;
  }
};

__device__ __forceinline__ float BaseCut(const SelectParams& p) {
  const float thresh = static_cast<float>(p.score_thresh);
  const bool everything = p.score_input == ScoreInput::kLogits && !(thresh > 0.0f);
  return everything ? -INFINITY : CutFor(thresh, p.score_input);
}

constexpr int kEstimateThreads = 1024;
constexpr int kSamplePerThread = static_cast<int>(kSampleElements / kEstimateThreads);
static_assert(kSamplePerThread * kEstimateThreads == kSampleElements && kEstimateThreads == kSampleRun,
              "thread t loads element t of every run of the sample");

// Radix select in a block of kEstimateThreads: the m-th largest of the staged keys (warp w's are the
// first counts[w] of its segment, staged + w * kWarpSegment). Each round's digit is found by a
// block-wide scan of the histogram taken from the top (two bins a thread), not by one thread walking
// it. Only the top 22 bits are resolved: the key returned is the lower edge of the m-th largest's
// 22-bit bin (at least m keys are at or above it), which is all a starting bound needs; 0 when there
// are fewer than m keys.
// A warp samples kWarp * kSamplePerThread = 1024 values and stages at most half of them: 64 KB for the
// block, which every sm_80-family device grants (the sm_86 and sm_89 parts give a block at most 99 KB;
// staging all 32768 keys took 128 KB).
constexpr int kWarpSegment = kWarp * kSamplePerThread / 2;

__device__ uint32_t SelectLargestStaged(const uint32_t* staged, const uint32_t* counts, uint32_t m, uint32_t* hist, uint32_t* shared) {
  __shared__ uint32_t warp_sum[kEstimateThreads / kWarp];
  const int lane = threadIdx.x & (kWarp - 1);
  const uint32_t count = counts[threadIdx.x / kWarp];
  const uint32_t* segment = staged + (threadIdx.x / kWarp) * kWarpSegment;
  uint32_t prefix = 0, prefix_mask = 0;
  const int shifts[2] = {21, 10};
  const int widths[2] = {11, 11};
  for (int r = 0; r < 2; ++r) {
    for (int b = threadIdx.x; b < kBins; b += blockDim.x) hist[b] = 0;
    if (threadIdx.x == 0) shared[0] = 0;
    __syncthreads();
    const uint32_t digit_mask = ((1u << widths[r]) - 1u);
    for (uint32_t i0 = 0; i0 < count; i0 += kWarp) {  // warp-uniform trip count: whole warps vote
      const uint32_t i = i0 + lane;
      const uint32_t k = i < count ? segment[i] : 0u;
      WarpHistAdd(hist, (k >> shifts[r]) & digit_mask, k != 0 && (k & prefix_mask) == prefix);
    }
    __syncthreads();
    const int hi = kBins - 1 - 2 * static_cast<int>(threadIdx.x), lo = hi - 1;
    const uint32_t c_hi = hist[hi], c_lo = hist[lo];
    const uint32_t local = c_hi + c_lo;
    const uint32_t above = BlockExclusiveSum<kEstimateThreads>(local, warp_sum);
    if (above < m && m <= above + local) {
      const bool in_hi = above + c_hi >= m;
      shared[1] = static_cast<uint32_t>(in_hi ? hi : lo);
      shared[2] = in_hi ? m - above : m - above - c_hi;
      shared[0] = 1;
    }
    __syncthreads();
    if (shared[0] == 0) return 0;  // fewer than m keys
    prefix |= shared[1] << shifts[r];
    prefix_mask |= digit_mask << shifts[r];
    m = shared[2];
    __syncthreads();
    if (r == 0) RK_TRACE_POINT(kTraceEstimateRound);
  }
  return prefix;
}

// The first kernel of the chain (launched plainly), one block per (image, level): loads the level's
// sample (kSamplePerThread elements a thread, every load issued before any is used), stages the
// keys above the threshold's cut in shared memory (a segment a warp, placed by ballots),
// radix-selects the start score among them and sets the slice's cut. Also zeroes the decode
// error record. (The sample was loaded by 8 blocks of a kernel of its own before: the boundary
// between the two kernels and the keys' round trip through global memory cost more than one SM's
// loads of the 128 KB of f32 samples.)
template <typename E>
__global__ void __launch_bounds__(kEstimateThreads) EstimateKernel(HeadArgs h, SelectParams p, SelectState st, int32_t* error) {
  RK_TRACE_KERNEL(kTraceEstimate);
  if (blockIdx.x == 0 && blockIdx.y == 0 && threadIdx.x == 0) RK_TRACE_CLOCK(0);
  __shared__ uint32_t warp_count[kEstimateThreads / kWarp], warp_passed[kEstimateThreads / kWarp];
  __shared__ uint32_t hist[kBins];
  __shared__ uint32_t shared[4];
  extern __shared__ uint32_t staged[];  // kWarpSegment keys a warp
  const int n = blockIdx.y, l = blockIdx.x;
  const int s = n * h.levels + l;
  if (n == 0 && l == 0 && threadIdx.x < kErrorWords) error[threadIdx.x] = 0;
  const int64_t elements = h.level_elements[l];
  const float base_cut = BaseCut(p);
  const E* x = static_cast<const E*>(h.Slice(n, l));
  const bool whole = elements <= kSampleElements;
  // The sample of a level: kSampleRuns runs of kSampleRun elements, run j in the middle of the j-th
  // of kSampleRuns equal parts of the level (the whole level, contiguously, when it is small).
  // Thread t loads element t of each run: element first + j * stride + t of the level.
  const int64_t stride = whole ? kSampleRun : elements / kSampleRuns;
  const int64_t first = whole ? 0 : (stride - kSampleRun) / 2;
  const E* run = x + first + threadIdx.x;  // advanced a run at a time: one address live, not one a load
  const int64_t in_runs = whole ? (elements - static_cast<int64_t>(threadIdx.x) + kSampleRun - 1) / kSampleRun : kSampleRuns;
  float v[kSamplePerThread];
#pragma unroll
  for (int j = 0; j < kSamplePerThread; ++j) {
    v[j] = j < in_runs ? Elems<E>::Load(run, 0) : -INFINITY;
    run += stride;
  }
  // Each warp stages its keys in a segment of its own, a ballot a value (no barrier, no atomic); a warp
  // with more than kWarpSegment of them (more than half its values above the cut) keeps the first
  // kWarpSegment in its order (runs first), and the rank sought is scaled below.
  const int lane = threadIdx.x & (kWarp - 1), warp = threadIdx.x / kWarp;
  const uint32_t below_lane = (1u << lane) - 1u;
  uint32_t* segment = staged + warp * kWarpSegment;
  uint32_t filled = 0;  // warp-uniform
#pragma unroll
  for (int j = 0; j < kSamplePerThread; ++j) {
    const bool take = v[j] > base_cut;  // never NaN; its key is never 0
    const uint32_t voted = __ballot_sync(0xFFFFFFFFu, take);
    const uint32_t at = filled + __popc(voted & below_lane);
    if (take && at < kWarpSegment) segment[at] = OrderedBits(v[j]);
    filled += __popc(voted);
  }
  if (lane == 0) {
    warp_count[warp] = min(filled, static_cast<uint32_t>(kWarpSegment));
    warp_passed[warp] = filled;
  }
  __syncthreads();
  RK_TRACE_POINT(kTraceEstimateStaged);
  // The select kernel's blocks may start loading their tiles now, while the radix rounds run: not
  // before, when their first loads would take the memory system from the sample's (the estimate is
  // on the critical path). On an H100 the sample is staged at 5.0-5.4 us instead of 5.6-8.4, and the
  // whole chain is 0.3-2.9 us faster (bench/results/gpu-h100-2026-12-07-afternoon.txt).
  AllowNext();
  const float thresh = static_cast<float>(p.score_thresh);
  // About 3k of the level are expected at or above the m-th largest sample (exactly k when whole).
  const int64_t k = p.topk_candidates;
  uint32_t m = whole ? static_cast<uint32_t>(k)
                     : static_cast<uint32_t>(fmax(8.0, ceil(3.0 * static_cast<double>(k) * static_cast<double>(kSampleElements) /
                                                           static_cast<double>(elements))));
  // When some warps staged only part of their keys, the m-th largest of all is sought as the same
  // share of the staged ones (the same in every thread: kEstimateThreads / kWarp == kWarp warps).
  static_assert(kEstimateThreads / kWarp == kWarp, "lane w reads warp w's counts");
  const uint32_t staged_keys = __reduce_add_sync(0xFFFFFFFFu, warp_count[lane]);
  const uint32_t passed_keys = __reduce_add_sync(0xFFFFFFFFu, warp_passed[lane]);
  if (staged_keys < passed_keys) {
    m = static_cast<uint32_t>(fmax(1.0, ceil(static_cast<double>(m) * staged_keys / static_cast<double>(passed_keys))));
  }
  // Only samples above the threshold's cut were kept: a start must pass the threshold.
  const uint32_t key = SelectLargestStaged(staged, warp_count, m, hist, shared);
  if (threadIdx.x == 0) {
    float start = -INFINITY;
    if (key != 0) {
      const float score = ScoreOf(FromOrderedBits(key), p.score_input);
      if (score > thresh) start = score;
    }
    float cut = base_cut;
    if (start != -INFINITY) cut = fmaxf(cut, CutFor(start, p.score_input));
    st.start[s] = start;
    st.cut[s] = cut;
    st.count[s] = 0;
    // The exact path's per-level state, reset here rather than by a kernel of its own.
    st.prefix[s] = 0;
    st.prefix_mask[s] = 0;
    st.remaining[s] = static_cast<uint32_t>(p.topk_candidates);
    st.taken_all[s] = 0;
    if (s == 0) {
      RK_TRACE_LOAD_LATENCY(st.need_fallback);
      RK_TRACE_CLOCK(1);
    }
  }
}
constexpr size_t kEstimateSharedBytes = static_cast<size_t>(kEstimateThreads / kWarp) * kWarpSegment * sizeof(uint32_t);

// A block's candidates of its tile, gathered in shared memory (shared atomics: no warp waits on a
// global atomic's round trip) and appended to the slice's buffer at the end of the tile with one
// global atomic. Candidates past kBlockCandidates go straight to the global buffer.
constexpr int kBlockCandidates = 1024;

struct BlockCandidates {
  uint64_t keys[kBlockCandidates];
  uint32_t count;
  uint32_t base;
};

// Per-class thresholds (p.class_thresh in device memory): the element's own class's strict test,
// after the common one against their minimum. True when there are none.
__device__ __forceinline__ bool PassesClass(const HeadArgs& h, const SelectParams& p, int l, uint32_t pos, float score) {
  if (p.class_thresh == nullptr) return true;
  uint32_t row, label;
  h.Decompose(l, pos, &row, &label);
  return score > p.class_thresh[label];
}

// Tests one element and appends it when it is a candidate. Called by every lane of a warp.
__device__ __forceinline__ void Consider(const HeadArgs& h, const SelectParams& p, const SelectState& st, int s, int l,
                                         bool in_range, uint32_t pos, float v, float cut, float thresh, float start,
                                         BlockCandidates& bc) {
  bool take = false;
  float score = 0.0f;
  if (in_range && v > cut) {
    score = ScoreOf(v, p.score_input);
    take = score > thresh && score >= start && PassesClass(h, p, l, pos, score);
  }
  const uint32_t active = __activemask();
  if (__ballot_sync(active, take) == 0) return;
  const uint32_t idx = WarpAppend(&bc.count, take, active);
  if (!take) return;
  uint32_t row, label;
  h.Decompose(l, pos, &row, &label);
  const uint64_t key = RankKey(score, h.Order(l, row, label, p.candidate_order));
  if (idx < kBlockCandidates) {
    bc.keys[idx] = key;
    return;
  }
  const uint32_t g = atomicAdd(&st.count[s], 1u);
  if (g < st.capacity) st.keys[static_cast<size_t>(s) * st.capacity + g] = key;
}

// Tiles of 16-byte vectors, one block each; blockIdx.y = image, blockIdx.x = tile over the image's
// levels. kTileVectors (4096 f32 or 8192 f16 elements) a tile, or kLargeTileVectors when the heads
// hold at least kLargeHeadTiles tiles of the smaller size. RK_CUDA_TILE_VECTORS (a multiple of 256,
// read once) sets one size for all, for measuring (scripts/gpu-check.sh knobs). Measured on the H200
// (bench/results/gpu-h200-2026-12-03-tail.txt), once the pass's hit path visited only the elements
// above the cut: 2048-vector tiles took batch 8 (542 MB) from 0.1934 to 0.1894-0.1903 ms and fp16
// batch 8 from 0.143 to 0.141, while batch 1 (68 MB) lost 1-2 us with them; 4096 was slower than
// 1024 at both. (Before that fix, 4096-vector tiles and resident blocks striding over the tiles
// were no faster than 1024.)
constexpr int kSelectThreads = 256;
constexpr int kSelectUnroll = 2;  // 16-byte loads in flight per thread (2 x 8 blocks of 256 measured best)
constexpr int kSelectMinBlocks = 8;  // resident blocks per SM asked of the register allocator
constexpr int64_t kTileVectors = int64_t{kSelectThreads} * kSelectUnroll * 2;
constexpr int64_t kLargeTileVectors = 2 * kTileVectors;
constexpr int64_t kLargeHeadTiles = 8192;  // 128 MB of heads

// Elements [t0, t1) of slice s (level l) at x: 16-byte vectors over the aligned part, kSelectUnroll
// of them loaded before any is tested; scalars for the ragged ends (fewer than kPer elements each).
template <typename E>
__device__ __forceinline__ void SelectTile(const HeadArgs& h, const SelectParams& p, const SelectState& st, int s, int l,
                                           const E* x, int64_t t0, int64_t t1, BlockCandidates& bc) {
  constexpr int P = Elems<E>::kPer;
  const uintptr_t addr = reinterpret_cast<uintptr_t>(x);
  const int64_t head = static_cast<int64_t>(((16 - (addr & 15)) & 15) / sizeof(E));
  const int64_t v0 = (max(t0, head) - head + P - 1) / P, v1 = (t1 - head) >= 0 ? (t1 - head) / P : 0;
  const uint4* xv = reinterpret_cast<const uint4*>(x + head);
  constexpr int U = kSelectUnroll;
  const int64_t step = static_cast<int64_t>(blockDim.x) * U;
  auto load = [&](int64_t b, uint4 (&q)[U]) {
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int64_t v = b + threadIdx.x + static_cast<int64_t>(u) * blockDim.x;
      q[u] = v < v1 ? xv[v] : make_uint4(0, 0, 0, 0);
    }
  };
  // The heads were written before the chain began: the first loads are issued before waiting for
  // the estimate's cut (they overlap the estimate when this block started early).
  uint4 q[U];
  load(v0, q);
  WaitPrevious();
  const float cut = st.cut[s];
  const typename Elems<E>::Cut cut_e = Elems<E>::MakeCut(cut);
  const float start = st.start[s];
  const float thresh = static_cast<float>(p.score_thresh);
  for (int64_t b = v0; b < v1; b += step) {  // block-uniform: whole warps take every branch below
    if (b != v0) load(b, q);
    bool hit = false;
#pragma unroll
    for (int u = 0; u < U; ++u) hit |= (b + threadIdx.x + static_cast<int64_t>(u) * blockDim.x < v1) && Elems<E>::AnyAbove(q[u], cut_e);
    // Most chunks hold nothing above the cut: one vote skips them for the whole warp. In the rare
    // rest, each lane makes a bitmask of its elements above the cut (bit u*P + j: element j of vector
    // u) and the warp visits them through one copy of Consider, a set bit per lane and round: as many
    // rounds as the lane with the most (usually one), not U*P. (The unrolled per-element copies of
    // Consider made the kernel too large for the instruction cache; a visit of every element of the
    // chunk cost U*P rounds, which fp16's 16 elements a chunk paid most.)
    if (__any_sync(0xFFFFFFFFu, hit)) {
      uint32_t bits = 0;
#pragma unroll
      for (int u = 0; u < U; ++u) {
        const bool in = b + threadIdx.x + static_cast<int64_t>(u) * blockDim.x < v1;
        bits |= in ? Elems<E>::AboveBits(q[u], cut_e) << (u * P) : 0u;
      }
#pragma unroll 1
      while (__any_sync(0xFFFFFFFFu, bits != 0)) {
        const bool mine = bits != 0;
        const int e = mine ? __ffs(bits) - 1 : 0;
        bits &= bits - 1;
        const int u = e / P, j = e % P;
        uint4 qu = q[0];
#pragma unroll
        for (int w = 1; w < U; ++w) qu = u == w ? q[w] : qu;  // selects, not an indexed (local) array
        const int64_t v = b + threadIdx.x + static_cast<int64_t>(u) * blockDim.x;
        Consider(h, p, st, s, l, mine, static_cast<uint32_t>(head + P * v + j), Elems<E>::At(qu, j), cut, thresh, start, bc);
      }
    }
  }
  // Ragged ends: [t0, head + P*v0) and [head + P*v1, t1), fewer than P (<= 8) elements each.
  if (threadIdx.x < kWarp) {
    const int64_t a_end = min(t1, head + P * v0);
    const int64_t b_begin = max(a_end, head + P * v1);
#pragma unroll 1
    for (int pass = 0; pass < 2; ++pass) {
      const int64_t from = pass == 0 ? t0 : b_begin, to = pass == 0 ? a_end : t1;
      const int64_t i = from + threadIdx.x;
      const bool in = i < to;
      Consider(h, p, st, s, l, in, static_cast<uint32_t>(in ? i : 0), in ? Elems<E>::Load(x, i) : -INFINITY, cut, thresh,
               start, bc);
    }
  }
}

template <typename E>
__global__ void __launch_bounds__(kSelectThreads, kSelectMinBlocks) SelectKernel(HeadArgs h, SelectParams p, SelectState st, TileMap tiles) {
  RK_TRACE_KERNEL_SAMPLED(kTraceSelect, (blockIdx.x & 63) == 0 || blockIdx.x + 1 == gridDim.x);
  AllowNext();
  __shared__ BlockCandidates bc;
  const int n = blockIdx.y;
  const int t = static_cast<int>(blockIdx.x);
  int l = 0, first = 0;  // the tile's level and its first tile (compile-time indices: no local copy of tiles)
#pragma unroll
  for (int i = 1; i < kMaxLevels; ++i) {
    if (i < h.levels && t >= tiles.first[i]) {
      l = i;
      first = tiles.first[i];
    }
  }
  const int s = n * h.levels + l;
  const int64_t tile_elements = tiles.tile_elements;
  const int64_t t0 = static_cast<int64_t>(t - first) * tile_elements;
  const int64_t t1 = min(h.level_elements[l], t0 + tile_elements);
  if (threadIdx.x == 0) bc.count = 0;
  __syncthreads();
  SelectTile(h, p, st, s, l, static_cast<const E*>(h.Slice(n, l)), t0, t1, bc);
  __syncthreads();
  const uint32_t found = min(bc.count, static_cast<uint32_t>(kBlockCandidates));
  if (found == 0) return;  // the whole block
  if (threadIdx.x == 0) bc.base = atomicAdd(&st.count[s], found);
  __syncthreads();
  for (uint32_t i = threadIdx.x; i < found; i += blockDim.x) {
    const uint32_t g = bc.base + i;
    if (g < st.capacity) st.keys[static_cast<size_t>(s) * st.capacity + g] = bc.keys[i];
  }
}

// The exact path for the levels that need it (cooperative: grid-wide rounds).
// Which levels need it is decided at the start by every block alike, from the final counts: a level
// whose buffer overflowed, or whose estimated start was reached by fewer than k candidates. Every
// block writes the same flags, so any block's read sees the right value.
template <typename E>
__global__ void FallbackKernel(HeadArgs h, SelectParams p, SelectState st) {
  RK_TRACE_KERNEL(kTraceFallback);
  WaitPrevious();
  AllowNext();  // the top-k kernel waits for this one's completion before it reads
  __shared__ uint32_t any;
  const int slices = h.batch * h.levels;
  if (threadIdx.x == 0) any = 0;
  __syncthreads();
  for (int s = threadIdx.x; s < slices; s += blockDim.x) {
    const uint32_t c = st.count[s];
    const bool overflow = c > st.capacity;
    const bool short_of_k = st.start[s] != -INFINITY && c < static_cast<uint32_t>(p.topk_candidates);
    const bool need = overflow || short_of_k;
    st.need_fallback[s] = need ? 1u : 0u;
    if (need) atomicOr(&any, 1u);
  }
  __syncthreads();
  if (any == 0) return;  // the common case
  cg::grid_group grid = cg::this_grid();
  const float thresh = static_cast<float>(p.score_thresh);
  const bool everything = p.score_input == ScoreInput::kLogits && !(thresh > 0.0f);
  const float base_cut = everything ? -INFINITY : CutFor(thresh, p.score_input);
  const int64_t gstride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t gtid = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  // Radix rounds: 3 over the score key, 3 over the order key among equal scores.
  const int shifts[3] = {21, 10, 0};
  const int widths[3] = {11, 11, 10};
  for (int phase = 0; phase < 2; ++phase) {
    for (int r = 0; r < 3; ++r) {
      for (int s = 0; s < slices; ++s) {
        if (!st.need_fallback[s]) continue;
        for (int64_t b = gtid; b < kBins; b += gstride) st.hist[static_cast<size_t>(s) * kBins + b] = 0;
      }
      grid.sync();
      for (int s = 0; s < slices; ++s) {
        if (!st.need_fallback[s]) continue;
        const int n = s / h.levels, l = s % h.levels;
        const E* slice = static_cast<const E*>(h.Slice(n, l));
        const int64_t elements = h.level_elements[l];
        const uint32_t digit_mask = (1u << widths[r]) - 1u;
        for (int64_t i = gtid; i < elements; i += gstride) {
          const float v = Elems<E>::Load(slice, i);
          if (!(v > base_cut)) continue;
          const float score = ScoreOf(v, p.score_input);
          if (!(score > thresh) || !PassesClass(h, p, l, static_cast<uint32_t>(i), score)) continue;
          uint32_t key = OrderedBits(score);
          if (phase == 1) {
            if (key != st.kth_key[s]) continue;
            uint32_t row, label;
            h.Decompose(l, static_cast<uint32_t>(i), &row, &label);
            key = ~h.Order(l, row, label, p.candidate_order);  // smallest order = largest ~order
          }
          if ((key & st.prefix_mask[s]) == st.prefix[s]) atomicAdd(&st.hist[static_cast<size_t>(s) * kBins + ((key >> shifts[r]) & digit_mask)], 1u);
        }
      }
      grid.sync();
      // Resolve the digit of each level (one thread per level).
      if (gtid < slices && st.need_fallback[gtid]) {
        const int s = static_cast<int>(gtid);
        const uint32_t digit_mask = (1u << widths[r]) - 1u;
        uint32_t m = st.remaining[s];
        uint32_t above = 0;
        int digit = -1;
        for (int b = static_cast<int>(digit_mask); b >= 0; --b) {
          const uint32_t c = st.hist[static_cast<size_t>(s) * kBins + b];
          if (above + c >= m) {
            digit = b;
            break;
          }
          above += c;
        }
        if (digit < 0) {
          // Fewer than m keys in all: every candidate of the level is taken (k-th key 0).
          st.prefix[s] = 0;
          st.prefix_mask[s] = 0xFFFFFFFFu;
          st.remaining[s] = 0;
          st.taken_all[s] = 1;
        } else {
          st.prefix[s] |= static_cast<uint32_t>(digit) << shifts[r];
          st.prefix_mask[s] |= digit_mask << shifts[r];
          st.remaining[s] = m - above;
        }
      }
      grid.sync();
    }
    // Between phases: the k-th score key is known; select among its ties next.
    if (gtid < slices && st.need_fallback[gtid]) {
      const int s = static_cast<int>(gtid);
      if (phase == 0) {
        st.kth_key[s] = st.taken_all[s] ? 0u : st.prefix[s];
        st.prefix[s] = 0;
        st.prefix_mask[s] = 0;
        // remaining[s] = how many of the ties are needed
      } else {
        st.kth_order_key[s] = st.taken_all[s] ? 0u : st.prefix[s];
        st.count[s] = 0;
      }
    }
    grid.sync();
  }
  // Collect: score > k-th, or equal to it with order up to the k-th's.
  for (int s = 0; s < slices; ++s) {
    if (!st.need_fallback[s]) continue;
    const int n = s / h.levels, l = s % h.levels;
    const E* slice = static_cast<const E*>(h.Slice(n, l));
    const int64_t elements = h.level_elements[l];
    for (int64_t i = gtid; i < elements; i += gstride) {
      const float v = Elems<E>::Load(slice, i);
      if (!(v > base_cut)) continue;
      const float score = ScoreOf(v, p.score_input);
      if (!(score > thresh) || !PassesClass(h, p, l, static_cast<uint32_t>(i), score)) continue;
      const uint32_t key = OrderedBits(score);
      uint32_t row, label;
      h.Decompose(l, static_cast<uint32_t>(i), &row, &label);
      const uint32_t order = h.Order(l, row, label, p.candidate_order);
      const bool take = st.taken_all[s] || key > st.kth_key[s] || (key == st.kth_key[s] && ~order >= st.kth_order_key[s]);
      if (!take) continue;
      const uint32_t idx = atomicAdd(&st.count[s], 1u);
      if (idx < st.capacity) st.keys[static_cast<size_t>(s) * st.capacity + idx] = RankKey(score, order);
    }
  }
}

// The cooperative grid of the fallback on the current device: up to two blocks per SM, all resident
// (the occupancy asked once per element type and device).
template <typename E>
Status FallbackGrid(int* grid) {
  static std::mutex mu;
  static std::map<int, int> grid_of;
  int device = 0, sms = 0;
  RK_RETURN_IF_ERROR(CurrentDeviceSms(&device, &sms));
  std::lock_guard<std::mutex> lock(mu);
  auto it = grid_of.find(device);
  if (it == grid_of.end()) {
    int per_sm = 0;
    const cudaError_t e = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, FallbackKernel<E>, 256, 0);
    if (e != cudaSuccess) return CudaStatus("fallback occupancy", e);
    it = grid_of.emplace(device, max(1, sms * max(1, min(per_sm, 2)))).first;
  }
  *grid = it->second;
  return Status::Ok();
}

// The chain of the select pass for heads of element type E (float or binary16 bits): one
// instantiation of each kernel per type, so that no kernel branches on the type at run time.
template <typename E>
Status LaunchSelectAs(const SelectParams& p, const HeadArgs& h, const TileMap& tiles, const SelectState& st, int32_t* error,
                      cudaStream_t stream) {
  RK_RETURN_IF_ERROR(AllowSharedBytes(reinterpret_cast<const void*>(EstimateKernel<E>), kEstimateSharedBytes,
                                      "a device that gives a block 64 KB of shared memory (the sample estimate)"));
  EstimateKernel<E><<<dim3(h.levels, h.batch), kEstimateThreads, kEstimateSharedBytes, stream>>>(h, p, st, error);
  cudaError_t e = cudaGetLastError();
  if (e == cudaSuccess) {
    e = LaunchChained(true, SelectKernel<E>, dim3(tiles.tiles, h.batch), dim3(kSelectThreads), 0, stream, h, p, st, tiles);
  }
  RK_RETURN_IF_ERROR(CudaStatus("select", e));
  RK_RETURN_IF_ERROR(LastError("select"));
  // Cooperative (grid-wide rounds when a level needs the exact path) and chained: its blocks are
  // resident before the select pass ends and wait for it, so the common case (no level needs it)
  // costs its check, not a launch after the pass.
  int grid = 0;
  RK_RETURN_IF_ERROR(FallbackGrid<E>(&grid));
  e = LaunchChainedAs(true, true, FallbackKernel<E>, dim3(grid), dim3(256), 0, stream, h, p, st);
  RK_RETURN_IF_ERROR(CudaStatus("select fallback", e));
  return LastError("select fallback");
}

}  // namespace

TileMap MakeTileMap(const HeadShapes& s, DType dtype) {
  static const int64_t chosen = [] {  // 0: by the heads' size
    const char* e = std::getenv("RK_CUDA_TILE_VECTORS");
    const long v = e == nullptr ? 0 : std::atol(e);
    return v >= 256 && v <= (1 << 20) && v % 256 == 0 ? static_cast<int64_t>(v) : 0;
  }();
  const int64_t per_vector = dtype == DType::kFloat32 ? 4 : 8;
  int64_t vectors = chosen;
  if (vectors == 0) {
    int64_t small_tiles = 0;
    for (int l = 0; l < s.num_levels; ++l) small_tiles += (s.LevelElements(l) + kTileVectors * per_vector - 1) / (kTileVectors * per_vector);
    vectors = small_tiles * s.batch >= kLargeHeadTiles ? kLargeTileVectors : kTileVectors;
  }
  TileMap t{};
  const int64_t tile_elements = vectors * per_vector;
  t.tile_elements = tile_elements;
  int tiles = 0;
  for (int l = 0; l < s.num_levels; ++l) {
    t.first[l] = tiles;
    tiles += static_cast<int>((s.LevelElements(l) + tile_elements - 1) / tile_elements);
  }
  t.tiles = tiles;
  return t;
}

uint32_t SelectCapacity(const SelectParams& p) {
  return static_cast<uint32_t>(std::max<int64_t>(8 * static_cast<int64_t>(p.topk_candidates), 8192));
}

Status LaunchSelect(const SelectParams& p, const HeadArgs& h, const TileMap& tiles, const SelectState& st, int32_t* error,
                    cudaStream_t stream) {
  return h.dtype == DType::kFloat32 ? LaunchSelectAs<float>(p, h, tiles, st, error, stream)
                                    : LaunchSelectAs<uint16_t>(p, h, tiles, st, error, stream);
}

}  // namespace cuda
}  // namespace rk
