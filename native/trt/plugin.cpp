// The TensorRT plugins RetinaNetPostprocess, RetinaNetDecode and RetinaNetNMS on the IPluginV3
// interfaces (IPluginV3OneCore / IPluginV3OneBuild / IPluginV3OneRuntime) with IPluginCreatorV3One
// creators, exported through getCreators and setLoggerFinder (plugin library loading, trtexec
// --dynamicPlugins, the ONNX parser). Glue only: the work is native/cuda's launchers; the fields are
// fields.cpp. Nothing here throws across the interface: every failure becomes a return status, an
// error recorder entry (the context's, else the plugin registry's) and a log line.
#include <NvInferRuntime.h>
#include <cuda_runtime.h>
#include <dlfcn.h>

#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <vector>

#include "rk/cuda_launch.h"
#include "fields.h"
#include "rk/stages.h"

using namespace nvinfer1;

static_assert(static_cast<int>(PluginFieldType::kFLOAT64) == static_cast<int>(rk::trt::FieldType::kFloat64) &&
                  static_cast<int>(PluginFieldType::kINT32) == static_cast<int>(rk::trt::FieldType::kInt32) &&
                  static_cast<int>(PluginFieldType::kCHAR) == static_cast<int>(rk::trt::FieldType::kChar) &&
                  static_cast<int>(PluginFieldType::kINT64) == static_cast<int>(rk::trt::FieldType::kInt64),
              "rk::trt::FieldType must number the types as nvinfer1::PluginFieldType");

namespace rk {
namespace trt {
namespace {

// ------------------------------------------------------------------------------------------------
// Logging and error reporting.
std::mutex g_logger_mutex;
ILoggerFinder* g_logger_finder = nullptr;

ILogger* FindLogger() {
  std::lock_guard<std::mutex> lock(g_logger_mutex);
  return g_logger_finder != nullptr ? g_logger_finder->findLogger() : nullptr;
}

// The plugin registry's recorder, when libnvinfer is loaded in this process (looked up, not linked:
// the library needs no libnvinfer of its own).
IErrorRecorder* RegistryRecorder() {
  using GetRegistry = IPluginRegistry* (*)();
  void* sym = dlsym(RTLD_DEFAULT, "getPluginRegistry");
  if (sym == nullptr) return nullptr;
  IPluginRegistry* registry = reinterpret_cast<GetRegistry>(sym)();
  return registry != nullptr ? registry->getErrorRecorder() : nullptr;
}

ErrorCode ToErrorCode(Code code) {
  switch (code) {
    case Code::kInvalidArgument:
    case Code::kShapeMismatch: return ErrorCode::kINVALID_ARGUMENT;
    case Code::kCudaError: return ErrorCode::kFAILED_EXECUTION;
    default: return ErrorCode::kUNSPECIFIED_ERROR;
  }
}

void Report(IErrorRecorder* recorder, Code code, const std::string& message) noexcept {
  try {
    const std::string text = "[retinanet-kernel] " + message;
    if (recorder == nullptr) recorder = RegistryRecorder();
    if (recorder != nullptr) {
      // Recorders may keep only kMAX_DESC_LENGTH characters; the log line has the whole message.
      recorder->reportError(ToErrorCode(code), text.substr(0, IErrorRecorder::kMAX_DESC_LENGTH).c_str());
    }
    if (ILogger* logger = FindLogger()) {
      logger->log(ILogger::Severity::kERROR, text.c_str());
    } else {
      std::fprintf(stderr, "%s\n", text.c_str());
    }
  } catch (...) {
    // Out of memory while formatting an error: nothing more can be said.
  }
}

DimsView ToView(const Dims& d) {
  DimsView v;
  v.nb = d.nbDims < 0 ? 0 : (d.nbDims > 8 ? 8 : d.nbDims);
  for (int i = 0; i < v.nb; ++i) v.d[i] = d.d[i];
  return v;
}

bool IsStatic(const Dims& d) {
  for (int i = 0; i < d.nbDims; ++i) {
    if (d.d[i] < 0) return false;
  }
  return true;
}

size_t Align256(size_t b) { return (b + 255) & ~static_cast<size_t>(255); }

const char* TypeName(DataType t) {
  switch (t) {
    case DataType::kFLOAT: return "float32";
    case DataType::kHALF: return "float16";
    case DataType::kINT32: return "int32";
    case DataType::kINT64: return "int64";
    case DataType::kINT8: return "int8";
    case DataType::kBOOL: return "bool";
    default: return "another type";
  }
}

// ------------------------------------------------------------------------------------------------
// One class for the three plugins; the kind selects the inputs, outputs and launcher.
//
// Inputs: Postprocess / Decode: the heads (layout concatenated: cls [N, R, K], box [N, R, 4];
// per_level: cls_0..cls_{L-1} [N, A*K, H_l, W_l], then box_0..box_{L-1} [N, A*4, H_l, W_l]), f32 or
// f16, optionally followed by image_sizes [N, 2] int32 (h, w). NMS: scores [N, S] f32, boxes
// [N, S, 4] f32, classes [N, S] int32, level_counts [N, L] int32 (S = L * topk_candidates, as
// RetinaNetDecode writes them), optionally image_sizes.
// Outputs: Postprocess / NMS: num_detections [N, 1] int32, detection_boxes [N, D, 4],
// detection_scores [N, D] (the heads' type; f32 for NMS), detection_classes [N, D] int32 (rows past
// num_detections are zeros). Decode: the candidates above, padded slots score 0, box 0, class -1.
class RetinaNetPlugin final : public IPluginV3, public IPluginV3OneCore, public IPluginV3OneBuild, public IPluginV3OneRuntime {
 public:
  RetinaNetPlugin(PluginKind kind, std::string name, const PluginConfig& config)
      : kind_(kind), name_(std::move(name)), config_(config) {}

