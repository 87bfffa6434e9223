// The CUDA stages between select and the outputs: arguments and launchers (internal to native/cuda).
#pragma once

#include <cstdint>

#include "common.cuh"
#include "rk/stages.h"
#include "select.cuh"

namespace rk {
namespace cuda {

// Everything top-k + decode needs, passed by value (the grid is ~8 KB of kernel parameters).
struct DecodeArgs {
  HeadArgs heads;
  AnchorGrid grid;
  DecodeParams decode;
  const float* anchors;  // device, optional
  bool anchors_per_image;
  const int32_t* image_sizes;  // device [N, 2]
  CandidateOrder candidate_order;  // how a rank key's order part names its element (HeadArgs::FromOrder)
};

// Shared memory of the top-k kernel for k candidates per slice.
size_t TopkSharedBytes(int32_t k);
// Largest topk_candidates the CUDA backend takes (its top-k is ranked in shared memory).
constexpr int32_t kMaxCudaTopk = 16384;


// Workspace regions start 256 bytes apart. A Carver hands them out in order from a base; with a null
// base it only measures, so that each layout's size comes from the function that lays it out (a
// *Bytes function is its Carve* function run on a null base).
inline size_t Align(size_t b) { return (b + 255) & ~static_cast<size_t>(255); }
class Carver {
 public:
  explicit Carver(void* base) : base_(static_cast<uint8_t*>(base)) {}
  template <typename T>
  T* Take(size_t count) {
    T* p = base_ == nullptr ? nullptr : reinterpret_cast<T*>(base_ + used_);
    used_ += Align(count * sizeof(T));
    return p;
  }
  size_t used() const { return used_; }
  // The bytes that carve(Carver&) takes: a layout's size from the function that lays it out.
  template <typename Carve>
  static size_t Measure(Carve&& carve) {
    Carver c(nullptr);
    carve(c);
    return c.used();
  }

