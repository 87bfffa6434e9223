// The engine behind `backend: "cuda"`: device discovery, buffers allocated once per shape, host
// inputs copied in (timed apart), the stages captured once in a CUDA Graph per fixed shape and
// replayed, one synchronisation per run (the final copy of the outputs).
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common.cuh"
#include "host_copy.cuh"
#include "rk/cuda_engine.h"
#include "rk/stages.h"
#include "stages_cuda.cuh"

namespace rk {

#ifdef RK_CUDA_TRACE
namespace cuda {
namespace trace {
static std::vector<Reader>& Readers() {
  static std::vector<Reader> readers;
  return readers;
}
void Register(Reader r) { Readers().push_back(r); }
// One line per run on stderr: each kernel's first block start and last warp end, and the points
// inside (first and last block to reach them), in microseconds from the first kernel's start.
static void Print() {
  Slot all[kSlots] = {};
  for (Reader r : Readers()) r(all);
  const unsigned long long t0 = all[kTraceEstimate].first;
  if (t0 == 0 || all[kTraceEstimate].last == 0) return;
  struct Named { int id; const char* name; bool kernel; };
  const Named names[] = {{kTraceEstimate, "estimate", true},
                         {kTraceEstimateStaged, ".staged", false}, {kTraceEstimateRound, ".round1", false}, {kTraceSelect, "select", true},
                         {kTraceFallback, "fallback", true}, {kTraceTopk, "topk", true}, {kTraceTopkWaited, ".waited", false}, {kTraceTopkRadix, ".radix", false},
                         {kTraceTopkCompact, ".compact", false}, {kTraceTopkSorted, ".sorted", false},
                         {kTraceTopkBucketed, ".bucketed", false}, {kTraceTopkScattered, ".scattered", false},
                         {kTraceRank, "rank", true}, {kTraceRankBase, ".base", false}, {kTraceRankStaged, ".staged", false},
                         {kTraceRankSearched, ".searched", false}, {kTraceGreedy, "greedy", true},
                         {kTraceGreedyWaited, ".waited", false}, {kTraceGreedyRanges, ".ranges", false}, {kTraceGreedyLabels, ".labels", false},
                         {kTraceGreedyCounted, ".counted", false}, {kTraceGreedyGathered, ".gathered", false},
                         {kTraceGreedyMask, ".mask", false}, {kTraceGreedyWalked, ".walked", false},
                         {kTraceGreedyDone, ".done", false}, {kTraceWrite, ".write", false}};
  auto us = [&](unsigned long long t) { return t == 0 ? -1.0 : static_cast<double>(static_cast<long long>(t - t0)) / 1000.0; };
  std::string line = "trace (us):";
  char buf[96];
  for (const Named& n : names) {
    if (all[n.id].last == 0) continue;
    if (n.kernel) {
      std::snprintf(buf, sizeof(buf), " | %s %.1f..%.1f (last start %.1f)", n.name, us(all[n.id].first), us(all[n.id + 1].last), us(all[n.id].last));
    } else {
      std::snprintf(buf, sizeof(buf), " %s %.1f..%.1f", n.name, us(all[n.id].first), us(all[n.id].last));
    }
    line += buf;
  }
  const Slot* c = all + kTraceClockSlot;
  if (c[0].last != 0 && c[1].last > c[0].last && c[1].first > c[0].first) {
    std::snprintf(buf, sizeof(buf), " | SM clock %.0f MHz, L2 load %.0f cycles", 1000.0 * static_cast<double>(c[1].last - c[0].last) / static_cast<double>(c[1].first - c[0].first),
                  static_cast<double>(c[2].first) / 8.0);
    line += buf;
  }
  std::fprintf(stderr, "%s\n", line.c_str());
}
}  // namespace trace
}  // namespace cuda
#endif

namespace {

std::string ErrorText(cudaError_t e) { return std::string(cudaGetErrorName(e)) + ": " + cudaGetErrorString(e); }

// Errors after which the context cannot be used again in this process.
bool IsSticky(cudaError_t e) {
  switch (e) {
    case cudaErrorIllegalAddress:
    case cudaErrorLaunchFailure:
    case cudaErrorIllegalInstruction:
    case cudaErrorMisalignedAddress:
    case cudaErrorInvalidAddressSpace:
    case cudaErrorInvalidPc:
    case cudaErrorHardwareStackError:
    case cudaErrorAssert:
    case cudaErrorECCUncorrectable:
    case cudaErrorLaunchTimeout:
      return true;
    default:
      return false;
  }
}

// Device memory that grows to the largest size asked for.
class Buffer {
 public:
  ~Buffer() { Release(); }
  cudaError_t Reserve(size_t bytes) {
    if (bytes <= bytes_ && ptr_ != nullptr) return cudaSuccess;
    Release();
    const cudaError_t e = cudaMalloc(&ptr_, bytes < 256 ? 256 : bytes);
    if (e != cudaSuccess) {
      ptr_ = nullptr;
      return e;
    }
    bytes_ = bytes;
    ++generation_;
    return cudaSuccess;
  }
  void Release() {
    if (ptr_ != nullptr) cudaFree(ptr_);
    ptr_ = nullptr;
    bytes_ = 0;
  }
  void* get() const { return ptr_; }
  template <typename T>
  T* as() const { return static_cast<T*>(ptr_); }
  size_t bytes() const { return bytes_; }

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
  int generation_ = 0;
};

class PinnedBuffer {
 public:
  ~PinnedBuffer() {
    if (ptr_ != nullptr) cudaFreeHost(ptr_);
  }
  cudaError_t Reserve(size_t bytes) {
    if (bytes <= bytes_ && ptr_ != nullptr) return cudaSuccess;
    if (ptr_ != nullptr) cudaFreeHost(ptr_);
    ptr_ = nullptr;
    bytes_ = 0;
    const cudaError_t e = cudaMallocHost(&ptr_, bytes < 256 ? 256 : bytes);
    if (e == cudaSuccess) bytes_ = bytes;
    return e;
  }
  uint8_t* get() const { return static_cast<uint8_t*>(ptr_); }

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

// The anchors an image has in head input i: all of them (concatenated), or level i's.
size_t InputAnchors(const HeadShapes& s, Layout layout, int i) {
  return static_cast<size_t>(layout == Layout::kConcatenated ? s.TotalAnchors() : s.LevelAnchors(i));
}

// What a captured graph depends on: replayed only when all of it is the same.
struct GraphKey {
  HeadShapes shapes;
  DType dtype = DType::kFloat32;
  Layout layout = Layout::kConcatenated;
  const void* cls[kMaxLevels] = {};
  const void* box[kMaxLevels] = {};
  const float* anchors = nullptr;
  bool anchors_per_image = false;
  bool output_sizes = false;
  void* workspace = nullptr;
  void* outputs = nullptr;
  bool operator==(const GraphKey& o) const {
    if (std::memcmp(&shapes, &o.shapes, sizeof(HeadShapes)) != 0) return false;  // int32 fields only
    for (int i = 0; i < kMaxLevels; ++i) {
      if (cls[i] != o.cls[i] || box[i] != o.box[i]) return false;
    }
    return dtype == o.dtype && layout == o.layout && anchors == o.anchors && anchors_per_image == o.anchors_per_image &&
           output_sizes == o.output_sizes && workspace == o.workspace && outputs == o.outputs;
  }
};

class CudaEngine final : public Engine {
 public:
  CudaEngine(const PostprocessParams& params, int device, bool use_graph)
      : params_(params), device_(device), use_graph_(use_graph) {}