  RetinaNetPlugin(const RetinaNetPlugin& o)
      : IPluginV3(o), IPluginV3OneCore(o), IPluginV3OneBuild(o), IPluginV3OneRuntime(o),
        kind_(o.kind_), name_(o.name_), config_(o.config_), recorder_(o.recorder_), nb_inputs_(o.nb_inputs_),
        shapes_(o.shapes_), grid_(o.grid_), have_shapes_(o.have_shapes_) {}

  // IPluginV3
  IPluginCapability* getCapabilityInterface(PluginCapabilityType type) noexcept override {
    switch (type) {
      case PluginCapabilityType::kCORE: return static_cast<IPluginV3OneCore*>(this);
      case PluginCapabilityType::kBUILD: return static_cast<IPluginV3OneBuild*>(this);
      case PluginCapabilityType::kRUNTIME: return static_cast<IPluginV3OneRuntime*>(this);
    }
    return nullptr;
  }
  IPluginV3* clone() noexcept override { return new (std::nothrow) RetinaNetPlugin(*this); }

  // IPluginV3OneCore
  AsciiChar const* getPluginName() const noexcept override { return PluginName(kind_); }
  AsciiChar const* getPluginVersion() const noexcept override { return kPluginVersion; }
  AsciiChar const* getPluginNamespace() const noexcept override { return ""; }

  // IPluginV3OneBuild
  int32_t getNbOutputs() const noexcept override { return 4; }

  int32_t getOutputDataTypes(DataType* types, int32_t nbOutputs, DataType const* inputTypes,
                             int32_t nbInputs) const noexcept override {
    if (nbOutputs != 4 || nbInputs < 1) return Fail(Code::kInvalidArgument, "expected 4 outputs and at least 1 input");
    const DataType head = inputTypes[0];
    const bool nms = kind_ == PluginKind::kNms;
    if (nms ? head != DataType::kFLOAT : (head != DataType::kFLOAT && head != DataType::kHALF)) {
      return Fail(Code::kInvalidArgument, std::string("input 0: expected ") + (nms ? "float32 scores" : "float32 or float16 heads") +
                                              " but received " + TypeName(head));
    }
    if (kind_ == PluginKind::kDecode) {
      types[0] = DataType::kFLOAT, types[1] = DataType::kFLOAT, types[2] = DataType::kINT32, types[3] = DataType::kINT32;
    } else {
      const DataType t = kind_ == PluginKind::kPostprocess ? inputTypes[0] : DataType::kFLOAT;
      types[0] = DataType::kINT32, types[1] = t, types[2] = t, types[3] = DataType::kINT32;
    }
    return 0;
  }

