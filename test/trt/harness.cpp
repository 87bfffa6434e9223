// Host harness of the TensorRT plugin library: drives libretinanet_kernel_trt.so only through the
// TensorRT interfaces, the way TensorRT does (a plugin registry that loads the library through
// setLoggerFinder + getCreators; creator -> createPlugin from fields -> the build calls
// (supportsFormatCombination, getOutputDataTypes, getOutputShapes, configurePlugin,
// getWorkspaceSize) -> getFieldsToSerialize -> createPlugin in the runtime phase from those fields ->
// attachToContext -> onShapeChange -> enqueue), and compares the outputs with the golden detections
// of each case (cases written by `node dist/test/trt/cases.js DIR` from ../shared/golden).
// Needs TensorRT's public headers and the CUDA runtime; never libnvinfer.
//   rk_trt_harness LIBRARY CASES_DIR
// Prints one line per check and ends with "N passed, N failed"; exit status 1 when any failed.
#include <NvInferRuntime.h>
#include <cuda_runtime.h>
#include <dlfcn.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <deque>
#include <dirent.h>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

using namespace nvinfer1;

namespace {

int g_passed = 0, g_failed = 0;

void Check(bool ok, const std::string& what, const std::string& detail = "") {
  (ok ? g_passed : g_failed)++;
  std::printf("%s %s%s%s\n", ok ? "ok  " : "FAIL", what.c_str(), detail.empty() ? "" : ": ", detail.c_str());
  std::fflush(stdout);
}

#define CUDA_OK(expr)                                                                                   \
  do {                                                                                                  \
    cudaError_t e_ = (expr);                                                                            \
    if (e_ != cudaSuccess) {                                                                            \
      std::fprintf(stderr, "CUDA error %s at %s:%d: %s\n", cudaGetErrorName(e_), __FILE__, __LINE__, #expr); \
      std::exit(2);                                                                                     \
    }                                                                                                   \
  } while (0)

// ---------------------------------------------------------------------------------------------
// What TensorRT provides to a plugin library: a logger, an error recorder, a plugin registry.
class Logger final : public ILogger {
 public:
  void log(Severity severity, AsciiChar const* msg) noexcept override {
    if (severity <= Severity::kWARNING) lines.emplace_back(msg);
  }
  std::vector<std::string> lines;
};

class LoggerFinder final : public ILoggerFinder {
 public:
  explicit LoggerFinder(ILogger* logger) : logger_(logger) {}
  ILogger* findLogger() override { return logger_; }

 private:
  ILogger* logger_;
};

class Recorder final : public IErrorRecorder {
 public:
  int32_t getNbErrors() const noexcept override { return static_cast<int32_t>(errors_.size()); }
  ErrorCode getErrorCode(int32_t i) const noexcept override { return errors_[static_cast<size_t>(i)].first; }
  ErrorDesc getErrorDesc(int32_t i) const noexcept override { return errors_[static_cast<size_t>(i)].second.c_str(); }
  bool hasOverflowed() const noexcept override { return false; }
  void clear() noexcept override { errors_.clear(); }
  bool reportError(ErrorCode code, ErrorDesc desc) noexcept override {
    errors_.emplace_back(code, desc);
    return true;
  }
  RefCount incRefCount() noexcept override { return ++refs_; }
  RefCount decRefCount() noexcept override { return --refs_; }
  std::string Last() const { return errors_.empty() ? std::string() : errors_.back().second; }

 private:
  std::vector<std::pair<ErrorCode, std::string>> errors_;
  RefCount refs_ = 0;
};

Logger g_logger;
LoggerFinder g_finder(&g_logger);
Recorder g_registry_recorder;

class Registry final : public IPluginRegistry {
 public:
  void setErrorRecorder(IErrorRecorder* const r) noexcept override { recorder_ = r; }
  IErrorRecorder* getErrorRecorder() const noexcept override { return recorder_; }
  bool isParentSearchEnabled() const override { return false; }
  void setParentSearchEnabled(bool const) override {}
  PluginLibraryHandle loadLibrary(AsciiChar const* path) noexcept override {
    void* h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (h == nullptr) {
      std::fprintf(stderr, "dlopen %s: %s\n", path, dlerror());
      return nullptr;
    }
    using SetFinder = void (*)(ILoggerFinder*);
    using GetCreators = IPluginCreatorInterface* const* (*)(int32_t&);
    auto set_finder = reinterpret_cast<SetFinder>(dlsym(h, "setLoggerFinder"));
    auto get_creators = reinterpret_cast<GetCreators>(dlsym(h, "getCreators"));
    if (set_finder == nullptr || get_creators == nullptr) return nullptr;
    set_finder(&g_finder);
    int32_t n = 0;
    IPluginCreatorInterface* const* list = get_creators(n);
    for (int32_t i = 0; i < n; ++i) registerCreator(*list[i], "");
    return h;
  }
  void deregisterLibrary(PluginLibraryHandle h) noexcept override {
    creators_.clear();
    if (h != nullptr) dlclose(h);
  }
  bool registerCreator(IPluginCreatorInterface& c, AsciiChar const* const) noexcept override {
    creators_.push_back(&c);
    return true;
  }
  IPluginCreatorInterface* const* getAllCreators(int32_t* const n) const noexcept override {
    *n = static_cast<int32_t>(creators_.size());
    return creators_.data();
  }
  IPluginCreatorInterface* getCreator(AsciiChar const* const name, AsciiChar const* const version,
                                      AsciiChar const* const ns) noexcept override {
    for (IPluginCreatorInterface* c : creators_) {
      if (std::strcmp(c->getInterfaceInfo().kind, "PLUGIN CREATOR_V3ONE") != 0) continue;
      auto* v3 = static_cast<IPluginCreatorV3One*>(c);
      if (std::strcmp(v3->getPluginName(), name) == 0 && std::strcmp(v3->getPluginVersion(), version) == 0 &&
          std::strcmp(v3->getPluginNamespace(), ns == nullptr ? "" : ns) == 0) {
        return c;
      }
    }
    return nullptr;
  }
  bool deregisterCreator(IPluginCreatorInterface const&) noexcept override { return false; }
  IPluginResource* acquirePluginResource(AsciiChar const*, IPluginResource*) noexcept override { return nullptr; }
  int32_t releasePluginResource(AsciiChar const*) noexcept override { return 0; }
  IPluginCreatorInterface* const* getAllCreatorsRecursive(int32_t* const n) noexcept override { return getAllCreators(n); }
#if NV_TENSORRT_MAJOR < 11
  // TensorRT 10's registry also serves the (deprecated) IPluginV2 creators; this library has none.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  bool registerCreator(IPluginCreator&, AsciiChar const* const) noexcept override { return false; }
  IPluginCreator* const* getPluginCreatorList(int32_t* const n) const noexcept override {
    *n = 0;
    return nullptr;
  }
  IPluginCreator* getPluginCreator(AsciiChar const* const, AsciiChar const* const, AsciiChar const* const) noexcept override {
    return nullptr;
  }
  bool deregisterCreator(IPluginCreator const&) noexcept override { return false; }
#pragma GCC diagnostic pop
#endif

 private:
  IErrorRecorder* recorder_ = nullptr;
  std::vector<IPluginCreatorInterface*> creators_;
};

Registry g_registry;

class ResourceContext final : public IPluginResourceContext {
 public:
  explicit ResourceContext(IErrorRecorder* r) : recorder_(r) {}
  IGpuAllocator* getGpuAllocator() const noexcept override { return nullptr; }
  IErrorRecorder* getErrorRecorder() const noexcept override { return recorder_; }

 private:
  IErrorRecorder* recorder_;
};

// Shape expressions over constants (every shape here is known).
class ConstImpl final : public apiv::VDimensionExpr {
 public:
  explicit ConstImpl(int64_t v) : v_(v) {}
  bool isConstant() const override { return true; }
  int64_t getConstantValue() const override { return v_; }
  bool isSizeTensor() const override { return false; }

 private:
  int64_t v_;
};

class Expr final : public IDimensionExpr {
 public:
  explicit Expr(int64_t v) : impl_(v) { mImpl = &impl_; }
  ~Expr() noexcept override = default;

 private:
  ConstImpl impl_;
};

class BuilderImpl final : public apiv::VExprBuilder {
 public:
  IDimensionExpr const* constant(int64_t v) override {
    exprs_.emplace_back(v);
    return &exprs_.back();
  }
  IDimensionExpr const* operation(DimensionOperation op, IDimensionExpr const& a, IDimensionExpr const& b) override {
    const int64_t x = a.getConstantValue(), y = b.getConstantValue();
    switch (op) {
      case DimensionOperation::kSUM: return constant(x + y);
      case DimensionOperation::kPROD: return constant(x * y);
      case DimensionOperation::kMAX: return constant(std::max(x, y));
      case DimensionOperation::kMIN: return constant(std::min(x, y));
      case DimensionOperation::kSUB: return constant(x - y);
      case DimensionOperation::kEQUAL: return constant(x == y);
      case DimensionOperation::kLESS: return constant(x < y);
      case DimensionOperation::kFLOOR_DIV: return constant(x / y);
      case DimensionOperation::kCEIL_DIV: return constant((x + y - 1) / y);
    }
    return nullptr;
  }
  IDimensionExpr const* declareSizeTensor(int32_t, IDimensionExpr const&, IDimensionExpr const&) override { return nullptr; }

 private:
  std::deque<Expr> exprs_;
};

class ExprBuilder final : public IExprBuilder {
 public:
  ExprBuilder() { mImpl = &impl_; }
  ~ExprBuilder() noexcept override = default;
  IDimensionExpr const* Const(int64_t v) { return impl_.constant(v); }

 private:
  BuilderImpl impl_;
};

// ---------------------------------------------------------------------------------------------
// Half precision on the host (round to nearest even), for the fp16 runs.
uint16_t ToHalf(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint32_t sign = (x >> 16) & 0x8000u;
  x &= 0x7FFFFFFFu;
  if (x >= 0x7F800000u) return static_cast<uint16_t>(sign | 0x7C00u | (x > 0x7F800000u ? 0x200u : 0));
  if (x >= 0x477FF000u) return static_cast<uint16_t>(sign | 0x7C00u);  // rounds to inf
  if (x < 0x38800000u) {  // subnormal half
    const uint32_t m = (x & 0x7FFFFFu) | 0x800000u;
    const int shift = 126 - static_cast<int>(x >> 23) + 13 + 1;
    if (shift > 24) return static_cast<uint16_t>(sign);
    uint32_t h = m >> shift;
    const uint32_t rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (h & 1u))) ++h;
    return static_cast<uint16_t>(sign | h);
  }
  uint32_t h = ((x - 0x38000000u) >> 13);
  const uint32_t rem = x & 0x1FFFu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;
  return static_cast<uint16_t>(sign | h);
}

