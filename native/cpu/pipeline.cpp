// The CPU pipeline: select (threads over images x levels x chunks of a level), then per image
// merge, decode, clip, NMS, cap and write (threads over images).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <string>
#include <vector>

#include "rk/engine.h"
#include "rk/stages.h"
#include "thread_pool.h"

namespace rk {
namespace {

// Select tasks: about four per thread over the batch, none smaller than this (each has its own
// start-up), so that one thread scans each level in one piece and many threads share the big ones.
constexpr int64_t kMinChunkElements = int64_t{1} << 18;
constexpr int64_t kMaxChunkElements = int64_t{1} << 22;

size_t Align(size_t bytes) { return (bytes + 63) & ~static_cast<size_t>(63); }

struct Plan {
  int32_t chunks[kMaxLevels] = {};    // chunks per level
  int32_t first_chunk[kMaxLevels] = {};
  int32_t chunks_per_image = 0;
  int32_t tasks = 0;                  // N * chunks_per_image
  size_t chunk_capacity = 0;          // candidates per select buffer
  int32_t per_image_candidates = 0;   // L * topk
  size_t select_bytes = 0, image_bytes = 0, nms_bytes = 0;
};

Plan MakePlan(const PostprocessParams& p, const HeadShapes& s, int threads) {
  Plan plan;
  int64_t per_image = 0;
  for (int l = 0; l < s.num_levels; ++l) per_image += s.LevelElements(l);
  const int64_t want = (per_image * s.batch + 4 * threads - 1) / (4 * std::max(threads, 1));
  const int64_t chunk = threads <= 1 ? per_image : std::min(kMaxChunkElements, std::max(kMinChunkElements, want));
  int64_t largest = 1;
  for (int l = 0; l < s.num_levels; ++l) {
    const int64_t elems = s.LevelElements(l);
    plan.first_chunk[l] = plan.chunks_per_image;
    plan.chunks[l] = static_cast<int32_t>(std::max<int64_t>(1, (elems + chunk - 1) / chunk));
    plan.chunks_per_image += plan.chunks[l];
    largest = std::max(largest, (elems + plan.chunks[l] - 1) / plan.chunks[l]);
  }
  plan.tasks = s.batch * plan.chunks_per_image;
  const int32_t topk = std::max(p.select.topk_candidates, 0);
  plan.chunk_capacity = SelectChunkCapacity(std::max(topk, 1), largest);
  plan.per_image_candidates = s.num_levels * topk;
  const size_t m = static_cast<size_t>(std::max(plan.per_image_candidates, 1));
  plan.select_bytes = Align(static_cast<size_t>(plan.tasks) * plan.chunk_capacity * sizeof(Candidate)) +
                      Align(static_cast<size_t>(plan.tasks) * sizeof(int32_t));
  plan.nms_bytes = NmsWorkspaceSize(static_cast<int32_t>(m));
  // Per image: merged candidates, boxes, scores, labels, keep, NMS scratch.
  plan.image_bytes = Align(m * sizeof(Candidate)) + Align(m * sizeof(Box)) + 3 * Align(m * 4) +
                     Align(plan.nms_bytes);
  return plan;
}

const void* Offset(const void* base, DType dtype, int64_t elements) {
  return static_cast<const uint8_t*>(base) + elements * static_cast<int64_t>(DTypeSize(dtype));
}

}  // namespace

void FinishImage(const PostprocessParams& p, const Box* boxes, const float* scores, const int32_t* labels,
                 int32_t num, int32_t* keep, void* nms_workspace, int32_t image_h, int32_t image_w,
                 const int32_t* output_hw, Detections* out, int32_t n) {
  const int32_t D = out->max_detections;
  const int32_t kept = Nms(p.nms, p.decode.pixel_offset, boxes, scores, labels, num, keep, nms_workspace);

  // Cap, then (Detectron2) rescale to the output size, clip and drop empty boxes.
  const int32_t capped = std::min(kept, D);
  float* ob = out->boxes + static_cast<size_t>(n) * D * 4;
  float* os = out->scores + static_cast<size_t>(n) * D;
  int32_t* ol = out->labels + static_cast<size_t>(n) * D;
  int32_t written = 0;
  for (int32_t r = 0; r < capped; ++r) {
    const int32_t i = keep[r];
    Box b = boxes[i];
    if (p.decode.clip == ClipMode::kOutputAfterNms) {
      b = RescaleAndClip(b, image_h, image_w, output_hw);
    }
    if (p.output.remove_empty && !((b.x2 - b.x1) > 0.0f && (b.y2 - b.y1) > 0.0f)) continue;
    float* row = ob + static_cast<size_t>(written) * 4;
    row[0] = b.x1;
    row[1] = b.y1;
    row[2] = b.x2;
    row[3] = b.y2;
    os[written] = scores[i];
    ol[written] = labels[i];
    ++written;
  }
  out->counts[n] = written;
  std::memset(ob + static_cast<size_t>(written) * 4, 0, static_cast<size_t>(D - written) * 16);
  std::memset(os + written, 0, static_cast<size_t>(D - written) * 4);
  std::memset(ol + written, 0, static_cast<size_t>(D - written) * 4);
}

size_t PostprocessWorkspaceSize(const PostprocessParams& p, const HeadShapes& s, int num_threads) {
  const Plan plan = MakePlan(p, s, num_threads);
  return plan.select_bytes + static_cast<size_t>(s.batch) * plan.image_bytes;
}

Status Postprocess(const PostprocessParams& p, const HeadShapes& s, const HeadTensors& t,
                   const AnchorGrid& grid, Detections* out, void* workspace, size_t workspace_bytes,
                   ThreadPool* pool, RunTimings* timings) {
  using Clock = std::chrono::steady_clock;
  const auto t0 = Clock::now();
  const Plan plan = MakePlan(p, s, pool->size());
  const size_t needed = plan.select_bytes + static_cast<size_t>(s.batch) * plan.image_bytes;
  if (workspace_bytes < needed) {
    return Status(Code::kInternal, "Expected a workspace of " + std::to_string(needed) +
                                       " bytes but received " + std::to_string(workspace_bytes));
  }
  auto* ws = static_cast<uint8_t*>(workspace);
  auto* chunk_cands = reinterpret_cast<Candidate*>(ws);
  auto* chunk_counts = reinterpret_cast<int32_t*>(
      ws + Align(static_cast<size_t>(plan.tasks) * plan.chunk_capacity * sizeof(Candidate)));
  uint8_t* image_ws = ws + plan.select_bytes;

  const int64_t total_anchors = s.TotalAnchors();
  const int K = s.num_classes;

  auto slice_of = [&](int n, int l) -> const void* {
    if (t.layout == Layout::kConcatenated) {  // [N, sum(HWA), K]
      return Offset(t.cls[0], t.dtype, (n * total_anchors + s.LevelAnchorOffset(l)) * K);
    }
    return Offset(t.cls[l], t.dtype, n * s.LevelElements(l));  // [N, A*K, H, W]
  };

  // 1. Selection. Each (image, level) starts from a bound estimated on a sample of it, then one task
  // per (image, level, chunk) scans, the chunks of a level sharing the bound as it rises.
  std::vector<LevelCut> cuts(static_cast<size_t>(s.batch) * s.num_levels);
  pool->ParallelFor(s.batch * s.num_levels, [&](int i) {
    const int n = i / s.num_levels, l = i % s.num_levels;
    cuts[static_cast<size_t>(i)].start_score = EstimateStartScore(p.select, t.dtype, slice_of(n, l), s.LevelElements(l));
  });
  std::vector<Status> statuses(static_cast<size_t>(s.batch));
  auto run_task = [&](int task) {
    const int n = task / plan.chunks_per_image;
    const int c = task % plan.chunks_per_image;
    int l = 0;
    while (l + 1 < s.num_levels && c >= plan.first_chunk[l + 1]) ++l;
    const int chunk = c - plan.first_chunk[l];
    const int64_t elems = s.LevelElements(l);
    const int64_t per = (elems + plan.chunks[l] - 1) / plan.chunks[l];
    const int64_t begin = std::min<int64_t>(elems, per * chunk);
    const int64_t end = std::min<int64_t>(elems, begin + per);
    chunk_counts[task] = SelectChunk(p.select, s, t.layout, t.dtype, l, slice_of(n, l), begin, end,
                                     chunk_cands + static_cast<size_t>(task) * plan.chunk_capacity,
                                     plan.chunk_capacity, &cuts[static_cast<size_t>(n) * s.num_levels + l]);
  };
  pool->ParallelFor(plan.tasks, run_task);
  // A level whose estimate was too high (fewer than k candidates reached it, and no chunk proved a
  // higher k-th score) is scanned again from the threshold: the estimate never changes a result.
  std::vector<int> again;
  for (int n = 0; n < s.batch; ++n) {
    for (int l = 0; l < s.num_levels; ++l) {
      LevelCut& cut = cuts[static_cast<size_t>(n) * s.num_levels + l];
      const bool proven = cut.min_score.load() >= cut.start_score;
      if (cut.start_score == -INFINITY || proven || cut.reached_start.load() >= p.select.topk_candidates) continue;
      cut.start_score = -INFINITY;
      cut.min_score.store(-INFINITY);
      cut.reached_start.store(0);
      for (int c = 0; c < plan.chunks[l]; ++c) again.push_back(n * plan.chunks_per_image + plan.first_chunk[l] + c);
    }
  }
  pool->ParallelFor(static_cast<int>(again.size()), [&](int i) { run_task(again[static_cast<size_t>(i)]); });
  for (int task = 0; task < plan.tasks; ++task) {
    if (chunk_counts[task] < 0) return Status(Code::kInternal, "a select buffer was smaller than its chunk needs");
  }

  const auto t1 = Clock::now();
  // 2. Per image: merge, decode + clip, NMS, cap, write.
  pool->ParallelFor(s.batch, [&](int n) {
    const size_t m = static_cast<size_t>(std::max(plan.per_image_candidates, 1));
    uint8_t* q = image_ws + static_cast<size_t>(n) * plan.image_bytes;
    auto* cands = reinterpret_cast<Candidate*>(q); q += Align(m * sizeof(Candidate));
    auto* boxes = reinterpret_cast<Box*>(q); q += Align(m * sizeof(Box));
    auto* scores = reinterpret_cast<float*>(q); q += Align(m * 4);
    auto* labels = reinterpret_cast<int32_t*>(q); q += Align(m * 4);
    auto* keep = reinterpret_cast<int32_t*>(q); q += Align(m * 4);
    void* nms_ws = q;

    int32_t num = 0;
    std::vector<Candidate*> lists;
    std::vector<int32_t> counts;
    for (int l = 0; l < s.num_levels; ++l) {
      const int base = n * plan.chunks_per_image + plan.first_chunk[l];
      lists.clear();
      counts.clear();
      for (int c = 0; c < plan.chunks[l]; ++c) {
        lists.push_back(chunk_cands + static_cast<size_t>(base + c) * plan.chunk_capacity);
        counts.push_back(chunk_counts[base + c]);
      }
      num += MergeTopK(lists.data(), counts.data(), plan.chunks[l], p.select.topk_candidates, cands + num);
    }

    ImageDeltas deltas{};
    if (t.layout == Layout::kConcatenated) {
      deltas.box[0] = Offset(t.box[0], t.dtype, n * total_anchors * 4);
    } else {
      for (int l = 0; l < s.num_levels; ++l) {
        deltas.box[l] = Offset(t.box[l], t.dtype, n * s.LevelAnchors(l) * 4);
      }
    }
    const float* anchors = t.anchors == nullptr ? nullptr
                           : t.anchors + (t.anchors_per_image ? n * total_anchors * 4 : 0);
    const int32_t image_h = t.image_sizes[2 * n], image_w = t.image_sizes[2 * n + 1];
    Status st = DecodeCandidates(p, s, t.layout, t.dtype, deltas, grid, anchors, image_h, image_w,
                                 cands, num, boxes, n);
    if (!st.ok()) {
      statuses[static_cast<size_t>(n)] = st;
      return;
    }
    for (int32_t i = 0; i < num; ++i) {
      scores[i] = cands[i].score;
      labels[i] = cands[i].label;
    }
    FinishImage(p, boxes, scores, labels, num, keep, nms_ws, image_h, image_w,
                t.output_sizes == nullptr ? nullptr : t.output_sizes + 2 * n, out, n);
  });
  if (timings != nullptr) {
    timings->select_ms = std::chrono::duration<double, std::milli>(t1 - t0).count();
    timings->decode_nms_ms = std::chrono::duration<double, std::milli>(Clock::now() - t1).count();
  }
  for (const Status& st : statuses) RK_RETURN_IF_ERROR(st);
  return Status::Ok();
}

}  // namespace rk
