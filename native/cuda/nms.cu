// Class-aware NMS, final sort, cap and write on the GPU (SPEC 1(5), 2(5), 3(5)); the same
// semantics as native/cpu/nms.cpp and the output loop of native/cpu/pipeline.cpp.
//
// 1. Rank (blocks of 256 candidates per image): the candidates arrive as L sorted runs (slot =
//    level*k + rank); the score rank of each (score desc, ties by slot) is its rank in its run plus,
//    in each other run, how many rank before it (binary searches). Each block also leaves the
//    coordinate range of its boxes (no state needs zeroing before the stage). On the count path
//    (decode.cu) the ranks come from the kernel that decodes the candidates, and this stage is skipped.
// 2. Greedy (one block per image and group): from the valid count and the coordinate range, the path
//    torchvision's batched_nms would take (coordinate trick on shifted boxes, or per class on the
//    boxes); the block counts and collects its group's members in score order (on the count path,
//    when the blocks share SMs, from its class's bitmap of ranks, left by the rank kernel; else from
//    the labels of all the image's ranks), stages their boxes in shared memory (or global scratch for large groups), and
//    runs greedy NMS on them: as a bitmask for the groups staged in shared memory (up to 1024; chunks
//    of 32 members in order, only the kept members' words computed), block-wide for larger ones. Blocks of 1024
//    threads when the groups are fewer than the SMs (batch 1: each group has an SM to itself), else
//    256. The IoU test has no division (IouCut, rk/math.h).
// 3. Write (by the last greedy block of each image to finish, counted with an atomic): kept boxes in
//    score order, capped at D, then (Detectron2) rescaled, clipped and emptied boxes dropped,
//    through a block scan (two when boxes can be dropped); zeros past the count.
#include <cub/block/block_scan.cuh>

#include <cmath>
#include <string>

#include "common.cuh"
#include "stages_cuda.cuh"