float FromHalf(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t e = (h >> 10) & 0x1Fu, m = h & 0x3FFu, x;
  if (e == 0) {
    if (m == 0) {
      x = sign;
    } else {
      e = 127 - 14;
      while (!(m & 0x400u)) m <<= 1, --e;
      x = sign | (e << 23) | ((m & 0x3FFu) << 13);
    }
  } else if (e == 31) {
    x = sign | 0x7F800000u | (m << 13);
  } else {
    x = sign | ((e + 112) << 23) | (m << 13);
  }
  float f;
  std::memcpy(&f, &x, 4);
  return f;
}

// ---------------------------------------------------------------------------------------------
// A case as written by test/trt/cases.ts.
struct Field {
  std::string name;
  PluginFieldType type;
  std::vector<uint8_t> bytes;
  int32_t length = 0;
};

struct Tensor {
  std::string name;
  DataType type = DataType::kFLOAT;
  Dims dims{};
  std::vector<uint8_t> bytes;
  size_t Count() const {
    size_t n = 1;
    for (int i = 0; i < dims.nbDims; ++i) n *= static_cast<size_t>(dims.d[i]);
    return n;
  }
};

struct Expected {
  std::vector<float> boxes, scores;
  std::vector<int32_t> labels;
};

struct Case {
  std::string name, preset, layout;
  std::vector<Field> fields;
  std::vector<Tensor> heads;  // cls..., box...
  Tensor image_sizes;
  std::vector<Expected> expected;
  double box_tol = 1e-4;
};