  int32_t getOutputShapes(DimsExprs const* inputs, int32_t nbInputs, DimsExprs const* /*shapeInputs*/,
                          int32_t /*nbShapeInputs*/, DimsExprs* outputs, int32_t nbOutputs,
                          IExprBuilder& builder) noexcept override {
    const Status s = CheckInputCount(nbInputs);
    if (!s.ok()) return Fail(s);
    if (nbOutputs != 4) return Fail(Code::kInvalidArgument, "expected 4 outputs but received " + std::to_string(nbOutputs));
    IDimensionExpr const* n = inputs[0].d[0];
    if (kind_ == PluginKind::kDecode) {
      IDimensionExpr const* slots = builder.constant(static_cast<int64_t>(config_.num_levels) * config_.params.select.topk_candidates);
      outputs[0].nbDims = 2, outputs[0].d[0] = n, outputs[0].d[1] = slots;
      outputs[1].nbDims = 3, outputs[1].d[0] = n, outputs[1].d[1] = slots, outputs[1].d[2] = builder.constant(4);
      outputs[2].nbDims = 2, outputs[2].d[0] = n, outputs[2].d[1] = slots;
      outputs[3].nbDims = 2, outputs[3].d[0] = n, outputs[3].d[1] = builder.constant(config_.num_levels);
    } else {
      IDimensionExpr const* d = builder.constant(config_.params.output.detections_per_img);
      outputs[0].nbDims = 2, outputs[0].d[0] = n, outputs[0].d[1] = builder.constant(1);
      outputs[1].nbDims = 3, outputs[1].d[0] = n, outputs[1].d[1] = d, outputs[1].d[2] = builder.constant(4);
      outputs[2].nbDims = 2, outputs[2].d[0] = n, outputs[2].d[1] = d;
      outputs[3].nbDims = 2, outputs[3].d[0] = n, outputs[3].d[1] = d;
    }
    return 0;
  }

  bool supportsFormatCombination(int32_t pos, DynamicPluginTensorDesc const* inOut, int32_t nbInputs,
                                 int32_t nbOutputs) noexcept override {
    if (pos < 0 || pos >= nbInputs + nbOutputs || !CheckInputCount(nbInputs).ok()) return false;
    const PluginTensorDesc& d = inOut[pos].desc;
    if (d.format != TensorFormat::kLINEAR) return false;
    const int32_t heads = HeadInputs();
    if (pos < nbInputs) {
      if (kind_ == PluginKind::kNms) {
        if (pos == 0 || pos == 1) return d.type == DataType::kFLOAT;
        return d.type == DataType::kINT32;  // classes, level_counts, image_sizes
      }
      if (pos < heads) {
        // Every head in the type of the first; f32 or f16.
        if (pos == 0) return d.type == DataType::kFLOAT || d.type == DataType::kHALF;
        return d.type == inOut[0].desc.type;
      }
      return d.type == DataType::kINT32;  // image_sizes
    }
    const int32_t o = pos - nbInputs;
    if (kind_ == PluginKind::kDecode) return d.type == (o < 2 ? DataType::kFLOAT : DataType::kINT32);
    if (o == 0 || o == 3) return d.type == DataType::kINT32;
    const DataType t = kind_ == PluginKind::kPostprocess ? inOut[0].desc.type : DataType::kFLOAT;
    return d.type == t;
  }

  int32_t configurePlugin(DynamicPluginTensorDesc const* in, int32_t nbInputs, DynamicPluginTensorDesc const* /*out*/,
                          int32_t /*nbOutputs*/) noexcept override {
    Status s = CheckInputCount(nbInputs);
    if (s.ok()) {
      bool all_static = true;
      for (int32_t i = 0; i < nbInputs; ++i) all_static = all_static && IsStatic(in[i].desc.dims);
      if (all_static) {
        HeadShapes shapes;
        s = ShapesFromDims([in](int32_t i) -> const Dims& { return in[i].desc.dims; }, nbInputs, &shapes);
      }
    }
    return s.ok() ? 0 : Fail(s);
  }

  size_t getWorkspaceSize(DynamicPluginTensorDesc const* inputs, int32_t nbInputs, DynamicPluginTensorDesc const* /*outputs*/,
                          int32_t /*nbOutputs*/) const noexcept override {
    try {
      HeadShapes shapes;
      if (!CheckInputCount(nbInputs).ok() ||
          !ShapesFromDims([inputs](int32_t i) -> const Dims& { return inputs[i].max; }, nbInputs, &shapes).ok()) {
        return 0;
      }
      return WorkspaceBytes(shapes);
    } catch (...) {
      return 0;
    }
  }

