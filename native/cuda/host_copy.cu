#include "host_copy.cuh"

#include <algorithm>
#include <cstdlib>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

#include "../cpu/thread_pool.h"

namespace rk {
namespace cuda {
namespace {

constexpr size_t kChunk = size_t{8} << 20;  // 8 MiB a chunk
constexpr int kSlots = 4;                   // 32 MiB of pinned memory per device
constexpr size_t kPart = size_t{1} << 20;   // at most one thread per MiB of a chunk

// The threads that fill the staging: min(8, cores / 2), or RK_CUDA_COPY_THREADS (1-64) for measuring.
int Threads() {
  const char* e = std::getenv("RK_CUDA_COPY_THREADS");
  const long v = e == nullptr ? 0 : std::atol(e);
  if (v >= 1 && v <= 64) return static_cast<int>(v);
  const unsigned hw = std::thread::hardware_concurrency();
  return std::max(1, std::min(8, static_cast<int>(hw == 0 ? 1 : hw) / 2));
}

class Stager {
 public:
  cudaError_t Copy(const HostCopy* copies, int count, cudaStream_t stream) {
    std::lock_guard<std::mutex> lock(mutex_);
    cudaError_t e = Init();
    if (e != cudaSuccess) return e;
    for (int c = 0; c < count; ++c) {
      const HostCopy& cp = copies[c];
      for (size_t off = 0; off < cp.bytes; off += kChunk) {
        const size_t len = std::min(kChunk, cp.bytes - off);
        if (used_[slot_] && (e = cudaEventSynchronize(free_[slot_])) != cudaSuccess) return e;
        uint8_t* dst = pinned_ + static_cast<size_t>(slot_) * kChunk;
        const uint8_t* src = static_cast<const uint8_t*>(cp.host) + off;
        const int parts = static_cast<int>(std::min<size_t>(static_cast<size_t>(pool_->size()), (len + kPart - 1) / kPart));
        if (parts <= 1) {
          std::memcpy(dst, src, len);
        } else {
          pool_->ParallelFor(parts, [&](int i) {
            const size_t a = (len * static_cast<size_t>(i) / static_cast<size_t>(parts)) & ~size_t{63};
            const size_t b = i + 1 == parts ? len : (len * static_cast<size_t>(i + 1) / static_cast<size_t>(parts)) & ~size_t{63};
            std::memcpy(dst + a, src + a, b - a);
          });
        }
        if ((e = cudaMemcpyAsync(static_cast<uint8_t*>(cp.device) + off, dst, len, cudaMemcpyHostToDevice, stream)) != cudaSuccess) return e;
        if ((e = cudaEventRecord(free_[slot_], stream)) != cudaSuccess) return e;
        used_[slot_] = true;
        slot_ = (slot_ + 1) % kSlots;
      }
    }
    return cudaSuccess;
  }

 private:
  cudaError_t Init() {
    if (pinned_ != nullptr) return cudaSuccess;
    void* p = nullptr;
    cudaError_t e = cudaHostAlloc(&p, kChunk * kSlots, cudaHostAllocPortable);
    if (e != cudaSuccess) return e;
    for (int i = 0; i < kSlots; ++i) {
      if ((e = cudaEventCreateWithFlags(&free_[i], cudaEventDisableTiming)) != cudaSuccess) {
        for (int j = 0; j < i; ++j) cudaEventDestroy(free_[j]);
        cudaFreeHost(p);
        return e;
      }
    }
    pool_ = std::make_unique<ThreadPool>(Threads());
    pinned_ = static_cast<uint8_t*>(p);
    // Freed at exit, before the CUDA runtime's own teardown (registered at its initialisation, which
    // came before this, so it runs after: exit handlers run in reverse order).
    static const bool registered = (std::atexit(ReleaseAll), true);
    (void)registered;
    return cudaSuccess;
  }

 public:
  // The pinned ring and events back to CUDA, and the threads joined. Skipped when a copy is in
  // progress at exit (the process is ending anyway).
  void Release() {
    std::unique_lock<std::mutex> lock(mutex_, std::try_to_lock);
    if (!lock.owns_lock() || pinned_ == nullptr) return;
    for (int i = 0; i < kSlots; ++i) {
      if (used_[i]) cudaEventSynchronize(free_[i]);
      cudaEventDestroy(free_[i]);
      used_[i] = false;
    }
    cudaFreeHost(pinned_);
    pinned_ = nullptr;
    pool_.reset();
  }

 private:
  static void ReleaseAll();

  std::mutex mutex_;
  uint8_t* pinned_ = nullptr;
  cudaEvent_t free_[kSlots] = {};
  bool used_[kSlots] = {};
  int slot_ = 0;
  std::unique_ptr<ThreadPool> pool_;
};

// One stager per device, never destroyed: its pinned memory and events are released by an exit
// handler (a static destructor would run after the CUDA runtime's teardown).
std::mutex& StagersMutex() {
  static auto* mutex = new std::mutex();
  return *mutex;
}
std::map<int, Stager*>& Stagers() {
  static auto* stagers = new std::map<int, Stager*>();
  return *stagers;
}

Stager& ForDevice(int device) {
  std::lock_guard<std::mutex> lock(StagersMutex());
  Stager*& s = Stagers()[device];
  if (s == nullptr) s = new Stager();
  return *s;
}

void Stager::ReleaseAll() {
  std::unique_lock<std::mutex> lock(StagersMutex(), std::try_to_lock);
  if (!lock.owns_lock()) return;
  for (auto& [device, stager] : Stagers()) {
    if (cudaSetDevice(device) == cudaSuccess) stager->Release();
  }
}

}  // namespace

cudaError_t CopyFromHost(int device, const HostCopy* copies, int count, cudaStream_t stream) {
  return ForDevice(device).Copy(copies, count, stream);
}

}  // namespace cuda
}  // namespace rk