namespace rk {
namespace cuda {
namespace {

constexpr int kRankThreads = 256;
constexpr int kRankUnroll = 8;  // scores staged per thread and round (independent loads)
// One block per (image, group): 256 threads, or 1024 when the groups are fewer than the SMs (the
// greedy stage is latency-bound: with one block per SM, more warps finish a group sooner).
constexpr int kGreedyThreads = 256;
constexpr int kGreedyWideThreads = 1024;
// Blocks of 256 threads that one SM must hold at once: batch 8's 640 blocks fit the H200's 132 SMs in
// one wave at 5 a SM (at most 48 registers a thread); at 4, a fifth of the blocks waited for a second.
template <int kThreads>
constexpr int kGreedyMinBlocks = kThreads == kGreedyThreads ? 5 : 1;

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
  IouCut cut;  // the IoU test without its division (MakeIouCut)
  int32_t pixel_offset;
  int32_t levels;
  int32_t classes;
};

// Scores of the L runs of an image staged in shared memory when they fit (binary searches there).
constexpr int32_t kRankSharedSlots = 11264;  // 44 KiB of dynamic shared memory, under the 48 KiB default with the static part

// Block b of image n ranks the candidates b*kRankThreads .. of the image (in (level, rank) order):
// its score rank is its rank in its run plus, in each other run, how many rank before it (binary
// searches over the runs, staged in shared memory). Each block with candidates also leaves the
// coordinate range of its boxes in range_part (reduced by the greedy stage), and zeroes the kept
// marks of its ranks.
__global__ void __launch_bounds__(kRankThreads) RankKernel(NmsArgs a, DeviceCandidates in, NmsScratch sc) {
  RK_TRACE_KERNEL(kTraceRank);
  WaitPrevious();  // the candidates
  AllowNext();
  extern __shared__ float staged_scores[];
  __shared__ int32_t base[kMaxLevels + 1];
  const int n = blockIdx.y;
  const int S = in.slots_per_image, k = in.topk, L = a.levels;
  const float* scores = in.scores + static_cast<size_t>(n) * S;
  const float4* boxes = reinterpret_cast<const float4*>(in.boxes) + static_cast<size_t>(n) * S;
  const int32_t* labels = in.labels + static_cast<size_t>(n) * S;
  if (threadIdx.x < L) base[threadIdx.x + 1] = in.level_counts[n * L + threadIdx.x];  // loaded side by side
  __syncthreads();
  if (threadIdx.x == 0) {
    base[0] = 0;
    for (int l = 0; l < L; ++l) base[l + 1] += base[l];
  }
  __syncthreads();
  const int32_t valid = base[L];
  RK_TRACE_POINT(kTraceRankBase);
  const int32_t first = static_cast<int32_t>(blockIdx.x) * kRankThreads;
  if (blockIdx.x == 0 && threadIdx.x == 0) {
    sc.info[n * 4 + 0] = valid;
    sc.info[n * 4 + 1] = (valid + kRankThreads - 1) / kRankThreads;  // the blocks that leave a coordinate range
    sc.done[n] = 0;  // greedy blocks done (GreedyKernel)
  }
  if (first >= valid) return;  // the whole block
  const bool staged = S <= kRankSharedSlots;
  if (staged) {  // candidate j of the image is rank j - base[l] of its level l; loads issued kRankUnroll at a time
    for (int32_t j0 = 0; j0 < valid; j0 += kRankThreads * kRankUnroll) {
      int32_t slot[kRankUnroll];
      float v[kRankUnroll];
#pragma unroll
      for (int u = 0; u < kRankUnroll; ++u) {
        const int32_t j = j0 + u * kRankThreads + static_cast<int32_t>(threadIdx.x);
        int l = 0;
        while (l + 1 < L && j >= base[l + 1]) ++l;
        slot[u] = j < valid ? l * k + j - base[l] : -1;
        v[u] = j < valid ? scores[slot[u]] : 0.0f;
      }
#pragma unroll
      for (int u = 0; u < kRankUnroll; ++u) {
        if (slot[u] >= 0) staged_scores[slot[u]] = v[u];
      }
    }
    __syncthreads();
  }
  RK_TRACE_POINT(kTraceRankStaged);
  const float* runs = staged ? staged_scores : scores;
  const int32_t j = first + static_cast<int32_t>(threadIdx.x);
  uint32_t hi = 0, lo = 0;  // OrderedBits of the largest coordinate, ~OrderedBits of the smallest (0: none)
  if (j < valid) {
    int l = 0;
    while (j >= base[l + 1]) ++l;
    const int32_t r = j - base[l];
    const int32_t slot = l * k + r;
    const float s = runs[slot];
    int32_t rank = r;
    for (int o = 0; o < L; ++o) {
      if (o == l) continue;
      const int32_t cnt = base[o + 1] - base[o];
      rank += o < l ? RunCountAtLeast(runs + o * k, cnt, s) : RunCountAbove(runs + o * k, cnt, s);
    }
    RK_TRACE_POINT(kTraceRankSearched);
    sc.by_rank[static_cast<size_t>(n) * S + rank] = slot;
    // Labels come from the decode stage, or from a RetinaNetNMS plugin user: clamped so that a label
    // outside [0, K) can never index past the label counts.
    const int32_t g = min(max(labels[slot], 0), a.classes - 1);
    sc.rank_label[static_cast<size_t>(n) * sc.label_stride + rank] = static_cast<uint16_t>(g);
    sc.kept[static_cast<size_t>(n) * S + j] = 0;
    const float4 b = boxes[slot];
    AddToRange(b.x, b.y, b.z, b.w, hi, lo);
  }
  WriteRangePart(hi, lo, sc.range_part, sc.range_parts, n);
}

// How the image's candidates are grouped for NMS: the path batched_nms would take for this many
// boxes on the emulated device (coordinate trick on boxes shifted by label * span, or per class on
// the boxes), from the valid count and the coordinate range (range[0] = OrderedBits of the largest
// coordinate, range[1] = ~OrderedBits of the smallest; 0 = none).
struct NmsPath {
  bool trick;
  bool per_class;
  float span;
};

__device__ __forceinline__ NmsPath PathOf(const NmsArgs& a, int32_t valid, const uint32_t* range) {
  NmsPath path{false, true, 0.0f};
  const uint32_t hi = range[0], lo = range[1];
  const float max_coord = hi == 0 ? -INFINITY : FromOrderedBits(hi);
  const float min_coord = lo == 0 ? INFINITY : FromOrderedBits(~lo);
  if (a.nms.algorithm == NmsAlgorithm::kTorchvisionBatched) {
    const int64_t vanilla_above = a.nms.torchvision_device == NmsDevice::kCpu ? 4000 : 100000;
    path.trick = static_cast<int64_t>(valid) * 4 <= vanilla_above;
    path.per_class = !path.trick || min_coord >= 0.0f;
  }
  path.span = max_coord + 1.0f;
  return path;
}

// Greedy NMS of a group of at most kMaskMax members as a bitmask, chunk by chunk (32 members a
// chunk, a mask word a chunk of columns): only the words that the greedy loop reads are computed.
// - Diagonal words first, every row at once: diag[i] holds, for the members j > i of i's own chunk,
//   whether i suppresses j (the test is QuickSuppresses, with SuppressesPair for the pairs it leaves
//   undecided; lane q of a warp tests member 32w + q, a ballot is the word).
// - Then chunk c after chunk c: removed[c] is final once the kept members of the chunks before it
//   have OR-ed their word c into it. Every warp resolves the chunk alike from removed[c] and the
//   chunk's diagonal words, so no barrier is needed to share the result. The resolve is a fixpoint,
//   not a walk over the 32 members: kept = allowed & ~(OR of the kept members' diagonal words), one
//   warp reduction a round, from kept = allowed (the members not removed) until it stops changing.
//   Member p's bit depends only on the members before it (the words are upper triangular), so after
//   round r the first r members are right, and the one fixpoint is the greedy result; a few rounds
//   suffice unless chains of suppressions are long (at most 33). Then the warps compute
//   the later words (w > c) of the chunk's kept members only and OR them into removed[w] (shared
//   atomics), and a barrier ends the chunk. A chunk with no kept member (or the last) adds nothing,
//   and the next chunk goes on without a barrier.
// A kept member's later words are all the work there is: a group of many overlapping boxes, where a
// few kept members remove most of the others, costs a few words a chunk instead of the whole
// triangle. The same result as the sequential greedy loop. Leaves the removed flags in sup.
constexpr int kMaskMax = 1024;
constexpr int kMaskWords = kMaskMax / 32;
static_assert(kMaskWords <= kWarp, "the first warp zeroes the chunks' removed words");
constexpr int kFillWords = 2;  // mask words a warp tests per round, their loads and tests side by side

// Tests for `count` words, task t -> (row i, word w) by `task`: lane q tests i against member 32w + q
// (j > i, j < m), and the ballot of the task goes to store(i, w, bits). kFillWords tasks a round per
// warp (a word alone is a chain of dependent shared loads, arithmetic and a ballot).
template <typename Task, typename Store>
__device__ __forceinline__ void FillWords(const NmsArgs& a, const float4* box, const float* area, int32_t m, int32_t count,
                                          Task&& task, Store&& store) {
  const float off = static_cast<float>(a.pixel_offset);
  const int lane = threadIdx.x & (kWarp - 1), warp = threadIdx.x / kWarp;
  const int warps = static_cast<int>(blockDim.x / kWarp);
  for (int32_t t0 = warp; t0 < count; t0 += kFillWords * warps) {
    Box bi[kFillWords], bj[kFillWords];
    float ai[kFillWords], aj[kFillWords];
    bool hit[kFillWords], exact[kFillWords];
    int32_t row[kFillWords], word[kFillWords];
    bool any_exact = false;
#pragma unroll
    for (int r = 0; r < kFillWords; ++r) {
      const int32_t t = t0 + r * warps;
      const bool live = t < count;  // warp-uniform
      task(live ? t : 0, row[r], word[r]);
      const int32_t i = row[r], j = word[r] * kWarp + lane;
      const int32_t jj = j < m ? j : 0;  // in the staged range either way
      const float4 qi = box[i], qj = box[jj];
      bi[r] = Box{qi.x, qi.y, qi.z, qi.w};
      bj[r] = Box{qj.x, qj.y, qj.z, qj.w};
      ai[r] = area[i];
      aj[r] = area[jj];
      const bool in = live && j > i && j < m;
      const QuickIou quick = QuickSuppresses(a.cut, bi[r], ai[r], bj[r], aj[r], off);  // every lane: no branch
      hit[r] = in && quick.hit;
      exact[r] = in && !quick.decided;
      any_exact |= exact[r];
      if (!live) word[r] = -1;
    }
    if (__any_sync(0xFFFFFFFFu, any_exact)) {  // rare: a ratio near the cut, or odd coordinates
#pragma unroll  // compile-time indices: the arrays stay in registers
      for (int r = 0; r < kFillWords; ++r) {
        if (exact[r]) hit[r] = SuppressesPair(bi[r], ai[r], bj[r], aj[r], off, a.nms.iou_thresh, a.nms.compare_in_double, a.cut);
      }
    }
#pragma unroll
    for (int r = 0; r < kFillWords; ++r) {
      const uint32_t bits = __ballot_sync(0xFFFFFFFFu, hit[r]);
      if (lane == 0 && word[r] >= 0) store(row[r], word[r], bits);
    }
  }
}

// The kept members of a chunk, from `allowed` (its members not removed by earlier chunks) and lane q's
// diagonal word d (whom member q suppresses among the later members of the chunk): the fixpoint of
// kept = allowed & ~(the words of the kept members), from kept = allowed, one warp reduction a round.
__device__ __forceinline__ uint32_t ResolveChunk(uint32_t allowed, uint32_t d, int lane) {
  uint32_t kept = allowed;
  for (;;) {
    const uint32_t next = allowed & ~__reduce_or_sync(0xFFFFFFFFu, ((kept >> lane) & 1u) != 0 ? d : 0u);
    if (next == kept) return kept;  // warp-uniform
    kept = next;
  }
}

__device__ void BitmaskGroup(const NmsArgs& a, const float4* box, const float* area, uint8_t* sup, int32_t m, uint32_t* diag,
                             uint32_t* removed, uint32_t* final_removed) {
  const int lane = threadIdx.x & (kWarp - 1);
  const int32_t words = (m + kWarp - 1) / kWarp;
  if (threadIdx.x < kMaskWords) removed[threadIdx.x] = 0;
  FillWords(
      a, box, area, m, m, [](int32_t t, int32_t& i, int32_t& w) { i = t; w = t / kWarp; },
      [&](int32_t i, int32_t, uint32_t bits) { diag[i] = bits; });
  __syncthreads();
  RK_TRACE_POINT(kTraceGreedyMask);  // the diagonal words are filled
  for (int32_t c = 0; c < words; ++c) {
    const int32_t live = min(kWarp, m - c * kWarp);
    const uint32_t d = lane < live ? diag[c * kWarp + lane] : 0u;
    // removed[c] is final: the kept members of earlier chunks have OR-ed their words in.
    const uint32_t allowed = ~removed[c] & (live == kWarp ? 0xFFFFFFFFu : ((1u << live) - 1u));
    const uint32_t kept = ResolveChunk(allowed, d, lane);
    if (threadIdx.x == 0) final_removed[c] = ~kept;  // bits past `live` are never read
    const int32_t later = words - c - 1, count = __popc(kept) * later;
    if (count == 0) continue;  // block-uniform: every warp resolved the same chunk alike
    // Task t: kept member t / later of the chunk (its lane found by a ballot), word c + 1 + t % later.
    const bool mine = ((kept >> lane) & 1u) != 0;
    const int32_t order = __popc(kept & ((1u << lane) - 1u));  // this lane's index among the kept
    FillWords(
        a, box, area, m, count,
        [&](int32_t t, int32_t& i, int32_t& w) {
          const int32_t k = t / later;
          i = c * kWarp + __ffs(__ballot_sync(0xFFFFFFFFu, mine && order == k)) - 1;
          w = c + 1 + t % later;
        },
        [&](int32_t, int32_t w, uint32_t bits) {
          if (bits != 0) atomicOr(&removed[w], bits);
        });
    __syncthreads();
  }
  __syncthreads();
  for (int32_t q = static_cast<int32_t>(threadIdx.x); q < m; q += static_cast<int32_t>(blockDim.x)) {
    sup[q] = static_cast<uint8_t>((final_removed[q / kWarp] >> (q % kWarp)) & 1u);
  }
  __syncthreads();
}

// The same greedy NMS by a whole block. The next unsuppressed member is found a block-width window
// at a time (warp ballots, a shared minimum), so runs of suppressed members cost one barrier per
// window; for a kept member every thread tests a share of the later members, and a barrier makes its
// suppressions visible before the next search. `next` holds three slots used in rotation: the slot
// of round r is reset in round r - 2, at least one barrier before its first use.
__device__ void GreedyBlock(const NmsArgs& a, const float4* box, const float* area, uint8_t* sup, int32_t m, int32_t* next) {
  const float off = static_cast<float>(a.pixel_offset);
  const int lane = threadIdx.x & (kWarp - 1);
  if (threadIdx.x < 3) next[threadIdx.x] = INT32_MAX;
  __syncthreads();
  int32_t p = 0;
  for (int r = 0; p < m; ++r) {
    const int cur = r % 3;
    const int32_t q0 = p + static_cast<int32_t>(threadIdx.x);
    const uint32_t open = __ballot_sync(0xFFFFFFFFu, q0 < m && !sup[q0]);
    if (lane == 0 && open != 0) atomicMin(&next[cur], q0 + __ffs(open) - 1);
    __syncthreads();
    const int32_t i = next[cur];
    if (threadIdx.x == 0) next[(r + 2) % 3] = INT32_MAX;
    if (i == INT32_MAX) {  // the whole window is suppressed
      p += static_cast<int32_t>(blockDim.x);
      continue;
    }
    const float4 bi = box[i];  // i is kept: its mark is written after the loop, from sup
    const Box ki{bi.x, bi.y, bi.z, bi.w};
    const float ai = area[i];
    for (int32_t q = i + 1 + static_cast<int32_t>(threadIdx.x); q < m; q += static_cast<int32_t>(blockDim.x)) {
      if (sup[q]) continue;
      const float4 bj = box[q];
      if (SuppressesPair(ki, ai, Box{bj.x, bj.y, bj.z, bj.w}, area[q], off, a.nms.iou_thresh, a.nms.compare_in_double, a.cut)) {
        sup[q] = 1;
      }
    }
    __syncthreads();
    p = i + 1;
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

// The detections of image n, by the block of the last group to finish: kept candidates in score
// order, capped at D, then (Detectron2) rescaled, clipped and emptied boxes dropped; zeros past the
// count. A rank a thread per round: its kept mark and slot are loaded side by side, one block scan
// places the kept ones (a second one only when boxes can still be dropped), and a detection's box,
// score and label are all loaded before it is stored. The kept marks were written by other blocks
// of this kernel: they are read from L2 (__ldcg), after the fence that published them. `valid`: the
// image's candidates.
template <int kThreads>
__device__ void WriteImage(const WriteArgs& a, const DeviceCandidates& in, const NmsScratch& sc, const DeviceDetections& out, int n,
                           int32_t valid) {
  using Scan = cub::BlockScan<int32_t, kThreads>;
  __shared__ typename Scan::TempStorage scan_storage;
  const int32_t S = in.slots_per_image, D = out.max_detections;
  const size_t base = static_cast<size_t>(n) * S;
  const bool dropping = a.clip == ClipMode::kOutputAfterNms || a.remove_empty;  // Detectron2's last step
  int32_t kept_before = 0, written = 0;
  for (int32_t r0 = 0; r0 < valid && kept_before < D; r0 += kThreads) {
    const int32_t r = r0 + static_cast<int32_t>(threadIdx.x);
    int32_t keep = (r < valid && __ldcg(sc.kept + base + r)) ? 1 : 0;
    const int32_t slot = r < valid ? sc.by_rank[base + r] : 0;
    int32_t at = 0, total = 0;
    Scan(scan_storage).ExclusiveSum(keep, at, total);
    __syncthreads();
    keep = keep && kept_before + at < D;  // the cap
    Box b{0, 0, 0, 0};
    float score = 0.0f;
    int32_t label = 0;
    if (keep) {
      const float4 q = reinterpret_cast<const float4*>(in.boxes)[base + slot];
      b = Box{q.x, q.y, q.z, q.w};
      score = in.scores[base + slot];
      label = in.labels[base + slot];
    }
    int32_t total_written = min(total, D - kept_before);
    if (dropping) {  // block-uniform
      if (keep && a.clip == ClipMode::kOutputAfterNms) {
        b = RescaleAndClip(b, a.image_sizes[2 * n], a.image_sizes[2 * n + 1], a.output_sizes == nullptr ? nullptr : a.output_sizes + 2 * n);
      }
      if (keep && a.remove_empty) keep = ((b.x2 - b.x1) > 0.0f && (b.y2 - b.y1) > 0.0f) ? 1 : 0;
      Scan(scan_storage).ExclusiveSum(keep, at, total_written);
      __syncthreads();
    }
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
  for (int32_t i = written + static_cast<int32_t>(threadIdx.x); i < D; i += kThreads) {
    const size_t o = static_cast<size_t>(n) * D + i;
    for (int j = 0; j < 4; ++j) StoreOut(out.boxes, out.dtype, o * 4 + j, 0.0f);
    StoreOut(out.scores, out.dtype, o, 0.0f);
    out.labels[o] = 0;
  }
  if (threadIdx.x == 0) out.counts[n] = written;
}

constexpr int kStage = 1024;  // members staged in shared memory per block (25 bytes each): 8 blocks fit an SM
static_assert(kMaskMax <= kStage, "a bitmask group is staged in shared memory");
// A warp's ranks are read eight labels a lane (one 16-byte load of 16-bit labels) and compared
// packed, so a round of a warp covers kLabelRound ranks. Rounds of labels a warp keeps in registers
// between its two passes (count, then place), so that the second pass loads them again only past
// these: blocks of 1024 hold the 157 ranks a warp of the default 5 levels of 1000 in one, blocks of
// 256 their 625 in three.
constexpr int kLabelsPerLoad = 8;
constexpr int32_t kLabelRound = kWarp * kLabelsPerLoad;
template <int kThreads>
constexpr int kHeldRounds = kThreads == kGreedyThreads ? 3 : 1;

// Bit j: label j of the eight in q (rank r + j of a load at rank r) equals g (below = false) or is
// below it (below = true); gg holds g in both halves. Labels are little-endian halves of the words.
__device__ __forceinline__ uint32_t LabelBits(const uint4& q, uint32_t gg, bool below) {
  const uint32_t w[4] = {q.x, q.y, q.z, q.w};
  uint32_t bits = 0;
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const uint32_t m = below ? __vcmpltu2(w[i], gg) : __vcmpeq2(w[i], gg);  // 0xFFFF per half that holds
    bits |= ((m & 1u) | ((m >> 15) & 2u)) << (2 * i);
  }
  return bits;
}

// The bits of the ranks r .. r + 7 that are below `end`.
__device__ __forceinline__ uint32_t RanksBefore(int32_t r, int32_t end) {
  const int32_t left = end - r;
  return left <= 0 ? 0u : left >= kLabelsPerLoad ? 0xFFu : (1u << left) - 1u;
}

// One block per (image, group). With kClassBits (the count path, blocks of 256 that share SMs), the
// group's members in score order are the set bits of its row of class_bits: thread t takes words
// t * per .., and a scan of the threads' counts places them (a row is 160 words for 5000 ranks: one
// load a thread; 640 blocks at batch 8 no longer each read all of their image's labels: 0.9-1.4 us
// less, bench/results/gpu-h100-2026-12-07-class-bits.txt). Without them they are its entries of
// rank_label (every rank when there is one group): each warp filters a contiguous range of ranks (a multiple of
// eight long; the labels of its first rounds loaded once, with the coordinate ranges, and kept in
// registers; counted first, then the member ranks written at the warp's offset), straight into
// shared memory when the group fits (else into the global scratch, at the group's offset: the ranks
// of lower labels); then their boxes (shifted on the trick path) and areas are gathered through
// by_rank; then greedy NMS as a bitmask (groups of up to kMaskMax) or by the block.
template <int kThreads, bool kClassBits>
__device__ __forceinline__ void GreedyGroup(const NmsArgs& a, const DeviceCandidates& in, const NmsScratch& sc, int n, int g,
                                            int32_t valid) {
  constexpr int kGreedyWarps = kThreads / kWarp;
  static_assert(kGreedyWarps <= kWarp, "one warp scans the warps' counts");
  extern __shared__ float4 stage[];
  __shared__ int32_t warp_offset[kGreedyWarps + 1];
  __shared__ int32_t warp_below[kGreedyWarps];
  __shared__ int32_t next[3];
  __shared__ int32_t group_first;
  __shared__ uint32_t range[2];
  __shared__ uint32_t diag[kMaskMax];  // BitmaskGroup's diagonal words
  __shared__ uint32_t removed[kMaskWords], final_removed[kMaskWords];
  float4* s_box = stage;
  float* s_area = reinterpret_cast<float*>(s_box + kStage);
  int32_t* s_slot = reinterpret_cast<int32_t*>(s_area + kStage);
  uint8_t* s_sup = reinterpret_cast<uint8_t*>(s_slot + kStage);
  const int lane = threadIdx.x & (kWarp - 1), warp = threadIdx.x / kWarp;
  const int32_t slots = in.slots_per_image;
  if (valid == 0) return;
  const size_t base = static_cast<size_t>(n) * slots;
  const int32_t* by_rank = sc.by_rank + base;
  const uint16_t* rank_label = sc.rank_label + static_cast<size_t>(n) * sc.label_stride;  // 16-byte aligned
  const int32_t span = ((valid + kGreedyWarps - 1) / kGreedyWarps + kLabelsPerLoad - 1) & ~(kLabelsPerLoad - 1);
  const int32_t r_begin = min(valid, warp * span), r_end = min(valid, r_begin + span);
  const uint32_t gg = static_cast<uint32_t>(g) * 0x10001u;  // g < kMaxCudaClasses: never the 0xFFFF padding
  // Eight labels from rank r (a multiple of eight below the stride): padding past the warp's range.
  auto load = [&](int32_t r) {
    return r < r_end ? *reinterpret_cast<const uint4*>(rank_label + r) : make_uint4(~0u, ~0u, ~0u, ~0u);
  };
  // Loaded side by side: the coordinate ranges (warp 0: the partials of the rank blocks that had
  // candidates) and the labels of each warp's first rounds.
  uint32_t hi = 0, lo = 0;
  if (warp == 0) {
    const uint32_t* part = sc.range_part + static_cast<size_t>(n) * sc.range_parts * 2;
    const int32_t used = sc.info[n * 4 + 1];
    for (int32_t b = lane; b < used; b += kWarp) {
      hi = max(hi, part[2 * b]);
      lo = max(lo, part[2 * b + 1]);
    }
  }
#ifdef RK_CUDA_TRACE
  if ((hi ^ lo) == 0x5A5A5A5Au) __threadfence_block();  // uses the ranges: the point below waits for their loads
#endif
  RK_TRACE_POINT(kTraceGreedyRanges);  // warp 0 has its coordinate ranges
  constexpr int kHeld = kHeldRounds<kThreads>;
  uint4 held[kHeld];
  // This lane's first rank in held round hr.
  auto held_rank = [&](int hr) { return r_begin + hr * kLabelRound + kLabelsPerLoad * lane; };
  // The bitmap path: thread t holds words t * per .. of the row, kBitWords at most (a row of the count
  // path has at most ClassWords(kCountMaxSlots) words); its members come after those of the threads before.
  constexpr int kBitWords = (ClassWords(kCountMaxSlots) + kThreads - 1) / kThreads;
  uint32_t word[kBitWords];
  int32_t per = 0;
  uint32_t thread_before = 0;
  // Per warp: the group's members (and, from the labels, the ranks of lower labels) among its ranks.
  uint32_t count = 0, below = 0;
  if constexpr (kClassBits) {  // the count path's member lists (else the labels per rank)
    const uint32_t* row = sc.class_bits + (static_cast<size_t>(n) * a.classes + g) * sc.class_words;
    per = (sc.class_words + kThreads - 1) / kThreads;
    uint32_t mine = 0;
#pragma unroll
    for (int i = 0; i < kBitWords; ++i) {
      const int32_t w = static_cast<int32_t>(threadIdx.x) * per + i;
      word[i] = i < per && w < sc.class_words ? row[w] : 0u;
      mine += __popc(word[i]);
    }
    const uint32_t upto = WarpInclusiveSum(mine, lane);
    thread_before = upto - mine;
    count = __shfl_sync(0xFFFFFFFFu, upto, kWarp - 1);
  } else {
#pragma unroll
    for (int hr = 0; hr < kHeld; ++hr) held[hr] = load(held_rank(hr));
#pragma unroll
    for (int hr = 0; hr < kHeld; ++hr) {
      const uint32_t in_range = RanksBefore(held_rank(hr), r_end);
      count += __popc(LabelBits(held[hr], gg, false) & in_range);
      below += __popc(LabelBits(held[hr], gg, true) & in_range);
    }
    for (int32_t r0 = r_begin + kHeld * kLabelRound; r0 < r_end; r0 += kLabelRound) {  // ranks past the held rounds
      const int32_t r = r0 + kLabelsPerLoad * lane;
      const uint4 q = load(r);
      const uint32_t in_range = RanksBefore(r, r_end);
      count += __popc(LabelBits(q, gg, false) & in_range);
      below += __popc(LabelBits(q, gg, true) & in_range);
    }
    count = __reduce_add_sync(0xFFFFFFFFu, count);
    below = __reduce_add_sync(0xFFFFFFFFu, below);
  }
  RK_TRACE_POINT(kTraceGreedyLabels);  // warp 0's labels loaded and counted
  for (int off = kWarp / 2; off > 0; off >>= 1) {
    hi = max(hi, __shfl_xor_sync(0xFFFFFFFFu, hi, off));
    lo = max(lo, __shfl_xor_sync(0xFFFFFFFFu, lo, off));
  }
  if (lane == 0) {
    warp_offset[warp + 1] = static_cast<int32_t>(count);
    warp_below[warp] = static_cast<int32_t>(below);
    if (warp == 0) {
      range[0] = hi;
      range[1] = lo;
    }
  }
  __syncthreads();
  if (warp == 0) {  // the warps' offsets: a shuffle scan of their counts
    const int32_t c = WarpInclusiveSum(lane < kGreedyWarps ? warp_offset[lane + 1] : 0, lane);
    const int32_t b = __reduce_add_sync(0xFFFFFFFFu, lane < kGreedyWarps ? warp_below[lane] : 0);
    if (lane < kGreedyWarps) warp_offset[lane + 1] = c;
    if (lane == 0) {
      warp_offset[0] = 0;
      group_first = b;
    }
  }
  __syncthreads();
  const NmsPath path = PathOf(a, valid, range);
  if (!path.per_class && g > 0) return;  // one group: block 0 of the image
  const int32_t m = path.per_class ? warp_offset[kGreedyWarps] : valid;
  RK_TRACE_POINT(kTraceGreedyCounted);
  if (m == 0) return;  // the whole block
  const bool fits = m <= kStage;
  if (kClassBits && path.per_class && !fits) {  // block-uniform: the ranks of lower labels are rows 0 .. g - 1's bits
    if (threadIdx.x == 0) group_first = 0;
    __syncthreads();
    const uint32_t* rows = sc.class_bits + static_cast<size_t>(n) * a.classes * sc.class_words;
    uint32_t c = 0;
    for (size_t w = threadIdx.x; w < static_cast<size_t>(g) * sc.class_words; w += kThreads) c += __popc(rows[w]);
    c = __reduce_add_sync(0xFFFFFFFFu, c);
    if (lane == 0 && c != 0) atomicAdd(&group_first, static_cast<int32_t>(c));
    __syncthreads();
  }
  const int32_t g0 = path.per_class ? group_first : 0;  // the group's offset in the global scratch: the ranks of lower labels
  int32_t* members = fits ? s_slot : sc.grouped + base + g0;  // the members' ranks, in score order
  if (kClassBits && path.per_class) {  // each word's ranks in order, after the threads before
    int32_t at = warp_offset[warp] + static_cast<int32_t>(thread_before);
#pragma unroll
    for (int i = 0; i < kBitWords; ++i) {
      uint32_t bits = word[i];
      const int32_t r0 = (static_cast<int32_t>(threadIdx.x) * per + i) * kWarp;
      for (; bits != 0; bits &= bits - 1) members[at++] = r0 + __ffs(bits) - 1;
    }
  } else if (path.per_class) {
    int32_t at = warp_offset[warp];
    // The members among eight labels from rank r: placed after those of the lanes before (a
    // shuffle scan of the lanes' counts), in rank order within the lane.
    auto emit = [&](const uint4& q, int32_t r) {
      uint32_t bits = LabelBits(q, gg, false) & RanksBefore(r, r_end);
      if (__ballot_sync(0xFFFFFFFFu, bits != 0) == 0) return;  // warp-uniform
      const int32_t c = __popc(bits);
      const int32_t upto = WarpInclusiveSum(c, lane);
      for (int32_t w = at + upto - c; bits != 0; ++w) {
        members[w] = r + __ffs(bits) - 1;
        bits &= bits - 1;
      }
      at += __shfl_sync(0xFFFFFFFFu, upto, kWarp - 1);
    };
#pragma unroll
    for (int hr = 0; hr < kHeld; ++hr) emit(held[hr], held_rank(hr));
    for (int32_t r0 = r_begin + kHeld * kLabelRound; r0 < r_end; r0 += kLabelRound) {
      const int32_t r = r0 + kLabelsPerLoad * lane;
      emit(load(r), r);
    }
  } else {  // one group: every candidate, in score order
    for (int32_t q = static_cast<int32_t>(threadIdx.x); q < m; q += static_cast<int32_t>(blockDim.x)) members[q] = q;
  }
  __syncthreads();
  float4* box = fits ? s_box : sc.member_box + base + g0;
  float* area = fits ? s_area : sc.member_area + base + g0;
  uint8_t* sup = fits ? s_sup : sc.suppressed + base + g0;
  const float off = static_cast<float>(a.pixel_offset);
  const float4* boxes = reinterpret_cast<const float4*>(in.boxes) + base;
  const int32_t* labels = in.labels + base;
  for (int32_t q = static_cast<int32_t>(threadIdx.x); q < m; q += static_cast<int32_t>(blockDim.x)) {
    const int32_t i = by_rank[members[q]];
    float4 b = boxes[i];
    if (path.trick) {
      const float shift = static_cast<float>(labels[i]) * path.span;
      b = make_float4(b.x + shift, b.y + shift, b.z + shift, b.w + shift);
    }
    box[q] = b;
    area[q] = BoxArea(Box{b.x, b.y, b.z, b.w}, off);
    sup[q] = 0;
  }
  __syncthreads();
  // The chain itself touches only the staged members; the kept marks (members never suppressed; the
  // marks were zeroed by the rank stage) are written afterwards, in parallel.
  RK_TRACE_POINT(kTraceGreedyGathered);
  uint8_t* kept = sc.kept + base;
  if (m <= kMaskMax) {  // staged in shared memory (kMaskMax <= kStage)
    BitmaskGroup(a, s_box, s_area, s_sup, m, diag, removed, final_removed);  // ends after a barrier: sup is final in every thread
  } else {
    GreedyBlock(a, box, area, sup, m, next);  // ends after a barrier: sup is final in every thread
  }
  RK_TRACE_POINT(kTraceGreedyWalked);
  for (int32_t q = static_cast<int32_t>(threadIdx.x); q < m; q += static_cast<int32_t>(blockDim.x)) {
    if (!sup[q]) kept[members[q]] = 1;
  }
}

// One block per (image, group): the group's greedy NMS (GreedyGroup, whose early returns are
// block-uniform); then each block publishes its kept marks and counts itself done, and the last
// block of the image writes the image's detections (the count was zeroed by the rank stage).
template <int kThreads, bool kClassBits>
__global__ void __launch_bounds__(kThreads, kGreedyMinBlocks<kThreads>) GreedyKernel(NmsArgs a, DeviceCandidates in, int32_t batch, NmsScratch sc, WriteArgs w,
                                                         DeviceDetections out) {
  RK_TRACE_KERNEL(kTraceGreedy);
  WaitPrevious();  // the ranks, labels and coordinate ranges
  RK_TRACE_POINT(kTraceGreedyWaited);
  __shared__ bool last;
  const int n = static_cast<int>(blockIdx.x / a.classes), g = static_cast<int>(blockIdx.x % a.classes);
  if (n >= batch) return;
  const int32_t valid = sc.info[n * 4 + 0];  // the image's candidates (left by the rank stage)
  GreedyGroup<kThreads, kClassBits>(a, in, sc, n, g, valid);
  __threadfence();  // this thread's kept marks, before the block counts itself done
  __syncthreads();
  if (threadIdx.x == 0) last = atomicAdd(&sc.done[n], 1u) == static_cast<uint32_t>(a.classes) - 1u;
  __syncthreads();
  RK_TRACE_POINT(kTraceGreedyDone);
  if (!last) return;
  __threadfence();
  RK_TRACE_POINT(kTraceWrite);
  WriteImage<kThreads>(w, in, sc, out, n, valid);
}

}  // namespace

Status CheckNmsClasses(const PostprocessParams& p) {
  if (p.num_classes <= kMaxCudaClasses) return Status::Ok();
  return Status(Code::kInvalidArgument, "Expected num_classes <= " + std::to_string(kMaxCudaClasses) +
                                            " for the cuda backend's NMS (16-bit labels) but received " +
                                            std::to_string(p.num_classes));
}

int32_t RankRangeParts(int32_t slots) { return (slots + kRankThreads - 1) / kRankThreads; }

Status WideGreedy(int32_t batch, int32_t classes, bool* wide) {
  int device = 0, sms = 0;
  RK_RETURN_IF_ERROR(CurrentDeviceSms(&device, &sms));
  *wide = static_cast<int64_t>(batch) * classes <= sms;
  return Status::Ok();
}

size_t ClassBitsBytes(int32_t batch, int32_t classes, int32_t slots) {
  if (batch <= 0 || classes <= 0 || slots <= 0 || slots > kCountMaxSlots) return 0;
  const int64_t words = static_cast<int64_t>(classes) * ClassWords(slots);
  if (words > kClassBitsMaxWords) return 0;
  return Align(static_cast<size_t>(batch) * static_cast<size_t>(words) * 4);
}

size_t NmsScratchBytes(int32_t batch, int32_t slots, int32_t range_parts) {
  return Carver::Measure([&](Carver& c) { CarveNmsScratch(c, batch, slots, range_parts); });
}

NmsScratch CarveNmsScratch(Carver& c, int32_t batch, int32_t slots, int32_t range_parts) {
  const size_t ns = static_cast<size_t>(batch) * static_cast<size_t>(slots < 1 ? 1 : slots);
  const size_t images = static_cast<size_t>(batch);
  NmsScratch s;
  s.by_rank = c.Take<int32_t>(ns);
  s.grouped = c.Take<int32_t>(ns);
  s.label_stride = RankLabelStride(slots < 1 ? 1 : slots);
  s.rank_label = c.Take<uint16_t>(images * static_cast<size_t>(s.label_stride));
  s.range_parts = range_parts;
  s.range_part = c.Take<uint32_t>(images * static_cast<size_t>(range_parts) * 2);
  s.member_box = c.Take<float4>(ns);
  s.member_area = c.Take<float>(ns);
  s.suppressed = c.Take<uint8_t>(ns);
  s.kept = c.Take<uint8_t>(ns);
  s.info = c.Take<int32_t>(images * 4);
  s.done = c.Take<uint32_t>(images);
  return s;
}

size_t NmsWorkspaceSize(const PostprocessParams& p, int32_t batch, int32_t slots_per_image) {
  (void)p;
  return NmsScratchBytes(batch, slots_per_image, RankRangeParts(slots_per_image));
}

Status LaunchNms(const PostprocessParams& p, const DeviceCandidates& in, int32_t batch, const int32_t* image_sizes,
                 const int32_t* output_sizes, const DeviceDetections& out, void* workspace, size_t workspace_bytes,
                 cudaStream_t stream, bool chained) {
  RK_RETURN_IF_ERROR(CheckNmsClasses(p));
  if (workspace_bytes < NmsWorkspaceSize(p, batch, in.slots_per_image)) {
    return Status(Code::kInvalidArgument, "Expected an NMS workspace of at least " +
                                              std::to_string(NmsWorkspaceSize(p, batch, in.slots_per_image)) +
                                              " bytes but received " + std::to_string(workspace_bytes));
  }
  if (batch == 0) return Status::Ok();
  return LaunchNmsStages(p, in, batch, image_sizes, output_sizes, out,
                         CarveNmsScratch(workspace, batch, in.slots_per_image, RankRangeParts(in.slots_per_image)),
                         /*ranked=*/false, chained, stream);
}

Status LaunchNmsStages(const PostprocessParams& p, const DeviceCandidates& in, int32_t batch, const int32_t* image_sizes,
                       const int32_t* output_sizes, const DeviceDetections& out, const NmsScratch& sc, bool ranked,
                       bool chained, cudaStream_t stream) {
  const NmsArgs a{p.nms, MakeIouCut(p.nms.iou_thresh, p.nms.compare_in_double), p.decode.pixel_offset,
                  in.topk > 0 ? in.slots_per_image / in.topk : 0, p.num_classes};
  const int32_t S = in.slots_per_image;
  cudaError_t e = cudaSuccess;
  if (!ranked) {
    e = LaunchChained(chained, RankKernel, dim3(RankRangeParts(S), batch), dim3(kRankThreads),
                      S <= kRankSharedSlots ? S * sizeof(float) : 0, stream, a, in, sc);
  }
  const int64_t blocks = static_cast<int64_t>(batch) * p.num_classes;
  constexpr size_t kGreedyShared = static_cast<size_t>(kStage) * (16 + 4 + 4 + 1);
  bool wide = false;
  if (e == cudaSuccess) RK_RETURN_IF_ERROR(WideGreedy(batch, p.num_classes, &wide));
  const WriteArgs w{p.decode.clip, p.output.remove_empty, image_sizes, output_sizes};
  if (e == cudaSuccess) {
    // Each variant is its own kernel: the wide one never has the class bitmaps (LaunchPostprocess).
    const dim3 grid(static_cast<unsigned>(blocks));
    if (wide) {
      e = LaunchChained(true, GreedyKernel<kGreedyWideThreads, false>, grid, dim3(kGreedyWideThreads), kGreedyShared, stream, a, in,
                        batch, sc, w, out);
    } else if (sc.class_bits != nullptr) {
      e = LaunchChained(true, GreedyKernel<kGreedyThreads, true>, grid, dim3(kGreedyThreads), kGreedyShared, stream, a, in, batch, sc,
                        w, out);
    } else {
      e = LaunchChained(true, GreedyKernel<kGreedyThreads, false>, grid, dim3(kGreedyThreads), kGreedyShared, stream, a, in, batch,
                        sc, w, out);
    }
  }
  RK_RETURN_IF_ERROR(CudaStatus("nms", e));
  return LastError("nms");
}

}  // namespace cuda
}  // namespace rk
