// Device helpers shared by the CUDA stages: ordered keys, warp-aggregated appends, head addressing.
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "launch.h"
#include "rk/math.h"

namespace rk {
namespace cuda {

constexpr int kWarp = 32;

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
};

HeadArgs MakeHeadArgs(const DeviceHeads& in);

}  // namespace cuda
}  // namespace rk