  // IPluginV3OneRuntime
  int32_t onShapeChange(PluginTensorDesc const* in, int32_t nbInputs, PluginTensorDesc const* /*out*/,
                        int32_t /*nbOutputs*/) noexcept override {
    try {
      Status s = CheckInputCount(nbInputs);
      if (s.ok()) s = ShapesFromDims([in](int32_t i) -> const Dims& { return in[i].dims; }, nbInputs, &shapes_);
      if (s.ok() && kind_ != PluginKind::kNms) s = MakeAnchorGrid(Params().anchors, shapes_, &grid_);
      if (s.ok() && kind_ != PluginKind::kNms) s = UploadClassThresholds();
      have_shapes_ = s.ok();
      nb_inputs_ = nbInputs;
      return s.ok() ? 0 : Fail(s);
    } catch (...) {
      return Fail(Code::kInternal, "out of host memory in onShapeChange");
    }
  }

  int32_t enqueue(PluginTensorDesc const* inputDesc, PluginTensorDesc const* /*outputDesc*/, void const* const* inputs,
                  void* const* outputs, void* workspace, cudaStream_t stream) noexcept override {
    try {
      if (!have_shapes_) return Fail(Code::kInvalidArgument, "enqueue before a successful onShapeChange");
      const Status s = Enqueue(inputDesc, inputs, outputs, workspace, stream);
      return s.ok() ? 0 : Fail(s);
    } catch (...) {
      return Fail(Code::kInternal, "out of host memory in enqueue");
    }
  }

  IPluginV3* attachToContext(IPluginResourceContext* context) noexcept override {
    RetinaNetPlugin* p = new (std::nothrow) RetinaNetPlugin(*this);
    if (p != nullptr && context != nullptr) p->recorder_ = context->getErrorRecorder();
    return p;
  }

  PluginFieldCollection const* getFieldsToSerialize() noexcept override {
    try {
      serial_ = ToFields(kind_, config_);
      serial_fields_.clear();
      for (const OwnedField& f : serial_) {
        serial_fields_.emplace_back(f.name.c_str(), f.bytes.data(), static_cast<PluginFieldType>(f.type), f.length);
      }
      serial_collection_.nbFields = static_cast<int32_t>(serial_fields_.size());
      serial_collection_.fields = serial_fields_.data();
      return &serial_collection_;
    } catch (...) {
      Fail(Code::kInternal, "out of host memory in getFieldsToSerialize");
      return nullptr;
    }
  }

 private:
  const PostprocessParams& Params() const { return config_.params; }

  int32_t HeadInputs() const {
    if (kind_ == PluginKind::kNms) return 4;
    return config_.layout == Layout::kConcatenated ? 2 : 2 * config_.num_levels;
  }

  int32_t Fail(const Status& s) const { return Fail(s.code(), s.message()); }
  int32_t Fail(Code code, const std::string& message) const {
    const std::string who = std::string(PluginName(kind_)) + " (" + name_ + "): ";
    Report(recorder_, code, message.compare(0, std::strlen(PluginName(kind_)), PluginName(kind_)) == 0 ? message : who + message);
    return -1;
  }

  Status CheckInputCount(int32_t nb) const {
    const int32_t heads = HeadInputs();
    if (nb == heads || nb == heads + 1) {
      const bool clip_needs_sizes = kind_ == PluginKind::kNms && Params().decode.clip == ClipMode::kOutputAfterNms;
      if (nb == heads && clip_needs_sizes && config_.image_height == 0) {
        return Status(Code::kInvalidArgument, "clip_boxes \"output_after_nms\" needs an image_sizes input or the image_size field");
      }
      return Status::Ok();
    }
    std::string what = kind_ == PluginKind::kNms ? "scores, boxes, classes, level_counts"
                       : config_.layout == Layout::kConcatenated ? "cls, box (layout concatenated)"
                                                                 : std::to_string(config_.num_levels) + " cls and " +
                                                                       std::to_string(config_.num_levels) + " box tensors (layout per_level)";
    return Status(Code::kInvalidArgument, "expected " + std::to_string(heads) + " inputs (" + what +
                                              ") or one more (image_sizes [N, 2] int32) but received " + std::to_string(nb));
  }