  ~CudaEngine() override {
    cudaSetDevice(device_);
    if (graph_exec_ != nullptr) cudaGraphExecDestroy(graph_exec_);
    for (cudaEvent_t& e : events_) {
      if (e != nullptr) cudaEventDestroy(e);
    }
    if (stream_ != nullptr) cudaStreamDestroy(stream_);
    for (cudaStream_t st : side_) cudaStreamDestroy(st);
    for (cudaEvent_t ev : joins_) cudaEventDestroy(ev);
    if (fork_ != nullptr) cudaEventDestroy(fork_);
    if (class_thresh_ != nullptr) cudaFree(class_thresh_);
  }

  Status Init() {
    cudaError_t e = cudaSetDevice(device_);
    if (e == cudaSuccess) e = cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking);
    for (cudaEvent_t& ev : events_) {
      if (e == cudaSuccess) e = cudaEventCreate(&ev);
    }
    if (e != cudaSuccess) return Status(Code::kCudaError, "cuda backend setup on device " + std::to_string(device_) + ": " + ErrorText(e));
    // Per-class thresholds: the kernels read them from device memory, uploaded once here.
    if (params_.select.class_thresh != nullptr) {
      const size_t bytes = static_cast<size_t>(params_.num_classes) * sizeof(float);
      e = cudaMalloc(&class_thresh_, bytes);
      if (e == cudaSuccess) e = cudaMemcpy(class_thresh_, params_.select.class_thresh, bytes, cudaMemcpyHostToDevice);
      if (e != cudaSuccess) return Status(Code::kCudaError, "cuda backend, uploading the per-class thresholds: " + ErrorText(e));
      host_class_thresh_.assign(params_.select.class_thresh, params_.select.class_thresh + params_.num_classes);
      params_.select.class_thresh = class_thresh_;
    }
    return Status::Ok();
  }

  const char* backend() const override { return "cuda"; }
  size_t workspace_bytes() const override { return workspace_.bytes(); }

  Status Run(const HeadShapes& shapes, const HeadTensors& t, Residency residency, Detections* out,
             RunTimings* timings) override {
    if (!broken_.empty()) return Status(Code::kCudaError, broken_);
    return AfterRun(RunOnce(shapes, t, residency, out, timings));
  }

  // A run's CUDA error: a sticky one leaves the engine broken (every later call says so, as the
  // context is lost); any other drops the captured graph, which may hold the launch that failed.
  Status AfterRun(Status st) {
    if (st.code() != Code::kCudaError) return st;
    const cudaError_t e = cudaGetLastError();
    if (IsSticky(e) || IsSticky(last_error_)) {
      broken_ = st.message() +
                " (the CUDA context of this process is now unusable: rebuild the Postprocessor after restarting the kernel)";
      return Status(Code::kCudaError, broken_);
    }
    DropGraph();
    return st;
  }

