// Selection on the GPU: threshold + per-level top-k in one pass over the class head.
//
// 1. Estimate (one block per image and level): the m-th largest raw value of a sample of the level
//    (32 runs of 1024 elements; the whole level when small), radix-selected in shared memory, gives
//    a start score about 3k candidates of the level reach (k = topk_candidates).
// 2. Select (one pass, 16-byte loads): an element whose raw value passes the prefilter cut gets its
//    exact score (SigmoidF32); score > f32(t) and score >= start -> appended (warp-aggregated
//    atomics) with its rank key. The decision is always on the exact score.
// 3. Fallback (cooperative, exits at once when no level needs it): a level whose estimate was too
//    high (fewer than k reached it) or whose buffer overflowed is selected exactly: radix select of
//    the k-th score over the whole level, then of the tie-breaking index among equal scores, then a
//    collection pass; so the result never depends on the estimate.
#include <cooperative_groups.h>
#include <cub/block/block_scan.cuh>

#include <cmath>

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

// Element i of the sample of a level of `elements` (the whole level when it is small).
__device__ __forceinline__ int64_t SamplePos(int64_t i, int64_t elements) {
  if (elements <= kSampleElements) return i;
  const int64_t run = i / kSampleRun, within = i % kSampleRun;
  const int64_t stride = elements / kSampleRuns;
  return run * stride + (stride - kSampleRun) / 2 + within;
}

constexpr int kEstimateThreads = 1024;

// Radix select in a block of kEstimateThreads: the m-th largest of keys produced by key_of(i) for
// i < n (0 = excluded). Each round's digit is found by a block-wide scan of the histogram taken
// from the top (two bins a thread), not by one thread walking it.
// Only the top 22 bits are resolved: the key returned is the lower edge of the m-th largest's
// 22-bit bin (at least m keys are at or above it), which is all a starting bound needs.
// The keys (n <= kSampleElements) are loaded once, all at a time, into registers.
constexpr int kKeysPerThread = static_cast<int>(kSampleElements / kEstimateThreads);

template <typename KeyOf>
__device__ uint32_t BlockSelectLargest(int64_t n, uint32_t m, KeyOf key_of, uint32_t* hist, uint32_t* shared) {
  using Scan = cub::BlockScan<uint32_t, kEstimateThreads>;
  __shared__ typename Scan::TempStorage scan;
  uint32_t keys[kKeysPerThread];
#pragma unroll
  for (int j = 0; j < kKeysPerThread; ++j) {
    const int64_t i = static_cast<int64_t>(threadIdx.x) + static_cast<int64_t>(j) * kEstimateThreads;
    keys[j] = i < n ? key_of(i) : 0u;
  }
  uint32_t prefix = 0, prefix_mask = 0;
  const int shifts[2] = {21, 10};
  const int widths[2] = {11, 11};
  for (int r = 0; r < 2; ++r) {
    for (int b = threadIdx.x; b < kBins; b += blockDim.x) hist[b] = 0;
    if (threadIdx.x == 0) shared[0] = 0;
    __syncthreads();
    const uint32_t digit_mask = ((1u << widths[r]) - 1u);
#pragma unroll
    for (int j = 0; j < kKeysPerThread; ++j) {
      const uint32_t k = keys[j];
      WarpHistAdd(hist, (k >> shifts[r]) & digit_mask, k != 0 && (k & prefix_mask) == prefix);
    }
    __syncthreads();
    const int hi = kBins - 1 - 2 * static_cast<int>(threadIdx.x), lo = hi - 1;
    const uint32_t local = hist[hi] + hist[lo];
    uint32_t above = 0;
    Scan(scan).ExclusiveSum(local, above);
    if (above < m && m <= above + local) {
      const bool in_hi = above + hist[hi] >= m;
      shared[0] = 1;
      shared[1] = static_cast<uint32_t>(in_hi ? hi : lo);
      shared[2] = in_hi ? m - above : m - above - hist[hi];
    }
    __syncthreads();
    if (shared[0] == 0) return 0;  // fewer than m keys
    prefix |= shared[1] << shifts[r];
    prefix_mask |= digit_mask << shifts[r];
    m = shared[2];
    __syncthreads();
  }
  return prefix;
}

