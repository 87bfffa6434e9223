// bench/select_floor.cu: how fast can one pass read RetinaNet's class heads and test them against
// a cut, on this GPU? A standalone program (no addon, no Node), built and run on the GPU machine by
// `scripts/gpu-check.sh floor`. It reads the bytes of the batch-8 heads (800x1333, K = 80: 542 MB of
// f32, 271 MB of f16) with several shapes of the one pass and prints GB/s for each, so that the
// select kernel's own speed can be judged against what this chip allows, not only against torch:
//   tiles<T>      one tile of T 16-byte vectors per block, two loads in flight a thread (select.cu's shape)
//   stream<U>     a grid of resident blocks striding over the bytes, U loads a thread issued before the
//                 previous U are tested (loads always in flight)
//   bulk<S>       Hopper's bulk copy engine (cp.async.bulk) filling S stages of 16 KB in shared memory,
//                 warps testing the stage before (sm_90 only)
//   sum           a plain float4 sum (what torch.amax does), the same grid as stream<4>
// f16 is tested two ways: each half widened (cvt) and compared, or packed pairs compared against the
// cut rounded down to a half (__hgt2), which decides the same way for every half (see select.cu).
//   nvcc -O3 -std=c++17 -arch=sm_90 -o select_floor bench/select_floor.cu && ./select_floor [reps]
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "cuda_check.cuh"

namespace {

__device__ unsigned long long g_hits;

__device__ __forceinline__ uint32_t Hash(uint64_t i) {
  uint64_t z = i * 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return static_cast<uint32_t>(z ^ (z >> 31));
}

// About N(-6, 1.2) logits (a sum of four uniforms), like the bench's background.
__global__ void Fill(float* x, __half* h, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x) {
    const uint32_t a = Hash(2 * i), b = Hash(2 * i + 1);
    const float u = ((a & 0xFFFF) + (a >> 16) + (b & 0xFFFF) + (b >> 16)) * (1.0f / 65536.0f) - 2.0f;
    const float v = -6.0f + 2.1f * u;
    x[i] = v;
    h[i] = __float2half_rn(v);
  }
}

template <typename E>
struct Test;
template <>
struct Test<float> {  // 4 floats a vector
  __device__ __forceinline__ static bool Any(const uint4& q, float cut, __half2) {
    return __uint_as_float(q.x) > cut || __uint_as_float(q.y) > cut || __uint_as_float(q.z) > cut ||
           __uint_as_float(q.w) > cut;
  }
  __device__ __forceinline__ static int Count(const uint4& q, float cut) {
    return (__uint_as_float(q.x) > cut) + (__uint_as_float(q.y) > cut) + (__uint_as_float(q.z) > cut) +
           (__uint_as_float(q.w) > cut);
  }
};
__device__ __forceinline__ float Widen(uint32_t bits) {
  float f;
  asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(static_cast<unsigned short>(bits)));
  return f;
}
struct HalfCvt {};     // each half widened
struct HalfPacked {};  // pairs compared packed
template <>
struct Test<HalfCvt> {
  __device__ __forceinline__ static bool Any(const uint4& q, float cut, __half2) {
    bool any = false;
    const uint32_t w[4] = {q.x, q.y, q.z, q.w};
#pragma unroll
    for (int j = 0; j < 4; ++j) any |= Widen(w[j] & 0xFFFF) > cut || Widen(w[j] >> 16) > cut;
    return any;
  }
  __device__ __forceinline__ static int Count(const uint4& q, float cut) {
    int c = 0;
    const uint32_t w[4] = {q.x, q.y, q.z, q.w};
#pragma unroll
    for (int j = 0; j < 4; ++j) c += (Widen(w[j] & 0xFFFF) > cut) + (Widen(w[j] >> 16) > cut);
    return c;
  }
};
template <>
struct Test<HalfPacked> {
  __device__ __forceinline__ static bool Any(const uint4& q, float, __half2 cut2) {
    const uint32_t w[4] = {q.x, q.y, q.z, q.w};
    uint32_t m = 0;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      __half2 v;
      *reinterpret_cast<uint32_t*>(&v) = w[j];
      m |= __hgt2_mask(v, cut2);
    }
    return m != 0;
  }
  __device__ __forceinline__ static int Count(const uint4& q, float cut) { return Test<HalfCvt>::Count(q, cut); }
};