  // The head shapes from the inputs' dims, read through dims_of(i) (no copy on the enqueue path).
  template <typename DimsOf>
  Status ShapesFromDims(DimsOf dims_of, int32_t nb, HeadShapes* shapes) const {
    const int32_t heads = HeadInputs();
    if (nb > heads) {
      const Dims& d = dims_of(heads);
      if (d.nbDims != 2 || d.d[1] != 2 || d.d[0] != dims_of(0).d[0]) {
        return Status(Code::kShapeMismatch, "input " + std::to_string(heads) + " (image_sizes): expected [" +
                                                std::to_string(dims_of(0).d[0]) + ", 2] int32");
      }
    }
    if (kind_ == PluginKind::kNms) {
      const Dims &sc = dims_of(0), &bx = dims_of(1), &lb = dims_of(2), &lc = dims_of(3);
      const int64_t k = Params().select.topk_candidates;
      if (sc.nbDims != 2 || lc.nbDims != 2 || sc.d[1] != lc.d[1] * k) {
        return Status(Code::kShapeMismatch, "inputs 0 (scores) and 3 (level_counts): expected [N, L * topk_candidates] and [N, L] with topk_candidates = " +
                                                std::to_string(k));
      }
      if (bx.nbDims != 3 || bx.d[0] != sc.d[0] || bx.d[1] != sc.d[1] || bx.d[2] != 4 || lb.nbDims != 2 ||
          lb.d[0] != sc.d[0] || lb.d[1] != sc.d[1] || lc.d[0] != sc.d[0]) {
        return Status(Code::kShapeMismatch, "inputs 1 (boxes) and 2 (classes): expected [N, S, 4] and [N, S] as the scores [N, S]");
      }
      if (lc.d[1] < 1 || lc.d[1] > kMaxLevels) {
        return Status(Code::kShapeMismatch, "input 3 (level_counts): expected 1.." + std::to_string(kMaxLevels) + " levels");
      }
      HeadShapes s;
      s.batch = static_cast<int32_t>(sc.d[0]);
      s.num_levels = static_cast<int32_t>(lc.d[1]);
      s.num_classes = Params().num_classes;
      *shapes = s;
      return Status::Ok();
    }
    const int32_t per = config_.layout == Layout::kConcatenated ? 1 : config_.num_levels;
    DimsView cls[kMaxLevels], box[kMaxLevels];
    for (int32_t i = 0; i < per; ++i) cls[i] = ToView(dims_of(i)), box[i] = ToView(dims_of(per + i));
    RK_RETURN_IF_ERROR(HeadShapesFromDims(config_, cls, box, per, shapes));
    PostprocessParams p = Params();
    p.num_classes = shapes->num_classes;
    return ValidateShapes(p, *shapes);
  }

  PostprocessParams ParamsFor(const HeadShapes& s) const {
    PostprocessParams p = Params();
    if (kind_ != PluginKind::kNms) p.num_classes = s.num_classes;
    p.select.class_thresh = class_thresh_.get();  // device memory, or null
    return p;
  }

  // score_thresh_per_class: checked against the class head's K and copied to device memory once
  // (shared by this plugin's clones; read-only).
  Status UploadClassThresholds() {
    if (config_.class_thresh.empty()) return Status::Ok();
    if (static_cast<int64_t>(config_.class_thresh.size()) != shapes_.num_classes) {
      return Status(Code::kInvalidArgument, "Expected " + std::to_string(shapes_.num_classes) +
                                                " thresholds (the class head's K) in score_thresh_per_class but received " +
                                                std::to_string(config_.class_thresh.size()));
    }
    if (class_thresh_) return Status::Ok();
    float* d = nullptr;
    const size_t bytes = config_.class_thresh.size() * sizeof(float);
    cudaError_t e = cudaMalloc(&d, bytes);
    if (e == cudaSuccess) e = cudaMemcpy(d, config_.class_thresh.data(), bytes, cudaMemcpyHostToDevice);
    if (e != cudaSuccess) {
      if (d != nullptr) cudaFree(d);
      return Status(Code::kCudaError, std::string("uploading score_thresh_per_class: ") + cudaGetErrorString(e));
    }
    class_thresh_ = std::shared_ptr<float>(d, [](float* q) { cudaFree(q); });
    return Status::Ok();
  }

  // The launcher's scratch for these shapes.
  size_t ScratchBytes(const PostprocessParams& p, const HeadShapes& s) const {
    switch (kind_) {
      case PluginKind::kPostprocess: return cuda::PostprocessWorkspaceSize(p, s);
      case PluginKind::kDecode: return cuda::SelectDecodeWorkspaceSize(p, s);
      case PluginKind::kNms: return cuda::NmsWorkspaceSize(p, s.batch, s.num_levels * p.select.topk_candidates);
    }
    return 0;
  }