// One block per (image, level): the start score and the prefilter cut.
__global__ void __launch_bounds__(kEstimateThreads) EstimateKernel(HeadArgs h, SelectParams p, SelectState st) {
  __shared__ uint32_t hist[kBins];
  __shared__ uint32_t shared[4];
  const int n = blockIdx.y, l = blockIdx.x;
  const int s = n * h.levels + l;
  const int64_t elements = h.level_elements[l];
  const void* slice = h.Slice(n, l);
  const int64_t sampled = elements <= kSampleElements ? elements : kSampleElements;
  const float thresh = static_cast<float>(p.score_thresh);
  const int64_t k = p.topk_candidates;
  // About 3k of the level are expected at or above the m-th largest sample (exactly k when whole).
  const uint32_t m = elements <= kSampleElements
                         ? static_cast<uint32_t>(k)
                         : static_cast<uint32_t>(fmax(8.0, ceil(3.0 * static_cast<double>(k) * static_cast<double>(sampled) / static_cast<double>(elements))));
  const uint32_t key = BlockSelectLargest(
      sampled, m, [&](int64_t i) { return OrderedBits(LoadValue(slice, h.dtype, SamplePos(i, elements))); }, hist, shared);
  if (threadIdx.x == 0) {
    float start = -INFINITY;
    if (key != 0) {
      const float score = ScoreOf(FromOrderedBits(key), p.score_input);
      if (score > thresh) start = score;
    }
    const bool everything = p.score_input == ScoreInput::kLogits && !(thresh > 0.0f);
    float cut = everything ? -INFINITY : CutFor(thresh, p.score_input);
    if (start != -INFINITY) cut = fmaxf(cut, CutFor(start, p.score_input));
    st.start[s] = start;
    st.cut[s] = cut;
    st.count[s] = 0;
    // The exact path's per-level state, reset here rather than by a kernel of its own.
    st.prefix[s] = 0;
    st.prefix_mask[s] = 0;
    st.remaining[s] = static_cast<uint32_t>(p.topk_candidates);
    st.taken_all[s] = 0;
  }
}

// Tests one element and appends it when it is a candidate. Called by every lane of a warp.
__device__ __forceinline__ void Consider(const HeadArgs& h, const SelectParams& p, const SelectState& st, int s, int l,
                                         bool in_range, uint32_t pos, float v, float cut, float thresh, float start,
                                         uint32_t capacity) {
  bool take = false;
  float score = 0.0f;
  if (in_range && v > cut) {
    score = ScoreOf(v, p.score_input);
    take = score > thresh && score >= start;
  }
  const uint32_t active = __activemask();
  if (__ballot_sync(active, take) == 0) return;
  const uint32_t idx = WarpAppend(&st.count[s], take, active);
  if (take && idx < capacity) {
    uint32_t row, label;
    h.Decompose(l, pos, &row, &label);
    st.keys[static_cast<size_t>(s) * capacity + idx] = RankKey(score, h.Order(l, row, label, p.candidate_order));
    st.pos[static_cast<size_t>(s) * capacity + idx] = pos;
  }
}

// Tiles of kTile elements; blockIdx.y = image, blockIdx.x = tile over the image's levels.
constexpr int kSelectThreads = 256;
constexpr int64_t kTile = kSelectThreads * 64;