std::vector<uint8_t> ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) {
    std::fprintf(stderr, "cannot read %s\n", path.c_str());
    std::exit(2);
  }
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

Field MakeField(const std::string& name, PluginFieldType type, const std::vector<std::string>& values) {
  Field f;
  f.name = name;
  f.type = type;
  if (type == PluginFieldType::kCHAR) {
    const std::string s = values.empty() ? "" : values[0];
    f.bytes.assign(s.begin(), s.end());
    f.bytes.push_back(0);
    f.length = static_cast<int32_t>(s.size());
    return f;
  }
  for (const std::string& v : values) {
    if (type == PluginFieldType::kFLOAT64) {
      const double d = std::strtod(v.c_str(), nullptr);
      const uint8_t* p = reinterpret_cast<const uint8_t*>(&d);
      f.bytes.insert(f.bytes.end(), p, p + 8);
    } else if (type == PluginFieldType::kFLOAT32) {
      const float x = std::strtof(v.c_str(), nullptr);
      const uint8_t* p = reinterpret_cast<const uint8_t*>(&x);
      f.bytes.insert(f.bytes.end(), p, p + 4);
    } else {
      const int32_t i = static_cast<int32_t>(std::strtol(v.c_str(), nullptr, 10));
      const uint8_t* p = reinterpret_cast<const uint8_t*>(&i);
      f.bytes.insert(f.bytes.end(), p, p + 4);
    }
  }
  f.length = static_cast<int32_t>(values.size());
  return f;
}

Case ReadCase(const std::string& dir) {
  Case c;
  std::ifstream in(dir + "/case.txt");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string kind;
    ls >> kind;
    if (kind == "name") {
      ls >> c.name;
    } else if (kind == "preset") {
      ls >> c.preset;
    } else if (kind == "box_tolerance") {
      ls >> c.box_tol;
    } else if (kind == "field") {
      std::string name, type, v;
      ls >> name >> type;
      std::vector<std::string> values;
      if (type == "char") {
        std::getline(ls >> std::ws, v);
        values.push_back(v);
      } else {
        while (ls >> v) values.push_back(v);
      }
      const PluginFieldType t = type == "char"      ? PluginFieldType::kCHAR
                                : type == "float64" ? PluginFieldType::kFLOAT64
                                : type == "float32" ? PluginFieldType::kFLOAT32
                                                    : PluginFieldType::kINT32;
      c.fields.push_back(MakeField(name, t, values));
      if (name == "layout") c.layout = values[0];
    } else if (kind == "input") {
      Tensor t;
      std::string type, file;
      ls >> t.name >> type >> t.dims.nbDims;
      for (int i = 0; i < t.dims.nbDims; ++i) ls >> t.dims.d[i];
      ls >> file;
      t.type = type == "int32" ? DataType::kINT32 : DataType::kFLOAT;
      t.bytes = ReadFile(dir + "/" + file);
      if (t.name == "image_sizes") {
        c.image_sizes = t;
      } else {
        c.heads.push_back(t);
      }
    } else if (kind == "expect") {
      int image = 0;
      size_t count = 0;
      std::string file;
      ls >> image >> count >> file;
      const std::vector<uint8_t> b = ReadFile(dir + "/" + file);  // count x (4 f32 box, f32 score, i32 label)
      Expected e;
      for (size_t i = 0; i < count; ++i) {
        float v[5];
        int32_t label;
        std::memcpy(v, b.data() + i * 24, 20);
        std::memcpy(&label, b.data() + i * 24 + 20, 4);
        e.boxes.insert(e.boxes.end(), v, v + 4);
        e.scores.push_back(v[4]);
        e.labels.push_back(label);
      }
      if (c.expected.size() <= static_cast<size_t>(image)) c.expected.resize(static_cast<size_t>(image) + 1);
      c.expected[static_cast<size_t>(image)] = e;
    }
  }
  return c;
}

