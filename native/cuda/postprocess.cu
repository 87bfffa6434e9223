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

// The select state of every (image, level) slice.
SelectState CarveSelect(Carver& c, const PostprocessParams& p, const HeadShapes& s) {
  const size_t S = static_cast<size_t>(s.batch * s.num_levels < 1 ? 1 : s.batch * s.num_levels);
  SelectState st;
  st.capacity = SelectCapacity(p.select);
  st.start = c.Take<float>(S);
  st.cut = c.Take<float>(S);
  st.count = c.Take<uint32_t>(S);
  st.need_fallback = c.Take<uint32_t>(S);
  st.prefix = c.Take<uint32_t>(S);
  st.prefix_mask = c.Take<uint32_t>(S);
  st.remaining = c.Take<uint32_t>(S);
  st.taken_all = c.Take<uint32_t>(S);
  st.kth_key = c.Take<uint32_t>(S);
  st.kth_order_key = c.Take<uint32_t>(S);
  st.keys = c.Take<uint64_t>(S * st.capacity);
  st.hist = c.Take<uint32_t>(S * kSelectBins);
  return st;
}

size_t SelectBytes(const PostprocessParams& p, const HeadShapes& s) {
  return Carver::Measure([&](Carver& c) { CarveSelect(c, p, s); });
}

// The candidates of every (image, level) slice: topk_candidates slots each.
DeviceCandidates CarveCandidates(Carver& c, const PostprocessParams& pp, const HeadShapes& s) {
  const size_t slots = static_cast<size_t>(s.batch) * s.num_levels * static_cast<size_t>(pp.select.topk_candidates);
  DeviceCandidates d;
  d.topk = pp.select.topk_candidates;
  d.slots_per_image = s.num_levels * pp.select.topk_candidates;
  d.scores = c.Take<float>(slots);
  d.boxes = c.Take<float>(slots * 4);
  d.labels = c.Take<int32_t>(slots);
  d.level_counts = c.Take<int32_t>(static_cast<size_t>(s.batch) * s.num_levels);
  return d;
}

size_t CandidateBytes(const PostprocessParams& p, const HeadShapes& s) {
  return Carver::Measure([&](Carver& c) { CarveCandidates(c, p, s); });
}

// The count path's hand-off arrays (decode.cu), laid out whenever the shape's slots fit the path.
TakenKeys CarveTaken(Carver& c, const PostprocessParams& pp, const HeadShapes& s) {
  const int64_t slots = static_cast<int64_t>(s.num_levels) * pp.select.topk_candidates;
  const size_t n = static_cast<size_t>(s.batch < 1 ? 1 : s.batch) * static_cast<size_t>(slots < 1 ? 1 : slots);
  const size_t slices = static_cast<size_t>(s.batch < 1 ? 1 : s.batch) * static_cast<size_t>(s.num_levels);
  TakenKeys t;
  t.keys = c.Take<uint64_t>(n);
  t.bucket_start = c.Take<uint32_t>(slices * (kBuckets + 1));
  t.span = c.Take<uint2>(slices);
  return t;
}

size_t TakenBytes(const PostprocessParams& p, const HeadShapes& s) {
  if (static_cast<int64_t>(s.num_levels) * p.select.topk_candidates > kCountMaxSlots) return 0;
  return Carver::Measure([&](Carver& c) { CarveTaken(c, p, s); });
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

bool SplitImages() {
  static const bool on = [] {
    const char* e = std::getenv("RK_CUDA_SPLIT");
    return e != nullptr && std::atoi(e) == 1;
  }();
  return on;
}

int& LaunchPriority() {
  thread_local int priority = 0;
  return priority;
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
  return SelectBytes(p, s) + TakenBytes(p, s);
}

// The memory that the select state and the NMS scratch share (the NMS stages start after the select's end).
static size_t SharedScratchBytes(const PostprocessParams& p, const HeadShapes& s) {
  const size_t nms = NmsScratchBytes(s.batch, s.num_levels * p.select.topk_candidates, PostprocessRangeParts(p, s));
  return std::max(SelectBytes(p, s), nms);
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
  Carver select_carver(select);
  const SelectState st = CarveSelect(select_carver, p, in.shapes);
  const HeadArgs h = MakeHeadArgs(in);
  RK_RETURN_IF_ERROR(LaunchSelect(p.select, h, MakeTileMap(in.shapes, in.dtype), st, error, stream));  // zeroes error
  DecodeArgs args;
  args.heads = h;
  args.grid = grid;
  args.decode = p.decode;
  args.anchors = in.anchors;
  args.anchors_per_image = in.anchors_per_image;
  args.candidate_order = p.select.candidate_order;
  args.image_sizes = in.image_sizes;
  if (!count) return LaunchTopkDecode(args, st, out, error, stream);
  Carver taken_carver(taken);
  const TakenKeys tk = CarveTaken(taken_carver, p, in.shapes);
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
  return SelectDecodeStages(p, grid, in, out, error, select, select + SelectBytes(p, in.shapes), nullptr,
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
  Carver candidates(workspace);
  const DeviceCandidates cands = CarveCandidates(candidates, p, in.shapes);
  RK_RETURN_IF_ERROR(CheckSelectDecode(p, in, cands));
  uint8_t* taken = static_cast<uint8_t*>(workspace) + candidates.used();
  uint8_t* q = taken + TakenBytes(p, in.shapes);
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
  Carver c(workspace);
  const DeviceCandidates cands = CarveCandidates(c, p, s);
  int32_t* positions = c.Take<int32_t>(static_cast<size_t>(s.batch) * static_cast<size_t>(cands.slots_per_image));
  const NmsScratch sc = CarveNmsScratch(c, s.batch, cands.slots_per_image, RankRangeParts(cands.slots_per_image));
  DeviceHeads heads;  // shapes only: the lists hold the values
  heads.shapes = s;
  heads.layout = Layout::kConcatenated;
  DecodeArgs args;
  args.heads = MakeHeadArgs(heads);
  args.grid = grid;
  args.decode = p.decode;
  args.anchors = nullptr;
  args.anchors_per_image = false;
  args.candidate_order = p.select.candidate_order;
  args.image_sizes = image_sizes;
  RK_RETURN_IF_ERROR(LaunchCandidateDecode(p.select, args, lists, cands, positions, error, stream));
  return LaunchNmsStages(p, cands, s.batch, image_sizes, output_sizes, out, sc, /*ranked=*/false, /*chained=*/false, stream);
}

}  // namespace cuda
}  // namespace rk
