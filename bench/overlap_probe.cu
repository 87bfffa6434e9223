// bench/overlap_probe.cu: would a batch run faster as one chain of kernels per image, the images'
// chains on streams of decreasing priority, so that the stages after the select pass of image n run
// while the passes of the later images stream? A standalone model (no addon, no Node), built and run
// on the GPU machine by `scripts/gpu-check.sh overlap`, to decide that before the engine is changed.
//
// At batch 8 (800x1333, K = 80) the select pass reads 542 MB and the stages after it (top-k, rank,
// greedy) take about 50 us of latency-bound work on few SMs; at batch 1 they take about 35 us
// (docs/cuda.md's timelines, H100). If each image's chain could start its stages as soon as its own
// pass is done, only the last image's stages would be exposed. The model:
//   pass      a memory-bound kernel over an image's class logits in tiles of 1024 16-byte vectors a
//             block (select.cu's tile), counting values above a cut (none are: the data is about -6)
//   check     a cooperative kernel of two blocks an SM that does nothing (the fallback's check, which
//             select.cu launches cooperatively)
//   stages    three kernels whose blocks each hold their SM's slot for a fixed time (spinning on the
//             global timer): top-k, rank, greedy, with the grids and durations of batch 1 (one image)
//             or batch 8 (the batch's chain), taken from the timelines
// Not modelled: the estimate before each pass, chained launches (every boundary here is a plain one, in
// both the batch's chain and the split), and the stages' own memory traffic.
// Configurations, each captured into a CUDA graph and replayed (median of the replays, in us):
//   batch           pass over all images, then the stages of batch 8 (what the engine does now)
//   split           one chain per image (pass, stages of batch 1) on its own stream, all at default priority
//   split+prio      the same, image n's kernels launched with priority greatest + n (cudaLaunchAttributePriority)
//   ... +check      the same with the cooperative check after each pass
//   pass only       the passes alone, batch and split+prio: what the split costs the pass itself
//   nvcc -O3 -std=c++17 -arch=sm_90 -o overlap_probe bench/overlap_probe.cu && ./overlap_probe [reps]
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "cuda_check.cuh"

namespace {

constexpr int kImages = 8;
constexpr int kTileVectors = 1024;
constexpr int kPassThreads = 256;
constexpr int64_t kImageFloats = int64_t{201600} * 80;  // 800x1333 padded to 800x1344: 22,400 locations x 9 anchors x K = 80
constexpr int64_t kImageVectors = kImageFloats / 4;

__device__ unsigned long long g_sink;

__device__ __forceinline__ unsigned long long Now() {
  unsigned long long t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}

__global__ void Fill(float4* x, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x) {
    const float v = -6.0f + 0.001f * static_cast<float>(i % 997);
    x[i] = make_float4(v, v - 0.5f, v - 1.0f, v + 0.5f);
  }
}

// Tile blockIdx.x of image blockIdx.y (images `per_image` vectors apart), four loads in flight a thread.
__global__ void __launch_bounds__(kPassThreads) Pass(const float4* x, int64_t per_image, float cut) {
  const float4* img = x + static_cast<int64_t>(blockIdx.y) * per_image;
  const int64_t first = static_cast<int64_t>(blockIdx.x) * kTileVectors;
  float4 q[kTileVectors / kPassThreads];
  int hits = 0;
#pragma unroll
  for (int r = 0; r < kTileVectors / kPassThreads; ++r) {
    const int64_t i = first + r * kPassThreads + threadIdx.x;
    q[r] = i < per_image ? __ldcs(img + i) : make_float4(cut, cut, cut, cut);
  }
#pragma unroll
  for (int r = 0; r < kTileVectors / kPassThreads; ++r) hits += (q[r].x > cut) + (q[r].y > cut) + (q[r].z > cut) + (q[r].w > cut);
  if (__syncthreads_or(hits != 0) && threadIdx.x == 0) atomicAdd(&g_sink, 1ull);
}

// The fallback's check when no level needs the exact path: nothing to do.
__global__ void Check(const int* flag) {
  if (*flag != 0 && threadIdx.x == 0) atomicAdd(&g_sink, 1ull);
}

// A latency-bound stage: every block holds its SM slot for `ns` nanoseconds.
__global__ void Stage(unsigned long long ns) {
  if (threadIdx.x == 0) {
    const unsigned long long t0 = Now();
    while (Now() - t0 < ns) {
    }
  }
  __syncthreads();
}