// The SPEC's parity rules: same count and labels, runs of equal expected scores as sets,
// |score| <= 1e-6, |box| <= tol * max(1, |ref|).
std::string CompareImage(const float* boxes, const float* scores, const int32_t* labels, int32_t count, const Expected& e,
                         double tol) {
  const int32_t want = static_cast<int32_t>(e.labels.size());
  if (count != want) return "count " + std::to_string(count) + ", expected " + std::to_string(want);
  for (int32_t start = 0; start < want;) {
    int32_t end = start + 1;
    while (end < want && e.scores[static_cast<size_t>(end)] == e.scores[static_cast<size_t>(start)]) ++end;
    std::vector<bool> used(static_cast<size_t>(end - start));
    for (int32_t i = start; i < end; ++i) {
      bool found = false;
      for (int32_t j = start; j < end && !found; ++j) {
        if (used[static_cast<size_t>(j - start)] || labels[i] != e.labels[static_cast<size_t>(j)]) continue;
        if (std::fabs(scores[i] - e.scores[static_cast<size_t>(j)]) > 1e-6) continue;
        bool close = true;
        for (int k = 0; k < 4; ++k) {
          const double ref = e.boxes[static_cast<size_t>(4 * j + k)];
          close = close && std::fabs(boxes[4 * i + k] - ref) <= tol * std::max(1.0, std::fabs(ref));
        }
        if (close) used[static_cast<size_t>(j - start)] = true, found = true;
      }
      if (!found) {
        char buf[256];
        std::snprintf(buf, sizeof buf, "detection %d: label %d score %.9g box (%.4f, %.4f, %.4f, %.4f) has no match", i, labels[i],
                      scores[i], boxes[4 * i], boxes[4 * i + 1], boxes[4 * i + 2], boxes[4 * i + 3]);
        return buf;
      }
    }
    start = end;
  }
  return "";
}

