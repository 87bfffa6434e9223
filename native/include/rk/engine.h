// A backend's runner: built once from validated params, owning its workspace and threads (CPU) or
// stream, buffers and graphs (CUDA). The bindings hold one per Postprocessor.
#pragma once

#include <memory>
#include <string>

#include "rk/params.h"
#include "rk/status.h"
#include "rk/tensor.h"

namespace rk {

struct RunTimings {
  double upload_ms = 0.0;    // host -> device copies (CUDA, host inputs)
  double compute_ms = 0.0;   // the stages
  double download_ms = 0.0;  // device -> host copies (CUDA)
  double select_ms = 0.0;    // threshold + top-k pass over the class head (part of compute_ms)
  double decode_nms_ms = 0.0;  // merge, decode, NMS, cap, write (part of compute_ms)
  bool graph_replayed = false;
};

struct CandidateLists;  // rk/stages.h

// Where the HeadTensors pointers live.
enum class Residency : int32_t { kHost = 0, kDevice = 1 };

class Engine {
 public:
  virtual ~Engine() = default;
  virtual const char* backend() const = 0;
  // [in] shapes, tensors (host or device memory, as `residency` says); [out] detections in host
  // memory, padded form. Returns a Status; never throws.
  virtual Status Run(const HeadShapes& shapes, const HeadTensors& tensors, Residency residency,
                     Detections* out, RunTimings* timings) = 0;
  // The stages after selection on candidate lists in host memory (the candidate cache). [in] shapes
  // of the heads the lists came from, image (and output) sizes [N, 2]; [out] detections.
  virtual Status RunCandidates(const HeadShapes& shapes, const CandidateLists& lists, const int32_t* image_sizes,
                               const int32_t* output_sizes, Detections* out, RunTimings* timings) {
    (void)shapes, (void)lists, (void)image_sizes, (void)output_sizes, (void)out, (void)timings;
    return Status(Code::kUnavailable, std::string("Expected the cpu backend for candidate lists but this engine is ") + backend());
  }
  // Bytes of scratch the engine holds for the last shapes it ran.
  virtual size_t workspace_bytes() const = 0;
};

// CPU engine with `num_threads` threads (>= 1), over host memory.
std::unique_ptr<Engine> MakeCpuEngine(const PostprocessParams& params, int num_threads);

}  // namespace rk
