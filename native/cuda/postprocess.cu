// The launchers of native/include/rk/cuda_launch.h: workspace layout and the order of the stages.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <utility>

#include "common.cuh"
#include "select.cuh"
#include "stages_cuda.cuh"

namespace rk {
namespace cuda {
namespace {

size_t Align(size_t b) { return (b + 255) & ~static_cast<size_t>(255); }

struct SelectLayout {
  size_t bytes = 0;
  int32_t slices = 0;
  uint32_t capacity = 0;
};

SelectLayout SelectBytes(const PostprocessParams& p, const HeadShapes& s) {
  SelectLayout out;
  out.slices = s.batch * s.num_levels;
  out.capacity = SelectCapacity(p.select);
  const size_t S = static_cast<size_t>(out.slices < 1 ? 1 : out.slices);
  out.bytes = 2 * Align(S * 4)                                // start, cut
              + 8 * Align(S * 4)                              // count .. kth_order_key
              + Align(S * out.capacity * 8) + Align(S * out.capacity * 4)  // keys, pos
              + Align(S * kSelectBins * 4);                   // hist
  return out;
}

SelectState CarveSelect(uint8_t*& p, const SelectLayout& lay) {
  const size_t S = static_cast<size_t>(lay.slices < 1 ? 1 : lay.slices);
  SelectState st;
  auto take = [&](size_t bytes) {
    uint8_t* q = p;
    p += Align(bytes);
    return q;
  };
  st.start = reinterpret_cast<float*>(take(S * 4));
  st.cut = reinterpret_cast<float*>(take(S * 4));
  st.count = reinterpret_cast<uint32_t*>(take(S * 4));
  st.need_fallback = reinterpret_cast<uint32_t*>(take(S * 4));
  st.prefix = reinterpret_cast<uint32_t*>(take(S * 4));
  st.prefix_mask = reinterpret_cast<uint32_t*>(take(S * 4));
  st.remaining = reinterpret_cast<uint32_t*>(take(S * 4));
  st.taken_all = reinterpret_cast<uint32_t*>(take(S * 4));
  st.kth_key = reinterpret_cast<uint32_t*>(take(S * 4));
  st.kth_order_key = reinterpret_cast<uint32_t*>(take(S * 4));
  st.keys = reinterpret_cast<uint64_t*>(take(S * lay.capacity * 8));
  st.pos = reinterpret_cast<uint32_t*>(take(S * lay.capacity * 4));
  st.hist = reinterpret_cast<uint32_t*>(take(S * kSelectBins * 4));
  st.capacity = lay.capacity;
  return st;
}

size_t CandidateBytes(const PostprocessParams& p, const HeadShapes& s) {
  const size_t slots = static_cast<size_t>(s.batch) * s.num_levels * static_cast<size_t>(p.select.topk_candidates);
  return Align(slots * 4) + Align(slots * 16) + Align(slots * 4) + Align(static_cast<size_t>(s.batch) * s.num_levels * 4);
}

DeviceCandidates CarveCandidates(uint8_t*& p, const PostprocessParams& pp, const HeadShapes& s) {
  const size_t slots = static_cast<size_t>(s.batch) * s.num_levels * static_cast<size_t>(pp.select.topk_candidates);
  DeviceCandidates c;
  c.topk = pp.select.topk_candidates;
  c.slots_per_image = s.num_levels * pp.select.topk_candidates;
  c.scores = reinterpret_cast<float*>(p); p += Align(slots * 4);
  c.boxes = reinterpret_cast<float*>(p); p += Align(slots * 16);
  c.labels = reinterpret_cast<int32_t*>(p); p += Align(slots * 4);
  c.level_counts = reinterpret_cast<int32_t*>(p); p += Align(static_cast<size_t>(s.batch) * s.num_levels * 4);
  return c;
}

// The count path's hand-off arrays (decode.cu), sized whenever the shape's slots fit the path.
size_t TakenBytes(const PostprocessParams& p, const HeadShapes& s) {
  const int64_t slots = static_cast<int64_t>(s.num_levels) * p.select.topk_candidates;
  if (slots > kCountMaxSlots) return 0;
  const size_t n = static_cast<size_t>(s.batch < 1 ? 1 : s.batch) * static_cast<size_t>(slots < 1 ? 1 : slots);
  const size_t slices = static_cast<size_t>(s.batch < 1 ? 1 : s.batch) * static_cast<size_t>(s.num_levels);
  return Align(n * 8) + Align(n * 4) + Align(slices * (kBuckets + 1) * 4) + Align(slices * 8);
}

TakenKeys CarveTaken(uint8_t* p, const PostprocessParams& pp, const HeadShapes& s) {
  const int64_t slots = static_cast<int64_t>(s.num_levels) * pp.select.topk_candidates;
  const size_t n = static_cast<size_t>(s.batch < 1 ? 1 : s.batch) * static_cast<size_t>(slots < 1 ? 1 : slots);
  const size_t slices = static_cast<size_t>(s.batch < 1 ? 1 : s.batch) * static_cast<size_t>(s.num_levels);
  TakenKeys t;
  t.keys = reinterpret_cast<uint64_t*>(p); p += Align(n * 8);
  t.pos = reinterpret_cast<uint32_t*>(p); p += Align(n * 4);
  t.bucket_start = reinterpret_cast<uint32_t*>(p); p += Align(slices * (kBuckets + 1) * 4);
  t.span = reinterpret_cast<uint2*>(p);
  return t;
}

// NMS scratch of the fused launcher: room for the partial ranges of either path's rank kernel.
int32_t PostprocessRangeParts(const PostprocessParams& p, const HeadShapes& s) {
  const int32_t slots = s.num_levels * p.select.topk_candidates;
  return std::max(CountRangeParts(slots), RankRangeParts(slots));
}

Status Check(const PostprocessParams& p, const HeadShapes& s, const DeviceHeads& in) {
  RK_RETURN_IF_ERROR(ValidateParams(p));
  RK_RETURN_IF_ERROR(ValidateShapes(p, s));
  if (p.select.topk_candidates > kMaxCudaTopk) {
    return Status(Code::kInvalidArgument, "Expected topk_candidates <= " + std::to_string(kMaxCudaTopk) +
                                              " for the cuda backend but received " +
                                              std::to_string(p.select.topk_candidates));
  }
  if (static_cast<int64_t>(s.num_levels) * p.select.topk_candidates > (int64_t{1} << 24)) {
    return Status(Code::kInvalidArgument, "Expected levels * topk_candidates <= 2^24 for the cuda backend");
  }
  if (in.image_sizes == nullptr) return Status(Code::kInvalidArgument, "Expected device image_sizes but received null");
  const int want = in.layout == Layout::kConcatenated ? 1 : s.num_levels;
  for (int i = 0; i < want; ++i) {
    if (in.cls[i] == nullptr || in.box[i] == nullptr) {
      return Status(Code::kInvalidArgument, "Expected device pointers for cls and box of level " + std::to_string(i) +
                                                " but received null");
    }
  }
  return Status::Ok();
}

__global__ void FillSizesKernel(int32_t* sizes, int32_t batch, int32_t height, int32_t width) {
  const int32_t i = static_cast<int32_t>(blockIdx.x * blockDim.x + threadIdx.x);
  if (i < batch) {
    sizes[2 * i] = height;
    sizes[2 * i + 1] = width;
  }
}

}  // namespace

bool ChainedLaunches() {
  static const bool allowed = [] {
    const char* e = std::getenv("RK_CUDA_PDL");
    return e == nullptr || std::atoi(e) != 0;
  }();
  if (!allowed) return false;
  int device = 0, major = 0;
  if (cudaGetDevice(&device) != cudaSuccess || cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  return major >= 9;
}

Status LaunchFillImageSizes(int32_t* sizes, int32_t batch, int32_t height, int32_t width, cudaStream_t stream) {
  if (batch <= 0) return Status::Ok();
  FillSizesKernel<<<(batch + 127) / 128, 128, 0, stream>>>(sizes, batch, height, width);
  return LastError("image sizes");
}

HeadArgs MakeHeadArgs(const DeviceHeads& in) {
  HeadArgs h{};
  const HeadShapes& s = in.shapes;
  h.dtype = in.dtype;
  h.layout = in.layout;
  h.batch = s.batch;
  h.levels = s.num_levels;
  h.anchors = s.anchors_per_loc;
  h.classes = s.num_classes;
  for (int l = 0; l < s.num_levels; ++l) {
    h.height[l] = s.levels[l].height;
    h.width[l] = s.levels[l].width;
    h.level_anchor_offset[l] = s.LevelAnchorOffset(l);
    h.level_elements[l] = s.LevelElements(l);
    h.cls[l] = in.layout == Layout::kConcatenated ? in.cls[0] : in.cls[l];
    h.box[l] = in.layout == Layout::kConcatenated ? in.box[0] : in.box[l];
  }
  h.total_anchors = s.TotalAnchors();
  return h;
}

Status CudaStatus(const char* what, cudaError_t e) {
  if (e == cudaSuccess) return Status::Ok();
  return Status(Code::kCudaError, std::string(what) + ": " + cudaGetErrorName(e) + ": " + cudaGetErrorString(e));
}

Status LastError(const char* what) { return CudaStatus(what, cudaGetLastError()); }

Status AllowSharedBytes(const void* kernel, size_t smem, const char* expected) {
  if (smem <= 48 * 1024) return Status::Ok();
  static std::mutex mu;
  static std::map<std::pair<const void*, int>, size_t> granted;
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess) return LastError("current device");
  std::lock_guard<std::mutex> lock(mu);
  size_t& have = granted[{kernel, device}];
  if (smem <= have) return Status::Ok();
  const cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
  if (e == cudaSuccess) {
    have = smem;
    return Status::Ok();
  }
  cudaGetLastError();
  return Status(Code::kInvalidArgument, std::string("Expected ") + expected + " (" + std::to_string(smem) +
                                            " bytes of shared memory asked) but the device refused: " + cudaGetErrorString(e));
}

Status CurrentDeviceSms(int* device, int* sms) {
  static std::mutex mu;
  static std::map<int, int> sms_of;
  if (cudaGetDevice(device) != cudaSuccess) return LastError("current device");
  std::lock_guard<std::mutex> lock(mu);
  auto it = sms_of.find(*device);
  if (it == sms_of.end()) {
    int count = 0;
    if (cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, *device) != cudaSuccess) return LastError("device attributes");
    it = sms_of.emplace(*device, count).first;
  }
  *sms = it->second;
  return Status::Ok();
}

bool CountRanks(int32_t slots_per_image) {
  if (slots_per_image <= 0 || slots_per_image > kCountMaxSlots) return false;
  const char* forced = std::getenv("RK_CUDA_RANKS");
  return forced == nullptr || std::strcmp(forced, "sort") != 0;
}

size_t SelectDecodeWorkspaceSize(const PostprocessParams& p, const HeadShapes& s) {
  return SelectBytes(p, s).bytes + TakenBytes(p, s);
}

// The memory that the select state and the NMS scratch share (the NMS stages start after the select's end).
static size_t SharedScratchBytes(const PostprocessParams& p, const HeadShapes& s) {
  const size_t nms = NmsScratchBytes(s.batch, s.num_levels * p.select.topk_candidates, PostprocessRangeParts(p, s));
  return std::max(SelectBytes(p, s).bytes, nms);
}

size_t PostprocessWorkspaceSize(const PostprocessParams& p, const HeadShapes& s) {
  // The class bitmaps, zeroed while the top-k kernel reads the select state, have memory of their own, at the end.
  return CandidateBytes(p, s) + TakenBytes(p, s) + SharedScratchBytes(p, s) +
         ClassBitsBytes(s.batch, p.num_classes, s.num_levels * p.select.topk_candidates);
}

namespace {

// Select, top-k and decode: heads -> candidates. `select` holds the select state; on the count path
// `taken` holds the hand-off between its kernels (outside `select`, since the rank outputs `ranks`,
// when asked for, may share memory with the select state).
Status SelectDecodeStages(const PostprocessParams& p, const AnchorGrid& grid, const DeviceHeads& in, const DeviceCandidates& out,
                          int32_t* error, uint8_t* select, uint8_t* taken, const NmsScratch* ranks, bool count,
                          cudaStream_t stream) {
  uint8_t* q = select;
  const SelectState st = CarveSelect(q, SelectBytes(p, in.shapes));
  const HeadArgs h = MakeHeadArgs(in);
  RK_RETURN_IF_ERROR(LaunchSelect(p.select, h, MakeTileMap(in.shapes, in.dtype), st, error, stream));  // zeroes error
  DecodeArgs args;
  args.heads = h;
  args.grid = grid;
  args.decode = p.decode;
  args.anchors = in.anchors;
  args.anchors_per_image = in.anchors_per_image;
  args.image_sizes = in.image_sizes;
  if (!count) return LaunchTopkDecode(args, st, out, error, stream);
  const TakenKeys tk = CarveTaken(taken, p, in.shapes);
  RK_RETURN_IF_ERROR(LaunchTopkTake(st, out, tk, ranks, in.shapes.batch, in.shapes.num_levels, p.num_classes, stream));
  return LaunchCountRank(args, tk, out, ranks, error, stream);
}

Status CheckSelectDecode(const PostprocessParams& p, const DeviceHeads& in, const DeviceCandidates& out) {
  RK_RETURN_IF_ERROR(Check(p, in.shapes, in));
  if (out.topk != p.select.topk_candidates || out.slots_per_image != in.shapes.num_levels * p.select.topk_candidates) {
    return Status(Code::kInvalidArgument, "Expected candidate buffers of levels * topk_candidates slots per image");
  }
  return Status::Ok();
}

}  // namespace

Status LaunchSelectDecode(const PostprocessParams& p, const AnchorGrid& grid, const DeviceHeads& in,
                          const DeviceCandidates& out, int32_t* error, void* workspace, size_t workspace_bytes,
                          cudaStream_t stream) {
  RK_RETURN_IF_ERROR(CheckSelectDecode(p, in, out));
  const size_t need = SelectDecodeWorkspaceSize(p, in.shapes);
  if (workspace_bytes < need) {
    return Status(Code::kInvalidArgument, "Expected a select workspace of at least " + std::to_string(need) +
                                              " bytes but received " + std::to_string(workspace_bytes));
  }
  if (in.shapes.batch == 0) {
    if (cudaMemsetAsync(error, 0, kErrorWords * sizeof(int32_t), stream) != cudaSuccess) return LastError("error record");
    return Status::Ok();
  }
  uint8_t* select = static_cast<uint8_t*>(workspace);
  return SelectDecodeStages(p, grid, in, out, error, select, select + SelectBytes(p, in.shapes).bytes, nullptr,
                            CountRanks(out.slots_per_image), stream);
}

Status LaunchPostprocess(const PostprocessParams& p, const AnchorGrid& grid, const DeviceHeads& in,
                         const DeviceDetections& out, int32_t* error, void* workspace, size_t workspace_bytes,
                         cudaStream_t stream) {
  RK_RETURN_IF_ERROR(CheckNmsClasses(p));
  const size_t need = PostprocessWorkspaceSize(p, in.shapes);
  if (workspace_bytes < need) {
    return Status(Code::kInvalidArgument, "Expected a workspace of at least " + std::to_string(need) +
                                              " bytes but received " + std::to_string(workspace_bytes));
  }
  if (out.max_detections != p.output.detections_per_img) {
    return Status(Code::kInvalidArgument, "Expected output buffers of detections_per_img = " +
                                              std::to_string(p.output.detections_per_img) + " rows but received " +
                                              std::to_string(out.max_detections));
  }
  uint8_t* q = static_cast<uint8_t*>(workspace);
  const DeviceCandidates cands = CarveCandidates(q, p, in.shapes);
  RK_RETURN_IF_ERROR(CheckSelectDecode(p, in, cands));
  uint8_t* taken = q;
  q += TakenBytes(p, in.shapes);
  const int32_t batch = in.shapes.batch;
  // The class bitmaps come last, after the memory that the select state and the NMS scratch share.
  uint32_t* class_bits = reinterpret_cast<uint32_t*>(q + SharedScratchBytes(p, in.shapes));
  const size_t class_bits_bytes = ClassBitsBytes(batch, p.num_classes, cands.slots_per_image);
  if (batch == 0) {
    if (cudaMemsetAsync(error, 0, kErrorWords * sizeof(int32_t), stream) != cudaSuccess) return LastError("error record");
    return Status::Ok();
  }
  NmsScratch sc = CarveNmsScratch(q, batch, cands.slots_per_image, PostprocessRangeParts(p, in.shapes));
  if (CountRanks(cands.slots_per_image)) {  // the ranks come with the candidates
    bool wide = false;
    RK_RETURN_IF_ERROR(WideGreedy(batch, p.num_classes, &wide));
    if (class_bits_bytes > 0 && !wide) {  // and the member lists, as class bitmaps
      sc.class_bits = class_bits;
      sc.class_words = ClassWords(cands.slots_per_image);
    }
    RK_RETURN_IF_ERROR(SelectDecodeStages(p, grid, in, cands, error, q, taken, &sc, true, stream));
    return LaunchNmsStages(p, cands, batch, in.image_sizes, in.output_sizes, out, sc, /*ranked=*/true, /*chained=*/true, stream);
  }
  RK_RETURN_IF_ERROR(SelectDecodeStages(p, grid, in, cands, error, q, taken, nullptr, false, stream));
  return LaunchNmsStages(p, cands, batch, in.image_sizes, in.output_sizes, out, sc, /*ranked=*/false, /*chained=*/true, stream);
}

size_t CandidatePostprocessWorkspaceSize(const PostprocessParams& p, const HeadShapes& s) {
  const int32_t slots = s.num_levels * p.select.topk_candidates;
  const size_t positions = static_cast<size_t>(s.batch) * static_cast<size_t>(slots) * 4;
  return CandidateBytes(p, s) + Align(positions) + NmsScratchBytes(s.batch, slots, RankRangeParts(slots));
}

Status LaunchCandidatePostprocess(const PostprocessParams& p, const AnchorGrid& grid, const HeadShapes& s,
                                  const DeviceCandidateLists& lists, const int32_t* image_sizes, const int32_t* output_sizes,
                                  const DeviceDetections& out, int32_t* error, void* workspace, size_t workspace_bytes,
                                  cudaStream_t stream) {
  RK_RETURN_IF_ERROR(ValidateParams(p));
  RK_RETURN_IF_ERROR(ValidateShapes(p, s));
  RK_RETURN_IF_ERROR(CheckNmsClasses(p));
  if (p.select.topk_candidates > kMaxCudaTopk) {
    return Status(Code::kInvalidArgument, "Expected topk_candidates <= " + std::to_string(kMaxCudaTopk) + " for the cuda backend but received " +
                                              std::to_string(p.select.topk_candidates));
  }
  const size_t need = CandidatePostprocessWorkspaceSize(p, s);
  if (workspace_bytes < need) {
    return Status(Code::kInvalidArgument, "Expected a workspace of at least " + std::to_string(need) + " bytes but received " + std::to_string(workspace_bytes));
  }
  if (s.batch == 0) {
    if (cudaMemsetAsync(error, 0, kErrorWords * sizeof(int32_t), stream) != cudaSuccess) return LastError("error record");
    return Status::Ok();
  }
  uint8_t* q = static_cast<uint8_t*>(workspace);
  const DeviceCandidates cands = CarveCandidates(q, p, s);
  int32_t* positions = reinterpret_cast<int32_t*>(q);
  q += Align(static_cast<size_t>(s.batch) * static_cast<size_t>(cands.slots_per_image) * 4);
  const NmsScratch sc = CarveNmsScratch(q, s.batch, cands.slots_per_image, RankRangeParts(cands.slots_per_image));
  DeviceHeads heads;  // shapes only: the lists hold the values
  heads.shapes = s;
  heads.layout = Layout::kConcatenated;
  DecodeArgs args;
  args.heads = MakeHeadArgs(heads);
  args.grid = grid;
  args.decode = p.decode;
  args.anchors = nullptr;
  args.anchors_per_image = false;
  args.image_sizes = image_sizes;
  RK_RETURN_IF_ERROR(LaunchCandidateDecode(p.select, args, lists, cands, positions, error, stream));
  return LaunchNmsStages(p, cands, s.batch, image_sizes, output_sizes, out, sc, /*ranked=*/false, /*chained=*/false, stream);
}

}  // namespace cuda
}  // namespace rk