__global__ void __launch_bounds__(kSelectThreads) SelectKernel(HeadArgs h, SelectParams p, SelectState st, TileMap tiles) {
  const int n = blockIdx.y;
  int l = 0;
  while (l + 1 < h.levels && static_cast<int>(blockIdx.x) >= tiles.first[l + 1]) ++l;
  const int s = n * h.levels + l;
  const int64_t elements = h.level_elements[l];
  const int64_t t0 = static_cast<int64_t>(blockIdx.x - tiles.first[l]) * kTile;
  const int64_t t1 = min(elements, t0 + kTile);
  const float cut = st.cut[s];
  const float start = st.start[s];
  const float thresh = static_cast<float>(p.score_thresh);
  const uint32_t capacity = st.capacity;
  const void* slice = h.Slice(n, l);
  const uintptr_t addr = reinterpret_cast<uintptr_t>(slice);
  if (h.dtype == DType::kFloat32) {
    const float* x = static_cast<const float*>(slice);
    // 16-byte vectors over the aligned part of [t0, t1); scalars for the ragged ends.
    const int64_t head = static_cast<int64_t>(((16 - (addr & 15)) & 15) / 4);
    const int64_t v0 = (max(t0, head) - head + 3) / 4, v1 = (t1 - head) >= 0 ? (t1 - head) / 4 : 0;
    const float4* xv = reinterpret_cast<const float4*>(x + head);
    for (int64_t v = v0 + threadIdx.x; v - threadIdx.x < v1; v += blockDim.x) {
      const bool in = v < v1;
      float4 q = make_float4(-INFINITY, -INFINITY, -INFINITY, -INFINITY);
      if (in) q = xv[v];
      const uint32_t pos = static_cast<uint32_t>(head + 4 * v);
      // Most vectors hold nothing above the cut: one vote skips them for the whole warp.
      if (!__any_sync(__activemask(), q.x > cut || q.y > cut || q.z > cut || q.w > cut)) continue;
      Consider(h, p, st, s, l, in, pos, q.x, cut, thresh, start, capacity);
      Consider(h, p, st, s, l, in, pos + 1, q.y, cut, thresh, start, capacity);
      Consider(h, p, st, s, l, in, pos + 2, q.z, cut, thresh, start, capacity);
      Consider(h, p, st, s, l, in, pos + 3, q.w, cut, thresh, start, capacity);
    }
    // Ragged ends: [t0, head + 4*v0) and [head + 4*v1, t1), fewer than 4 elements each.
    if (threadIdx.x < kWarp) {
      const int64_t a_end = min(t1, head + 4 * v0);
      const int64_t b_begin = max(a_end, head + 4 * v1);
      for (int pass = 0; pass < 2; ++pass) {
        const int64_t from = pass == 0 ? t0 : b_begin, to = pass == 0 ? a_end : t1;
        const int64_t i = from + threadIdx.x;
        const bool in = i < to;
        Consider(h, p, st, s, l, in, static_cast<uint32_t>(in ? i : 0), in ? x[in ? i : 0] : -INFINITY, cut, thresh, start, capacity);
      }
    }
  } else {
    const uint16_t* x = static_cast<const uint16_t*>(slice);
    const int64_t head = static_cast<int64_t>(((16 - (addr & 15)) & 15) / 2);
    const int64_t v0 = (max(t0, head) - head + 7) / 8, v1 = (t1 - head) >= 0 ? (t1 - head) / 8 : 0;
    const uint4* xv = reinterpret_cast<const uint4*>(x + head);
    for (int64_t v = v0 + threadIdx.x; v - threadIdx.x < v1; v += blockDim.x) {
      const bool in = v < v1;
      uint4 q = make_uint4(0xFC00FC00u, 0xFC00FC00u, 0xFC00FC00u, 0xFC00FC00u);  // -inf halves
      if (in) q = xv[v];
      const uint32_t pos = static_cast<uint32_t>(head + 8 * v);
      const uint32_t w[4] = {q.x, q.y, q.z, q.w};
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        Consider(h, p, st, s, l, in, pos + 2 * j, HalfToFloat(static_cast<uint16_t>(w[j] & 0xFFFFu)), cut, thresh, start, capacity);
        Consider(h, p, st, s, l, in, pos + 2 * j + 1, HalfToFloat(static_cast<uint16_t>(w[j] >> 16)), cut, thresh, start, capacity);
      }
    }
    if (threadIdx.x < kWarp) {
      const int64_t a_end = min(t1, head + 8 * v0);
      const int64_t b_begin = max(a_end, head + 8 * v1);
      for (int pass = 0; pass < 2; ++pass) {
        const int64_t from = pass == 0 ? t0 : b_begin, to = pass == 0 ? a_end : t1;
        for (int64_t base = from; base < to; base += kWarp) {
          const int64_t i = base + threadIdx.x;
          const bool in = i < to;
          Consider(h, p, st, s, l, in, static_cast<uint32_t>(in ? i : 0), in ? HalfToFloat(x[i]) : -INFINITY, cut, thresh, start, capacity);
        }
      }
    }
  }
}