  // [scratch][error record][image sizes], each 256-aligned from a base aligned up inside the
  // workspace (hence the leading 256).
  size_t WorkspaceBytes(const HeadShapes& s) const {
    return 256 + Align256(ScratchBytes(ParamsFor(s), s)) + Align256(cuda::kErrorWords * 4) + Align256(static_cast<size_t>(s.batch) * 8);
  }

  Status Enqueue(PluginTensorDesc const* desc, void const* const* inputs, void* const* outputs, void* workspace,
                 cudaStream_t stream) {
    HeadShapes s;
    RK_RETURN_IF_ERROR(ShapesFromDims([desc](int32_t i) -> const Dims& { return desc[i].dims; }, nb_inputs_, &s));
    if (std::memcmp(&s, &shapes_, sizeof(HeadShapes)) != 0) {  // int32 fields only
      shapes_ = s;
      if (kind_ != PluginKind::kNms) RK_RETURN_IF_ERROR(MakeAnchorGrid(Params().anchors, shapes_, &grid_));
    }
    const PostprocessParams p = ParamsFor(s);
    if (workspace == nullptr) return Status(Code::kInvalidArgument, "expected a workspace but received null");
    uint8_t* base = reinterpret_cast<uint8_t*>(Align256(reinterpret_cast<uintptr_t>(workspace)));
    const size_t scratch_bytes = Align256(ScratchBytes(p, s));
    int32_t* error = reinterpret_cast<int32_t*>(base + scratch_bytes);
    int32_t* sizes = reinterpret_cast<int32_t*>(base + scratch_bytes + Align256(cuda::kErrorWords * 4));
    const int32_t heads = HeadInputs();
    const int32_t* image_sizes = nullptr;
    if (nb_inputs_ > heads) {
      image_sizes = static_cast<const int32_t*>(inputs[heads]);
    } else if (config_.image_height > 0) {
      RK_RETURN_IF_ERROR(cuda::LaunchFillImageSizes(sizes, s.batch, config_.image_height, config_.image_width, stream));
      image_sizes = sizes;
    }

    if (kind_ == PluginKind::kNms) {
      cuda::DeviceCandidates c;
      c.topk = p.select.topk_candidates;
      c.slots_per_image = s.num_levels * c.topk;
      c.scores = const_cast<float*>(static_cast<const float*>(inputs[0]));
      c.boxes = const_cast<float*>(static_cast<const float*>(inputs[1]));
      c.labels = const_cast<int32_t*>(static_cast<const int32_t*>(inputs[2]));
      c.level_counts = const_cast<int32_t*>(static_cast<const int32_t*>(inputs[3]));
      return cuda::LaunchNms(p, c, s.batch, image_sizes, nullptr, Detections(outputs, DType::kFloat32), base,
                             scratch_bytes, stream);
    }
    cuda::DeviceHeads h;
    h.shapes = s;
    h.dtype = desc[0].type == DataType::kHALF ? DType::kFloat16 : DType::kFloat32;
    h.layout = config_.layout;
    const int32_t per = config_.layout == Layout::kConcatenated ? 1 : s.num_levels;
    for (int32_t i = 0; i < per; ++i) h.cls[i] = inputs[i], h.box[i] = inputs[per + i];
    h.image_sizes = image_sizes;
    if (kind_ == PluginKind::kPostprocess) {
      return cuda::LaunchPostprocess(p, grid_, h, Detections(outputs, h.dtype), error, base, scratch_bytes, stream);
    }
    cuda::DeviceCandidates c;
    c.topk = p.select.topk_candidates;
    c.slots_per_image = s.num_levels * c.topk;
    c.scores = static_cast<float*>(outputs[0]);
    c.boxes = static_cast<float*>(outputs[1]);
    c.labels = static_cast<int32_t*>(outputs[2]);
    c.level_counts = static_cast<int32_t*>(outputs[3]);
    // Slots past a level's count are padding: score 0, box 0, class -1.
    const size_t slots = static_cast<size_t>(s.batch) * c.slots_per_image;
    if (cudaMemsetAsync(c.scores, 0, slots * 4, stream) != cudaSuccess ||
        cudaMemsetAsync(c.boxes, 0, slots * 16, stream) != cudaSuccess ||
        cudaMemsetAsync(c.labels, 0xFF, slots * 4, stream) != cudaSuccess) {
      return cuda::LastError("candidate padding");
    }
    return cuda::LaunchSelectDecode(p, grid_, h, c, error, base, scratch_bytes, stream);
  }

