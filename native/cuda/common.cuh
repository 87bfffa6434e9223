// Device helpers shared by the CUDA stages: ordered keys, warp-aggregated appends, head addressing.
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <utility>

#include "rk/cuda_launch.h"
#include "rk/math.h"

namespace rk {
namespace cuda {

constexpr int kWarp = 32;

// Programmatic dependent launch (sm_90 and newer). The stages are a chain of small kernels on one
// stream; a kernel launched with LaunchChained may be scheduled while the kernel before it is still
// running (once every block of that one has called AllowNext or exited), so its launch and its
// prologue overlap the previous kernel's tail. Rules that keep this exact:
// - WaitPrevious() before reading anything the previous kernel wrote, and before any write;
// - every block calls WaitPrevious() before it exits, so that a kernel's completion implies the
//   completion of every kernel before it (the chain stays transitive);
// - only data written before the chain's first kernel (launched plainly) is read before the wait.
// Both are no-ops on older devices and when the kernel was launched plainly.
__device__ __forceinline__ void WaitPrevious() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}
__device__ __forceinline__ void AllowNext() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

// Whether LaunchChained overlaps kernels on the current device: sm_90 or newer, unless the
// environment sets RK_CUDA_PDL=0 (plain stream order, for comparison and diagnosis).
bool ChainedLaunches();
// RK_CUDA_SPLIT=1 (for measuring; default off): the engine runs a batch as one chain of kernels per
// image, each on a stream of its own priority.
bool SplitImages();
// The priority that this thread's stage launches carry as a launch attribute (0, the default: none).
// The engine's per-image chains set it around each chain's launches, so that a captured graph keeps
// each chain's priority.
int& LaunchPriority();

// Launches kernel<<<grid, block, smem, stream>>>(args...), as a programmatic dependent of the
// previous kernel of the stream when `chained` and ChainedLaunches(); the kernel must follow the
// rules of WaitPrevious.
// `cooperative`: a cooperative launch (every block resident at once, for grid-wide barriers).
template <typename... Params, typename... Args>
cudaError_t LaunchChainedAs(bool chained, bool cooperative, void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem,
                            cudaStream_t stream, Args&&... args) {
  cudaLaunchConfig_t config{};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = smem;
  config.stream = stream;
  cudaLaunchAttribute attribute[3];
  unsigned n = 0;
  if (LaunchPriority() != 0) {
    attribute[n].id = cudaLaunchAttributePriority;
    attribute[n].val.priority = LaunchPriority();
    ++n;
  }
  if (chained && ChainedLaunches()) {
    attribute[n].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attribute[n].val.programmaticStreamSerializationAllowed = 1;
    ++n;
  }
  if (cooperative) {
    attribute[n].id = cudaLaunchAttributeCooperative;
    attribute[n].val.cooperative = 1;
    ++n;
  }
  config.attrs = n > 0 ? attribute : nullptr;
  config.numAttrs = n;
  return cudaLaunchKernelEx(&config, kernel, std::forward<Args>(args)...);
}

template <typename... Params, typename... Args>
cudaError_t LaunchChained(bool chained, void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem, cudaStream_t stream,
                          Args&&... args) {
  return LaunchChainedAs(chained, false, kernel, grid, block, smem, stream, std::forward<Args>(args)...);
}

#ifdef RK_CUDA_TRACE
// Diagnostic builds only (cmake -DRK_CUDA_TRACE=ON): global-timer stamps of the kernels and of
// points inside them, read back and printed on stderr by the engine after each run.
namespace trace {
constexpr int kSlots = 35;
constexpr int kTraceClockSlot = 28;
struct Slot {
  unsigned long long first;  // earliest block to reach the point (or start the kernel); ~t on the device
  unsigned long long last;   // latest block to reach it (or to end the kernel)
};
static __device__ Slot g_slots[kSlots];  // one copy per translation unit (no separable compilation)
__device__ __forceinline__ unsigned long long Now() {
  unsigned long long t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}
__device__ __forceinline__ void Point(int id) {
  if (threadIdx.x == 0) {
    const unsigned long long t = Now();
    atomicMax(&g_slots[id].first, ~t);  // zero-initialised: the max of ~t is the min of t
    atomicMax(&g_slots[id].last, t);
  }
}
// A kernel's span: first block start (slot id) to last warp end (slot id + 1).
// `on`: whether this block stamps (the select pass's thousands of blocks stamp one in 64, whose
// atomics would otherwise slow it; the next kernel's start bounds its end).
struct Scope {
  int id;
  bool on;
  __device__ explicit Scope(int i, bool o = true) : id(i), on(o) {
    if (on) Point(i);
  }
  __device__ ~Scope() {
    if (on && (threadIdx.x & 31) == 0) atomicMax(&g_slots[id + 1].last, Now());
  }
};
// Slots kTraceClock and kTraceClock + 1: the global timer and the SM clock (clock64) of one thread
// at two points, for the SM clock rate; slot kTraceClock + 2: cycles of 8 dependent L2 loads.
__device__ __forceinline__ void Clock(int which) {
  g_slots[kTraceClockSlot + which].first = ~Now();
  g_slots[kTraceClockSlot + which].last = static_cast<unsigned long long>(clock64());
}
__device__ __forceinline__ void LoadLatency(const uint32_t* p) {
  const long long c0 = clock64();
  uint32_t i = 0;
#pragma unroll 1
  for (int r = 0; r < 8; ++r) i = *(volatile const uint32_t*)(p + (i & 1u));  // each load waits for the last
  const long long c1 = clock64();
  g_slots[kTraceClockSlot + 2].first = ~static_cast<unsigned long long>(c1 - c0);
  g_slots[kTraceClockSlot + 2].last = 1;
}
using Reader = void (*)(Slot* out);  // merges this unit's slots into out and resets them
void Register(Reader r);
static void ReadSlots(Slot* out) {
  Slot s[kSlots];
  cudaMemcpyFromSymbol(s, g_slots, sizeof(s));
  for (int i = 0; i < kSlots; ++i) {
    if (s[i].last != 0) out[i] = Slot{~s[i].first, s[i].last};
    s[i] = Slot{0, 0};
  }
  cudaMemcpyToSymbol(g_slots, s, sizeof(s));
}
static const bool g_registered = (Register(&ReadSlots), true);
}  // namespace trace
#define RK_TRACE_KERNEL(id) ::rk::cuda::trace::Scope rk_trace_scope_(id)
#define RK_TRACE_KERNEL_SAMPLED(id, on) ::rk::cuda::trace::Scope rk_trace_scope_(id, on)
#define RK_TRACE_POINT(id) ::rk::cuda::trace::Point(id)
#define RK_TRACE_CLOCK(which) ::rk::cuda::trace::Clock(which)
#define RK_TRACE_LOAD_LATENCY(p) ::rk::cuda::trace::LoadLatency(p)
#else
#define RK_TRACE_CLOCK(which)
#define RK_TRACE_LOAD_LATENCY(p)
#define RK_TRACE_KERNEL(id)
#define RK_TRACE_KERNEL_SAMPLED(id, on)
#define RK_TRACE_POINT(id)
#endif
// Trace slots: a kernel takes two (start, end), points one.
enum TraceId {
  kTraceEstimate = 2, kTraceEstimateStaged = 13, kTraceEstimateRound = 24,
  kTraceSelect = 4, kTraceFallback = 6,
  kTraceTopk = 8, kTraceTopkWaited = 31, kTraceTopkRadix = 10, kTraceTopkCompact = 11, kTraceTopkSorted = 12,
  kTraceRank = 14, kTraceGreedy = 16, kTraceGreedyGathered = 18, kTraceGreedyMask = 19,
  kTraceWrite = 20, kTraceGreedyWalked = 21, kTraceGreedyDone = 27,
  kTraceRankBase = 22, kTraceRankStaged = 23, kTraceRankSearched = 25, kTraceGreedyCounted = 26,
  kTraceGreedyWaited = 32, kTraceGreedyLabels = 33, kTraceGreedyRanges = 34,
  kTraceTopkBucketed = 0, kTraceTopkScattered = 1,
};

// Unsigned key whose ascending order is the float's ascending order (NaN mapped below everything).
__device__ __forceinline__ uint32_t OrderedBits(float f) {
  if (f != f) return 0u;
  const uint32_t b = __float_as_uint(f);
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

__device__ __forceinline__ float FromOrderedBits(uint32_t k) {
  const uint32_t b = (k & 0x80000000u) ? (k & 0x7FFFFFFFu) : ~k;
  return __uint_as_float(b);
}

// Sort key of a candidate: ascending = score descending, then `order` ascending.
__device__ __forceinline__ uint64_t RankKey(float score, uint32_t order) {
  return (static_cast<uint64_t>(~OrderedBits(score)) << 32) | order;
}

// Appends one item per predicate-true lane: returns its index from *counter (warp-aggregated).
__device__ __forceinline__ uint32_t WarpAppend(uint32_t* counter, bool pred, uint32_t active) {
  const uint32_t mask = __ballot_sync(active, pred);
  if (mask == 0) return 0;
  const int leader = __ffs(mask) - 1;
  const int lane = threadIdx.x & (kWarp - 1);
  uint32_t base = 0;
  if (lane == leader) base = atomicAdd(counter, static_cast<uint32_t>(__popc(mask)));
  base = __shfl_sync(active, base, leader);
  return base + static_cast<uint32_t>(__popc(mask & ((1u << lane) - 1u)));
}

// The largest x over the warp's lanes, to every lane (a butterfly; every lane calls it). The
// smallest: ~WarpMax(~x).
__device__ __forceinline__ uint32_t WarpMax(uint32_t x) {
  for (int off = kWarp / 2; off > 0; off >>= 1) x = max(x, __shfl_xor_sync(0xFFFFFFFFu, x, off));
  return x;
}

// The sum of x over lanes 0 .. lane of the warp (a shuffle scan; every lane calls it).
template <typename T>
__device__ __forceinline__ T WarpInclusiveSum(T x, int lane) {
  for (int off = 1; off < kWarp; off <<= 1) {
    const T up = __shfl_up_sync(0xFFFFFFFFu, x, off);
    if (lane >= off) x += up;
  }
  return x;
}

// The sum of x over the threads before this one in the block (threadIdx.x order): a shuffle scan in
// each warp, then every warp scans the warps' sums (kThreads a multiple of kWarp, at most kWarp warps).
// `warp_sum` holds kThreads / kWarp values in shared memory. Called by the whole block; the caller puts
// a barrier between this call and the next write of warp_sum.
template <int kThreads>
__device__ __forceinline__ uint32_t BlockExclusiveSum(uint32_t x, uint32_t* warp_sum) {
  constexpr int kWarps = kThreads / kWarp;
  static_assert(kThreads % kWarp == 0 && kWarps <= kWarp, "whole warps, at most a warp of them");
  const int lane = static_cast<int>(threadIdx.x & (kWarp - 1)), warp = static_cast<int>(threadIdx.x / kWarp);
  const uint32_t in_warp = WarpInclusiveSum(x, lane);
  if (lane == kWarp - 1) warp_sum[warp] = in_warp;
  __syncthreads();
  const uint32_t through = WarpInclusiveSum(lane < kWarps ? warp_sum[lane] : 0u, lane);
  const uint32_t warps_before = __shfl_sync(0xFFFFFFFFu, through, (warp + kWarp - 1) & (kWarp - 1));
  return (warp > 0 ? warps_before : 0u) + in_warp - x;
}

// Adds 1 to hist[bin] for each lane with `take`, one atomic per distinct bin of the warp (keys that
// share a bin are common in radix selects, and shared-memory atomics on one address serialise).
__device__ __forceinline__ void WarpHistAdd(uint32_t* hist, uint32_t bin, bool take) {
  const uint32_t active = __activemask();
  const uint32_t voters = __ballot_sync(active, take);
  if (!take) return;
  const uint32_t peers = __match_any_sync(voters, bin);
  if ((threadIdx.x & (kWarp - 1)) == static_cast<unsigned>(__ffs(peers) - 1)) atomicAdd(&hist[bin], static_cast<uint32_t>(__popc(peers)));
}

__device__ __forceinline__ float LoadValue(const void* base, DType dtype, int64_t i) {
  if (dtype == DType::kFloat32) return static_cast<const float*>(base)[i];
  return HalfToFloat(static_cast<const uint16_t*>(base)[i]);
}

// What every select-side kernel needs to address the heads, passed by value.
struct HeadArgs {
  DType dtype;
  Layout layout;
  int32_t batch, levels, anchors, classes;
  int32_t height[kMaxLevels], width[kMaxLevels];
  int64_t level_anchor_offset[kMaxLevels];  // first row of level l (concatenated layout)
  int64_t level_elements[kMaxLevels];       // H*W*A*K
  int64_t total_anchors;                    // sum(HWA)
  const void* cls[kMaxLevels];
  const void* box[kMaxLevels];

  // The class head slice of image n, level l: HWA*K elements in storage order.
  __device__ __forceinline__ const void* Slice(int n, int l) const {
    const size_t elem = dtype == DType::kFloat32 ? 4 : 2;
    if (layout == Layout::kConcatenated) {  // [N, sum(HWA), K]
      return static_cast<const uint8_t*>(cls[0]) + ((n * total_anchors + level_anchor_offset[l]) * classes) * elem;
    }
    return static_cast<const uint8_t*>(cls[l]) + (n * level_elements[l]) * elem;  // [N, A*K, H, W]
  }

  // Row (y*W + x)*A + a and label of storage position pos of level l.
  __device__ __forceinline__ void Decompose(int l, uint32_t pos, uint32_t* row, uint32_t* label) const {
    const uint32_t K = static_cast<uint32_t>(classes);
    if (layout == Layout::kConcatenated) {  // pos = row*K + k
      *row = pos / K;
      *label = pos - *row * K;
    } else {  // pos = ((a*K + k)*H + y)*W + x
      const uint32_t hw = static_cast<uint32_t>(height[l]) * static_cast<uint32_t>(width[l]);
      const uint32_t channel = pos / hw;
      const uint32_t loc = pos - channel * hw;
      const uint32_t a = channel / K;
      *label = channel - a * K;
      *row = loc * static_cast<uint32_t>(anchors) + a;
    }
  }

  // Tie-break key of (row, label) in the preset's candidate order.
  __device__ __forceinline__ uint32_t Order(int l, uint32_t row, uint32_t label, CandidateOrder order) const {
    const uint32_t K = static_cast<uint32_t>(classes);
    if (order == CandidateOrder::kAnchorMajor) return row * K + label;
    const uint32_t A = static_cast<uint32_t>(anchors);
    const uint32_t hw = static_cast<uint32_t>(height[l]) * static_cast<uint32_t>(width[l]);
    return ((row % A) * K + label) * hw + row / A;
  }

  // (row, label) of a tie-break key: Order's inverse, so that a candidate's rank key alone says
  // which element it is (the key's low 32 bits).
  __device__ __forceinline__ void FromOrder(int l, uint32_t order, CandidateOrder o, uint32_t* row, uint32_t* label) const {
    const uint32_t K = static_cast<uint32_t>(classes);
    if (o == CandidateOrder::kAnchorMajor) {  // order = row*K + label
      *row = order / K;
      *label = order - *row * K;
      return;
    }
    const uint32_t A = static_cast<uint32_t>(anchors);  // order = (a*K + label)*hw + loc, row = loc*A + a
    const uint32_t hw = static_cast<uint32_t>(height[l]) * static_cast<uint32_t>(width[l]);
    const uint32_t channel = order / hw;
    const uint32_t loc = order - channel * hw;
    const uint32_t a = channel / K;
    *label = channel - a * K;
    *row = loc * A + a;
  }
};

HeadArgs MakeHeadArgs(const DeviceHeads& in);

}  // namespace cuda
}  // namespace rk