  // Candidate lists (the candidate cache): copied in, then the stages after selection on the device.
  Status RunCandidates(const HeadShapes& shapes, const CandidateLists& lists, const int32_t* image_sizes,
                       const int32_t* output_sizes, Detections* out, RunTimings* timings) override {
    if (!broken_.empty()) return Status(Code::kCudaError, broken_);
    return AfterRun(RunCandidatesOnce(shapes, lists, image_sizes, output_sizes, out, timings));
  }

 private:
  Status RunCandidatesOnce(const HeadShapes& s, const CandidateLists& c, const int32_t* image_sizes, const int32_t* output_sizes,
                           Detections* out, RunTimings* timings) {
    cudaError_t e = cudaSetDevice(device_);
    if (e != cudaSuccess) return Fail("set device", e);
    RK_RETURN_IF_ERROR(ValidateShapes(params_, s));
    if (image_sizes == nullptr) return Status(Code::kInvalidArgument, "Expected image_sizes but received none");
    if (c.offsets == nullptr || c.rows == nullptr || c.labels == nullptr || c.values == nullptr || c.deltas == nullptr) {
      return Status(Code::kInvalidArgument, "Expected offsets, rows, labels, values and deltas for the candidate lists but one is missing");
    }
    const AnchorGrid* grid = nullptr;
    RK_RETURN_IF_ERROR(GridFor(s, &grid));
    const int N = s.batch;
    const int D = params_.output.detections_per_img;
    const size_t slices = static_cast<size_t>(N) * s.num_levels;
    // Only this batch's part of the lists is copied: candidates offsets[0] .. offsets[N * L].
    const int64_t first = c.offsets[0], C = c.offsets[slices] - first;
    if (first < 0 || C < 0 || C > (int64_t{1} << 40)) return Status(Code::kInvalidArgument, "Expected non-decreasing candidate offsets but received " + std::to_string(first) + " .. " + std::to_string(c.offsets[slices]));
    const size_t cn = static_cast<size_t>(C);
    const size_t f = static_cast<size_t>(first);
    auto al = [](size_t b) { return (b + 255) & ~size_t{255}; };
    const size_t o_off = 0, o_rows = o_off + al((slices + 1) * 8), o_labels = o_rows + al(cn * 4), o_values = o_labels + al(cn * 4),
                 o_deltas = o_values + al(cn * 4), o_anchors = o_deltas + al(cn * 16), o_sizes = o_anchors + (c.anchors ? al(cn * 16) : 0),
                 total = o_sizes + al(static_cast<size_t>(N) * 16);
    if (cudaEventRecord(events_[0], stream_) != cudaSuccess) return Fail("event", cudaGetLastError());
    if ((e = inputs_.Reserve(total)) != cudaSuccess) return Fail("allocating the candidate lists", e);
    uint8_t* base = inputs_.as<uint8_t>();
    struct Copy { size_t at; const void* from; size_t bytes; };
    const Copy parts[] = {{o_off, c.offsets, (slices + 1) * 8}, {o_rows, c.rows + f, cn * 4}, {o_labels, c.labels + f, cn * 4}, {o_values, c.values + f, cn * 4},
                           {o_deltas, c.deltas + 4 * f, cn * 16}, {o_anchors, c.anchors ? c.anchors + 4 * f : nullptr, c.anchors ? cn * 16 : 0},
                           {o_sizes, image_sizes, static_cast<size_t>(N) * 8}, {o_sizes + static_cast<size_t>(N) * 8, output_sizes, output_sizes ? static_cast<size_t>(N) * 8 : 0}};
    cuda::HostCopy copies[8];
    int count = 0;
    for (const Copy& cp : parts) {
      if (cp.bytes != 0) copies[count++] = {base + cp.at, cp.from, cp.bytes};
    }
    if ((e = cuda::CopyFromHost(device_, copies, count, stream_)) != cudaSuccess) return Fail("copying the candidate lists in", e);
    cuda::DeviceCandidateLists dl;
    dl.offsets = reinterpret_cast<const int64_t*>(base + o_off);
    dl.rows = reinterpret_cast<const int32_t*>(base + o_rows);
    dl.labels = reinterpret_cast<const int32_t*>(base + o_labels);
    dl.values = reinterpret_cast<const float*>(base + o_values);
    dl.deltas = reinterpret_cast<const float*>(base + o_deltas);
    dl.anchors = c.anchors ? reinterpret_cast<const float*>(base + o_anchors) : nullptr;
    dl.list_cap = c.list_cap;
    dl.first = first;
    const int32_t* d_sizes = reinterpret_cast<const int32_t*>(base + o_sizes);
    const int32_t* d_out_sizes = output_sizes ? d_sizes + 2 * N : nullptr;

    cuda::DeviceDetections det;
    int32_t* error = nullptr;
    size_t out_bytes = 0;
    RK_RETURN_IF_ERROR(ReserveOutputs(N, D, &det, &error, &out_bytes));
    const size_t ws = cuda::CandidatePostprocessWorkspaceSize(params_, s);
    if ((e = workspace_.Reserve(ws)) != cudaSuccess) return Fail("allocating the workspace", e);
    if (cudaEventRecord(events_[1], stream_) != cudaSuccess) return Fail("event", cudaGetLastError());
    RK_RETURN_IF_ERROR(cuda::LaunchCandidatePostprocess(params_, *grid, s, dl, d_sizes, d_out_sizes, det, error, workspace_.get(), workspace_.bytes(), stream_));
    if (cudaEventRecord(events_[2], stream_) != cudaSuccess) return Fail("event", cudaGetLastError());
    if ((e = cudaMemcpyAsync(host_out_.get(), outputs_.get(), out_bytes, cudaMemcpyDeviceToHost, stream_)) != cudaSuccess) return Fail("copying detections out", e);
    if (cudaEventRecord(events_[3], stream_) != cudaSuccess) return Fail("event", cudaGetLastError());
    if ((e = cudaStreamSynchronize(stream_)) != cudaSuccess) return Fail("running the candidate stages", e);
    const int32_t* err = reinterpret_cast<const int32_t*>(host_out_.get()) + N + static_cast<size_t>(N) * D * 6;
    if (err[cuda::kErrorHostWord] != 0) {
      // A list out of ranking order (or with a bad row or label): the host core's general path.
      if (!host_engine_) {
        PostprocessParams hp = params_;
        hp.select.class_thresh = host_class_thresh_.empty() ? nullptr : host_class_thresh_.data();
        const unsigned threads = std::thread::hardware_concurrency();
        host_engine_ = MakeCpuEngine(hp, threads == 0 ? 1 : static_cast<int>(threads));
      }
      return host_engine_->RunCandidates(s, c, image_sizes, output_sizes, out, timings);
    }
    RK_RETURN_IF_ERROR(ReadOutputs(N, D, "deltas", out, timings, /*replayed=*/false));
    if (timings != nullptr) timings->decode_nms_ms = timings->compute_ms;
    return Status::Ok();
  }

