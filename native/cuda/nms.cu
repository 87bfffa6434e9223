// Class-aware NMS, final sort, cap and write on the GPU (SPEC 1(5), 2(5), 3(5)); the same
// semantics as native/cpu/nms.cpp and the output loop of native/cpu/pipeline.cpp.
//
// 1. Rank (one block per image): the candidates arrive as L sorted runs (slot = level*k + rank);
//    the score rank of each (score desc, ties by slot) is its rank in its run plus, in each other
//    run, how many rank before it (binary searches). The image's coordinate range picks the path
//    torchvision's batched_nms would take (coordinate trick on shifted boxes, or per class on the
//    boxes), and the candidates are grouped by NMS group (the class, or one group) keeping score
//    order: a histogram, a scan, and a stable scatter by one warp with __match_any_sync.
// 2. Greedy (one warp per image and group): the group's boxes in score order; a kept box marks
//    the later boxes of its group it suppresses, 32 at a time.
// 3. Write (one block per image): kept boxes in score order, capped at D, then (Detectron2)
//    rescaled, clipped and emptied boxes dropped, through two block scans; zeros past the count.
#include <cub/block/block_scan.cuh>

#include <cmath>

#include "common.cuh"
#include "stages_cuda.cuh"

namespace rk {
namespace cuda {
namespace {

size_t Align(size_t b) { return (b + 255) & ~static_cast<size_t>(255); }

constexpr int kRankThreads = 1024;
constexpr int kWriteThreads = 1024;
constexpr int kGreedyWarps = 8;

__device__ __forceinline__ int32_t RunCountAtLeast(const float* run, int32_t cnt, float s) {  // score' >= s
  int32_t lo = 0, hi = cnt;
  while (lo < hi) {
    const int32_t mid = (lo + hi) >> 1;
    if (run[mid] >= s) lo = mid + 1; else hi = mid;
  }
  return lo;
}

__device__ __forceinline__ int32_t RunCountAbove(const float* run, int32_t cnt, float s) {  // score' > s
  int32_t lo = 0, hi = cnt;
  while (lo < hi) {
    const int32_t mid = (lo + hi) >> 1;
    if (run[mid] > s) lo = mid + 1; else hi = mid;
  }
  return lo;
}

struct NmsArgs {
  NmsParams nms;
  int32_t pixel_offset;
  int32_t levels;
  int32_t classes;
};

__global__ void __launch_bounds__(kRankThreads) RankKernel(NmsArgs a, DeviceCandidates in, NmsScratch sc) {
  __shared__ int32_t base[kMaxLevels + 1];
  __shared__ float red_max[kWarp], red_min[kWarp];
  __shared__ int32_t shared_info[4];
  const int n = blockIdx.x;
  const int S = in.slots_per_image, k = in.topk, L = a.levels;
  const int lane = threadIdx.x & (kWarp - 1), warp = threadIdx.x / kWarp;
  const float* scores = in.scores + static_cast<size_t>(n) * S;
  const float4* boxes = reinterpret_cast<const float4*>(in.boxes) + static_cast<size_t>(n) * S;
  const int32_t* labels = in.labels + static_cast<size_t>(n) * S;
  int32_t* rank_of_slot = sc.rank_of_slot + static_cast<size_t>(n) * S;
  int32_t* by_rank = sc.by_rank + static_cast<size_t>(n) * S;
  int32_t* fill = sc.group_fill + static_cast<size_t>(n) * (a.classes + 1);
  int32_t* start = sc.group_start + static_cast<size_t>(n) * (a.classes + 1);
  if (threadIdx.x == 0) {
    base[0] = 0;
    for (int l = 0; l < L; ++l) base[l + 1] = base[l] + in.level_counts[n * L + l];
  }
  for (int g = threadIdx.x; g <= a.classes; g += blockDim.x) fill[g] = 0;
  __syncthreads();
  const int32_t valid = base[L];

  // Score ranks and the coordinate range.
  float hi = -INFINITY, lo = INFINITY;
  for (int32_t j = threadIdx.x; j < valid; j += blockDim.x) {
    int l = 0;
    while (j >= base[l + 1]) ++l;
    const int32_t r = j - base[l];
    const int32_t slot = l * k + r;
    const float s = scores[slot];
    int32_t rank = r;
    for (int o = 0; o < L; ++o) {
      if (o == l) continue;
      const int32_t cnt = base[o + 1] - base[o];
      rank += o < l ? RunCountAtLeast(scores + o * k, cnt, s) : RunCountAbove(scores + o * k, cnt, s);
    }
    rank_of_slot[slot] = rank;
    by_rank[rank] = slot;
    const float4 b = boxes[slot];
    hi = MaxLikeStd(MaxLikeStd(hi, b.x), MaxLikeStd(MaxLikeStd(b.y, b.z), b.w));
    lo = MinLikeStd(MinLikeStd(lo, b.x), MinLikeStd(MinLikeStd(b.y, b.z), b.w));
  }
  for (int off = kWarp / 2; off > 0; off >>= 1) {
    hi = MaxLikeStd(hi, __shfl_xor_sync(0xFFFFFFFFu, hi, off));
    lo = MinLikeStd(lo, __shfl_xor_sync(0xFFFFFFFFu, lo, off));
  }
  if (lane == 0) {
    red_max[warp] = hi;
    red_min[warp] = lo;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    float h = -INFINITY, m = INFINITY;
    for (int w = 0; w < static_cast<int>(blockDim.x / kWarp); ++w) {
      h = MaxLikeStd(h, red_max[w]);
      m = MinLikeStd(m, red_min[w]);
    }
    // The path batched_nms takes for this many boxes on the emulated device.
    bool trick = false, per_class = true;
    if (a.nms.algorithm == NmsAlgorithm::kTorchvisionBatched) {
      const int64_t vanilla_above = a.nms.torchvision_device == NmsDevice::kCpu ? 4000 : 100000;
      trick = static_cast<int64_t>(valid) * 4 <= vanilla_above;
      per_class = !trick || m >= 0.0f;
    }
    shared_info[0] = trick ? 1 : 0;
    shared_info[1] = per_class ? 1 : 0;
    red_max[0] = h + 1.0f;  // the shift span
    sc.info[n * 4 + 0] = valid;
    sc.info[n * 4 + 1] = per_class ? a.classes : 1;
  }
  __syncthreads();
  const bool trick = shared_info[0] != 0, per_class = shared_info[1] != 0;
  const float span = red_max[0];
  const float off = static_cast<float>(a.pixel_offset);
  for (int32_t j = threadIdx.x; j < valid; j += blockDim.x) {
    int l = 0;
    while (j >= base[l + 1]) ++l;
    const int32_t slot = l * k + (j - base[l]);
    float4 b = boxes[slot];
    if (trick) {
      const float shift = static_cast<float>(labels[slot]) * span;
      b = make_float4(b.x + shift, b.y + shift, b.z + shift, b.w + shift);
    }
    sc.nms_box[static_cast<size_t>(n) * S + slot] = b;
    sc.area[static_cast<size_t>(n) * S + slot] = BoxArea(Box{b.x, b.y, b.z, b.w}, off);
    sc.kept[static_cast<size_t>(n) * S + j] = 0;
    atomicAdd(&fill[per_class ? labels[slot] : 0], 1);
  }
  __syncthreads();
  // Group starts (exclusive scan by one warp), then a stable scatter in score order.
  const int groups = per_class ? a.classes : 1;
  if (warp == 0) {
    int32_t carry = 0;
    for (int g0 = 0; g0 <= groups; g0 += kWarp) {
      const int g = g0 + lane;
      const int32_t v = g < groups ? fill[g] : 0;
      int32_t x = v;
      for (int off2 = 1; off2 < kWarp; off2 <<= 1) {
        const int32_t y = __shfl_up_sync(0xFFFFFFFFu, x, off2);
        if (lane >= off2) x += y;
      }
      if (g <= groups) start[g] = carry + x - v;
      carry += __shfl_sync(0xFFFFFFFFu, x, kWarp - 1);
    }
    __syncwarp();
    for (int g = lane; g < groups; g += kWarp) fill[g] = 0;
    __syncwarp();
    int32_t* grouped = sc.grouped + static_cast<size_t>(n) * S;
    for (int32_t r0 = 0; r0 < valid; r0 += kWarp) {
      const int32_t r = r0 + lane;
      const int32_t slot = r < valid ? by_rank[r] : -1;
      const int g = r < valid ? (per_class ? labels[slot] : 0) : -1 - lane;
      const uint32_t peers = __match_any_sync(0xFFFFFFFFu, g);
      const int32_t before = __popc(peers & ((1u << lane) - 1u));
      if (r < valid) {
        const int32_t p = start[g] + fill[g] + before;
        grouped[p] = slot;
        sc.suppressed[static_cast<size_t>(n) * S + p] = 0;
      }
      __syncwarp();
      if (r < valid && (peers >> lane) == 1u) fill[g] += __popc(peers);  // the highest peer
      __syncwarp();
    }
  }
}

__global__ void __launch_bounds__(kGreedyWarps * kWarp) GreedyKernel(NmsArgs a, int32_t slots, int32_t batch, NmsScratch sc) {
  const int lane = threadIdx.x & (kWarp - 1);
  const int64_t w = static_cast<int64_t>(blockIdx.x) * kGreedyWarps + threadIdx.x / kWarp;
  const int n = static_cast<int>(w / a.classes), g = static_cast<int>(w % a.classes);
  if (n >= batch || g >= sc.info[n * 4 + 1]) return;
  const int32_t* start = sc.group_start + static_cast<size_t>(n) * (a.classes + 1);
  const int32_t g0 = start[g], g1 = start[g + 1];
  if (g0 == g1) return;
  const size_t base = static_cast<size_t>(n) * slots;
  const int32_t* grouped = sc.grouped + base;
  uint8_t* sup = sc.suppressed + base;
  const float off = static_cast<float>(a.pixel_offset);
  for (int32_t p = g0; p < g1; ++p) {
    if (sup[p]) continue;
    const int32_t i = grouped[p];
    if (lane == 0) sc.kept[base + sc.rank_of_slot[base + i]] = 1;
    const float4 bi = sc.nms_box[base + i];
    const Box ki{bi.x, bi.y, bi.z, bi.w};
    const float ai = sc.area[base + i];
    for (int32_t q = p + 1 + lane; q < g1; q += kWarp) {
      if (sup[q]) continue;
      const int32_t j = grouped[q];
      const float4 bj = sc.nms_box[base + j];
      if (!(MinLikeStd(bi.z, bj.z) - MaxLikeStd(bi.x, bj.x) + off > 0.0f) ||
          !(MinLikeStd(bi.w, bj.w) - MaxLikeStd(bi.y, bj.y) + off > 0.0f)) {
        continue;
      }
      if (Suppresses(Iou(ki, ai, Box{bj.x, bj.y, bj.z, bj.w}, sc.area[base + j], off), a.nms.iou_thresh,
                     a.nms.compare_in_double)) {
        sup[q] = 1;
      }
    }
    __syncwarp();
  }
}

__device__ __forceinline__ void StoreOut(void* p, DType t, size_t i, float v) {
  if (t == DType::kFloat32) {
    static_cast<float*>(p)[i] = v;
  } else {
    static_cast<__half*>(p)[i] = __float2half_rn(v);
  }
}

struct WriteArgs {
  ClipMode clip;
  bool remove_empty;
  const int32_t* image_sizes;   // device, for kOutputAfterNms
  const int32_t* output_sizes;  // device, optional
};

__global__ void __launch_bounds__(kWriteThreads) WriteKernel(WriteArgs a, DeviceCandidates in, NmsScratch sc,
                                                             DeviceDetections out) {
  using Scan = cub::BlockScan<int32_t, kWriteThreads>;
  __shared__ typename Scan::TempStorage scan_storage;
  const int n = blockIdx.x;
  const int32_t S = in.slots_per_image, D = out.max_detections;
  const int32_t valid = sc.info[n * 4 + 0];
  const size_t base = static_cast<size_t>(n) * S;
  int32_t kept_before = 0, written = 0;
  for (int32_t r0 = 0; r0 < valid && kept_before < D; r0 += kWriteThreads) {
    const int32_t r = r0 + static_cast<int32_t>(threadIdx.x);
    const int32_t flag = (r < valid && sc.kept[base + r]) ? 1 : 0;
    int32_t prefix = 0, total = 0;
    Scan(scan_storage).ExclusiveSum(flag, prefix, total);
    __syncthreads();
    Box b{0, 0, 0, 0};
    float score = 0.0f;
    int32_t label = 0, keep = 0;
    if (flag && kept_before + prefix < D) {
      const int32_t slot = sc.by_rank[base + r];
      const float4 q = reinterpret_cast<const float4*>(in.boxes)[base + slot];
      b = Box{q.x, q.y, q.z, q.w};
      score = in.scores[base + slot];
      label = in.labels[base + slot];
      if (a.clip == ClipMode::kOutputAfterNms) {
        const int32_t ih = a.image_sizes[2 * n], iw = a.image_sizes[2 * n + 1];
        float out_h = static_cast<float>(ih), out_w = static_cast<float>(iw);
        if (a.output_sizes != nullptr) {
          const int32_t oh = a.output_sizes[2 * n], ow = a.output_sizes[2 * n + 1];
          const float sx = static_cast<float>(static_cast<double>(ow) / iw);
          const float sy = static_cast<float>(static_cast<double>(oh) / ih);
          b = Box{b.x1 * sx, b.y1 * sy, b.x2 * sx, b.y2 * sy};
          out_h = static_cast<float>(oh);
          out_w = static_cast<float>(ow);
        }
        b = ClipBox(b, out_h, out_w);
      }
      keep = (!a.remove_empty || ((b.x2 - b.x1) > 0.0f && (b.y2 - b.y1) > 0.0f)) ? 1 : 0;
    }
    int32_t at = 0, total_written = 0;
    Scan(scan_storage).ExclusiveSum(keep, at, total_written);
    __syncthreads();
    if (keep) {
      const size_t o = static_cast<size_t>(n) * D + written + at;
      StoreOut(out.boxes, out.dtype, o * 4 + 0, b.x1);
      StoreOut(out.boxes, out.dtype, o * 4 + 1, b.y1);
      StoreOut(out.boxes, out.dtype, o * 4 + 2, b.x2);
      StoreOut(out.boxes, out.dtype, o * 4 + 3, b.y2);
      StoreOut(out.scores, out.dtype, o, score);
      out.labels[o] = label;
    }
    kept_before += total;
    written += total_written;
  }
  for (int32_t i = written + static_cast<int32_t>(threadIdx.x); i < D; i += kWriteThreads) {
    const size_t o = static_cast<size_t>(n) * D + i;
    for (int j = 0; j < 4; ++j) StoreOut(out.boxes, out.dtype, o * 4 + j, 0.0f);
    StoreOut(out.scores, out.dtype, o, 0.0f);
    out.labels[o] = 0;
  }
  if (threadIdx.x == 0) out.counts[n] = written;
}

}  // namespace

size_t NmsScratchBytes(int32_t batch, int32_t slots, int32_t classes) {
  const size_t ns = static_cast<size_t>(batch) * static_cast<size_t>(slots < 1 ? 1 : slots);
  const size_t ng = static_cast<size_t>(batch) * static_cast<size_t>(classes + 1);
  return 3 * Align(ns * 4) + 2 * Align(ng * 4) + Align(ns * 16) + Align(ns * 4) + 2 * Align(ns) +
         Align(static_cast<size_t>(batch) * 16);
}

NmsScratch CarveNmsScratch(void* base, int32_t batch, int32_t slots, int32_t classes) {
  const size_t ns = static_cast<size_t>(batch) * static_cast<size_t>(slots < 1 ? 1 : slots);
  const size_t ng = static_cast<size_t>(batch) * static_cast<size_t>(classes + 1);
  auto* p = static_cast<uint8_t*>(base);
  NmsScratch s;
  s.rank_of_slot = reinterpret_cast<int32_t*>(p); p += Align(ns * 4);
  s.by_rank = reinterpret_cast<int32_t*>(p); p += Align(ns * 4);
  s.grouped = reinterpret_cast<int32_t*>(p); p += Align(ns * 4);
  s.group_start = reinterpret_cast<int32_t*>(p); p += Align(ng * 4);
  s.group_fill = reinterpret_cast<int32_t*>(p); p += Align(ng * 4);
  s.nms_box = reinterpret_cast<float4*>(p); p += Align(ns * 16);
  s.area = reinterpret_cast<float*>(p); p += Align(ns * 4);
  s.suppressed = p; p += Align(ns);
  s.kept = p; p += Align(ns);
  s.info = reinterpret_cast<int32_t*>(p);
  return s;
}

size_t NmsWorkspaceSize(const PostprocessParams& p, int32_t batch, int32_t slots_per_image) {
  return NmsScratchBytes(batch, slots_per_image, p.num_classes);
}

Status LaunchNms(const PostprocessParams& p, const DeviceCandidates& in, int32_t batch, const int32_t* image_sizes,
                 const int32_t* output_sizes, const DeviceDetections& out, void* workspace, size_t workspace_bytes,
                 cudaStream_t stream) {
  if (workspace_bytes < NmsWorkspaceSize(p, batch, in.slots_per_image)) {
    return Status(Code::kInvalidArgument, "Expected an NMS workspace of at least " +
                                              std::to_string(NmsWorkspaceSize(p, batch, in.slots_per_image)) +
                                              " bytes but received " + std::to_string(workspace_bytes));
  }
  if (batch == 0) return Status::Ok();
  const NmsScratch sc = CarveNmsScratch(workspace, batch, in.slots_per_image, p.num_classes);
  const NmsArgs a{p.nms, p.decode.pixel_offset, in.topk > 0 ? in.slots_per_image / in.topk : 0, p.num_classes};
  RankKernel<<<batch, kRankThreads, 0, stream>>>(a, in, sc);
  const int64_t warps = static_cast<int64_t>(batch) * p.num_classes;
  GreedyKernel<<<static_cast<unsigned>((warps + kGreedyWarps - 1) / kGreedyWarps), kGreedyWarps * kWarp, 0, stream>>>(
      a, in.slots_per_image, batch, sc);
  const WriteArgs w{p.decode.clip, p.output.remove_empty, image_sizes, output_sizes};
  WriteKernel<<<batch, kWriteThreads, 0, stream>>>(w, in, sc, out);
  return LastError("nms");
}

}  // namespace cuda
}  // namespace rk