// A hit: counted in shared memory (as select.cu gathers candidates), flushed once a block.
template <typename T>
__device__ __forceinline__ void Consider(const uint4& q, bool valid, float cut, __half2 cut2, unsigned* count) {
  const bool any = valid && Test<T>::Any(q, cut, cut2);
  if (!__any_sync(0xFFFFFFFFu, any)) return;
  if (any) atomicAdd(count, static_cast<unsigned>(Test<T>::Count(q, cut)));
}

__device__ __forceinline__ void Flush(unsigned* count) {
  __syncthreads();
  if (threadIdx.x == 0 && *count != 0) atomicAdd(&g_hits, *count);
}

template <typename T, int kTile>
__global__ void __launch_bounds__(256, 8) Tiles(const uint4* x, int64_t vectors, float cut, __half2 cut2) {
  __shared__ unsigned count;
  if (threadIdx.x == 0) count = 0;
  __syncthreads();
  const int64_t t0 = static_cast<int64_t>(blockIdx.x) * kTile, t1 = min(vectors, t0 + kTile);
  for (int64_t b = t0; b < t1; b += 2 * blockDim.x) {
    uint4 q[2];
#pragma unroll
    for (int u = 0; u < 2; ++u) {
      const int64_t v = b + threadIdx.x + u * blockDim.x;
      q[u] = v < t1 ? x[v] : make_uint4(0, 0, 0, 0);
    }
#pragma unroll
    for (int u = 0; u < 2; ++u) Consider<T>(q[u], b + threadIdx.x + u * blockDim.x < t1, cut, cut2, &count);
  }
  Flush(&count);
}

// Resident blocks striding over the bytes; the next U vectors are loaded before the current U are tested.
template <typename T, int kU>
__global__ void __launch_bounds__(256) Stream(const uint4* x, int64_t vectors, float cut, __half2 cut2) {
  __shared__ unsigned count;
  if (threadIdx.x == 0) count = 0;
  __syncthreads();
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x * kU;
  int64_t b = static_cast<int64_t>(blockIdx.x) * blockDim.x * kU;
  uint4 q[kU], next[kU];
  auto load = [&](int64_t at, uint4 (&r)[kU]) {
#pragma unroll
    for (int u = 0; u < kU; ++u) {
      const int64_t v = at + threadIdx.x + u * blockDim.x;
      r[u] = v < vectors ? __ldcs(x + v) : make_uint4(0, 0, 0, 0);
    }
  };
  load(b, q);
  for (; b < vectors; b += step) {
    load(b + step, next);
#pragma unroll
    for (int u = 0; u < kU; ++u) Consider<T>(q[u], b + threadIdx.x + u * blockDim.x < vectors, cut, cut2, &count);
#pragma unroll
    for (int u = 0; u < kU; ++u) q[u] = next[u];
  }
  Flush(&count);
}

__global__ void __launch_bounds__(256) Sum(const float4* x, int64_t vectors, float* out) {
  float s = 0.0f;
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x * 4;
  for (int64_t b = static_cast<int64_t>(blockIdx.x) * blockDim.x * 4; b < vectors; b += step) {
    float4 q[4];
#pragma unroll
    for (int u = 0; u < 4; ++u) {
      const int64_t v = b + threadIdx.x + u * blockDim.x;
      q[u] = v < vectors ? x[v] : make_float4(0, 0, 0, 0);
    }
#pragma unroll
    for (int u = 0; u < 4; ++u) s += q[u].x + q[u].y + q[u].z + q[u].w;
  }
  if (s == 12345.0f) *out = s;  // never, but the compiler cannot know
}

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
#define RK_BULK 1
#endif

