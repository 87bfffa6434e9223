// Per-level top-k of the selected candidates, then decode + clip of exactly those boxes.
//
// One block per (image, level) takes the slice's k best: the select pass left at most `capacity`
// keys of the slice; when more than k, the k-th smallest 64-bit rank key is radix-selected (rounds
// of 11-bit digits from the top, stopping once the k-th's digit bin is wanted whole; keys are unique
// because the order part is). The rank of each taken candidate in its level (its slot: level * k +
// rank, the order the NMS stage reads) is then found one of two ways:
// - the count path (levels * k <= kCountMaxSlots, see CountRanks): the block stores its taken keys
//   bucketed by score key (a counting sort on 2048 buckets; order within a bucket is arbitrary); then
//   one thread per candidate, over the whole GPU, counts the keys before its own from bucket starts
//   and the keys of one bucket, in its level and (for the NMS stage) in the image, and decodes it.
//   Where the slice's keys fit in registers, its top-k needs no radix rounds (SpanTake): one
//   histogram over buckets spanning the slice finds the k-th key's bucket, whose few keys are ranked
//   among themselves;
// - the sort path (RK_CUDA_RANKS=sort, or larger levels * k): the block sorts its taken keys in
//   shared memory (a bitonic network over the next power of two: one key per thread, partners within
//   a warp exchanged by shuffles, when it fits the block) and decodes candidate r of the level with
//   thread r (mod the block).

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>
#include <type_traits>

#include "common.cuh"
#include "select.cuh"
#include "stages_cuda.cuh"

