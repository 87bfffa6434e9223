#include <chrono>
#include <vector>

#include "rk/engine.h"
#include "rk/stages.h"
#include "thread_pool.h"

namespace rk {
namespace {

class CpuEngine final : public Engine {
 public:
  CpuEngine(const PostprocessParams& params, int num_threads)
      : params_(params), pool_(num_threads < 1 ? 1 : num_threads) {}

  const char* backend() const override { return "cpu"; }
  size_t workspace_bytes() const override { return workspace_.size(); }

  Status Run(const HeadShapes& shapes, const HeadTensors& tensors, Residency residency,
             Detections* out, RunTimings* timings) override {
    if (residency != Residency::kHost) {
      return Status(Code::kInvalidArgument,
                    "Expected host memory for the cpu backend but received device pointers");
    }
    const auto start = std::chrono::steady_clock::now();
    RK_RETURN_IF_ERROR(ValidateShapes(params_, shapes));
    AnchorGrid grid;
    RK_RETURN_IF_ERROR(MakeAnchorGrid(params_.anchors, shapes, &grid));
    const size_t need = PostprocessWorkspaceSize(params_, shapes, pool_.size());
    if (workspace_.size() < need) workspace_.resize(need);  // grows once per larger shape
    RK_RETURN_IF_ERROR(
        Postprocess(params_, shapes, tensors, grid, out, workspace_.data(), workspace_.size(), &pool_, timings));
    if (timings != nullptr) {
      timings->compute_ms =
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    }
    return Status::Ok();
  }

  Status RunCandidates(const HeadShapes& shapes, const CandidateLists& lists, const int32_t* image_sizes,
                       const int32_t* output_sizes, Detections* out, RunTimings* timings) override {
    const auto start = std::chrono::steady_clock::now();
    RK_RETURN_IF_ERROR(ValidateShapes(params_, shapes));
    AnchorGrid grid;
    RK_RETURN_IF_ERROR(MakeAnchorGrid(params_.anchors, shapes, &grid));
    RK_RETURN_IF_ERROR(PostprocessCandidates(params_, shapes, lists, grid, image_sizes, output_sizes, out, &pool_));
    if (timings != nullptr) {
      timings->compute_ms = timings->decode_nms_ms =
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    }
    return Status::Ok();
  }

 private:
  PostprocessParams params_;
  ThreadPool pool_;
  std::vector<uint8_t> workspace_;
};

}  // namespace

std::unique_ptr<Engine> MakeCpuEngine(const PostprocessParams& params, int num_threads) {
  return std::make_unique<CpuEngine>(params, num_threads);
}

}  // namespace rk
