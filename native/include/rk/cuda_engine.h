// The CUDA backend: device discovery, the engine behind `backend: "cuda"`, device-resident inputs,
// and the stage launchers the TensorRT plugins call directly (native/include/rk/cuda_launch.h has those).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "rk/engine.h"
#include "rk/params.h"
#include "rk/status.h"
#include "rk/tensor.h"

namespace rk {

struct CudaDeviceInfo {
  int index = 0;
  std::string name;
  int major = 0, minor = 0;
  int multiprocessors = 0;
  size_t total_memory = 0;
};

struct CudaDeviceList {
  std::vector<CudaDeviceInfo> devices;
  std::string reason;  // why there are none (no driver, no device, driver too old), empty otherwise
  int driver_version = 0;
};

// Never fails: a machine without a driver or a device gets an empty list and the reason.
CudaDeviceList ListCudaDevices();
int CudaRuntimeVersion();

// An engine on device `device`; on failure returns null and says why in *status (kUnavailable when
// there is no usable device, kCudaError for a CUDA failure).
// use_graph: capture the stages in a CUDA Graph per fixed shape (and pointers) and replay it.
std::unique_ptr<Engine> MakeCudaEngine(const PostprocessParams& params, int device, bool use_graph, Status* status);

// Device memory owned by the caller of Upload (e.g. a JS handle); freed with FreeDevice.
struct DeviceBuffer {
  void* ptr = nullptr;
  size_t bytes = 0;
  int device = 0;
};
Status UploadToDevice(const void* host, size_t bytes, int device, DeviceBuffer* out);
void FreeDevice(DeviceBuffer* buffer);

}  // namespace rk