 private:
  uint8_t* base_;
  size_t used_ = 0;
};

// NMS scratch for a batch of N images with `slots` candidate slots each and K classes.
struct NmsScratch {
  int32_t* by_rank = nullptr;       // [N, slots] slot of each score rank
  int32_t* grouped = nullptr;       // [N, slots] members of large groups, at the group's offset
  uint16_t* rank_label = nullptr;   // [N, label_stride] label (clamped to [0, K)) of each score rank
  int32_t label_stride = 0;         // RankLabelStride(slots): an image's labels start 16-byte aligned
  uint32_t* range_part = nullptr;   // [N, range_parts, 2] coordinate range of each rank block's boxes
  int32_t range_parts = 0;          // room for partial ranges per image
  float4* member_box = nullptr;     // [N, slots] boxes of large groups in member order
  float* member_area = nullptr;     // [N, slots]
  uint8_t* suppressed = nullptr;    // [N, slots] of large groups in member order
  uint8_t* kept = nullptr;          // [N, slots] by score rank
  int32_t* info = nullptr;          // [N, 4]: valid candidates, partial ranges left
  uint32_t* done = nullptr;         // [N] greedy blocks done (zeroed by the rank stage)
  // The count path's member lists: [N, K, class_words], bit r of row (n, g) set when rank r of image n
  // has label g (zeroed by the top-k kernel, set by the rank kernel). Null: the greedy stage finds its
  // members in rank_label.
  uint32_t* class_bits = nullptr;
  int32_t class_words = 0;  // ClassWords(slots): a row starts 16-byte aligned
};

// Whether the greedy stage's blocks (one per image and class) are no more than the SMs: then each
// has 1024 threads and an SM to itself (batch 1), else 256 threads, several an SM (batch 8).
Status WideGreedy(int32_t batch, int32_t classes, bool* wide);

// Rows of the class bitmaps: a bit a rank, padded to a multiple of four words.
__host__ __device__ constexpr int32_t ClassWords(int32_t slots) { return ((slots + 31) / 32 + 3) & ~3; }
// The bitmaps are used when the greedy blocks share SMs (not WideGreedy: with 640 blocks at batch 8,
// reading every label of the image in each block made a queue) and an image's rows
// (K * ClassWords(slots) words) are at most kClassBitsMaxWords (256 KB an image: 80 classes of 5
// levels of 1000 take 12800 words); otherwise the greedy blocks read the labels per rank.
constexpr int64_t kClassBitsMaxWords = 65536;
// Bytes of the class bitmaps for a batch on the count path, or 0 when they are not used.
size_t ClassBitsBytes(int32_t batch, int32_t classes, int32_t slots);

// The labels per rank are 16 bits, so that the greedy stage reads eight ranks' labels in one 16-byte
// load and compares them packed: the CUDA backend's NMS takes up to kMaxCudaClasses classes (0xFFFF
// is never a label). An image's labels are padded to a multiple of eight ranks.
constexpr int32_t kMaxCudaClasses = 65535;
__host__ __device__ constexpr int32_t RankLabelStride(int32_t slots) { return (slots + 7) & ~7; }
// Whether p's num_classes fits the CUDA NMS (a clear error naming the parameter if not).
Status CheckNmsClasses(const PostprocessParams& p);

// The coordinate range of a rank block's boxes, as the NMS path choice reads it: hi = OrderedBits of
// the largest coordinate, lo = ~OrderedBits of the smallest (0: none). NaN coordinates take no part
// (as MaxLikeStd / MinLikeStd skip them).
__device__ __forceinline__ void AddToRange(float x1, float y1, float x2, float y2, uint32_t& hi, uint32_t& lo) {
  const float c[4] = {x1, y1, x2, y2};
#pragma unroll
  for (int q = 0; q < 4; ++q) {
    if (c[q] == c[q]) {
      hi = max(hi, OrderedBits(c[q]));
      lo = max(lo, ~OrderedBits(c[q]));
    }
  }
}

// Reduces the block's ranges and writes them as partial blockIdx.x of image n. Called by the whole block.
__device__ __forceinline__ void WriteRangePart(uint32_t hi, uint32_t lo, uint32_t* range_part, int32_t range_parts, int n) {
  __shared__ uint32_t red_hi[kWarp], red_lo[kWarp];
  hi = WarpMax(hi);
  lo = WarpMax(lo);
  if ((threadIdx.x & (kWarp - 1)) == 0) {
    red_hi[threadIdx.x / kWarp] = hi;
    red_lo[threadIdx.x / kWarp] = lo;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int w = 1; w < static_cast<int>(blockDim.x / kWarp); ++w) {
      hi = max(hi, red_hi[w]);
      lo = max(lo, red_lo[w]);
    }
    uint32_t* part = range_part + (static_cast<size_t>(n) * range_parts + blockIdx.x) * 2;
    part[0] = hi;
    part[1] = lo;
  }
}

// NMS scratch bytes for `slots` candidate slots per image and room for `range_parts` partial ranges
// per image (RankRangeParts(slots) for the rank stage; the count path's rank kernel leaves more).
size_t NmsScratchBytes(int32_t batch, int32_t slots, int32_t range_parts);
NmsScratch CarveNmsScratch(Carver& c, int32_t batch, int32_t slots, int32_t range_parts);
inline NmsScratch CarveNmsScratch(void* base, int32_t batch, int32_t slots, int32_t range_parts) {
  Carver c(base);
  return CarveNmsScratch(c, batch, slots, range_parts);
}
int32_t RankRangeParts(int32_t slots);

// The sort path: top-k, sort and decode in one block per (image, level).
Status LaunchTopkDecode(const DecodeArgs& args, const SelectState& st, const DeviceCandidates& out, int32_t* error,
                        cudaStream_t stream);

// The count path's hand-off between its two kernels: per slice (image, level) the k best keys (each
// names its element by its order part), grouped in kBuckets buckets of their score keys (key >> 32): bucket b of
// slice s holds the keys whose score key u has (u - span[s].x) >> span[s].y == b (the first and the
// last bucket also hold those below and above), from bucket_start[s][b] to bucket_start[s][b + 1].
constexpr int kBucketBits = 11;
constexpr int kBuckets = 1 << kBucketBits;  // two per thread of the top-k block
struct TakenKeys {
  uint64_t* keys = nullptr;          // [N * L, k]
  uint32_t* bucket_start = nullptr;  // [N * L, kBuckets + 1]
  uint2* span = nullptr;             // [N * L]: lowest score key, shift
};
constexpr int kCountCandidates = 128;  // candidates ranked per block (one a thread)
constexpr int32_t kCountMaxSlots = 16384;  // levels * k of the count path (the top-k block stages k keys)

// Whether the launchers rank by counting (the count path): levels * k <= kCountMaxSlots, unless the
// environment sets RK_CUDA_RANKS=sort (for tests and comparisons; the choice is made at launch, so a
// captured graph keeps the path it was captured with).
bool CountRanks(int32_t slots_per_image);

// `ranks`: the NMS scratch whose class bitmaps (when it has them) the top-k blocks zero, or null.
Status LaunchTopkTake(const SelectState& st, const DeviceCandidates& out, const TakenKeys& tk, const NmsScratch* ranks,
                      int32_t batch, int32_t levels, int32_t classes, cudaStream_t stream);
// Blocks of the count path's rank kernel per image, each of which leaves a partial coordinate range.
int32_t CountRangeParts(int32_t slots);
// Ranks and decodes the taken candidates into `out`; with `ranks`, also leaves the NMS stage's
// ranks (rank <-> slot, the class bitmaps or the label per rank, zeroed kept marks, valid count,
// coordinate ranges).
Status LaunchCountRank(const DecodeArgs& args, const TakenKeys& tk, const DeviceCandidates& out, const NmsScratch* ranks,
                       int32_t* error, cudaStream_t stream);

// Candidate lists (rk::CandidateLists: the candidate cache) in device memory.
struct DeviceCandidateLists {
  const int64_t* offsets = nullptr;  // [N * L + 1]
  const int32_t* rows = nullptr;
  const int32_t* labels = nullptr;
  const float* values = nullptr;
  const float* deltas = nullptr;   // [., 4]
  const float* anchors = nullptr;  // [., 4] or null: the grid
  int32_t list_cap = 0;            // rk::CandidateLists::list_cap
  int64_t first = 0;               // offsets[0]: the arrays hold candidates first.. (a batch's own part)
};

// Word of the error record set when a list is not in ranking order, or holds a row or label out of
// range: the device path then leaves the batch to the host's rk::PostprocessCandidates.
constexpr int kErrorHostWord = 7;

// The selection of rk::PostprocessCandidates for lists in ranking order, one block per (image,
// level): the candidates that pass (the prefix up to the first that fails when the level's values
// are non-increasing), each class's own threshold, then the first k, decoded into `out` (slot
// level * k + r). `positions` holds [N * L, k] list positions. Zeroes the error record first.
Status LaunchCandidateDecode(const SelectParams& sp, const DecodeArgs& args, const DeviceCandidateLists& lists,
                             const DeviceCandidates& out, int32_t* positions, int32_t* error, cudaStream_t stream);
// Workspace of the whole candidate path (candidates, positions, NMS scratch) and its launcher.
size_t CandidatePostprocessWorkspaceSize(const PostprocessParams& p, const HeadShapes& s);
Status LaunchCandidatePostprocess(const PostprocessParams& p, const AnchorGrid& grid, const HeadShapes& s,
                                  const DeviceCandidateLists& lists, const int32_t* image_sizes, const int32_t* output_sizes,
                                  const DeviceDetections& out, int32_t* error, void* workspace, size_t workspace_bytes,
                                  cudaStream_t stream);

// Rank (unless `ranked`: the count path left the ranks in sc), greedy and write, on candidates `in`.
Status LaunchNmsStages(const PostprocessParams& p, const DeviceCandidates& in, int32_t batch, const int32_t* image_sizes,
                       const int32_t* output_sizes, const DeviceDetections& out, const NmsScratch& sc, bool ranked,
                       bool chained, cudaStream_t stream);

}  // namespace cuda
}  // namespace rk