struct StageShape {
  int blocks, threads;
  double us;
};
// Top-k (a block per level and image, 1024 threads), rank, greedy (a block per class and image): grids
// and times after each stage's wait, from the H100 timelines of docs/cuda.md (bg -6).
const StageShape kStagesB1[3] = {{5, 1024, 9.0}, {5, 256, 6.0}, {80, 1024, 14.0}};
const StageShape kStagesB8[3] = {{40, 1024, 14.0}, {40, 256, 9.0}, {640, 256, 23.0}};

// Launches kernel<<<grid, block, 0, stream>>>(args...), cooperative when asked, with the launch attribute
// of `priority` when `prio` (else the stream's default).
template <typename... Params, typename... Args>
void LaunchOn(void (*kernel)(Params...), dim3 grid, dim3 block, cudaStream_t stream, int priority, bool prio, bool cooperative,
              Args... args) {
  cudaLaunchConfig_t c = {};
  c.gridDim = grid;
  c.blockDim = block;
  c.stream = stream;
  cudaLaunchAttribute a[2];
  unsigned n = 0;
  if (cooperative) {
    a[n].id = cudaLaunchAttributeCooperative;
    a[n++].val.cooperative = 1;
  }
  if (prio) {
    a[n].id = cudaLaunchAttributePriority;
    a[n++].val.priority = priority;
  }
  c.attrs = n > 0 ? a : nullptr;
  c.numAttrs = n;
  CHECK(cudaLaunchKernelEx(&c, kernel, args...));
}

void StageOn(const StageShape& s, cudaStream_t stream, int priority, bool prio) {
  LaunchOn(Stage, dim3(s.blocks), dim3(s.threads), stream, priority, prio, false, static_cast<unsigned long long>(s.us * 1000.0));
}

struct Probe {
  const float4* x = nullptr;
  const int* flag = nullptr;
  int sms = 0, least = 0, greatest = 0;
  cudaStream_t origin = nullptr;
  std::vector<cudaStream_t> side;
  std::vector<cudaEvent_t> joins;
  cudaEvent_t fork = nullptr;

  void PassOn(cudaStream_t s, int images, int64_t offset, int priority, bool prio) const {
    const dim3 grid(static_cast<unsigned>((kImageVectors + kTileVectors - 1) / kTileVectors), images);
    LaunchOn(Pass, grid, dim3(kPassThreads), s, priority, prio, false, x + offset, kImageVectors, 0.0f);
  }

  void CheckOn(cudaStream_t s, int priority, bool prio) const { LaunchOn(Check, dim3(2 * sms), dim3(256), s, priority, prio, true, flag); }

  // One configuration, captured from `origin`: batch (split = false) or one chain per image.
  cudaGraphExec_t Build(bool split, bool prio, bool check, bool stages) {
    CHECK(cudaStreamBeginCapture(origin, cudaStreamCaptureModeThreadLocal));
    if (!split) {
      PassOn(origin, kImages, 0, 0, false);
      if (check) CheckOn(origin, 0, false);
      if (stages) {
        for (const StageShape& s : kStagesB8) StageOn(s, origin, 0, false);
      }
    } else {
      CHECK(cudaEventRecord(fork, origin));
      for (int n = 0; n < kImages; ++n) {
        cudaStream_t s = side[n];
        const int priority = std::min(least, greatest + n);  // lower is higher: image 0 first
        CHECK(cudaStreamWaitEvent(s, fork, 0));
        PassOn(s, 1, static_cast<int64_t>(n) * kImageVectors, priority, prio);
        if (check) CheckOn(s, priority, prio);
        if (stages) {
          for (const StageShape& st : kStagesB1) StageOn(st, s, priority, prio);
        }
        CHECK(cudaEventRecord(joins[n], s));
        CHECK(cudaStreamWaitEvent(origin, joins[n], 0));
      }
    }
    cudaGraph_t g = nullptr;
    CHECK(cudaStreamEndCapture(origin, &g));
    cudaGraphExec_t exec = nullptr;
    CHECK(cudaGraphInstantiate(&exec, g, 0));
    CHECK(cudaGraphDestroy(g));
    return exec;
  }