  // The device outputs of a run (counts, boxes, scores, labels, then `records` error records: one per
  // chain of kernels) and their pinned host copy, grown as needed; `det` and `error` point into the
  // device buffer.
  Status ReserveOutputs(int N, int D, cuda::DeviceDetections* det, int32_t** error, size_t* bytes, int records = 1) {
    cudaError_t e;
    *bytes = (static_cast<size_t>(N) * (1 + static_cast<size_t>(D) * 6) + static_cast<size_t>(records) * cuda::kErrorWords) * 4;
    if ((e = outputs_.Reserve(*bytes)) != cudaSuccess) return Fail("allocating outputs", e);
    if ((e = host_out_.Reserve(*bytes)) != cudaSuccess) return Fail("allocating pinned outputs", e);
    det->max_detections = D;
    det->dtype = DType::kFloat32;
    det->counts = outputs_.as<int32_t>();
    det->boxes = outputs_.as<float>() + N;
    det->scores = outputs_.as<float>() + N + static_cast<size_t>(N) * D * 4;
    det->labels = outputs_.as<int32_t>() + N + static_cast<size_t>(N) * D * 5;
    *error = outputs_.as<int32_t>() + N + static_cast<size_t>(N) * D * 6;
    return Status::Ok();
  }

  // After the copy out has been synchronised: the error record's NaN box (naming `box_input`), else
  // the detections into `out` and the event times into `timings`.
  // With one chain per image (`records` = N), record r names image 0 of its chain: image r.
  Status ReadOutputs(int N, int D, const char* box_input, Detections* out, RunTimings* timings, bool replayed, int records = 1) {
    const int32_t* h = reinterpret_cast<const int32_t*>(host_out_.get());
    for (int r = 0; r < records; ++r) {
      const int32_t* err = h + N + static_cast<size_t>(N) * D * 6 + static_cast<size_t>(r) * cuda::kErrorWords;
      if (err[0] != 0) {
        const int image = r + err[1];  // a batch's one record names the image; chain r's names image 0 of it
        return Status(Code::kNonFinite, std::string("Expected finite ") + (err[5] ? "anchors" : box_input) +
                                            " for a selected candidate but received NaN at image " + std::to_string(image) +
                                            ", level P" + std::to_string(err[2] + 3) + ", anchor row " + std::to_string(err[3]) +
                                            " (class " + std::to_string(err[4]) + "): the box cannot be decoded");
      }
    }
    std::memcpy(out->counts, h, sizeof(int32_t) * N);
    std::memcpy(out->boxes, h + N, sizeof(float) * N * D * 4);
    std::memcpy(out->scores, h + N + static_cast<size_t>(N) * D * 4, sizeof(float) * N * D);
    std::memcpy(out->labels, h + N + static_cast<size_t>(N) * D * 5, sizeof(int32_t) * N * D);
    if (timings != nullptr) {
      float up = 0, compute = 0, down = 0;
      cudaEventElapsedTime(&up, events_[0], events_[1]);
      cudaEventElapsedTime(&compute, events_[1], events_[2]);
      cudaEventElapsedTime(&down, events_[2], events_[3]);
      timings->upload_ms = up;
      timings->compute_ms = compute;
      timings->download_ms = down;
      timings->graph_replayed = replayed;
    }
    return Status::Ok();
  }

