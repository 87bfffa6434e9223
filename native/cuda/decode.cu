// Per-level top-k of the selected candidates, then decode + clip of exactly those boxes.
//
// One block per (image, level). The select pass left at most `capacity` keys of the slice; when
// more than k, the k-th smallest 64-bit rank key is radix-selected (rounds of 8-bit digits from the
// top, stopping once the k-th's digit bin is wanted whole; keys are unique because the order part
// is), the k best are compacted into shared memory and sorted (a bitonic network over the next power
// of two: one key per thread, partners within a warp exchanged by shuffles, when it fits the block).
// The candidate of rank r is then decoded by thread r (mod the block) and written to its slot
// (level * k + r) of the image: the NMS stage reads the slots in this order.
#include <cub/block/block_scan.cuh>

#include <cmath>
#include <string>

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

// Sorts width (a power of two, at most the block size) keys with their positions, ascending: the
// bitonic network with one element per thread, partners within a warp exchanged by shuffles and
// those further apart through shared memory. Called by the whole block; ends after a barrier.
__device__ void SortHeld(uint64_t* skeys, uint32_t* spos, uint32_t width) {
  const uint32_t t = threadIdx.x;
  const bool mine = t < width;
  uint64_t key = mine ? skeys[t] : ~uint64_t{0};
  uint32_t p = mine ? spos[t] : 0u;
  for (uint32_t size = 2; size <= width; size <<= 1) {
    for (uint32_t stride = size >> 1; stride > 0; stride >>= 1) {
      uint64_t other;
      uint32_t other_pos;
      if (stride >= static_cast<uint32_t>(kWarp)) {  // block-uniform
        __syncthreads();
        if (mine) {
          skeys[t] = key;
          spos[t] = p;
        }
        __syncthreads();
        other = mine ? skeys[t ^ stride] : key;
        other_pos = mine ? spos[t ^ stride] : p;
      } else {
        other = __shfl_xor_sync(0xFFFFFFFFu, key, stride);
        other_pos = __shfl_xor_sync(0xFFFFFFFFu, p, stride);
      }
      // The lower element of an ascending pair keeps the smaller key (keys are unique but for the padding).
      const bool keep_min = ((t & stride) == 0) == ((t & size) == 0);
      if (keep_min ? other < key : other > key) {
        key = other;
        p = other_pos;
      }
    }
  }
  __syncthreads();
  if (mine) {
    skeys[t] = key;
    spos[t] = p;
  }
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

__global__ void __launch_bounds__(kTopkThreads) TopkDecodeKernel(DecodeArgs args, SelectState st, DeviceCandidates out,
                                                                 int32_t* error) {
  using Scan = cub::BlockScan<uint32_t, kTopkThreads>;
  __shared__ typename Scan::TempStorage scan;
  extern __shared__ uint64_t smem[];
  __shared__ uint32_t hist[256];
  __shared__ uint32_t shared[3];
  __shared__ uint32_t taken;
  RK_TRACE_KERNEL(kTraceTopk);
  WaitPrevious();  // the select pass's keys and counts
  AllowNext();
  const HeadArgs& h = args.heads;
  const int l = blockIdx.x, n = blockIdx.y;
  const int s = n * h.levels + l;
  const uint32_t k = static_cast<uint32_t>(out.topk);
  const uint32_t count = min(st.count[s], st.capacity);
  const uint64_t* keys = st.keys + static_cast<size_t>(s) * st.capacity;
  const uint32_t* pos = st.pos + static_cast<size_t>(s) * st.capacity;

  // The slice's keys, visited as f(key, index, valid): held in registers when they fit
  // (kTopkKeysPerThread a thread: read once), else read from the select buffer at each visit.
  const bool held_in_registers = count <= static_cast<uint32_t>(kTopkKeysPerThread * kTopkThreads);
  uint64_t held[kTopkKeysPerThread];
  if (held_in_registers) {
#pragma unroll
    for (int j = 0; j < kTopkKeysPerThread; ++j) {
      const uint32_t i = threadIdx.x + static_cast<uint32_t>(j) * kTopkThreads;
      held[j] = i < count ? keys[i] : 0;
    }
  }
  auto for_keys = [&](auto&& f) {
    if (held_in_registers) {
#pragma unroll
      for (int j = 0; j < kTopkKeysPerThread; ++j) {
        const uint32_t i = threadIdx.x + static_cast<uint32_t>(j) * kTopkThreads;
        f(held[j], i, i < count);
      }
    } else {
      for (uint32_t i = threadIdx.x; i < count; i += blockDim.x) f(keys[i], i, true);
    }
  };

  // The k best keys are those whose top bits, under `mask`, are at most `prefix`: radix rounds of 8
  // bits from the top find the digit of the k-th smallest key, and stop early once that digit's bin
  // is wanted whole (keys are unique, since their order part is).
  uint64_t prefix = 0, mask = 0;
  if (count > k) {
    uint32_t m = k;
    for (int r = 0; r < 8; ++r) {
      const int shift = 56 - 8 * r;
      for (int b = threadIdx.x; b < 256; b += blockDim.x) hist[b] = 0;
      __syncthreads();
      for_keys([&](uint64_t key, uint32_t, bool valid) {
        WarpHistAdd(hist, static_cast<uint32_t>((key >> shift) & 255u), valid && (key & mask) == prefix);
      });
      __syncthreads();
      // The digit holding the m-th smallest key: a block scan of the 256 bins.
      const uint32_t c = threadIdx.x < 256 ? hist[threadIdx.x] : 0u;
      uint32_t below = 0;
      Scan(scan).ExclusiveSum(c, below);
      if (threadIdx.x < 256 && below < m && m <= below + c) {
        shared[0] = threadIdx.x;
        shared[1] = m - below;
        shared[2] = m - below == c ? 1u : 0u;  // the whole bin is wanted: done
      }
      __syncthreads();
      prefix |= static_cast<uint64_t>(shared[0]) << shift;
      mask |= uint64_t{255} << shift;
      m = shared[1];
      const bool done = shared[2] != 0;
      __syncthreads();
      if (done) break;
    }
  }

  RK_TRACE_POINT(kTraceTopkRadix);
  // The taken keys, padded with ~0 to a power of two, sorted (bitonic network).
  uint64_t* skeys = smem;
  uint32_t* spos = reinterpret_cast<uint32_t*>(smem + SortSlots(k));
  if (threadIdx.x == 0) taken = 0;
  __syncthreads();
  for_keys([&](uint64_t key, uint32_t i, bool valid) {
    const bool take = valid && (key & mask) <= prefix;
    const uint32_t j = WarpAppend(&taken, take, __activemask());
    if (take) {
      skeys[j] = key;
      spos[j] = pos[i];
    }
  });
  __syncthreads();
  const uint32_t m = taken;
  if (threadIdx.x == 0) out.level_counts[s] = static_cast<int32_t>(m);
  const uint32_t width = SortSlots(m);
  for (uint32_t j = m + threadIdx.x; j < width; j += blockDim.x) skeys[j] = ~uint64_t{0};
  __syncthreads();
  RK_TRACE_POINT(kTraceTopkCompact);
  if (width <= blockDim.x) {
    SortHeld(skeys, spos, width);
  } else {
    for (uint32_t size = 2; size <= width; size <<= 1) {
      for (uint32_t stride = size >> 1; stride > 0; stride >>= 1) {
        for (uint32_t t = threadIdx.x; t < width / 2; t += blockDim.x) {
          const uint32_t i = 2 * t - (t & (stride - 1)), j = i + stride;
          const uint64_t ki = skeys[i], kj = skeys[j];
          if ((ki > kj) == ((i & size) == 0)) {
            skeys[i] = kj;
            skeys[j] = ki;
            const uint32_t pi = spos[i];
            spos[i] = spos[j];
            spos[j] = pi;
          }
        }
        __syncthreads();
      }
    }
  }

  RK_TRACE_POINT(kTraceTopkSorted);
  const int32_t image_h = args.image_sizes[2 * n], image_w = args.image_sizes[2 * n + 1];
  const float canvas_w = static_cast<float>(h.width[l] * args.grid.stride_x[l]);
  const float canvas_h = static_cast<float>(h.height[l] * args.grid.stride_y[l]);
  for (uint32_t rank = threadIdx.x; rank < m; rank += blockDim.x) {
    const uint64_t key = skeys[rank];
    uint32_t row, label;
    h.Decompose(l, spos[rank], &row, &label);
    const float score = FromOrderedBits(~static_cast<uint32_t>(key >> 32));
    Box anchor;
    if (args.anchors != nullptr) {
      const float* a = args.anchors + (args.anchors_per_image ? static_cast<int64_t>(n) * h.total_anchors * 4 : 0) +
                       (h.level_anchor_offset[l] + row) * 4;
      anchor = Box{a[0], a[1], a[2], a[3]};
    } else {
      anchor = DeviceGridAnchor(args.grid, h, l, row);
    }
    const float d0 = LoadDelta(h, h.box, n, l, row, 0), d1 = LoadDelta(h, h.box, n, l, row, 1);
    const float d2 = LoadDelta(h, h.box, n, l, row, 2), d3 = LoadDelta(h, h.box, n, l, row, 3);
    Box b = DecodeBox(anchor, d0, d1, d2, d3, args.decode, canvas_w, canvas_h);
    if (args.decode.clip == ClipMode::kImageBeforeNms) {
      b = ClipBox(b, static_cast<float>(image_h), static_cast<float>(image_w));
    }
    if (isnan(b.x1) || isnan(b.y1) || isnan(b.x2) || isnan(b.y2)) {
      if (atomicCAS(&error[0], 0, 1) == 0) {
        error[1] = n;
        error[2] = l;
        error[3] = static_cast<int32_t>(row);
        error[4] = static_cast<int32_t>(label);
        error[5] = (isnan(anchor.x1) || isnan(anchor.y1) || isnan(anchor.x2) || isnan(anchor.y2)) ? 1 : 0;
      }
    }
    const size_t slot = static_cast<size_t>(n) * out.slots_per_image + static_cast<size_t>(l) * k + rank;
    out.scores[slot] = score;
    out.labels[slot] = static_cast<int32_t>(label);
    reinterpret_cast<float4*>(out.boxes)[slot] = make_float4(b.x1, b.y1, b.x2, b.y2);
  }
}

}  // namespace

size_t TopkSharedBytes(int32_t k) { return static_cast<size_t>(SortSlots(static_cast<uint32_t>(k))) * (sizeof(uint64_t) + sizeof(uint32_t)); }

Status LaunchTopkDecode(const DecodeArgs& args, const SelectState& st, const DeviceCandidates& out, int32_t* error,
                        cudaStream_t stream) {
  const size_t smem = TopkSharedBytes(out.topk);
  if (smem > 48 * 1024) {
    const cudaError_t e = cudaFuncSetAttribute(TopkDecodeKernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
    if (e != cudaSuccess) {
      return Status(Code::kInvalidArgument, "Expected topk_candidates whose top-k fits in shared memory on this device (" +
                                                std::to_string(smem) + " bytes asked) but the device refused: " +
                                                cudaGetErrorString(e));
    }
  }
  const cudaError_t e = LaunchChained(true, TopkDecodeKernel, dim3(args.heads.levels, args.heads.batch), dim3(kTopkThreads), smem,
                                      stream, args, st, out, error);
  RK_RETURN_IF_ERROR(CudaStatus("top-k + decode", e));
  return LastError("top-k + decode");
}

}  // namespace cuda
}  // namespace rk