  double Median(cudaGraphExec_t exec, int reps) const {
    cudaEvent_t a, b;
    CHECK(cudaEventCreate(&a));
    CHECK(cudaEventCreate(&b));
    for (int i = 0; i < 5; ++i) CHECK(cudaGraphLaunch(exec, origin));
    std::vector<float> ms;
    for (int i = 0; i < reps; ++i) {
      CHECK(cudaEventRecord(a, origin));
      CHECK(cudaGraphLaunch(exec, origin));
      CHECK(cudaEventRecord(b, origin));
      CHECK(cudaEventSynchronize(b));
      float t = 0;
      CHECK(cudaEventElapsedTime(&t, a, b));
      ms.push_back(t);
    }
    CHECK(cudaEventDestroy(a));
    CHECK(cudaEventDestroy(b));
    std::sort(ms.begin(), ms.end());
    return 1000.0 * ms[ms.size() / 2];
  }
};

}  // namespace

int main(int argc, char** argv) {
  const int reps = argc > 1 ? std::max(5, std::atoi(argv[1])) : 50;
  int device = 0;
  CHECK(cudaGetDevice(&device));
  cudaDeviceProp prop;
  CHECK(cudaGetDeviceProperties(&prop, device));
  int coop = 0;
  CHECK(cudaDeviceGetAttribute(&coop, cudaDevAttrCooperativeLaunch, device));
  Probe p;
  p.sms = prop.multiProcessorCount;
  CHECK(cudaDeviceGetStreamPriorityRange(&p.least, &p.greatest));
  float4* x = nullptr;
  int* flag = nullptr;
  CHECK(cudaMalloc(&x, sizeof(float4) * kImageVectors * kImages));
  CHECK(cudaMalloc(&flag, sizeof(int)));
  CHECK(cudaMemset(flag, 0, sizeof(int)));
  Fill<<<4 * p.sms, 256>>>(x, kImageVectors * kImages);
  CHECK(cudaGetLastError());
  CHECK(cudaDeviceSynchronize());
  p.x = x;
  p.flag = flag;
  CHECK(cudaStreamCreateWithFlags(&p.origin, cudaStreamNonBlocking));
  CHECK(cudaEventCreateWithFlags(&p.fork, cudaEventDisableTiming));
  for (int n = 0; n < kImages; ++n) {
    cudaStream_t s;
    CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));  // default priority: split+prio sets it a launch
    p.side.push_back(s);
    cudaEvent_t e;
    CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
    p.joins.push_back(e);
  }
  std::printf("overlap_probe: %s, %d SMs, stream priorities %d (highest) .. %d, cooperative launch %s; %d images of %.1f MB; median of %d graph replays\n",
              prop.name, p.sms, p.greatest, p.least, coop ? "yes" : "no", kImages, kImageVectors * 16 / 1e6, reps);
  struct Row {
    const char* name;
    bool split, prio, check, stages;
  };
  const Row rows[] = {
      {"pass only, batch", false, false, false, false},
      {"pass only, split+prio", true, true, false, false},
      {"batch (pass, batch-8 stages)", false, false, false, true},
      {"split (a chain an image)", true, false, false, true},
      {"split+prio", true, true, false, true},
      {"batch +check", false, false, true, true},
      {"split+prio +check", true, true, true, true},
  };
  double batch = 0;  // the batch row with stages: the others' difference from it
  for (const Row& r : rows) {
    cudaGraphExec_t g = p.Build(r.split, r.prio, r.check, r.stages);
    const double us = p.Median(g, reps);
    if (r.stages && !r.split && !r.check) batch = us;
    if (r.stages && batch > 0 && !(r.stages && !r.split && !r.check)) {
      std::printf("  %-32s %9.1f us  (%+.1f us against batch)\n", r.name, us, us - batch);
    } else {
      std::printf("  %-32s %9.1f us\n", r.name, us);
    }
    CHECK(cudaGraphExecDestroy(g));
  }
  std::printf("stages modelled (blocks x threads, us): batch 1");
  for (const StageShape& s : kStagesB1) std::printf(" %dx%d %.0f", s.blocks, s.threads, s.us);
  std::printf("; batch 8");
  for (const StageShape& s : kStagesB8) std::printf(" %dx%d %.0f", s.blocks, s.threads, s.us);
  std::printf("\n");
  for (cudaStream_t s : p.side) CHECK(cudaStreamDestroy(s));
  for (cudaEvent_t e : p.joins) CHECK(cudaEventDestroy(e));
  CHECK(cudaEventDestroy(p.fork));
  CHECK(cudaStreamDestroy(p.origin));
  CHECK(cudaFree(x));
  CHECK(cudaFree(flag));
  return 0;
}