  // The anchor grid of a shape, made when the shape changes rather than at every run.
  Status GridFor(const HeadShapes& s, const AnchorGrid** grid) {
    if (!grid_ready_ || std::memcmp(&s, &grid_shapes_, sizeof(HeadShapes)) != 0) {  // int32 fields only
      grid_ready_ = false;
      RK_RETURN_IF_ERROR(MakeAnchorGrid(params_.anchors, s, &grid_));
      grid_shapes_ = s;
      grid_ready_ = true;
    }
    *grid = &grid_;
    return Status::Ok();
  }

  Status Fail(const char* what, cudaError_t e) {
    last_error_ = e;
    return Status(Code::kCudaError, std::string("cuda backend, ") + what + ": " + ErrorText(e));
  }

  void DropGraph() {
    if (graph_exec_ != nullptr) cudaGraphExecDestroy(graph_exec_);
    graph_exec_ = nullptr;
  }

  Status CheckDevicePointer(const void* p, const char* name) {
    cudaPointerAttributes attr{};
    const cudaError_t e = cudaPointerGetAttributes(&attr, p);
    if (e != cudaSuccess || (attr.type != cudaMemoryTypeDevice && attr.type != cudaMemoryTypeManaged)) {
      cudaGetLastError();
      return Status(Code::kInvalidArgument, std::string("Expected a device pointer (from upload()) for ") + name +
                                                " but received an address that is not CUDA device memory");
    }
    if (attr.device != device_) {
      return Status(Code::kInvalidArgument, std::string("Expected ") + name + " on CUDA device " + std::to_string(device_) +
                                                " but it lives on device " + std::to_string(attr.device));
    }
    return Status::Ok();
  }