// The exact path for the levels that need it (cooperative: grid-wide rounds).
// Which levels need it is decided at the start by every block alike, from the final counts: a level
// whose buffer overflowed, or whose estimated start was reached by fewer than k candidates. Every
// block writes the same flags, so any block's read sees the right value.
__global__ void FallbackKernel(HeadArgs h, SelectParams p, SelectState st) {
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
        const void* slice = h.Slice(n, l);
        const int64_t elements = h.level_elements[l];
        const uint32_t digit_mask = (1u << widths[r]) - 1u;
        for (int64_t i = gtid; i < elements; i += gstride) {
          const float v = LoadValue(slice, h.dtype, i);
          if (!(v > base_cut)) continue;
          const float score = ScoreOf(v, p.score_input);
          if (!(score > thresh)) continue;
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
    const void* slice = h.Slice(n, l);
    const int64_t elements = h.level_elements[l];
    for (int64_t i = gtid; i < elements; i += gstride) {
      const float v = LoadValue(slice, h.dtype, i);
      if (!(v > base_cut)) continue;
      const float score = ScoreOf(v, p.score_input);
      if (!(score > thresh)) continue;
      const uint32_t key = OrderedBits(score);
      uint32_t row, label;
      h.Decompose(l, static_cast<uint32_t>(i), &row, &label);
      const uint32_t order = h.Order(l, row, label, p.candidate_order);
      const bool take = st.taken_all[s] || key > st.kth_key[s] || (key == st.kth_key[s] && ~order >= st.kth_order_key[s]);
      if (!take) continue;
      const uint32_t idx = atomicAdd(&st.count[s], 1u);
      if (idx < st.capacity) {
        st.keys[static_cast<size_t>(s) * st.capacity + idx] = RankKey(score, order);
        st.pos[static_cast<size_t>(s) * st.capacity + idx] = static_cast<uint32_t>(i);
      }
    }
  }
}

int FallbackGrid() {
  static int grid = [] {
    int device = 0, sms = 0, per_sm = 0;
    cudaGetDevice(&device);
    cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
    cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, FallbackKernel, 256, 0);
    return max(1, sms * max(1, min(per_sm, 2)));
  }();
  return grid;
}

}  // namespace

TileMap MakeTileMap(const HeadShapes& s) {
  TileMap t{};
  int tiles = 0;
  for (int l = 0; l < s.num_levels; ++l) {
    t.first[l] = tiles;
    tiles += static_cast<int>((s.LevelElements(l) + kTile - 1) / kTile);
  }
  t.tiles = tiles;
  return t;
}

uint32_t SelectCapacity(const SelectParams& p) {
  return static_cast<uint32_t>(std::max<int64_t>(8 * static_cast<int64_t>(p.topk_candidates), 8192));
}

Status LaunchSelect(const SelectParams& p, const HeadArgs& h, const TileMap& tiles, const SelectState& st, cudaStream_t stream) {
  EstimateKernel<<<dim3(h.levels, h.batch), kEstimateThreads, 0, stream>>>(h, p, st);
  SelectKernel<<<dim3(tiles.tiles, h.batch), kSelectThreads, 0, stream>>>(h, p, st, tiles);
  RK_RETURN_IF_ERROR(LastError("select"));
  void* args[] = {const_cast<HeadArgs*>(&h), const_cast<SelectParams*>(&p), const_cast<SelectState*>(&st)};
  const cudaError_t e = cudaLaunchCooperativeKernel(reinterpret_cast<void*>(FallbackKernel), dim3(FallbackGrid()), dim3(256), args, 0, stream);
  if (e != cudaSuccess) return Status(Code::kCudaError, std::string("select fallback: ") + cudaGetErrorName(e) + ": " + cudaGetErrorString(e));
  return LastError("select fallback");
}

}  // namespace cuda
}  // namespace rk
