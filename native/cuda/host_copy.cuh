// Copies from pageable host memory (JavaScript's arrays) to the device at the link's speed.
//
// A plain cudaMemcpy from pageable memory goes through the driver's own small staging buffer, one
// thread at a time: about 6 GB/s on the H200 machine, where the link does several times that. Here
// the bytes go in chunks through a ring of pinned buffers: several threads fill chunk i + 1 while the
// copy engine moves chunk i, and a slot is refilled only after its last copy has finished (an event
// per slot). One stager per device, shared by the engines and upload() of the process (a mutex
// serialises them: they share the link anyway).
#pragma once

#include <cuda_runtime.h>

#include <cstddef>

namespace rk {
namespace cuda {

struct HostCopy {
  void* device;      // destination (device memory)
  const void* host;  // source (pageable or pinned host memory)
  size_t bytes;
};

// Enqueues the copies on `stream` (device memory of `device`, the current device). Returns when the
// last chunk has been handed to the copy engine: the host arrays may change from then on, and the
// copies are complete when `stream` reaches that point.
cudaError_t CopyFromHost(int device, const HostCopy* copies, int count, cudaStream_t stream);

}  // namespace cuda
}  // namespace rk