  Status RunOnce(const HeadShapes& s, const HeadTensors& t, Residency residency, Detections* out, RunTimings* timings) {
    cudaError_t e = cudaSetDevice(device_);
    if (e != cudaSuccess) return Fail("set device", e);
    RK_RETURN_IF_ERROR(ValidateShapes(params_, s));
    if (t.image_sizes == nullptr) return Status(Code::kInvalidArgument, "Expected image_sizes but received none");
    const AnchorGrid* grid = nullptr;
    RK_RETURN_IF_ERROR(GridFor(s, &grid));
    const int N = s.batch;
    const int D = params_.output.detections_per_img;
    const int inputs = t.layout == Layout::kConcatenated ? 1 : s.num_levels;
    const size_t elem = DTypeSize(t.dtype);

    cuda::DeviceHeads heads;
    heads.shapes = s;
    heads.dtype = t.dtype;
    heads.layout = t.layout;
    if (cudaEventRecord(events_[0], stream_) != cudaSuccess) return Fail("event", cudaGetLastError());
    if (residency == Residency::kHost) {
      size_t offsets[2 * kMaxLevels + 1] = {};
      size_t total = 0;
      for (int i = 0; i < inputs; ++i) {
        const size_t anchors = InputAnchors(s, t.layout, i);
        offsets[2 * i] = total;
        total += (anchors * static_cast<size_t>(N) * static_cast<size_t>(s.num_classes) * elem + 255) & ~size_t{255};
        offsets[2 * i + 1] = total;
        total += (anchors * static_cast<size_t>(N) * 4 * elem + 255) & ~size_t{255};
      }
      if ((e = inputs_.Reserve(total)) != cudaSuccess) return Fail("allocating the input copies", e);
      cuda::HostCopy copies[2 * kMaxLevels];
      for (int i = 0; i < inputs; ++i) {
        const size_t anchors = InputAnchors(s, t.layout, i);
        uint8_t* base = inputs_.as<uint8_t>();
        const size_t cls_bytes = anchors * static_cast<size_t>(N) * static_cast<size_t>(s.num_classes) * elem;
        const size_t box_bytes = anchors * static_cast<size_t>(N) * 4 * elem;
        copies[2 * i] = {base + offsets[2 * i], t.cls[i], cls_bytes};
        copies[2 * i + 1] = {base + offsets[2 * i + 1], t.box[i], box_bytes};
        heads.cls[i] = base + offsets[2 * i];
        heads.box[i] = base + offsets[2 * i + 1];
      }
      if ((e = cuda::CopyFromHost(device_, copies, 2 * inputs, stream_)) != cudaSuccess) return Fail("copying the heads in", e);
    } else {
      for (int i = 0; i < inputs; ++i) {
        RK_RETURN_IF_ERROR(CheckDevicePointer(t.cls[i], "cls_logits"));
        RK_RETURN_IF_ERROR(CheckDevicePointer(t.box[i], "bbox_regression"));
        heads.cls[i] = t.cls[i];
        heads.box[i] = t.box[i];
      }
    }
    // Small host inputs (sizes, given anchors) through pinned staging to fixed device buffers.
    const size_t anchor_floats = t.anchors == nullptr ? 0 : static_cast<size_t>(s.TotalAnchors()) * 4 * (t.anchors_per_image ? N : 1);
    const size_t small = 4 * sizeof(int32_t) * static_cast<size_t>(N) + anchor_floats * sizeof(float);
    if ((e = staging_.Reserve(small)) != cudaSuccess) return Fail("allocating pinned staging", e);
    if ((e = small_.Reserve(small)) != cudaSuccess) return Fail("allocating the size buffers", e);
    std::memcpy(staging_.get(), t.image_sizes, 2 * sizeof(int32_t) * N);
    if (t.output_sizes != nullptr) std::memcpy(staging_.get() + 2 * sizeof(int32_t) * N, t.output_sizes, 2 * sizeof(int32_t) * N);
    if (anchor_floats > 0) std::memcpy(staging_.get() + 4 * sizeof(int32_t) * N, t.anchors, anchor_floats * sizeof(float));
    if ((e = cudaMemcpyAsync(small_.get(), staging_.get(), small, cudaMemcpyHostToDevice, stream_)) != cudaSuccess) return Fail("copying sizes in", e);
    heads.image_sizes = small_.as<int32_t>();
    heads.output_sizes = t.output_sizes != nullptr ? small_.as<int32_t>() + 2 * N : nullptr;
    heads.anchors = anchor_floats > 0 ? reinterpret_cast<const float*>(small_.as<uint8_t>() + 4 * sizeof(int32_t) * N) : nullptr;
    heads.anchors_per_image = t.anchors_per_image;

    // Outputs: device, then one copy into pinned memory.
    cuda::DeviceDetections det;
    int32_t* error = nullptr;
    size_t out_bytes = 0;
    const int chains = cuda::SplitImages() && N > 1 ? N : 1;
    RK_RETURN_IF_ERROR(ReserveOutputs(N, D, &det, &error, &out_bytes, chains));
    if (chains > 1) RK_RETURN_IF_ERROR(SideStreams(chains));

    const size_t ws = chains > 1 ? static_cast<size_t>(chains) * ImageWorkspace(s) : cuda::PostprocessWorkspaceSize(params_, s);
    if ((e = workspace_.Reserve(ws)) != cudaSuccess) return Fail("allocating the workspace", e);
    if (cudaEventRecord(events_[1], stream_) != cudaSuccess) return Fail("event", cudaGetLastError());

    bool replayed = false;
    GraphKey key{};
    key.shapes = s;
    key.dtype = t.dtype;
    key.layout = t.layout;
    for (int i = 0; i < inputs; ++i) {
      key.cls[i] = heads.cls[i];
      key.box[i] = heads.box[i];
    }
    key.anchors = heads.anchors;
    key.anchors_per_image = heads.anchors_per_image;
    key.output_sizes = heads.output_sizes != nullptr;
    key.workspace = workspace_.get();
    key.outputs = outputs_.get();
    if (use_graph_ && graph_exec_ != nullptr && graph_key_ == key) {
      if ((e = cudaGraphLaunch(graph_exec_, stream_)) != cudaSuccess) return Fail("graph launch", e);
      replayed = true;
    } else if (use_graph_) {
      DropGraph();
      RK_RETURN_IF_ERROR(Capture(*grid, heads, det, error, chains, key));
      if ((e = cudaGraphLaunch(graph_exec_, stream_)) != cudaSuccess) return Fail("graph launch", e);
    } else {
      RK_RETURN_IF_ERROR(LaunchStages(*grid, heads, det, error, chains));
    }
    if (cudaEventRecord(events_[2], stream_) != cudaSuccess) return Fail("event", cudaGetLastError());
    if ((e = cudaMemcpyAsync(host_out_.get(), outputs_.get(), out_bytes, cudaMemcpyDeviceToHost, stream_)) != cudaSuccess) return Fail("copying detections out", e);
    if (cudaEventRecord(events_[3], stream_) != cudaSuccess) return Fail("event", cudaGetLastError());
    if ((e = cudaStreamSynchronize(stream_)) != cudaSuccess) return Fail("running the stages", e);

#ifdef RK_CUDA_TRACE
    cuda::trace::Print();
#endif
    return ReadOutputs(N, D, "bbox_regression", out, timings, replayed, chains);
  }

  // The workspace of one image's chain (RK_CUDA_SPLIT), 256-byte aligned.
  size_t ImageWorkspace(const HeadShapes& s) const {
    HeadShapes one = s;
    one.batch = 1;
    return (cuda::PostprocessWorkspaceSize(params_, one) + 255) & ~size_t{255};
  }

  // Side streams for `count` chains, stream n at priority greatest + n (lower is higher: image 0's
  // chain first; its launches carry the same priority), and their fork and join events; made once,
  // kept with the engine.
  Status SideStreams(int count) {
    cudaError_t e = cudaSuccess;
    int least = 0, greatest = 0;
    if ((e = cudaDeviceGetStreamPriorityRange(&least, &greatest)) != cudaSuccess) return Fail("stream priorities", e);
    if (fork_ == nullptr && (e = cudaEventCreateWithFlags(&fork_, cudaEventDisableTiming)) != cudaSuccess) return Fail("event", e);
    while (static_cast<int>(side_.size()) < count) {
      const int n = static_cast<int>(side_.size());
      cudaStream_t st = nullptr;
      const int priority = std::min(least, greatest + n);
      if ((e = cudaStreamCreateWithPriority(&st, cudaStreamNonBlocking, priority)) != cudaSuccess) return Fail("side stream", e);
      cudaEvent_t ev = nullptr;
      if ((e = cudaEventCreateWithFlags(&ev, cudaEventDisableTiming)) != cudaSuccess) {
        cudaStreamDestroy(st);
        return Fail("event", e);
      }
      side_.push_back(st);
      joins_.push_back(ev);
      priorities_.push_back(priority);
    }
    return Status::Ok();
  }

