// The stages after selection on candidate lists (the candidate cache, kernel/postprocess/cache.ts):
// the same decisions as the class-head pass, on the few elements a cache keeps.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "rk/stages.h"
#include "thread_pool.h"

namespace rk {
namespace {

// A candidate and where it sits in the lists (its deltas and anchor).
struct Entry {
  Candidate cand;
  int64_t at;
};

}  // namespace

Status CutListError(int n, int l, int32_t cap, int64_t passing, int32_t topk) {
  return Status(Code::kInvalidArgument,
                "Expected topk_candidates (" + std::to_string(topk) + ") candidates passing score_thresh_per_class in image " +
                    std::to_string(n) + ", level P" + std::to_string(l + 3) + " of the candidate cache, which holds only the best " +
                    std::to_string(cap) + " (max_topk) of the level, but " + std::to_string(passing) +
                    " of them pass: the class thresholds remove candidates the cache kept, and the ones it cut could be selected. "
                    "Lower topk_candidates to " + std::to_string(passing) + " or rebuild the cache with a larger --max-topk");
}

Status PostprocessCandidates(const PostprocessParams& p, const HeadShapes& s, const CandidateLists& c,
                             const AnchorGrid& grid, const int32_t* image_sizes, const int32_t* output_sizes,
                             Detections* out, ThreadPool* pool) {
  if (c.offsets == nullptr || c.rows == nullptr || c.labels == nullptr || c.values == nullptr || c.deltas == nullptr) {
    return Status(Code::kInvalidArgument, "Expected offsets, rows, labels, values and deltas for the candidate lists but one is missing");
  }
  const int L = s.num_levels;
  const int K = s.num_classes;
  const int A = s.anchors_per_loc;
  const float thresh = static_cast<float>(p.select.score_thresh);
  const int32_t topk = p.select.topk_candidates;
  std::vector<Status> statuses(static_cast<size_t>(s.batch));
  pool->ParallelFor(s.batch, [&](int n) {
    // Scratch of this thread (a few thousand candidates at most: L * top-k after the cut).
    thread_local std::vector<Entry> level;
    thread_local std::vector<Entry> cands;
    cands.clear();
    for (int l = 0; l < L; ++l) {
      const int64_t begin = c.offsets[static_cast<size_t>(n) * L + l];
      const int64_t end = c.offsets[static_cast<size_t>(n) * L + l + 1];
      const int64_t hw = static_cast<int64_t>(s.levels[l].height) * s.levels[l].width;
      const int64_t level_anchors = s.LevelAnchors(l);
      level.clear();
      // Lists stored in ranking order (the cache's) have non-increasing raw values: the scores of
      // the rest of the level are then all <= this one once one fails the threshold.
      bool descending = true;
      // (A NaN anywhere, which such lists never hold, takes the general path.)
      for (int64_t i = begin; i < end && descending; ++i) descending = c.values[i] == c.values[i] && (i == begin || c.values[i] <= c.values[i - 1]);
      for (int64_t i = begin; i < end; ++i) {
        const float v = c.values[i];
        const float score = p.select.score_input == ScoreInput::kLogits ? SigmoidF32(v) : v;
        if (!(score > thresh)) {
          if (descending) break;
          continue;
        }
        const int32_t row = c.rows[i];
        const int32_t label = c.labels[i];
        if (row < 0 || row >= level_anchors || label < 0 || label >= K) {
          statuses[static_cast<size_t>(n)] = Status(
              Code::kInvalidArgument, "Expected anchor rows in [0, " + std::to_string(level_anchors) + ") and labels in [0, " +
                                          std::to_string(K) + ") at image " + std::to_string(n) + ", level P" +
                                          std::to_string(l + 3) + " but received row " + std::to_string(row) +
                                          ", label " + std::to_string(label));
          return;
        }
        Candidate cand;
        cand.score = score;
        cand.level = l;
        cand.label = label;
        cand.row = row;
        if (p.select.class_thresh != nullptr && !(score > p.select.class_thresh[label])) continue;
        cand.order = p.select.candidate_order == CandidateOrder::kAnchorMajor
                         ? static_cast<int64_t>(row) * K + label
                         : (static_cast<int64_t>(row % A) * K + label) * hw + row / A;
        level.push_back(Entry{cand, i});
      }
      if (p.select.class_thresh != nullptr && c.list_cap > 0 && end - begin >= c.list_cap && level.size() < static_cast<size_t>(std::max(topk, 0))) {
        // What the cache cut scores below its lowest kept score: it could pass only a class
        // threshold below that score (thresh is the lowest class threshold).
        float lowest = INFINITY;
        for (int64_t i = begin; i < end; ++i) {
          const float sc = p.select.score_input == ScoreInput::kLogits ? SigmoidF32(c.values[i]) : c.values[i];
          if (sc < lowest) lowest = sc;
        }
        if (thresh < lowest) {
          statuses[static_cast<size_t>(n)] = CutListError(n, l, c.list_cap, static_cast<int64_t>(level.size()), topk);
          return;
        }
      }
      const size_t keep = std::min(level.size(), static_cast<size_t>(std::max(topk, 0)));
      const auto ranks = [](const Entry& a, const Entry& b) { return RanksBefore(a.cand, b.cand); };
      if (std::is_sorted(level.begin(), level.end(), ranks)) {
        // Already in ranking order: the top-k is the prefix.
        cands.insert(cands.end(), level.begin(), level.begin() + static_cast<std::ptrdiff_t>(keep));
        continue;
      }
      // Otherwise the top-k by RanksBefore (a strict total order within a level: the order key is unique).
      if (keep < level.size()) std::nth_element(level.begin(), level.begin() + static_cast<std::ptrdiff_t>(keep), level.end(), ranks);
      std::sort(level.begin(), level.begin() + static_cast<std::ptrdiff_t>(keep), ranks);
      cands.insert(cands.end(), level.begin(), level.begin() + static_cast<std::ptrdiff_t>(keep));
    }
    const int32_t num = static_cast<int32_t>(cands.size());
    // Scratch of this thread, grown as needed and reused by its next images.
    thread_local std::vector<Box> boxes;
    thread_local std::vector<float> scores;
    thread_local std::vector<int32_t> labels, keep;
    thread_local std::vector<uint8_t> nms_ws;
    for (auto* v : {&labels, &keep}) v->resize(std::max(v->size(), cands.size()));
    boxes.resize(std::max(boxes.size(), cands.size()));
    scores.resize(std::max(scores.size(), cands.size()));
    nms_ws.resize(std::max(nms_ws.size(), NmsWorkspaceSize(std::max(num, 1))));
    const int32_t image_h = image_sizes[2 * n], image_w = image_sizes[2 * n + 1];
    for (int32_t i = 0; i < num; ++i) {
      const Candidate& cand = cands[static_cast<size_t>(i)].cand;
      const int64_t at = cands[static_cast<size_t>(i)].at;
      const float* d = c.deltas + at * 4;
      const Box anchor = c.anchors != nullptr ? Box{c.anchors[at * 4], c.anchors[at * 4 + 1], c.anchors[at * 4 + 2], c.anchors[at * 4 + 3]}
                                              : GridAnchor(grid, s, cand.level, cand.row);
      Status st = DecodeOne(p, s, grid, cand.level, cand.row, cand.label, anchor, d, image_h, image_w, n, &boxes[static_cast<size_t>(i)]);
      if (!st.ok()) {
        statuses[static_cast<size_t>(n)] = st;
        return;
      }
      scores[static_cast<size_t>(i)] = cand.score;
      labels[static_cast<size_t>(i)] = cand.label;
    }
    FinishImage(p, boxes.data(), scores.data(), labels.data(), num, keep.data(), nms_ws.data(), image_h, image_w,
                output_sizes == nullptr ? nullptr : output_sizes + 2 * n, out, n);
  });
  for (const Status& st : statuses) RK_RETURN_IF_ERROR(st);
  return Status::Ok();
}

}  // namespace rk