__device__ __forceinline__ uint32_t SharedAddress(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// Bulk copies: thread 0 of the block keeps S stages of kStage bytes in flight; the block's warps
// test a stage once its full barrier has flipped, then arrive on its empty barrier.
constexpr int kStage = 16384;
template <typename T, int S>
__global__ void __launch_bounds__(256) Bulk(const uint4* x, int64_t vectors, float cut, __half2 cut2) {
#ifdef RK_BULK
  extern __shared__ __align__(128) uint4 stage[];
  __shared__ __align__(8) uint64_t full[S], empty[S];
  __shared__ unsigned count;
  constexpr int kStageVectors = kStage / 16;
  const int64_t chunks = (vectors + kStageVectors - 1) / kStageVectors;
  const int warps = blockDim.x / 32;
  if (threadIdx.x == 0) {
    count = 0;
    for (int s = 0; s < S; ++s) {
      asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;" ::"r"(SharedAddress(&full[s])));
      asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(SharedAddress(&empty[s])), "r"(warps));
    }
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
  }
  __syncthreads();
  auto issue = [&](int64_t c, int s) {
    const int64_t v0 = c * kStageVectors;
    const int64_t left = vectors - v0;
    const uint32_t bytes = static_cast<uint32_t>((left < kStageVectors ? left : kStageVectors) * 16);
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(SharedAddress(&full[s])), "r"(bytes) : "memory");
    asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];" ::"r"(
                     SharedAddress(stage + s * kStageVectors)),
                 "l"(x + v0), "r"(bytes), "r"(SharedAddress(&full[s]))
                 : "memory");
  };
  auto wait = [&](uint64_t* bar, uint32_t parity) {
    uint32_t done = 0;
    while (!done) {
      asm volatile("{ .reg .pred p; mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2; selp.u32 %0, 1, 0, p; }"
                   : "=r"(done)
                   : "r"(SharedAddress(bar)), "r"(parity)
                   : "memory");
    }
  };
  // This block's chunks: blockIdx.x, blockIdx.x + gridDim.x, ...; the i-th of them goes to stage i % S.
  const int64_t mine = chunks > blockIdx.x ? (chunks - blockIdx.x + gridDim.x - 1) / gridDim.x : 0;
  if (threadIdx.x == 0)
    for (int64_t i = 0; i < S && i < mine; ++i) issue(blockIdx.x + i * gridDim.x, static_cast<int>(i));
  for (int64_t i = 0; i < mine; ++i) {
    const int s = static_cast<int>(i % S);
    const uint32_t parity = static_cast<uint32_t>((i / S) & 1);
    wait(&full[s], parity);
    const int64_t v0 = (blockIdx.x + i * gridDim.x) * kStageVectors;
    const int64_t left = vectors - v0;
    const int n = static_cast<int>(left < kStageVectors ? left : kStageVectors);
    for (int v = threadIdx.x; v < kStageVectors; v += blockDim.x) {  // block-uniform trip count
      const uint4 q = v < n ? stage[s * kStageVectors + v] : make_uint4(0, 0, 0, 0);
      Consider<T>(q, v < n, cut, cut2, &count);
    }
    __syncwarp();
    if ((threadIdx.x & 31) == 0) asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(SharedAddress(&empty[s])) : "memory");
    if (threadIdx.x == 0 && i + S < mine) {
      wait(&empty[s], parity);  // every warp is done with the stage
      issue(blockIdx.x + (i + S) * gridDim.x, s);
    }
  }
  Flush(&count);
#endif
}

struct Result {
  const char* name;
  double ms, gbs;
  unsigned long long hits;
};

template <typename Launch>
Result Time(const char* name, int64_t bytes, int reps, Launch launch) {
  cudaEvent_t a, b;
  CHECK(cudaEventCreate(&a));
  CHECK(cudaEventCreate(&b));
  std::vector<float> ms;
  unsigned long long hits = 0;
  for (int r = 0; r < reps + 3; ++r) {
    const unsigned long long zero = 0;
    CHECK(cudaMemcpyToSymbol(g_hits, &zero, sizeof zero));
    CHECK(cudaEventRecord(a));
    launch();
    CHECK(cudaGetLastError());
    CHECK(cudaEventRecord(b));
    CHECK(cudaEventSynchronize(b));
    float t = 0;
    CHECK(cudaEventElapsedTime(&t, a, b));
    if (r >= 3) ms.push_back(t);
    CHECK(cudaMemcpyFromSymbol(&hits, g_hits, sizeof hits));
  }
  std::sort(ms.begin(), ms.end());
  const double med = ms[ms.size() / 2];
  return {name, med, bytes / (med * 1e6), hits};
}

}  // namespace