namespace rk {
namespace cuda {
namespace {

constexpr int kTopkThreads = 1024;
constexpr int kTopkKeysPerThread = 8;  // slices of up to 8192 candidates (the default capacity) stay in registers

// Slots of the shared sort for up to n keys: the next power of two (at least 2).
__host__ __device__ inline uint32_t SortSlots(uint32_t n) {
  uint32_t w = 2;
  while (w < n) w <<= 1;
  return w;
}

// Sorts width (a power of two, at most the block size) keys, ascending: the bitonic network with one
// key per thread, partners within a warp exchanged by shuffles and those further apart through shared
// memory. Called by the whole block; ends after a barrier.
__device__ void SortHeld(uint64_t* skeys, uint32_t width) {
  const uint32_t t = threadIdx.x;
  const bool mine = t < width;
  uint64_t key = mine ? skeys[t] : ~uint64_t{0};
  for (uint32_t size = 2; size <= width; size <<= 1) {
    for (uint32_t stride = size >> 1; stride > 0; stride >>= 1) {
      uint64_t other;
      if (stride >= static_cast<uint32_t>(kWarp)) {  // block-uniform
        __syncthreads();
        if (mine) skeys[t] = key;
        __syncthreads();
        other = mine ? skeys[t ^ stride] : key;
      } else {
        other = __shfl_xor_sync(0xFFFFFFFFu, key, stride);
      }
      // The lower element of an ascending pair keeps the smaller key (keys are unique but for the padding).
      const bool keep_min = ((t & stride) == 0) == ((t & size) == 0);
      if (keep_min ? other < key : other > key) key = other;
    }
  }
  __syncthreads();
  if (mine) skeys[t] = key;
  __syncthreads();
}

// The anchor of row `row` of level l from the grid (mirrors rk::GridAnchor on the host).
__device__ __forceinline__ Box DeviceGridAnchor(const AnchorGrid& g, const HeadArgs& h, int l, uint32_t row) {
  const uint32_t A = static_cast<uint32_t>(g.anchors_per_loc), W = static_cast<uint32_t>(h.width[l]);
  const int a = static_cast<int>(row % A);
  const uint32_t loc = row / A;
  const int32_t x = static_cast<int32_t>(loc % W);
  const int32_t y = static_cast<int32_t>(loc / W);
  return ShiftCell(g.cell[l][a], GridShift(g.offset, g.stride_x[l], x), GridShift(g.offset, g.stride_y[l], y));
}

__device__ __forceinline__ float LoadDelta(const HeadArgs& h, const void* const* box, int n, int l, uint32_t row, int j) {
  if (h.layout == Layout::kConcatenated) {
    const int64_t i = ((static_cast<int64_t>(n) * h.total_anchors + h.level_anchor_offset[l] + row) * 4) + j;
    return LoadValue(box[0], h.dtype, i);
  }
  const int64_t hw = static_cast<int64_t>(h.height[l]) * h.width[l];
  const uint32_t A = static_cast<uint32_t>(h.anchors);
  const int64_t a = row % A, loc = row / A;
  const int64_t level_anchors = hw * A;
  return LoadValue(box[l], h.dtype, static_cast<int64_t>(n) * level_anchors * 4 + (a * 4 + j) * hw + loc);
}

// The slice's best min(count, k) keys: emit(j, key) is called once for each, with distinct
// j < m, and m is returned. The k best are those whose top bits, under `mask`, are at most `prefix`:
// radix rounds of 11 bits from the top find the digit of the k-th smallest key, and stop early once
// that digit's bin is wanted whole (keys are unique, since their order part is). An Emit whose
// kBounds is true has emit.Begin(lo, hi) called by every thread before the first emit, with bounds of
// the taken keys' score keys (key >> 32): lo the smallest (the slice's smallest), hi at least the
// largest (the slice's largest, or less where the radix rounds bound it). Called by the whole block
// (kTopkThreads); ends after a barrier.
constexpr int kTakeBits = 11;
constexpr int kTakeBins = 1 << kTakeBits;  // two per thread
static_assert(kTakeBins == 2 * kTopkThreads, "the digit scan takes two bins a thread");

// A slice's keys in registers, kTopkKeysPerThread a thread (key j of thread t: t + j * kTopkThreads;
// 0 past count). For slices of at most kTopkKeysPerThread * kTopkThreads keys.
__device__ __forceinline__ void LoadHeld(const uint64_t* keys, uint32_t count, uint64_t (&held)[kTopkKeysPerThread]) {
#pragma unroll
  for (int j = 0; j < kTopkKeysPerThread; ++j) {
    const uint32_t i = threadIdx.x + static_cast<uint32_t>(j) * kTopkThreads;
    held[j] = i < count ? keys[i] : 0;
  }
}

// Visits the keys LoadHeld holds as f(key, index, valid) (valid: index < count).
template <typename F>
__device__ __forceinline__ void ForHeld(const uint64_t (&held)[kTopkKeysPerThread], uint32_t count, F&& f) {
#pragma unroll
  for (int j = 0; j < kTopkKeysPerThread; ++j) {
    const uint32_t i = threadIdx.x + static_cast<uint32_t>(j) * kTopkThreads;
    f(held[j], i, i < count);
  }
}

// This thread's smallest and largest score key (a key's high word) among the valid keys that
// for_keys visits (as ForHeld does); (~0, 0) when it has none.
template <typename ForKeys>
__device__ __forceinline__ uint2 ThreadBounds(ForKeys&& for_keys) {
  uint2 b = make_uint2(~0u, 0u);
  for_keys([&](uint64_t key, uint32_t, bool valid) {
    if (valid) {
      b.x = min(b.x, static_cast<uint32_t>(key >> 32));
      b.y = max(b.y, static_cast<uint32_t>(key >> 32));
    }
  });
  return b;
}

// The block's smallest and largest score key (the keys' high words) from each thread's (ThreadBounds):
// StoreWarpBounds reduces each warp's and its lane 0 stores them (warp_lo / warp_hi: kTopkThreads /
// kWarp each, in shared memory); after a barrier, BlockBounds reads every warp's. Called by the whole block.
__device__ __forceinline__ void StoreWarpBounds(uint2 bounds, uint32_t* warp_lo, uint32_t* warp_hi) {
  const uint32_t lo = ~WarpMax(~bounds.x);
  const uint32_t hi = WarpMax(bounds.y);
  if ((threadIdx.x & (kWarp - 1)) == 0) {
    warp_lo[threadIdx.x / kWarp] = lo;
    warp_hi[threadIdx.x / kWarp] = hi;
  }
}
__device__ __forceinline__ uint2 BlockBounds(const uint32_t* warp_lo, const uint32_t* warp_hi) {
  uint32_t lo = ~0u, hi = 0u;
#pragma unroll
  for (int w = 0; w < kTopkThreads / kWarp; ++w) {
    lo = min(lo, warp_lo[w]);
    hi = max(hi, warp_hi[w]);
  }
  return make_uint2(lo, hi);
}

template <typename Emit>
__device__ uint32_t TakeBest(const SelectState& st, int s, uint32_t k, Emit&& emit) {
  constexpr bool kBounds = std::decay_t<Emit>::kBounds;
  constexpr int kWarps = kTopkThreads / kWarp;
  __shared__ uint32_t warp_sum[kWarps];
  __shared__ uint32_t hist[kTakeBins];
  __shared__ uint32_t shared[3];
  __shared__ uint32_t taken;
  __shared__ uint32_t warp_lo[kBounds ? kWarps : 1], warp_hi[kBounds ? kWarps : 1];
  const uint32_t count = min(st.count[s], st.capacity);
  const uint64_t* keys = st.keys + static_cast<size_t>(s) * st.capacity;

  // The slice's keys, visited as f(key, index, valid): held in registers when they fit
  // (kTopkKeysPerThread a thread: read once), else read from the select buffer at each visit.
  const bool held_in_registers = count <= static_cast<uint32_t>(kTopkKeysPerThread * kTopkThreads);
  uint64_t held[kTopkKeysPerThread];
  if (held_in_registers) LoadHeld(keys, count, held);
  auto for_keys = [&](auto&& f) {
    if (held_in_registers) {
      ForHeld(held, count, f);
    } else {
      for (uint32_t i = threadIdx.x; i < count; i += blockDim.x) f(keys[i], i, true);
    }
  };

  // Each warp's smallest and largest score key, read by every thread after the next barrier.
  if constexpr (kBounds) StoreWarpBounds(ThreadBounds(for_keys), warp_lo, warp_hi);

  uint64_t prefix = 0, mask = 0;
  if (count > k) {
    uint32_t m = k;
    for (int top = 64; top > 0;) {
      const int width = min(kTakeBits, top);
      const int shift = top - width;
      const uint32_t digit_mask = (1u << width) - 1u;
      hist[2 * threadIdx.x] = 0;
      hist[2 * threadIdx.x + 1] = 0;
      __syncthreads();
      for_keys([&](uint64_t key, uint32_t, bool valid) {
        WarpHistAdd(hist, static_cast<uint32_t>(key >> shift) & digit_mask, valid && (key & mask) == prefix);
      });
      __syncthreads();
      // The digit holding the m-th smallest key: a block scan of the bins, two a thread.
      const uint32_t c0 = hist[2 * threadIdx.x], c1 = hist[2 * threadIdx.x + 1];
      const uint32_t below = BlockExclusiveSum<kTopkThreads>(c0 + c1, warp_sum);
      if (below < m && m <= below + c0 + c1) {
        const bool first = m <= below + c0;
        const uint32_t c = first ? c0 : c1;
        const uint32_t within = m - below - (first ? 0u : c0);
        shared[0] = 2 * threadIdx.x + (first ? 0u : 1u);
        shared[1] = within;
        shared[2] = within == c ? 1u : 0u;  // the whole bin is wanted: done
      }
      __syncthreads();
      prefix |= static_cast<uint64_t>(shared[0]) << shift;
      mask |= static_cast<uint64_t>(digit_mask) << shift;
      m = shared[1];
      const bool done = shared[2] != 0;
      __syncthreads();
      if (done) break;
      top = shift;
    }
  }

  RK_TRACE_POINT(kTraceTopkRadix);
  if (threadIdx.x == 0) taken = 0;
  __syncthreads();
  if constexpr (kBounds) {
    const uint2 bounds = BlockBounds(warp_lo, warp_hi);
    // The taken keys are at most prefix | ~mask (all of them when there was no round: mask 0).
    emit.Begin(bounds.x, count > k ? min(bounds.y, static_cast<uint32_t>((prefix | ~mask) >> 32)) : bounds.y);
  }
  for_keys([&](uint64_t key, uint32_t, bool valid) {
    const bool take = valid && (key & mask) <= prefix;
    const uint32_t j = WarpAppend(&taken, take, __activemask());
    if (take) emit(j, key);
  });
  __syncthreads();
  return taken;
}

// TakeBest's emit for blocks that keep the taken keys in shared memory.
struct StoreTaken {
  static constexpr bool kBounds = false;
  uint64_t* keys;
  __device__ __forceinline__ void operator()(uint32_t j, uint64_t key) const { keys[j] = key; }
};

// A candidate's decode inputs, loaded ahead of the decode: its anchor, its deltas, its row and label.
struct Pending {
  Box anchor;
  float d[4];
  uint32_t row, label;
};

// The decode inputs of the candidate of level l of image n whose rank key is `key` (its order part
// names the element).
__device__ __forceinline__ Pending LoadPending(const DecodeArgs& args, int n, int l, uint64_t key) {
  const HeadArgs& h = args.heads;
  Pending c;
  h.FromOrder(l, static_cast<uint32_t>(key), args.candidate_order, &c.row, &c.label);
  if (args.anchors != nullptr) {
    const float* a = args.anchors + (args.anchors_per_image ? static_cast<int64_t>(n) * h.total_anchors * 4 : 0) +
                     (h.level_anchor_offset[l] + c.row) * 4;
    c.anchor = Box{a[0], a[1], a[2], a[3]};
  } else {
    c.anchor = DeviceGridAnchor(args.grid, h, l, c.row);
  }
#pragma unroll
  for (int j = 0; j < 4; ++j) c.d[j] = LoadDelta(h, h.box, n, l, c.row, j);
  return c;
}

// Decodes (and clips) the candidate `c` of level l of image n, whose rank key is `key`, into
// candidate slot `slot`; a NaN box is recorded in the error record. Returns the box.
__device__ __forceinline__ Box FinishDecode(const DecodeArgs& args, int n, int l, const Pending& c, uint64_t key, size_t slot,
                                            const DeviceCandidates& out, int32_t* error) {
  const HeadArgs& h = args.heads;
  const float score = FromOrderedBits(~static_cast<uint32_t>(key >> 32));
  const float canvas_w = static_cast<float>(h.width[l] * args.grid.stride_x[l]);
  const float canvas_h = static_cast<float>(h.height[l] * args.grid.stride_y[l]);
  Box b = DecodeBox(c.anchor, c.d[0], c.d[1], c.d[2], c.d[3], args.decode, canvas_w, canvas_h);
  if (args.decode.clip == ClipMode::kImageBeforeNms) {
    b = ClipBox(b, static_cast<float>(args.image_sizes[2 * n]), static_cast<float>(args.image_sizes[2 * n + 1]));
  }
  if (isnan(b.x1) || isnan(b.y1) || isnan(b.x2) || isnan(b.y2)) {
    if (atomicCAS(&error[0], 0, 1) == 0) {
      error[1] = n;
      error[2] = l;
      error[3] = static_cast<int32_t>(c.row);
      error[4] = static_cast<int32_t>(c.label);
      error[5] = (isnan(c.anchor.x1) || isnan(c.anchor.y1) || isnan(c.anchor.x2) || isnan(c.anchor.y2)) ? 1 : 0;
    }
  }
  out.scores[slot] = score;
  out.labels[slot] = static_cast<int32_t>(c.label);
  reinterpret_cast<float4*>(out.boxes)[slot] = make_float4(b.x1, b.y1, b.x2, b.y2);
  return b;
}

// The sort path: one block per (image, level) takes the k best, sorts them in shared memory and
// decodes candidate r of the level into slot level * k + r.
__global__ void __launch_bounds__(kTopkThreads) TopkDecodeKernel(DecodeArgs args, SelectState st, DeviceCandidates out,
                                                                 int32_t* error) {
  extern __shared__ uint64_t smem[];
  RK_TRACE_KERNEL(kTraceTopk);
  WaitPrevious();  // the select pass's keys and counts
  AllowNext();
  const int l = blockIdx.x, n = blockIdx.y;
  const int s = n * args.heads.levels + l;
  const uint32_t k = static_cast<uint32_t>(out.topk);
  // The taken keys, padded with ~0 to a power of two, sorted (bitonic network).
  uint64_t* skeys = smem;
  const uint32_t m = TakeBest(st, s, k, StoreTaken{skeys});
  if (threadIdx.x == 0) out.level_counts[s] = static_cast<int32_t>(m);
  const uint32_t width = SortSlots(m);
  for (uint32_t j = m + threadIdx.x; j < width; j += blockDim.x) skeys[j] = ~uint64_t{0};
  __syncthreads();
  RK_TRACE_POINT(kTraceTopkCompact);
  if (width <= blockDim.x) {
    SortHeld(skeys, width);
  } else {
    for (uint32_t size = 2; size <= width; size <<= 1) {
      for (uint32_t stride = size >> 1; stride > 0; stride >>= 1) {
        for (uint32_t t = threadIdx.x; t < width / 2; t += blockDim.x) {
          const uint32_t i = 2 * t - (t & (stride - 1)), j = i + stride;
          const uint64_t ki = skeys[i], kj = skeys[j];
          if ((ki > kj) == ((i & size) == 0)) {
            skeys[i] = kj;
            skeys[j] = ki;
          }
        }
        __syncthreads();
      }
    }
  }
  RK_TRACE_POINT(kTraceTopkSorted);
  for (uint32_t rank = threadIdx.x; rank < m; rank += blockDim.x) {
    FinishDecode(args, n, l, LoadPending(args, n, l, skeys[rank]), skeys[rank],
                 static_cast<size_t>(n) * out.slots_per_image + static_cast<size_t>(l) * k + rank, out, error);
  }
}

// The bucket of score key u in a slice whose taken keys span [lo, lo + (kBuckets << shift)): buckets
// are monotone in u, and keys outside the span fall in the first or the last.
__device__ __forceinline__ uint32_t BucketOf(uint32_t u, uint32_t lo, uint32_t shift) {
  return u < lo ? 0u : min((u - lo) >> shift, static_cast<uint32_t>(kBuckets - 1));
}

// The shift of kBuckets buckets from lo that span score keys up to hi: kBuckets << shift > hi - lo.
__device__ __forceinline__ uint32_t SpanShift(uint32_t lo, uint32_t hi) {
  const uint32_t width = lo <= hi ? hi - lo : 0u;
  const int bits = 32 - __clz(width);
  return bits > kBucketBits ? static_cast<uint32_t>(bits - kBucketBits) : 0u;
}

// TakeBest's emit for the count path: stores the taken key in shared memory and counts it in its
// bucket (kBuckets buckets from lo, 1 << shift score keys each, spanning TakeBest's bounds).
struct BucketTaken {
  static constexpr bool kBounds = true;
  uint64_t* keys;
  uint32_t* bucket;  // shared, zeroed
  uint32_t lo = 0, shift = 0;
  __device__ __forceinline__ void Begin(uint32_t lo_bound, uint32_t hi_bound) {
    lo = lo_bound;
    shift = SpanShift(lo_bound, hi_bound);
  }
  __device__ __forceinline__ void operator()(uint32_t j, uint64_t key) const {
    keys[j] = key;
    WarpHistAdd(bucket, BucketOf(static_cast<uint32_t>(key >> 32), lo, shift), true);
  }
};

// The starts of buckets b0 and b0 + 1 of slice s (counts c0 and the next, `before` them), capped at the
// m keys taken: in the hand-off, and in `bucket` as the cursors of the keys' places. Thread 0 also stores
// the span (lo, shift) and the slice's count.
__device__ __forceinline__ void StoreStarts(uint32_t* bucket, const TakenKeys& tk, int s, uint32_t b0, uint32_t before, uint32_t c0,
                                            uint32_t m, uint32_t lo, uint32_t shift, const DeviceCandidates& out) {
  uint32_t* start = tk.bucket_start + static_cast<size_t>(s) * (kBuckets + 1);
  bucket[b0] = start[b0] = min(before, m);
  bucket[b0 + 1] = start[b0 + 1] = min(before + c0, m);
  if (threadIdx.x == 0) {
    start[kBuckets] = m;
    tk.span[s] = make_uint2(lo, shift);
    out.level_counts[s] = static_cast<int32_t>(m);
  }
}

// The place in the hand-off of a key of bucket b, for lanes with `mine`: one shared atomic on the
// bucket's cursor per bucket of the warp (ties share a bucket), places within it by lane. Called by
// the whole warp.
__device__ __forceinline__ uint32_t BucketPlace(uint32_t* cursor, uint32_t b, bool mine) {
  const uint32_t peers = __match_any_sync(0xFFFFFFFFu, mine ? b : static_cast<uint32_t>(kBuckets));
  const int leader = __ffs(peers) - 1;
  const uint32_t lane = threadIdx.x & (kWarp - 1);
  uint32_t at = 0;
  if (mine && static_cast<int>(lane) == leader) at = atomicAdd(&cursor[b], static_cast<uint32_t>(__popc(peers)));
  return __shfl_sync(0xFFFFFFFFu, at, leader) + static_cast<uint32_t>(__popc(peers & ((1u << lane) - 1u)));
}

// The count path's top-k in one histogram (the span path), for slices whose keys fit in registers:
// the slice's keys are counted in the hand-off's kBuckets buckets, spanning the slice's own score
// keys; the exclusive scan of the counts gives every bucket's start and the bucket that holds the
// k-th smallest key (the boundary). The keys of the buckets below it are all taken: each goes from
// registers to its bucket's place. The boundary bucket's keys (at most kSpanEdgeKeys) are staged in
// shared memory and ranked among themselves; the first `need` of them are taken, each at its bucket's
// start plus its rank. Returns false where the slice is too large for registers or its boundary bucket
// holds more keys (ties, or scores packed into one bucket), leaving `bucket` zeroed for the radix path
// (TakeBest). Called by the whole block (kTopkThreads; `bucket` zeroed before it); the result is
// block-uniform.
constexpr uint32_t kSpanEdgeKeys = 256;

__device__ bool SpanTake(const SelectState& st, int s, uint32_t k, const DeviceCandidates& out, const TakenKeys& tk,
                         uint32_t* bucket) {
  constexpr int kWarps = kTopkThreads / kWarp;
  __shared__ uint32_t warp_lo[kWarps], warp_hi[kWarps], warp_sum[kWarps];
  __shared__ uint64_t edge[kSpanEdgeKeys];
  __shared__ uint32_t boundary[3];  // the boundary bucket, its start, the keys taken from it
  __shared__ uint32_t edge_count[2];  // its keys (from the counts), staged so far
  const uint32_t count = min(st.count[s], st.capacity);
  if (count > static_cast<uint32_t>(kTopkKeysPerThread * kTopkThreads)) return false;
  const uint64_t* keys = st.keys + static_cast<size_t>(s) * st.capacity;
  uint64_t held[kTopkKeysPerThread];
  LoadHeld(keys, count, held);
  auto for_held = [&](auto&& f) { ForHeld(held, count, f); };
  StoreWarpBounds(ThreadBounds(for_held), warp_lo, warp_hi);
  if (threadIdx.x == 0) {  // no boundary unless the scan finds one (count <= k: every key taken)
    boundary[0] = kBuckets;
    boundary[1] = boundary[2] = 0;
    edge_count[0] = edge_count[1] = 0;
  }
  __syncthreads();
  const uint2 bounds = BlockBounds(warp_lo, warp_hi);
  const uint32_t lo = bounds.x;
  const uint32_t shift = SpanShift(lo, bounds.y);
  for_held([&](uint64_t key, uint32_t, bool valid) {
    if (valid) atomicAdd(&bucket[BucketOf(static_cast<uint32_t>(key >> 32), lo, shift)], 1u);
  });
  __syncthreads();
  RK_TRACE_POINT(kTraceTopkRadix);
  // Bucket starts, two buckets a thread (kBuckets = 2 * kTopkThreads); past the boundary, m.
  const uint32_t m = min(count, k);
  const uint32_t b0 = 2 * threadIdx.x;
  const uint32_t c0 = bucket[b0], c1 = bucket[b0 + 1];
  const uint32_t before = BlockExclusiveSum<kTopkThreads>(c0 + c1, warp_sum);
  if (count > k && before < k && k <= before + c0 + c1) {
    const bool first = k <= before + c0;
    boundary[0] = first ? b0 : b0 + 1;
    boundary[1] = first ? before : before + c0;
    boundary[2] = k - boundary[1];
    edge_count[0] = first ? c0 : c1;
  }
  __syncthreads();  // every count read, the boundary known
  if (edge_count[0] > kSpanEdgeKeys) {  // block-uniform: the radix path takes the slice
    bucket[b0] = 0;
    bucket[b0 + 1] = 0;
    __syncthreads();
    return false;
  }
  StoreStarts(bucket, tk, s, b0, before, c0, m, lo, shift, out);
  const uint32_t edge_bucket = boundary[0];
  __syncthreads();
  RK_TRACE_POINT(kTraceTopkCompact);
  // The keys below the boundary to their buckets (a shared atomic on the bucket's cursor for each key;
  // the order within a bucket does not matter), the boundary's to the staging.
  const size_t first = static_cast<size_t>(s) * k;
  for_held([&](uint64_t key, uint32_t, bool valid) {
    const uint32_t b = valid ? BucketOf(static_cast<uint32_t>(key >> 32), lo, shift) : kBuckets;
    if (b < edge_bucket) tk.keys[first + atomicAdd(&bucket[b], 1u)] = key;
    const bool staged = valid && b == edge_bucket;
    const uint32_t e = WarpAppend(&edge_count[1], staged, 0xFFFFFFFFu);
    if (staged) edge[e] = key;
  });
  __syncthreads();
  RK_TRACE_POINT(kTraceTopkBucketed);
  // The boundary bucket's keys ranked among themselves (keys are unique): its first boundary[2] are taken.
  const uint32_t edge_keys = edge_count[0];
  if (threadIdx.x < edge_keys) {
    const uint64_t key = edge[threadIdx.x];
    uint32_t rank = 0;
    for (uint32_t i = 0; i < edge_keys; ++i) rank += edge[i] < key ? 1u : 0u;
    if (rank < boundary[2]) tk.keys[first + boundary[1] + rank] = key;
  }
  RK_TRACE_POINT(kTraceTopkScattered);
  return true;
}

// The count path, first half: one block per (image, level) takes the k best keys and stores them
// bucketed by score key (a counting sort on kBuckets buckets spanning the taken keys' score keys;
// order within a bucket is arbitrary), with each bucket's start, so that the rank stage counts the
// keys before any score in a few loads.
// Also zeroes its share (1 / levels) of the image's class bitmaps when there are any (class_bits: image_words
// words an image, a multiple of four), for the rank kernel that follows: the previous run's greedy
// blocks, which read them, ended before this run's first kernel started.
template <bool kClassBits>
__global__ void __launch_bounds__(kTopkThreads) TopkTakeKernel(SelectState st, DeviceCandidates out, TakenKeys tk, int32_t levels,
                                                               uint32_t* class_bits, int32_t image_words, bool use_span) {
  __shared__ uint32_t warp_sum[kTopkThreads / kWarp];
  __shared__ uint32_t bucket[kBuckets];
  extern __shared__ uint64_t smem[];
  RK_TRACE_KERNEL(kTraceTopk);
  WaitPrevious();  // the select pass's keys and counts
  AllowNext();
  RK_TRACE_POINT(kTraceTopkWaited);
  const int s = static_cast<int>(blockIdx.y) * levels + static_cast<int>(blockIdx.x);
  const uint32_t k = static_cast<uint32_t>(out.topk);
  uint64_t* skeys = smem;
  for (int b = threadIdx.x; b < kBuckets; b += blockDim.x) bucket[b] = 0;  // before TakeBest's barriers
  if constexpr (kClassBits) {
    const int32_t quads = image_words / 4, share = (quads + levels - 1) / levels;
    uint4* rows = reinterpret_cast<uint4*>(class_bits + static_cast<size_t>(blockIdx.y) * image_words);
    const int32_t end = min(quads, (static_cast<int32_t>(blockIdx.x) + 1) * share);
    for (int32_t i = static_cast<int32_t>(blockIdx.x) * share + static_cast<int32_t>(threadIdx.x); i < end; i += kTopkThreads) {
      rows[i] = make_uint4(0u, 0u, 0u, 0u);
    }
  }
  if (!use_span || !SpanTake(st, s, k, out, tk, bucket)) {  // the radix path
    BucketTaken emit{skeys, bucket};
    const uint32_t m = TakeBest(st, s, k, emit);  // counted in their buckets as they are taken
    RK_TRACE_POINT(kTraceTopkCompact);
    const uint32_t b0 = 2 * threadIdx.x;
    const uint32_t c0 = bucket[b0], c1 = bucket[b0 + 1];
    const uint32_t before = BlockExclusiveSum<kTopkThreads>(c0 + c1, warp_sum);
    __syncthreads();  // every count read before the cursors overwrite them
    StoreStarts(bucket, tk, s, b0, before, c0, m, emit.lo, emit.shift, out);
    __syncthreads();
    RK_TRACE_POINT(kTraceTopkBucketed);
    const size_t first = static_cast<size_t>(s) * k;
    for (uint32_t j0 = 0; j0 < m; j0 += blockDim.x) {
      const uint32_t j = j0 + threadIdx.x;
      const bool mine = j < m;
      const uint64_t key = mine ? skeys[j] : 0;
      const uint32_t at = BucketPlace(bucket, BucketOf(static_cast<uint32_t>(key >> 32), emit.lo, emit.shift), mine);
      if (mine) tk.keys[first + at] = key;
    }
  }
  RK_TRACE_POINT(kTraceTopkScattered);
}

constexpr uint32_t kCountBatch = 2;  // keys of a bucket loaded at once per level (the loads of a round overlap)

// The count path, second half: one thread per taken candidate of the image (in (level, bucket)
// order). Its rank in its level is the number of its level's keys below its own; its score rank in
// the image adds, for every other level, the candidates that come first (a higher score, or an
// equal score in a lower level). Then it decodes the candidate into its slot (level * k + rank in
// level) and, when `ranked`, leaves what the NMS stages read: the slot of each rank, the label of each rank,
// a zeroed kept mark and the block's coordinate range.
template <bool kClassBits>
__global__ void __launch_bounds__(kCountCandidates) CountRankKernel(DecodeArgs args, TakenKeys tk, DeviceCandidates out,
                                                                    NmsScratch sc, bool ranked, int32_t* error) {
  __shared__ int32_t base[kMaxLevels + 1];
  __shared__ uint2 span[kMaxLevels];
  RK_TRACE_KERNEL(kTraceRank);
  WaitPrevious();  // the taken keys and level counts
  AllowNext();
  const int n = blockIdx.y, L = args.heads.levels, S = out.slots_per_image;
  const uint32_t k = static_cast<uint32_t>(out.topk);
  if (threadIdx.x < L) {  // loaded side by side
    base[threadIdx.x + 1] = out.level_counts[n * L + threadIdx.x];
    span[threadIdx.x] = tk.span[n * L + threadIdx.x];
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    base[0] = 0;
    for (int l = 0; l < L; ++l) base[l + 1] += base[l];
  }
  __syncthreads();
  RK_TRACE_POINT(kTraceRankBase);
  const int32_t valid = base[L];
  if (ranked && blockIdx.x == 0 && threadIdx.x == 0) {
    sc.info[n * 4 + 0] = valid;
    sc.info[n * 4 + 1] = (valid + kCountCandidates - 1) / kCountCandidates;  // the blocks that leave a coordinate range
    sc.done[n] = 0;  // greedy blocks done (GreedyKernel)
  }
  const int32_t c = static_cast<int32_t>(blockIdx.x) * kCountCandidates + static_cast<int32_t>(threadIdx.x);
  if (static_cast<int32_t>(blockIdx.x) * kCountCandidates >= valid) return;  // the whole block
  uint32_t hi = 0, lo = 0;  // OrderedBits of the largest coordinate, ~OrderedBits of the smallest (0: none)
  if (c < valid) {
    int l = 0;
    while (c >= base[l + 1]) ++l;
    const size_t image_slices = static_cast<size_t>(n) * L;
    const uint64_t key = tk.keys[(image_slices + l) * k + (c - base[l])];
    const Pending pending = LoadPending(args, n, l, key);  // the box's loads overlap the counting
    const uint32_t u = static_cast<uint32_t>(key >> 32);  // score keys never reach ~0u: u + 1 does not wrap
    // Per level o: the keys before x are those of the buckets below t's (a bucket start) and those of
    // t's bucket that compare below, where t = x's score key (own level: the full keys compare) or,
    // for a lower level, the next score key up (equal scores of lower levels come first). Every
    // level's loads are issued side by side, then its bucket's keys kCountBatch at a time.
    uint32_t t[kMaxLevels], count[kMaxLevels], end[kMaxLevels];
#pragma unroll
    for (int o = 0; o < kMaxLevels; ++o) {
      count[o] = end[o] = 0;
      t[o] = o < l ? u + 1 : u;
      if (o < L) {
        const uint32_t* start = tk.bucket_start + (image_slices + o) * (kBuckets + 1);
        const uint32_t b = BucketOf(t[o], span[o].x, span[o].y);
        count[o] = start[b];
        end[o] = start[b + 1];
      }
    }
    uint32_t first[kMaxLevels];
#pragma unroll
    for (int o = 0; o < kMaxLevels; ++o) first[o] = count[o];
    for (uint32_t r = 0;; r += kCountBatch) {  // kCountBatch keys of every level's bucket loaded side by side
      uint64_t y[kMaxLevels][kCountBatch];
#pragma unroll
      for (int o = 0; o < kMaxLevels; ++o) {
#pragma unroll
        for (int b = 0; b < kCountBatch; ++b) {
          const uint32_t at = first[o] + r + b;
          y[o][b] = at < end[o] ? tk.keys[(image_slices + o) * k + at] : 0;
        }
      }
      bool more = false;
#pragma unroll
      for (int o = 0; o < kMaxLevels; ++o) {
#pragma unroll
        for (int b = 0; b < kCountBatch; ++b) {
          if (first[o] + r + b < end[o]) {
            count[o] += o == l ? static_cast<uint32_t>(y[o][b] < key)
                               : static_cast<uint32_t>(static_cast<uint32_t>(y[o][b] >> 32) < t[o]);
          }
        }
        more |= first[o] + r + kCountBatch < end[o];
      }
      if (!more) break;
    }
    uint32_t in_level = 0, before = 0;
#pragma unroll
    for (int o = 0; o < kMaxLevels; ++o) {
      if (o == l) in_level = count[o];
      else before += count[o];
    }
    RK_TRACE_POINT(kTraceRankSearched);
    const int32_t rank = static_cast<int32_t>(before + in_level);
    const int32_t slot = l * static_cast<int32_t>(k) + static_cast<int32_t>(in_level);
    const Box b = FinishDecode(args, n, l, pending, key, static_cast<size_t>(n) * S + slot, out, error);
    if (ranked) {
      const size_t image = static_cast<size_t>(n) * S;
      const uint32_t label = pending.label;
      sc.by_rank[image + rank] = slot;
      const int32_t g = min(static_cast<int32_t>(label), args.heads.classes - 1);
      if constexpr (kClassBits) {  // the member lists: bit `rank` of row (n, g)
        atomicOr(sc.class_bits + (static_cast<size_t>(n) * args.heads.classes + g) * sc.class_words + (rank >> 5),
                 1u << (rank & 31));
      } else {
        sc.rank_label[static_cast<size_t>(n) * sc.label_stride + rank] = static_cast<uint16_t>(g);
      }
      sc.kept[image + rank] = 0;
      AddToRange(b.x1, b.y1, b.x2, b.y2, hi, lo);
    }
  }
  if (ranked) WriteRangePart(hi, lo, sc.range_part, sc.range_parts, n);  // block-uniform
}

}  // namespace

// What a device that refuses a top-k kernel its shared memory was expected to give.
constexpr char kTopkSharedExpected[] = "topk_candidates whose top-k fits in shared memory on this device";

size_t TopkSharedBytes(int32_t k) { return static_cast<size_t>(SortSlots(static_cast<uint32_t>(k))) * sizeof(uint64_t); }

// The candidate path: thread 0 of the block walks the level's list as the host core does (the same
// tests in the same order, and whether the kept ones are in ranking order), the block decodes them.
__global__ void __launch_bounds__(kTopkThreads) CandidateDecodeKernel(SelectParams sp, DecodeArgs args, DeviceCandidateLists c,
                                                                      DeviceCandidates out, int32_t* positions, int32_t* error) {
  __shared__ uint32_t kept;
  const int l = blockIdx.x, n = blockIdx.y;
  const HeadArgs& h = args.heads;
  const int s = n * h.levels + l;
  const uint32_t k = static_cast<uint32_t>(out.topk);
  int32_t* pos = positions + static_cast<size_t>(s) * k;
  if (threadIdx.x == 0) {
    const int64_t begin = c.offsets[s] - c.first, end = c.offsets[s + 1] - c.first;
    const uint32_t K = static_cast<uint32_t>(h.classes), A = static_cast<uint32_t>(h.anchors);
    const int64_t hw = static_cast<int64_t>(h.height[l]) * h.width[l];
    const int64_t level_anchors = hw * A;
    const float thresh = static_cast<float>(sp.score_thresh);
    const bool logits = sp.score_input == ScoreInput::kLogits;
    bool descending = true;
    for (int64_t i = begin; i < end && descending; ++i) descending = c.values[i] == c.values[i] && (i == begin || c.values[i] <= c.values[i - 1]);
    uint32_t m = 0;
    bool ordered = true, valid = true;
    float prev_score = 0.0f;
    int64_t prev_order = 0;
    for (int64_t i = begin; i < end; ++i) {
      const float v = c.values[i];
      const float score = logits ? SigmoidF32(v) : v;
      if (!(score > thresh)) {
        if (descending) break;
        continue;
      }
      const int32_t row = c.rows[i], label = c.labels[i];
      if (row < 0 || row >= level_anchors || label < 0 || label >= static_cast<int32_t>(K)) {
        valid = false;  // the host path reports it
        break;
      }
      if (sp.class_thresh != nullptr && !(score > sp.class_thresh[label])) continue;
      const int64_t order = sp.candidate_order == CandidateOrder::kAnchorMajor
                                ? static_cast<int64_t>(row) * K + label
                                : (static_cast<int64_t>(row % A) * K + label) * hw + row / A;
      // Ranking order within a level: score descending, then order ascending (RanksBefore).
      if (m > 0 && !(prev_score > score || (prev_score == score && prev_order < order))) ordered = false;
      if (m < k) pos[m] = static_cast<int32_t>(i);
      ++m;
      prev_score = score;
      prev_order = order;
    }
    // A cut list whose class thresholds leave fewer than k: the host path reports it.
    bool cut_short = sp.class_thresh != nullptr && c.list_cap > 0 && end - begin >= c.list_cap && m < k;
    if (cut_short) {  // as the host core: only when a cut candidate (below the lowest kept) could pass
      float lowest = INFINITY;
      for (int64_t i = begin; i < end; ++i) lowest = fminf(lowest, logits ? SigmoidF32(c.values[i]) : c.values[i]);
      cut_short = thresh < lowest;
    }
    if (!ordered || !valid || cut_short) atomicExch(&error[kErrorHostWord], 1);
    kept = m < k ? m : k;
    out.level_counts[s] = static_cast<int32_t>(kept);
  }
  __syncthreads();
  for (uint32_t r = threadIdx.x; r < kept; r += blockDim.x) {
    const int64_t i = pos[r];
    Pending pd;
    pd.row = static_cast<uint32_t>(c.rows[i]);
    pd.label = static_cast<uint32_t>(c.labels[i]);
    pd.anchor = c.anchors != nullptr ? Box{c.anchors[4 * i], c.anchors[4 * i + 1], c.anchors[4 * i + 2], c.anchors[4 * i + 3]}
                                     : DeviceGridAnchor(args.grid, h, l, pd.row);
#pragma unroll
    for (int j = 0; j < 4; ++j) pd.d[j] = c.deltas[4 * i + j];
    const float v = c.values[i];
    const float score = sp.score_input == ScoreInput::kLogits ? SigmoidF32(v) : v;
    FinishDecode(args, n, l, pd, RankKey(score, 0u), static_cast<size_t>(n) * out.slots_per_image + static_cast<size_t>(l) * k + r, out, error);
  }
}

Status LaunchCandidateDecode(const SelectParams& sp, const DecodeArgs& args, const DeviceCandidateLists& lists,
                             const DeviceCandidates& out, int32_t* positions, int32_t* error, cudaStream_t stream) {
  if (cudaMemsetAsync(error, 0, kErrorWords * sizeof(int32_t), stream) != cudaSuccess) return LastError("error record");
  CandidateDecodeKernel<<<dim3(args.heads.levels, args.heads.batch), kTopkThreads, 0, stream>>>(sp, args, lists, out, positions, error);
  return LastError("candidate lists: select + decode");
}

Status LaunchTopkDecode(const DecodeArgs& args, const SelectState& st, const DeviceCandidates& out, int32_t* error,
                        cudaStream_t stream) {
  const size_t smem = TopkSharedBytes(out.topk);
  RK_RETURN_IF_ERROR(AllowSharedBytes(reinterpret_cast<const void*>(TopkDecodeKernel), smem, kTopkSharedExpected));
  const cudaError_t e = LaunchChained(true, TopkDecodeKernel, dim3(args.heads.levels, args.heads.batch), dim3(kTopkThreads), smem,
                                      stream, args, st, out, error);
  RK_RETURN_IF_ERROR(CudaStatus("top-k + decode", e));
  return LastError("top-k + decode");
}

Status LaunchTopkTake(const SelectState& st, const DeviceCandidates& out, const TakenKeys& tk, const NmsScratch* ranks,
                      int32_t batch, int32_t levels, int32_t classes, cudaStream_t stream) {
  const size_t smem = static_cast<size_t>(out.topk) * sizeof(uint64_t);
  uint32_t* bits = ranks != nullptr ? ranks->class_bits : nullptr;
  const int32_t image_words = bits != nullptr ? classes * ranks->class_words : 0;
  auto* kernel = bits != nullptr ? TopkTakeKernel<true> : TopkTakeKernel<false>;
  RK_RETURN_IF_ERROR(AllowSharedBytes(reinterpret_cast<const void*>(kernel), smem, kTopkSharedExpected));
  // RK_CUDA_TOPK=radix: every slice by the radix path (for tests and comparisons; chosen at launch).
  const char* forced = std::getenv("RK_CUDA_TOPK");
  const bool use_span = forced == nullptr || std::strcmp(forced, "radix") != 0;
  const cudaError_t e = LaunchChained(true, kernel, dim3(levels, batch), dim3(kTopkThreads), smem, stream, st, out, tk, levels, bits,
                                      image_words, use_span);
  RK_RETURN_IF_ERROR(CudaStatus("top-k", e));
  return LastError("top-k");
}

int32_t CountRangeParts(int32_t slots) { return (slots + kCountCandidates - 1) / kCountCandidates; }

Status LaunchCountRank(const DecodeArgs& args, const TakenKeys& tk, const DeviceCandidates& out, const NmsScratch* ranks,
                       int32_t* error, cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>(CountRangeParts(out.slots_per_image)), static_cast<unsigned>(args.heads.batch));
  auto* kernel = ranks != nullptr && ranks->class_bits != nullptr ? CountRankKernel<true> : CountRankKernel<false>;
  const cudaError_t e = LaunchChained(true, kernel, grid, dim3(kCountCandidates), 0, stream, args, tk, out,
                                      ranks != nullptr ? *ranks : NmsScratch{}, ranks != nullptr, error);
  RK_RETURN_IF_ERROR(CudaStatus("rank + decode", e));
  return LastError("rank + decode");
}

}  // namespace cuda
}  // namespace rk
