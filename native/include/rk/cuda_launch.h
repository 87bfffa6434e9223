// The CUDA stage launchers: the whole post-processing of a batch, or its two halves, on device
// memory, on one stream, with no host synchronisation. The engine (native/cuda/engine.cu) and the TensorRT
// plugins (native/trt) are thin callers of these. No N-API and no TensorRT in native/cuda.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "rk/params.h"
#include "rk/stages.h"
#include "rk/status.h"
#include "rk/tensor.h"

namespace rk {
namespace cuda {

// Head outputs in device memory (layouts as rk::HeadTensors).
struct DeviceHeads {
  HeadShapes shapes;
  DType dtype = DType::kFloat32;
  Layout layout = Layout::kConcatenated;
  const void* cls[kMaxLevels] = {};
  const void* box[kMaxLevels] = {};
  const float* anchors = nullptr;     // optional [sum(HWA), 4] or [N, sum(HWA), 4]
  bool anchors_per_image = false;
  const int32_t* image_sizes = nullptr;   // [N, 2] (h, w), device
  const int32_t* output_sizes = nullptr;  // optional [N, 2], device
};

// Candidates between the two halves: per image L*k slots, in (level, rank) order; slot i of image n
// is valid when i % k < counts[n*L + i / k].
struct DeviceCandidates {
  int32_t slots_per_image = 0;  // L * k
  int32_t topk = 0;             // k
  float* scores = nullptr;      // [N, L*k]
  float* boxes = nullptr;       // [N, L*k, 4]
  int32_t* labels = nullptr;    // [N, L*k]
  int32_t* level_counts = nullptr;  // [N, L] valid slots per level
};

// Outputs, padded as TensorRT's NMS plugins emit them: rows past counts[n] are zeros.
struct DeviceDetections {
  int32_t max_detections = 0;  // D
  DType dtype = DType::kFloat32;  // of boxes and scores
  int32_t* counts = nullptr;   // [N]
  void* boxes = nullptr;       // [N, D, 4]
  void* scores = nullptr;      // [N, D]
  int32_t* labels = nullptr;   // [N, D]
};

// A device record of the first non-finite decoded box: [0] flag, [1] image, [2] level, [3] row,
// [4] label, [5] 1 when the anchor was NaN. Zeroed by each launch.
constexpr int kErrorWords = 8;

// Bytes of scratch for these params and shapes (the same call with a null workspace, CUB style).
size_t PostprocessWorkspaceSize(const PostprocessParams& p, const HeadShapes& s);
size_t SelectDecodeWorkspaceSize(const PostprocessParams& p, const HeadShapes& s);
size_t NmsWorkspaceSize(const PostprocessParams& p, int32_t batch, int32_t slots_per_image);

// [in] heads (device), grid (host struct, passed to the kernels by value); [out] detections
// (device), error record (device, kErrorWords words). Returns kCudaError on a launch failure.
Status LaunchPostprocess(const PostprocessParams& p, const AnchorGrid& grid, const DeviceHeads& in,
                         const DeviceDetections& out, int32_t* error, void* workspace, size_t workspace_bytes,
                         cudaStream_t stream);

// Select + decode + clip: heads -> candidates (the RetinaNetDecode plugin).
Status LaunchSelectDecode(const PostprocessParams& p, const AnchorGrid& grid, const DeviceHeads& in,
                          const DeviceCandidates& out, int32_t* error, void* workspace, size_t workspace_bytes,
                          cudaStream_t stream);

// NMS + sort + cap + write: candidates -> detections (the RetinaNetNMS plugin). image_sizes and
// output_sizes (device, optional) serve Detectron2's clip after NMS. `chained`: the candidates
// come from the kernel just before on this stream (LaunchSelectDecode), so the first NMS kernel
// may overlap its tail; a caller whose candidates were written otherwise leaves it false.
Status LaunchNms(const PostprocessParams& p, const DeviceCandidates& in, int32_t batch, const int32_t* image_sizes,
                 const int32_t* output_sizes, const DeviceDetections& out, void* workspace, size_t workspace_bytes,
                 cudaStream_t stream, bool chained = false);

// [out] sizes [N, 2] = (h, w) for every image: the clip size of a caller without per-image sizes
// (the TensorRT plugins without an image_sizes input).
Status LaunchFillImageSizes(int32_t* sizes, int32_t batch, int32_t height, int32_t width, cudaStream_t stream);

// The CUDA error of the last launch on this thread as a Status (kOk when none).
Status LastError(const char* what);
// The CUDA error e of `what` as a Status (kOk when cudaSuccess).
Status CudaStatus(const char* what, cudaError_t e);
// Lets `kernel` use `smem` bytes of dynamic shared memory (more than the default 48 KB needs the
// device's consent). The consent is asked when a kernel first needs more on a device than it was
// granted before (a new top-k, say), not at every launch: runs without a graph (and TensorRT's
// enqueue) call this each time. A refusal is an error that says what was expected (`expected`).
Status AllowSharedBytes(const void* kernel, size_t smem, const char* expected);
// The current device and its multiprocessor count (asked of the device once, then remembered per device).
Status CurrentDeviceSms(int* device, int* sms);

}  // namespace cuda
}  // namespace rk