int main(int argc, char** argv) {
  const int reps = argc > 1 ? std::atoi(argv[1]) : 30;
  // Batch 8 of 800x1333, K = 80, A = 9: 22,300 positions an image over P3-P7.
  const int64_t n = int64_t{8} * 22300 * 9 * 80;
  float* x = nullptr;
  __half* h = nullptr;
  float* sink = nullptr;
  CHECK(cudaMalloc(&x, n * 4));
  CHECK(cudaMalloc(&h, n * 2));
  CHECK(cudaMalloc(&sink, 4));
  Fill<<<4096, 256>>>(x, h, n);
  CHECK(cudaDeviceSynchronize());
  int device = 0, sms = 0;
  CHECK(cudaGetDevice(&device));
  CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  cudaDeviceProp prop{};
  CHECK(cudaGetDeviceProperties(&prop, device));
  const float cut = -2.875f;  // a half exactly; about 1 in 4,000 above
  const __half2 cut2 = __float2half2_rn(cut);
  if (__half2float(__float2half_rn(cut)) != cut) std::printf("note: the cut is not a half; packed counts may differ\n");
  const int64_t v32 = n / 4, v16 = n / 8;
  std::vector<Result> rs;
  auto blocks = [&](int per_sm) { return sms * per_sm; };
  int occ = 0;
  CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&occ, Stream<float, 4>, 256, 0));
  rs.push_back(Time("sum f32 (float4 x4, resident grid)", n * 4, reps, [&] { Sum<<<blocks(occ), 256>>>(reinterpret_cast<const float4*>(x), v32, sink); }));
  rs.push_back(Time("tiles<1024> f32", n * 4, reps, [&] { Tiles<float, 1024><<<static_cast<unsigned>((v32 + 1023) / 1024), 256>>>(reinterpret_cast<const uint4*>(x), v32, cut, cut2); }));
  rs.push_back(Time("tiles<4096> f32", n * 4, reps, [&] { Tiles<float, 4096><<<static_cast<unsigned>((v32 + 4095) / 4096), 256>>>(reinterpret_cast<const uint4*>(x), v32, cut, cut2); }));
  rs.push_back(Time("stream<2> f32", n * 4, reps, [&] { Stream<float, 2><<<blocks(8), 256>>>(reinterpret_cast<const uint4*>(x), v32, cut, cut2); }));
  rs.push_back(Time("stream<4> f32", n * 4, reps, [&] { Stream<float, 4><<<blocks(occ), 256>>>(reinterpret_cast<const uint4*>(x), v32, cut, cut2); }));
  rs.push_back(Time("stream<4> f32, 4 blocks/SM", n * 4, reps, [&] { Stream<float, 4><<<blocks(4), 256>>>(reinterpret_cast<const uint4*>(x), v32, cut, cut2); }));
  for (int s : {4, 8}) {
    const size_t smem = static_cast<size_t>(s) * kStage;
    auto k = s == 4 ? Bulk<float, 4> : Bulk<float, 8>;
    CHECK(cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
    int per = 0;
    CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per, k, 256, smem));
    static char names[2][64];
    std::snprintf(names[s == 8], sizeof names[0], "bulk<%d> f32 (%d blocks/SM)", s, per);
    if (prop.major >= 9 && per > 0)
      rs.push_back(Time(names[s == 8], n * 4, reps, [&] { k<<<blocks(per), 256, smem>>>(reinterpret_cast<const uint4*>(x), v32, cut, cut2); }));
  }
  rs.push_back(Time("tiles<1024> f16 cvt", n * 2, reps, [&] { Tiles<HalfCvt, 1024><<<static_cast<unsigned>((v16 + 1023) / 1024), 256>>>(reinterpret_cast<const uint4*>(h), v16, cut, cut2); }));
  rs.push_back(Time("tiles<1024> f16 packed", n * 2, reps, [&] { Tiles<HalfPacked, 1024><<<static_cast<unsigned>((v16 + 1023) / 1024), 256>>>(reinterpret_cast<const uint4*>(h), v16, cut, cut2); }));
  rs.push_back(Time("stream<4> f16 cvt", n * 2, reps, [&] { Stream<HalfCvt, 4><<<blocks(occ), 256>>>(reinterpret_cast<const uint4*>(h), v16, cut, cut2); }));
  rs.push_back(Time("stream<4> f16 packed", n * 2, reps, [&] { Stream<HalfPacked, 4><<<blocks(occ), 256>>>(reinterpret_cast<const uint4*>(h), v16, cut, cut2); }));
  {
    const size_t smem = size_t{4} * kStage;
    auto k = Bulk<HalfPacked, 4>;
    CHECK(cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
    int per = 0;
    CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per, k, 256, smem));
    if (prop.major >= 9 && per > 0)
      rs.push_back(Time("bulk<4> f16 packed", n * 2, reps, [&] { k<<<blocks(per), 256, smem>>>(reinterpret_cast<const uint4*>(h), v16, cut, cut2); }));
  }
  std::printf("bench/select_floor: %s (%d SMs), %lld elements (batch 8 of 800x1333, K = 80); median of %d runs\n", prop.name, sms,
              static_cast<long long>(n), reps);
  std::printf("%-36s %10s %10s %12s\n", "one pass", "ms", "GB/s", "hits");
  for (const Result& r : rs) std::printf("%-36s %10.4f %10.1f %12llu\n", r.name, r.ms, r.gbs, r.hits);
  return 0;
}