  // The stages on stream_: one chain for the batch, or (chains = N) image n's chain on side stream n,
  // forked from stream_ and joined back to it, each with its share of the workspace and its own error
  // record. A chain whose launch fails is joined like the others, so that a capture ends whole.
  Status LaunchStages(const AnchorGrid& grid, const cuda::DeviceHeads& heads, const cuda::DeviceDetections& det, int32_t* error,
                      int chains) {
    if (chains == 1) return cuda::LaunchPostprocess(params_, grid, heads, det, error, workspace_.get(), workspace_.bytes(), stream_);
    cudaError_t e = cudaEventRecord(fork_, stream_);
    if (e != cudaSuccess) return Fail("event", e);
    const HeadShapes& s = heads.shapes;
    const size_t ws = ImageWorkspace(s);
    const size_t elem = DTypeSize(heads.dtype);
    const int inputs = heads.layout == Layout::kConcatenated ? 1 : s.num_levels;
    Status first = Status::Ok();
    for (int n = 0; n < chains; ++n) {
      cuda::DeviceHeads h = heads;
      h.shapes.batch = 1;
      for (int i = 0; i < inputs; ++i) {
        const size_t anchors = InputAnchors(s, heads.layout, i);
        h.cls[i] = static_cast<const uint8_t*>(heads.cls[i]) + static_cast<size_t>(n) * anchors * static_cast<size_t>(s.num_classes) * elem;
        h.box[i] = static_cast<const uint8_t*>(heads.box[i]) + static_cast<size_t>(n) * anchors * 4 * elem;
      }
      h.image_sizes = heads.image_sizes + 2 * n;
      h.output_sizes = heads.output_sizes != nullptr ? heads.output_sizes + 2 * n : nullptr;
      if (heads.anchors != nullptr && heads.anchors_per_image) h.anchors = heads.anchors + static_cast<size_t>(n) * static_cast<size_t>(s.TotalAnchors()) * 4;
      cuda::DeviceDetections d = det;
      const size_t D = static_cast<size_t>(det.max_detections);
      d.counts = det.counts + n;
      d.boxes = static_cast<float*>(det.boxes) + static_cast<size_t>(n) * D * 4;
      d.scores = static_cast<float*>(det.scores) + static_cast<size_t>(n) * D;
      d.labels = det.labels + static_cast<size_t>(n) * D;
      cudaStream_t side = side_[n];
      if ((e = cudaStreamWaitEvent(side, fork_, 0)) != cudaSuccess) return Fail("fork", e);
      cuda::LaunchPriority() = priorities_[n];
      Status st = cuda::LaunchPostprocess(params_, grid, h, d, error + static_cast<size_t>(n) * cuda::kErrorWords,
                                          workspace_.as<uint8_t>() + static_cast<size_t>(n) * ws, ws, side);
      cuda::LaunchPriority() = 0;
      if (first.ok() && !st.ok()) first = st;
      if ((e = cudaEventRecord(joins_[n], side)) != cudaSuccess) return Fail("join", e);
      if ((e = cudaStreamWaitEvent(stream_, joins_[n], 0)) != cudaSuccess) return Fail("join", e);
    }
    return first;
  }

  Status Capture(const AnchorGrid& grid, const cuda::DeviceHeads& heads, const cuda::DeviceDetections& det, int32_t* error,
                 int chains, const GraphKey& key) {
    cudaError_t e = cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal);
    if (e != cudaSuccess) return Fail("graph capture", e);
    const Status launched = LaunchStages(grid, heads, det, error, chains);
    cudaGraph_t graph = nullptr;
    e = cudaStreamEndCapture(stream_, &graph);
    if (!launched.ok()) {
      if (graph != nullptr) cudaGraphDestroy(graph);
      cudaGetLastError();
      return launched;
    }
    if (e != cudaSuccess) return Fail("graph capture", e);
    e = cudaGraphInstantiate(&graph_exec_, graph, 0);
    cudaGraphDestroy(graph);
    if (e != cudaSuccess) {
      graph_exec_ = nullptr;
      return Fail("graph instantiate", e);
    }
    graph_key_ = key;
    return Status::Ok();
  }

