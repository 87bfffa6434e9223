// The stages of RetinaNet post-processing on the CPU, each a size query plus a run, in the CUB
// style: the caller owns the workspace. No stage throws; each returns a Status.
#pragma once

#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "rk/math.h"
#include "rk/params.h"
#include "rk/status.h"
#include "rk/tensor.h"

namespace rk {

// ---------------------------------------------------------------------------------------------
// Parameter and shape checks shared by every backend (the TS layer validates first; these guard
// the C++ API for callers that skip it, such as the TensorRT plugins).
Status ValidateParams(const PostprocessParams& p);
Status ValidateShapes(const PostprocessParams& p, const HeadShapes& s);

// ---------------------------------------------------------------------------------------------
// Anchors. The grid form holds one cell anchor per (level, a) and the strides; the anchor of row
// (y*W + x)*A + a is ShiftCell(cell[l][a], GridShift(offset, stride_x, x), GridShift(.., y)).
struct AnchorGrid {
  int32_t num_levels = 0;
  int32_t anchors_per_loc = 0;
  float cell[kMaxLevels][kMaxAnchors][4] = {};
  double stride_y[kMaxLevels] = {};
  double stride_x[kMaxLevels] = {};
  double offset = 0.0;
};

// [in] params, shapes -> [out] grid. Strides from the padded size need shapes.padded_*.
Status MakeAnchorGrid(const AnchorParams& p, const HeadShapes& s, AnchorGrid* grid);

// Anchor of row `row` (within level l). row = (y*W + x)*A + a; 32-bit division suffices per level.
inline Box GridAnchor(const AnchorGrid& g, const HeadShapes& s, int l, int64_t row) {
  const uint32_t r = static_cast<uint32_t>(row);
  const uint32_t A = static_cast<uint32_t>(g.anchors_per_loc), W = static_cast<uint32_t>(s.levels[l].width);
  const int32_t a = static_cast<int32_t>(r % A);
  const uint32_t loc = r / A;
  const int32_t x = static_cast<int32_t>(loc % W);
  const int32_t y = static_cast<int32_t>(loc / W);
  return ShiftCell(g.cell[l][a], GridShift(g.offset, g.stride_x[l], x),
                   GridShift(g.offset, g.stride_y[l], y));
}

// [out] anchors [sum(HWA), 4] f32 in the concatenated row order. No workspace.
Status GenerateAnchors(const AnchorGrid& g, const HeadShapes& s, float* anchors);

// ---------------------------------------------------------------------------------------------
// Selection: score = sigmoid(logit) (or the probability), keep score > f32(t), then the top-k by
// (score desc, flat index asc) per image and level. Candidates carry the row and label.
struct Candidate {
  float score;
  int32_t level;
  int32_t label;
  int32_t row;      // anchor row within the level: (y*W + x)*A + a
  int64_t order;    // tie-break key in the preset's candidate order (SelectParams::candidate_order)
};

// Strict weak order of the ranking: score desc, then level asc, then order asc.
inline bool RanksBefore(const Candidate& a, const Candidate& b) {
  if (a.score != b.score) return a.score > b.score;
  if (a.level != b.level) return a.level < b.level;
  return a.order < b.order;
}

// What the chunks of one (image, level) share while they scan: the best lower bound on the level's
// k-th score found so far (a chunk that holds k candidates proves the level's k-th score is at
// least its own k-th), and the starting bound estimated from a sample with how many candidates
// reached it (fewer than k means the estimate was too high and the level is scanned again).
struct LevelCut {
  std::atomic<float> min_score{-INFINITY};
  float start_score = -INFINITY;           // prefilter start: scores >= this (from a sample)
  std::atomic<int64_t> reached_start{0};   // candidates with score > t and >= start_score
};

// Estimates a starting score for a level from a few contiguous blocks of it: about 2k of the level's
// candidates are expected at or above it. -inf when the sample says nothing useful.
float EstimateStartScore(const SelectParams& p, DType dtype, const void* slice, int64_t elements);

// Scans the element range [begin, end) of one image's level slice (HWA*K elements in storage
// order) and keeps the best `topk` candidates. [in] the class head slice; [in,out] shared cut of the
// level; [out] out, room for SelectChunkCapacity(topk, end - begin) candidates; returns the number
// kept, sorted by RanksBefore.
size_t SelectChunkCapacity(int32_t topk, int64_t chunk_elements);
int32_t SelectChunk(const SelectParams& p, const HeadShapes& s, Layout layout, DType dtype,
                    int level, const void* slice, int64_t begin, int64_t end, Candidate* out,
                    size_t capacity, LevelCut* cut);

// Merges several sorted candidate lists of one image and level into its top-k (sorted).
int32_t MergeTopK(Candidate* const* lists, const int32_t* counts, int num_lists, int32_t topk,
                  Candidate* out);

// ---------------------------------------------------------------------------------------------
// Decode + clip of selected candidates of one image. [in] deltas of that image (per layout),
// anchors (grid or given [sum(HWA), 4]); [out] boxes [n].
struct ImageDeltas {
  const void* box[kMaxLevels];  // concatenated: box[0] = [sum(HWA), 4]; per level: [A*4, H, W]
};
Status DecodeCandidates(const PostprocessParams& p, const HeadShapes& s, Layout layout, DType dtype,
                        const ImageDeltas& deltas, const AnchorGrid& grid, const float* anchors,
                        int32_t image_h, int32_t image_w, const Candidate* cands, int32_t n,
                        Box* boxes, int32_t image_index);

// One candidate: the box of `anchor` moved by deltas d, clipped as the params say (level l's canvas
// for ODTK's clip, the image for torchvision's). NaN is an error naming the candidate.
Status DecodeOne(const PostprocessParams& p, const HeadShapes& s, const AnchorGrid& grid, int l, int64_t row,
                 int32_t label, const Box& anchor, const float d[4], int32_t image_h, int32_t image_w,
                 int32_t image_index, Box* out);

// ---------------------------------------------------------------------------------------------
// NMS of one image. [in] boxes, scores, labels [n]; [out] keep (indices into the inputs, in output
// order: score desc, ties by input position), returns the count. Workspace: NmsWorkspaceSize(n).
size_t NmsWorkspaceSize(int32_t n);
int32_t Nms(const NmsParams& p, int32_t pixel_offset, const Box* boxes, const float* scores,
            const int32_t* labels, int32_t n, int32_t* keep, void* workspace);

// After decode, for one image: NMS, the cap of D detections, (Detectron2) rescale + clip to the
// output size, empty-box removal, and the padded write of row `n` of `out`. [in] boxes, scores,
// labels [num]; keep [num] and nms_workspace (NmsWorkspaceSize(num)) are scratch.
void FinishImage(const PostprocessParams& p, const Box* boxes, const float* scores, const int32_t* labels,
                 int32_t num, int32_t* keep, void* nms_workspace, int32_t image_h, int32_t image_w,
                 const int32_t* output_hw, Detections* out, int32_t n);

// ---------------------------------------------------------------------------------------------
// The whole pipeline on the CPU: every stage for every image, threads over images, levels and
// chunks of levels. Workspace: PostprocessWorkspaceSize for the same params, shapes and threads.
class ThreadPool;
size_t PostprocessWorkspaceSize(const PostprocessParams& p, const HeadShapes& s, int num_threads);
struct RunTimings;
Status Postprocess(const PostprocessParams& p, const HeadShapes& s, const HeadTensors& t,
                   const AnchorGrid& grid, Detections* out, void* workspace, size_t workspace_bytes,
                   ThreadPool* pool, RunTimings* timings = nullptr);

// ---------------------------------------------------------------------------------------------
// The stages after selection, on candidate lists (the candidate cache): per image and level, the
// range [offsets[n*L + l], offsets[n*L + l + 1]) of the arrays below holds candidates of that level
// in any order. Each is re-decided exactly as the class-head pass decides an element (score from
// the raw value, `score > f32(t)`, top-k by RanksBefore with the preset's order key), then decoded,
// suppressed and written as Postprocess does. Given a superset of what the heads would select, the
// detections are those of the heads. Threads over images.
struct CandidateLists {
  const int64_t* offsets = nullptr;  // [batch * L + 1]
  const int32_t* rows = nullptr;     // anchor row within the level: (y*W + x)*A + a
  const int32_t* labels = nullptr;
  const float* values = nullptr;     // the class head's raw value (logit or probability), widened to f32
  const float* deltas = nullptr;     // [., 4] the box head's raw deltas, widened to f32
  const float* anchors = nullptr;    // [., 4] the anchor of each candidate, or null: the grid of the shapes
  // Lists of at least this many entries may have been cut there (the cache's max_topk; 0: never).
  // With per-class thresholds a level of such a list must still hold topk_candidates that pass.
  int32_t list_cap = 0;
};
// The error of a cut list (list_cap) in which fewer than top-k candidates pass the class thresholds.
Status CutListError(int n, int l, int32_t cap, int64_t passing, int32_t topk);
Status PostprocessCandidates(const PostprocessParams& p, const HeadShapes& s, const CandidateLists& c,
                             const AnchorGrid& grid, const int32_t* image_sizes, const int32_t* output_sizes,
                             Detections* out, ThreadPool* pool);

}  // namespace rk