  cuda::DeviceDetections Detections(void* const* outputs, DType dtype) const {
    cuda::DeviceDetections d;
    d.max_detections = Params().output.detections_per_img;
    d.dtype = dtype;
    d.counts = static_cast<int32_t*>(outputs[0]);
    d.boxes = outputs[1];
    d.scores = outputs[2];
    d.labels = static_cast<int32_t*>(outputs[3]);
    return d;
  }

  PluginKind kind_;
  std::string name_;
  PluginConfig config_;
  std::shared_ptr<float> class_thresh_;  // score_thresh_per_class in device memory (after onShapeChange)
  IErrorRecorder* recorder_ = nullptr;
  int32_t nb_inputs_ = 0;
  HeadShapes shapes_{};
  AnchorGrid grid_{};
  bool have_shapes_ = false;
  std::vector<OwnedField> serial_;
  std::vector<PluginField> serial_fields_;
  PluginFieldCollection serial_collection_{};
};

// ------------------------------------------------------------------------------------------------
class RetinaNetCreator final : public IPluginCreatorV3One {
 public:
  explicit RetinaNetCreator(PluginKind kind) : kind_(kind) {
    for (const FieldSpec& s : FieldSpecs()) {
      names_.emplace_back(s.name, nullptr, static_cast<PluginFieldType>(s.type), 0);
    }
    collection_.nbFields = static_cast<int32_t>(names_.size());
    collection_.fields = names_.data();
  }

  IPluginV3* createPlugin(AsciiChar const* name, PluginFieldCollection const* fc, TensorRTPhase /*phase*/) noexcept override {
    try {
      std::vector<FieldView> views;
      if (fc != nullptr) {
        for (int32_t i = 0; i < fc->nbFields && fc->fields != nullptr; ++i) {
          const PluginField& f = fc->fields[i];
          views.push_back(FieldView{f.name, f.data, static_cast<FieldType>(f.type), f.length});
        }
      }
      PluginConfig config;
      const Status s = ParseFields(kind_, views.data(), static_cast<int32_t>(views.size()), &config);
      if (!s.ok()) {
        Report(nullptr, s.code(), s.message() + " (layer " + std::string(name != nullptr ? name : "?") + ")");
        return nullptr;
      }
      return new RetinaNetPlugin(kind_, name != nullptr ? name : "", config);
    } catch (...) {
      Report(nullptr, Code::kInternal, std::string(PluginName(kind_)) + ": out of host memory in createPlugin");
      return nullptr;
    }
  }

  PluginFieldCollection const* getFieldNames() noexcept override { return &collection_; }
  AsciiChar const* getPluginName() const noexcept override { return PluginName(kind_); }
  AsciiChar const* getPluginVersion() const noexcept override { return kPluginVersion; }
  AsciiChar const* getPluginNamespace() const noexcept override { return ""; }

 private:
  PluginKind kind_;
  std::vector<PluginField> names_;
  PluginFieldCollection collection_{};
};

}  // namespace
}  // namespace trt
}  // namespace rk

extern "C" {

// The entry points TensorRT looks up in a plugin library (IPluginRegistry::loadLibrary,
// trtexec --dynamicPlugins, the ONNX parser's plugin lookup).
__attribute__((visibility("default"))) IPluginCreatorInterface* const* getCreators(int32_t& nbCreators) {
  static rk::trt::RetinaNetCreator postprocess(rk::trt::PluginKind::kPostprocess);
  static rk::trt::RetinaNetCreator decode(rk::trt::PluginKind::kDecode);
  static rk::trt::RetinaNetCreator nms(rk::trt::PluginKind::kNms);
  static IPluginCreatorInterface* const creators[] = {&postprocess, &decode, &nms};
  nbCreators = 3;
  return creators;
}

__attribute__((visibility("default"))) void setLoggerFinder(ILoggerFinder* finder) {
  std::lock_guard<std::mutex> lock(rk::trt::g_logger_mutex);
  rk::trt::g_logger_finder = finder;
}

}  // extern "C"