  PostprocessParams params_;  // select.class_thresh: device memory (class_thresh_) after Init
  float* class_thresh_ = nullptr;
  std::vector<float> host_class_thresh_;  // the same thresholds in host memory (the host path)
  std::unique_ptr<Engine> host_engine_;   // candidate lists the device path leaves to the host core
  int device_;
  bool use_graph_;
  cudaStream_t stream_ = nullptr;
  cudaEvent_t events_[4] = {};
  std::vector<cudaStream_t> side_;  // RK_CUDA_SPLIT: a stream per image's chain
  std::vector<cudaEvent_t> joins_;
  std::vector<int> priorities_;  // side stream n's priority, also carried by its chain's launches
  cudaEvent_t fork_ = nullptr;
  Buffer inputs_, small_, outputs_, workspace_;
  PinnedBuffer staging_, host_out_;
  cudaGraphExec_t graph_exec_ = nullptr;
  GraphKey graph_key_{};
  AnchorGrid grid_{};
  HeadShapes grid_shapes_{};
  bool grid_ready_ = false;
  std::string broken_;
  cudaError_t last_error_ = cudaSuccess;
};

}  // namespace

CudaDeviceList ListCudaDevices() {
  CudaDeviceList list;
  cudaDriverGetVersion(&list.driver_version);
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) {
    cudaGetLastError();
    if (e == cudaErrorNoDevice) list.reason = "no CUDA device is present (cudaErrorNoDevice)";
    else if (e == cudaErrorInsufficientDriver) list.reason = list.driver_version == 0 ? "no NVIDIA driver is installed (cudaErrorInsufficientDriver)" : "the NVIDIA driver is older than this build's CUDA runtime " + std::to_string(CudaRuntimeVersion()) + " (cudaErrorInsufficientDriver)";
    else list.reason = "CUDA device query failed: " + ErrorText(e);
    return list;
  }
  for (int i = 0; i < count; ++i) {
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, i) != cudaSuccess) {
      cudaGetLastError();
      continue;
    }
    CudaDeviceInfo d;
    d.index = i;
    d.name = prop.name;
    d.major = prop.major;
    d.minor = prop.minor;
    d.multiprocessors = prop.multiProcessorCount;
    d.total_memory = prop.totalGlobalMem;
    list.devices.push_back(d);
  }
  if (list.devices.empty()) list.reason = "no CUDA device is present";
  return list;
}

int CudaRuntimeVersion() {
  int v = 0;
  cudaRuntimeGetVersion(&v);
  return v;
}

std::unique_ptr<Engine> MakeCudaEngine(const PostprocessParams& params, int device, bool use_graph, Status* status) {
  const CudaDeviceList list = ListCudaDevices();
  if (list.devices.empty()) {
    *status = Status(Code::kUnavailable, "The cuda backend needs a CUDA device but " + list.reason + "; use backend \"cpu\" or \"auto\"");
    return nullptr;
  }
  if (device < 0 || device >= static_cast<int>(list.devices.size())) {
    *status = Status(Code::kInvalidArgument, "Expected device in [0, " + std::to_string(list.devices.size() - 1) + "] but received " + std::to_string(device));
    return nullptr;
  }
  if (list.devices[device].major < 8) {
    *status = Status(Code::kUnavailable, "The cuda backend is built for sm_80 and newer but device " + std::to_string(device) + " (" + list.devices[device].name + ") is sm_" + std::to_string(list.devices[device].major) + std::to_string(list.devices[device].minor));
    return nullptr;
  }
  *status = ValidateParams(params);
  if (!status->ok()) return nullptr;
  if (params.select.topk_candidates > cuda::kMaxCudaTopk) {
    *status = Status(Code::kInvalidArgument, "Expected topk_candidates <= " + std::to_string(cuda::kMaxCudaTopk) + " for the cuda backend but received " + std::to_string(params.select.topk_candidates));
    return nullptr;
  }
  *status = cuda::CheckNmsClasses(params);
  if (!status->ok()) return nullptr;
  auto engine = std::make_unique<CudaEngine>(params, device, use_graph);
  *status = engine->Init();
  if (!status->ok()) return nullptr;
  return engine;
}

Status UploadToDevice(const void* host, size_t bytes, int device, DeviceBuffer* out) {
  cudaError_t e = cudaSetDevice(device);
  void* p = nullptr;
  if (e == cudaSuccess) e = cudaMalloc(&p, bytes < 1 ? 1 : bytes);
  cudaStream_t stream = nullptr;
  if (e == cudaSuccess) e = cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking);
  if (e == cudaSuccess) {
    const cuda::HostCopy copy{p, host, bytes};
    e = cuda::CopyFromHost(device, &copy, 1, stream);
    const cudaError_t done = cudaStreamSynchronize(stream);
    if (e == cudaSuccess) e = done;
  }
  if (stream != nullptr) cudaStreamDestroy(stream);
  if (e != cudaSuccess) {
    if (p != nullptr) cudaFree(p);
    cudaGetLastError();
    return Status(Code::kCudaError, "upload of " + std::to_string(bytes) + " bytes to device " + std::to_string(device) + ": " + ErrorText(e));
  }
  out->ptr = p;
  out->bytes = bytes;
  out->device = device;
  return Status::Ok();
}

void FreeDevice(DeviceBuffer* buffer) {
  if (buffer->ptr != nullptr) {
    cudaSetDevice(buffer->device);
    cudaFree(buffer->ptr);
  }
  buffer->ptr = nullptr;
  buffer->bytes = 0;
}

}  // namespace rk