// ---------------------------------------------------------------------------------------------
struct DeviceBuffer {
  void* ptr = nullptr;
  size_t bytes = 0;
  explicit DeviceBuffer(size_t n) : bytes(n) { CUDA_OK(cudaMalloc(&ptr, n < 256 ? 256 : n)); }
  ~DeviceBuffer() { cudaFree(ptr); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
};

size_t TypeSize(DataType t) { return t == DataType::kHALF ? 2 : 4; }

struct RunResult {
  bool ok = false;
  std::string error;
  std::vector<std::vector<uint8_t>> outputs;
  std::vector<Dims> output_dims;
  std::vector<DataType> output_types;
};

PluginFieldCollection Collection(const std::vector<Field>& fields, std::vector<PluginField>* storage) {
  storage->clear();
  for (const Field& f : fields) storage->emplace_back(f.name.c_str(), f.bytes.data(), f.type, f.length);
  PluginFieldCollection fc;
  fc.nbFields = static_cast<int32_t>(storage->size());
  fc.fields = storage->data();
  return fc;
}

IPluginCreatorV3One* Creator(const char* name) {
  IPluginCreatorInterface* c = g_registry.getCreator(name, "1", "");
  return c == nullptr ? nullptr : static_cast<IPluginCreatorV3One*>(c);
}

// The whole life of one plugin as TensorRT drives it; inputs are host tensors.
RunResult RunPlugin(const char* plugin_name, const std::vector<Field>& fields, const std::vector<Tensor>& inputs,
                    std::vector<Field>* serialized = nullptr) {
  RunResult r;
  IPluginCreatorV3One* creator = Creator(plugin_name);
  if (creator == nullptr) return r.error = std::string("no creator ") + plugin_name, r;
  std::vector<PluginField> storage;
  PluginFieldCollection fc = Collection(fields, &storage);
  std::unique_ptr<IPluginV3> build(creator->createPlugin("layer", &fc, TensorRTPhase::kBUILD));
  if (!build) return r.error = "createPlugin (build) returned null: " + g_registry_recorder.Last(), r;
  auto* core = static_cast<IPluginV3OneCore*>(build->getCapabilityInterface(PluginCapabilityType::kCORE));
  auto* b = static_cast<IPluginV3OneBuild*>(build->getCapabilityInterface(PluginCapabilityType::kBUILD));
  if (core == nullptr || b == nullptr || std::strcmp(core->getPluginName(), plugin_name) != 0) return r.error = "capabilities", r;
  const int32_t nin = static_cast<int32_t>(inputs.size()), nout = b->getNbOutputs();

  std::vector<DataType> in_types, out_types(static_cast<size_t>(nout));
  for (const Tensor& t : inputs) in_types.push_back(t.type);
  if (b->getOutputDataTypes(out_types.data(), nout, in_types.data(), nin) != 0) return r.error = "getOutputDataTypes", r;

  ExprBuilder eb;
  std::vector<DimsExprs> in_exprs(static_cast<size_t>(nin)), out_exprs(static_cast<size_t>(nout));
  for (int32_t i = 0; i < nin; ++i) {
    in_exprs[static_cast<size_t>(i)].nbDims = inputs[static_cast<size_t>(i)].dims.nbDims;
    for (int d = 0; d < inputs[static_cast<size_t>(i)].dims.nbDims; ++d) in_exprs[static_cast<size_t>(i)].d[d] = eb.Const(inputs[static_cast<size_t>(i)].dims.d[d]);
  }
  if (b->getOutputShapes(in_exprs.data(), nin, nullptr, 0, out_exprs.data(), nout, eb) != 0) return r.error = "getOutputShapes: " + g_registry_recorder.Last(), r;

  std::vector<DynamicPluginTensorDesc> io(static_cast<size_t>(nin + nout));
  for (int32_t i = 0; i < nin + nout; ++i) {
    DynamicPluginTensorDesc& d = io[static_cast<size_t>(i)];
    Dims dims{};
    if (i < nin) {
      dims = inputs[static_cast<size_t>(i)].dims;
      d.desc.type = in_types[static_cast<size_t>(i)];
    } else {
      const DimsExprs& e = out_exprs[static_cast<size_t>(i - nin)];
      dims.nbDims = e.nbDims;
      for (int k = 0; k < e.nbDims; ++k) dims.d[k] = e.d[k]->getConstantValue();
      d.desc.type = out_types[static_cast<size_t>(i - nin)];
    }
    d.desc.dims = d.min = d.max = d.opt = dims;
    d.desc.format = TensorFormat::kLINEAR;
    d.desc.scale = 1.f;
  }
  for (int32_t pos = 0; pos < nin + nout; ++pos) {
    if (!b->supportsFormatCombination(pos, io.data(), nin, nout)) return r.error = "supportsFormatCombination rejected position " + std::to_string(pos), r;
  }
  if (b->configurePlugin(io.data(), nin, io.data() + nin, nout) != 0) return r.error = "configurePlugin: " + g_registry_recorder.Last(), r;
  const size_t workspace = b->getWorkspaceSize(io.data(), nin, io.data() + nin, nout);
  if (workspace == 0) return r.error = "getWorkspaceSize returned 0", r;

  // Serialize (the fields TensorRT would write into the engine) and build the runtime plugin from them.
  std::unique_ptr<IPluginV3> cloned(build->clone());
  auto* rt0 = static_cast<IPluginV3OneRuntime*>(cloned->getCapabilityInterface(PluginCapabilityType::kRUNTIME));
  const PluginFieldCollection* sf = rt0->getFieldsToSerialize();
  if (sf == nullptr) return r.error = "getFieldsToSerialize returned null", r;
  std::vector<Field> saved;
  for (int32_t i = 0; i < sf->nbFields; ++i) {
    const PluginField& f = sf->fields[i];
    Field o;
    o.name = f.name;
    o.type = f.type;
    o.length = f.length;
    const size_t esize = f.type == PluginFieldType::kFLOAT64 ? 8 : f.type == PluginFieldType::kCHAR ? 1 : 4;
    const uint8_t* p = static_cast<const uint8_t*>(f.data);
    o.bytes.assign(p, p + esize * static_cast<size_t>(f.length));
    if (f.type == PluginFieldType::kCHAR) o.bytes.push_back(0);
    saved.push_back(o);
  }
  cloned.reset();
  build.reset();
  if (serialized != nullptr) *serialized = saved;
  std::vector<PluginField> storage2;
  PluginFieldCollection fc2 = Collection(saved, &storage2);
  std::unique_ptr<IPluginV3> runtime(creator->createPlugin("layer", &fc2, TensorRTPhase::kRUNTIME));
  if (!runtime) return r.error = "createPlugin (runtime) from the serialized fields returned null: " + g_registry_recorder.Last(), r;
  Recorder context_recorder;
  ResourceContext context(&context_recorder);
  auto* rt1 = static_cast<IPluginV3OneRuntime*>(runtime->getCapabilityInterface(PluginCapabilityType::kRUNTIME));
  std::unique_ptr<IPluginV3> attached(rt1->attachToContext(&context));
  runtime.reset();
  auto* rt = static_cast<IPluginV3OneRuntime*>(attached->getCapabilityInterface(PluginCapabilityType::kRUNTIME));

  std::vector<PluginTensorDesc> descs;
  for (const DynamicPluginTensorDesc& d : io) descs.push_back(d.desc);
  if (rt->onShapeChange(descs.data(), nin, descs.data() + nin, nout) != 0) return r.error = "onShapeChange: " + context_recorder.Last(), r;

  std::vector<std::unique_ptr<DeviceBuffer>> bufs;
  std::vector<const void*> in_ptrs;
  std::vector<void*> out_ptrs;
  for (const Tensor& t : inputs) {
    bufs.emplace_back(new DeviceBuffer(t.bytes.size()));
    CUDA_OK(cudaMemcpy(bufs.back()->ptr, t.bytes.data(), t.bytes.size(), cudaMemcpyHostToDevice));
    in_ptrs.push_back(bufs.back()->ptr);
  }
  for (int32_t o = 0; o < nout; ++o) {
    const PluginTensorDesc& d = descs[static_cast<size_t>(nin + o)];
    size_t n = TypeSize(d.type);
    for (int k = 0; k < d.dims.nbDims; ++k) n *= static_cast<size_t>(d.dims.d[k]);
    bufs.emplace_back(new DeviceBuffer(n));
    CUDA_OK(cudaMemset(bufs.back()->ptr, 0x5A, n));  // garbage: the plugin must write every byte
    out_ptrs.push_back(bufs.back()->ptr);
    r.output_dims.push_back(d.dims);
    r.output_types.push_back(d.type);
  }
  DeviceBuffer ws(workspace);
  cudaStream_t stream;
  CUDA_OK(cudaStreamCreate(&stream));
  const int32_t status = rt->enqueue(descs.data(), descs.data() + nin, in_ptrs.data(), out_ptrs.data(), ws.ptr, stream);
  CUDA_OK(cudaStreamSynchronize(stream));
  CUDA_OK(cudaStreamDestroy(stream));
  if (status != 0) return r.error = "enqueue returned " + std::to_string(status) + ": " + context_recorder.Last(), r;
  for (int32_t o = 0; o < nout; ++o) {
    DeviceBuffer& d = *bufs[static_cast<size_t>(nin + o)];
    std::vector<uint8_t> host(d.bytes);
    CUDA_OK(cudaMemcpy(host.data(), d.ptr, d.bytes, cudaMemcpyDeviceToHost));
    r.outputs.push_back(std::move(host));
  }
  r.ok = true;
  return r;
}

std::vector<Tensor> CaseInputs(const Case& c, bool with_sizes) {
  std::vector<Tensor> in = c.heads;
  if (with_sizes) in.push_back(c.image_sizes);
  return in;
}

template <typename T>
const T* As(const std::vector<uint8_t>& b) {
  return reinterpret_cast<const T*>(b.data());
}

std::string CompareDetections(const Case& c, const RunResult& r, bool half) {
  const int64_t N = r.output_dims[0].d[0], D = r.output_dims[1].d[1];
  for (int64_t n = 0; n < N; ++n) {
    const int32_t count = As<int32_t>(r.outputs[0])[n];
    std::vector<float> boxes(static_cast<size_t>(D * 4)), scores(static_cast<size_t>(D));
    for (int64_t i = 0; i < D * 4; ++i) {
      boxes[static_cast<size_t>(i)] = half ? FromHalf(As<uint16_t>(r.outputs[1])[n * D * 4 + i]) : As<float>(r.outputs[1])[n * D * 4 + i];
    }
    for (int64_t i = 0; i < D; ++i) {
      scores[static_cast<size_t>(i)] = half ? FromHalf(As<uint16_t>(r.outputs[2])[n * D + i]) : As<float>(r.outputs[2])[n * D + i];
    }
    const int32_t* labels = As<int32_t>(r.outputs[3]) + n * D;
    const std::string m = CompareImage(boxes.data(), scores.data(), labels, count, c.expected[static_cast<size_t>(n)], c.box_tol);
    if (!m.empty()) return "image " + std::to_string(n) + ": " + m;
    // Rows past the count are zeros.
    for (int64_t i = count; i < D; ++i) {
      if (scores[static_cast<size_t>(i)] != 0.f || labels[i] != 0 || boxes[static_cast<size_t>(4 * i)] != 0.f) {
        return "image " + std::to_string(n) + ": padding row " + std::to_string(i) + " is not zero";
      }
    }
  }
  return "";
}

Tensor ToHalfTensor(const Tensor& t) {
  Tensor h = t;
  h.type = DataType::kHALF;
  const size_t n = t.Count();
  h.bytes.resize(n * 2);
  for (size_t i = 0; i < n; ++i) {
    const uint16_t v = ToHalf(As<float>(t.bytes)[i]);
    std::memcpy(h.bytes.data() + 2 * i, &v, 2);
  }
  return h;
}

Tensor Widened(const Tensor& half) {
  Tensor f = half;
  f.type = DataType::kFLOAT;
  const size_t n = half.Count();
  f.bytes.resize(n * 4);
  for (size_t i = 0; i < n; ++i) {
    const float v = FromHalf(As<uint16_t>(half.bytes)[i]);
    std::memcpy(f.bytes.data() + 4 * i, &v, 4);
  }
  return f;
}

std::vector<Field> WithField(std::vector<Field> fields, const Field& f) {
  fields.erase(std::remove_if(fields.begin(), fields.end(), [&](const Field& x) { return x.name == f.name; }), fields.end());
  fields.push_back(f);
  return fields;
}

std::vector<Field> Without(std::vector<Field> fields, const std::string& name) {
  fields.erase(std::remove_if(fields.begin(), fields.end(), [&](const Field& x) { return x.name == name; }), fields.end());
  return fields;
}

bool Contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

void RunCase(const Case& c) {
  const std::string tag = c.name + " (" + c.preset + ", " + c.layout + ")";
  // 1. RetinaNetPostprocess, f32, image_sizes input, through serialization.
  std::vector<Field> serialized;
  RunResult r = RunPlugin("RetinaNetPostprocess", c.fields, CaseInputs(c, true), &serialized);
  Check(r.ok && CompareDetections(c, r, false).empty(), tag + ": RetinaNetPostprocess f32 = golden detections",
        r.ok ? CompareDetections(c, r, false) : r.error);

  // 2. The serialized fields round-trip exactly (serialize the runtime plugin again).
  {
    IPluginCreatorV3One* creator = Creator("RetinaNetPostprocess");
    std::vector<PluginField> storage;
    PluginFieldCollection fc = Collection(serialized, &storage);
    std::unique_ptr<IPluginV3> p(creator->createPlugin("again", &fc, TensorRTPhase::kRUNTIME));
    bool same = p != nullptr;
    if (p) {
      auto* rt = static_cast<IPluginV3OneRuntime*>(p->getCapabilityInterface(PluginCapabilityType::kRUNTIME));
      const PluginFieldCollection* again = rt->getFieldsToSerialize();
      same = again != nullptr && again->nbFields == static_cast<int32_t>(serialized.size());
      for (int32_t i = 0; same && i < again->nbFields; ++i) {
        const Field& s = serialized[static_cast<size_t>(i)];
        const PluginField& f = again->fields[i];
        const size_t bytes = f.type == PluginFieldType::kFLOAT64 ? 8u * f.length : f.type == PluginFieldType::kCHAR ? static_cast<size_t>(f.length) : 4u * f.length;
        same = s.name == f.name && s.type == f.type && s.length == f.length && std::memcmp(s.bytes.data(), f.data, bytes) == 0;
      }
    }
    bool versioned = false;
    for (const Field& f : serialized) versioned = versioned || f.name == "serial_version";
    Check(same && versioned, tag + ": serialized fields carry serial_version and round-trip byte for byte");
  }

  // 3. fp16 heads: equal to the f32 plugin on the widened halves, rounded to half.
  {
    std::vector<Tensor> half_in, wide_in;
    for (const Tensor& t : c.heads) half_in.push_back(ToHalfTensor(t)), wide_in.push_back(Widened(half_in.back()));
    half_in.push_back(c.image_sizes);
    wide_in.push_back(c.image_sizes);
    RunResult h = RunPlugin("RetinaNetPostprocess", c.fields, half_in);
    RunResult w = RunPlugin("RetinaNetPostprocess", c.fields, wide_in);
    std::string why = !h.ok ? h.error : !w.ok ? w.error : "";
    if (why.empty()) {
      const int64_t N = h.output_dims[0].d[0], D = h.output_dims[1].d[1];
      if (h.output_types[1] != DataType::kHALF) why = "boxes are not float16";
      for (int64_t n = 0; why.empty() && n < N; ++n) {
        const int32_t count = As<int32_t>(h.outputs[0])[n];
        if (count != As<int32_t>(w.outputs[0])[n]) why = "image " + std::to_string(n) + ": count differs";
        for (int64_t i = 0; why.empty() && i < count; ++i) {
          if (As<int32_t>(h.outputs[3])[n * D + i] != As<int32_t>(w.outputs[3])[n * D + i]) why = "label " + std::to_string(i);
          if (As<uint16_t>(h.outputs[2])[n * D + i] != ToHalf(As<float>(w.outputs[2])[n * D + i])) why = "score " + std::to_string(i);
          for (int k = 0; k < 4; ++k) {
            if (As<uint16_t>(h.outputs[1])[(n * D + i) * 4 + k] != ToHalf(As<float>(w.outputs[1])[(n * D + i) * 4 + k])) why = "box " + std::to_string(i);
          }
        }
      }
    }
    Check(why.empty(), tag + ": RetinaNetPostprocess f16 = f32 on the widened halves, rounded", why);
  }

  // 4. RetinaNetDecode then RetinaNetNMS = the golden detections.
  {
    RunResult d = RunPlugin("RetinaNetDecode", c.fields, CaseInputs(c, true));
    std::string why = d.ok ? "" : "decode: " + d.error;
    if (why.empty()) {
      // Padding slots: score 0, class -1 past each level's count.
      const int64_t N = d.output_dims[0].d[0], S = d.output_dims[0].d[1], L = d.output_dims[3].d[1], k = S / L;
      for (int64_t n = 0; why.empty() && n < N; ++n) {
        for (int64_t s = 0; why.empty() && s < S; ++s) {
          const int32_t count = As<int32_t>(d.outputs[3])[n * L + s / k];
          const bool pad = s % k >= count;
          if (pad && (As<float>(d.outputs[0])[n * S + s] != 0.f || As<int32_t>(d.outputs[2])[n * S + s] != -1)) why = "slot " + std::to_string(s) + " is not padding";
        }
      }
      std::vector<Tensor> cand(4);
      const char* names[] = {"scores", "boxes", "classes", "level_counts"};
      for (int i = 0; i < 4; ++i) {
        cand[static_cast<size_t>(i)].name = names[i];
        cand[static_cast<size_t>(i)].type = d.output_types[static_cast<size_t>(i)];
        cand[static_cast<size_t>(i)].dims = d.output_dims[static_cast<size_t>(i)];
        cand[static_cast<size_t>(i)].bytes = d.outputs[static_cast<size_t>(i)];
      }
      cand.push_back(c.image_sizes);
      std::vector<Field> nms_fields;
      for (const Field& f : c.fields) nms_fields.push_back(f);  // the same field set; NMS ignores the head fields
      RunResult n = RunPlugin("RetinaNetNMS", nms_fields, cand);
      if (why.empty()) why = n.ok ? CompareDetections(c, n, false) : "nms: " + n.error;
    }
    Check(why.empty(), tag + ": RetinaNetDecode -> RetinaNetNMS = golden detections", why);
  }

  // 5. Without the image_sizes input the clip size is the image_size field (here each image's own
  //    size when the batch shares one).
  const int32_t* sizes = As<int32_t>(c.image_sizes.bytes);
  bool uniform = true;
  for (int64_t n = 1; n < c.image_sizes.dims.d[0]; ++n) uniform = uniform && sizes[2 * n] == sizes[0] && sizes[2 * n + 1] == sizes[1];
  if (uniform) {
    const Field f = MakeField("image_size", PluginFieldType::kINT32, {std::to_string(sizes[0]), std::to_string(sizes[1])});
    RunResult u = RunPlugin("RetinaNetPostprocess", WithField(c.fields, f), CaseInputs(c, false));
    Check(u.ok && CompareDetections(c, u, false).empty(), tag + ": no image_sizes input, image_size field = golden detections",
          u.ok ? CompareDetections(c, u, false) : u.error);
  }
}

// Errors: each must come back as a status and a message naming what is wrong, never a crash.
void RunErrorChecks(const Case& c) {
  IPluginCreatorV3One* creator = Creator("RetinaNetPostprocess");
  auto create = [&](const std::vector<Field>& fields) {
    g_registry_recorder.clear();
    g_logger.lines.clear();
    std::vector<PluginField> storage;
    PluginFieldCollection fc = Collection(fields, &storage);
    return std::unique_ptr<IPluginV3>(creator->createPlugin("bad", &fc, TensorRTPhase::kBUILD));
  };
  // The recorder keeps IErrorRecorder::kMAX_DESC_LENGTH characters (the field's name is among
  // them); the log line has the whole message.
  auto expect_error = [&](const std::vector<Field>& fields, const std::string& what, const std::string& part) {
    std::unique_ptr<IPluginV3> p = create(fields);
    const std::string rec = g_registry_recorder.Last();
    const std::string log = g_logger.lines.empty() ? "" : g_logger.lines.back();
    const std::string field = part.substr(0, part.find('"', part.find('"') + 1) + 1);
    Check(!p && Contains(rec, field) && rec.size() <= IErrorRecorder::kMAX_DESC_LENGTH && Contains(log, part),
          "createPlugin refuses " + what, "log: " + log);
  };
  expect_error(Without(c.fields, "nms_thresh"), "a missing field", "missing plugin field \"nms_thresh\"");
  expect_error(WithField(c.fields, MakeField("nms_threshold", PluginFieldType::kFLOAT64, {"0.5"})), "an unknown field",
               "unknown plugin field \"nms_threshold\" (did you mean \"nms_thresh\"?)");
  expect_error(WithField(c.fields, MakeField("score_thresh", PluginFieldType::kCHAR, {"high"})), "a string where a number goes",
               "plugin field \"score_thresh\"");
  expect_error(WithField(c.fields, MakeField("topk_candidates", PluginFieldType::kINT32, {"-5"})), "an out-of-range value",
               "\"topk_candidates\": expected an integer in [1, 100000] but received -5");
  expect_error(WithField(c.fields, MakeField("anchor_cell", PluginFieldType::kCHAR, {"yolo"})), "an unknown choice",
               "\"anchor_cell\": expected one of \"torchvision\", \"detectron2\", \"odtk\" but received \"yolo\"");
  expect_error(WithField(c.fields, MakeField("serial_version", PluginFieldType::kINT32, {"2"})), "a serialization from another version",
               "\"serial_version\": expected serial_version 1");

  // Format combinations: int8 heads and mixed head types are refused.
  std::unique_ptr<IPluginV3> p = create(c.fields);
  auto* b = static_cast<IPluginV3OneBuild*>(p->getCapabilityInterface(PluginCapabilityType::kBUILD));
  const int32_t nin = static_cast<int32_t>(c.heads.size()) + 1;
  std::vector<DynamicPluginTensorDesc> io(static_cast<size_t>(nin + 4));
  for (auto& d : io) d.desc.format = TensorFormat::kLINEAR;
  for (int32_t i = 0; i < nin; ++i) io[static_cast<size_t>(i)].desc.type = i < nin - 1 ? DataType::kFLOAT : DataType::kINT32;
  io[0].desc.type = DataType::kINT8;
  const bool int8 = b->supportsFormatCombination(0, io.data(), nin, 4);
  io[0].desc.type = DataType::kHALF;
  const bool mixed = b->supportsFormatCombination(1, io.data(), nin, 4);
  io[0].desc.type = DataType::kFLOAT;
  const bool f32 = b->supportsFormatCombination(0, io.data(), nin, 4) && b->supportsFormatCombination(1, io.data(), nin, 4);
  Check(!int8 && !mixed && f32, "supportsFormatCombination: f32 yes, int8 no, mixed f16/f32 heads no");

  // A shape that does not match the fields: onShapeChange and enqueue fail with a status.
  auto* rt = static_cast<IPluginV3OneRuntime*>(p->getCapabilityInterface(PluginCapabilityType::kRUNTIME));
  std::vector<PluginTensorDesc> descs(static_cast<size_t>(nin + 4));
  for (int32_t i = 0; i < nin; ++i) {
    descs[static_cast<size_t>(i)].dims = i < nin - 1 ? c.heads[static_cast<size_t>(i)].dims : c.image_sizes.dims;
    descs[static_cast<size_t>(i)].type = i < nin - 1 ? DataType::kFLOAT : DataType::kINT32;
  }
  descs[0].dims.d[1] += 1;  // one row (or channel) too many
  g_registry_recorder.clear();
  const int32_t shape = rt->onShapeChange(descs.data(), nin, descs.data() + nin, 4);
  Check(shape != 0 && Contains(g_registry_recorder.Last(), "input 0"), "onShapeChange refuses a head of the wrong shape",
        g_registry_recorder.Last());
  g_registry_recorder.clear();
  const int32_t enq = rt->enqueue(descs.data(), descs.data() + nin, nullptr, nullptr, nullptr, nullptr);
  Check(enq != 0 && !g_registry_recorder.Last().empty(), "enqueue without a valid shape returns an error status",
        g_registry_recorder.Last());

  // getFieldNames lists every field the plugin reads.
  const PluginFieldCollection* names = creator->getFieldNames();
  bool all = names != nullptr;
  for (const Field& f : c.fields) {
    bool found = false;
    for (int32_t i = 0; all && i < names->nbFields; ++i) found = found || f.name == names->fields[i].name;
    all = all && found;
  }
  Check(all, "getFieldNames lists every field of the case");
}

}  // namespace

// The plugin library looks the registry up by this name (libnvinfer exports it in a TensorRT process).
extern "C" __attribute__((visibility("default"))) IPluginRegistry* getPluginRegistry() noexcept { return &g_registry; }

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s LIBRARY CASES_DIR\n", argv[0]);
    return 2;
  }
  g_registry.setErrorRecorder(&g_registry_recorder);
  void* lib = g_registry.loadLibrary(argv[1]);
  Check(lib != nullptr, std::string("loadLibrary ") + argv[1]);
  if (lib == nullptr) return 1;
  int32_t n = 0;
  IPluginCreatorInterface* const* all = g_registry.getAllCreators(&n);
  std::string names;
  for (int32_t i = 0; i < n; ++i) {
    auto* c = static_cast<IPluginCreatorV3One*>(all[i]);
    names += std::string(names.empty() ? "" : ", ") + c->getInterfaceInfo().kind + " " + c->getPluginName() + " v" + c->getPluginVersion();
  }
  Check(n == 3 && Creator("RetinaNetPostprocess") && Creator("RetinaNetDecode") && Creator("RetinaNetNMS"),
        "getCreators: " + names);

  std::vector<std::string> dirs;
  if (DIR* d = opendir(argv[2])) {
    while (dirent* e = readdir(d)) {
      const std::string f = std::string(argv[2]) + "/" + e->d_name + "/case.txt";
      if (e->d_name[0] != '.' && std::ifstream(f)) dirs.push_back(std::string(argv[2]) + "/" + e->d_name);
    }
    closedir(d);
  }
  std::sort(dirs.begin(), dirs.end());
  Check(!dirs.empty(), std::string("cases in ") + argv[2], std::to_string(dirs.size()) + " cases");
  for (size_t i = 0; i < dirs.size(); ++i) {
    const Case c = ReadCase(dirs[i]);
    RunCase(c);
    if (i == 0) RunErrorChecks(c);
  }
  g_registry.deregisterLibrary(lib);
  std::printf("%d passed, %d failed\n", g_passed, g_failed);
  return g_failed == 0 ? 0 : 1;
}
