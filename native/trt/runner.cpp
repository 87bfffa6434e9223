// See runner.h. libnvinfer is opened at run time; everything else is TensorRT's inline API over the
// objects it returns, so this compiles against the public headers alone.
#include "runner.h"

#include <NvInfer.h>
#include <NvInferVersion.h>
#include <cuda_runtime.h>
#include <dlfcn.h>

#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

using namespace nvinfer1;

namespace {

#define RK_STR2(x) #x
#define RK_STR(x) RK_STR2(x)
constexpr const char* kHeadersVersion = RK_STR(NV_TENSORRT_MAJOR) "." RK_STR(NV_TENSORRT_MINOR) "." RK_STR(NV_TENSORRT_PATCH);
constexpr const char* kDefaultNvinfer = "libnvinfer.so." RK_STR(NV_TENSORRT_MAJOR);

void SetError(char* err, size_t bytes, const std::string& message) {
  if (err != nullptr && bytes > 0) std::snprintf(err, bytes, "%s", message.c_str());
}

// Warnings and errors of TensorRT, kept for the error message of a failed build.
class Logger final : public ILogger {
 public:
  void log(Severity severity, AsciiChar const* msg) noexcept override {
    if (severity <= Severity::kWARNING) {
      try {
        lines.emplace_back(msg);
      } catch (...) {
      }
    }
  }
  std::string Last() const { return lines.empty() ? std::string("no message from TensorRT") : lines.back(); }
  std::vector<std::string> lines;
};

struct Engine {
  Logger logger;
  void* nvinfer = nullptr;
  std::unique_ptr<IRuntime> runtime;
  std::unique_ptr<ICudaEngine> engine;
  std::unique_ptr<IExecutionContext> context;
  std::vector<std::string> input_names, output_names;
  ~Engine() {
    context.reset();
    engine.reset();
    runtime.reset();
    // libnvinfer stays loaded: its plugin registry holds our plugin library.
  }
};

size_t TypeSize(DataType t) { return t == DataType::kHALF ? 2 : t == DataType::kINT64 ? 8 : 4; }

size_t Bytes(const Dims& d, DataType t) {
  size_t n = TypeSize(t);
  for (int i = 0; i < d.nbDims; ++i) n *= static_cast<size_t>(d.d[i] < 0 ? 0 : d.d[i]);
  return n;
}

std::string CudaText(cudaError_t e) { return std::string(cudaGetErrorName(e)) + ": " + cudaGetErrorString(e); }

}  // namespace

extern "C" {

__attribute__((visibility("default"))) const char* rk_trt_headers_version() { return kHeadersVersion; }

__attribute__((visibility("default"))) int rk_trt_build(const char* nvinfer, const char* plugin_library,
                                                          const char* plugin_name, const rk_trt_field* fields,
                                                          int32_t nb_fields, const rk_trt_tensor* inputs,
                                                          int32_t nb_inputs, void** handle, char* err, size_t err_bytes) {
  try {
    auto e = std::make_unique<Engine>();
    const char* lib = nvinfer != nullptr && nvinfer[0] != 0 ? nvinfer : kDefaultNvinfer;
    e->nvinfer = dlopen(lib, RTLD_NOW | RTLD_GLOBAL);
    if (e->nvinfer == nullptr) {
      const char* why = dlerror();
      SetError(err, err_bytes, std::string("no TensorRT runtime: ") + lib + " could not be opened (" + (why ? why : "?") +
                                   "); put the TensorRT SDK's lib/ on LD_LIBRARY_PATH (headers " + kHeadersVersion + ")");
      return 1;
    }
    using Factory = void* (*)(void*, int32_t);
    using Registry = IPluginRegistry* (*)();
    auto make_builder = reinterpret_cast<Factory>(dlsym(e->nvinfer, "createInferBuilder_INTERNAL"));
    auto make_runtime = reinterpret_cast<Factory>(dlsym(e->nvinfer, "createInferRuntime_INTERNAL"));
    auto get_registry = reinterpret_cast<Registry>(dlsym(e->nvinfer, "getPluginRegistry"));
    if (make_builder == nullptr || make_runtime == nullptr || get_registry == nullptr) {
      SetError(err, err_bytes, std::string(lib) + " lacks createInferBuilder_INTERNAL / createInferRuntime_INTERNAL / getPluginRegistry");
      return 1;
    }
    IPluginRegistry* registry = get_registry();
    if (registry->getCreator(plugin_name, "1", "") == nullptr && registry->loadLibrary(plugin_library) == nullptr) {
      SetError(err, err_bytes, std::string("TensorRT could not load the plugin library ") + plugin_library + ": " + e->logger.Last());
      return 1;
    }
    auto* creator = static_cast<IPluginCreatorV3One*>(registry->getCreator(plugin_name, "1", ""));
    if (creator == nullptr) {
      SetError(err, err_bytes, std::string("no plugin creator ") + plugin_name + " v1 in the registry after loading " + plugin_library);
      return 1;
    }
    std::vector<PluginField> pf;
    for (int32_t i = 0; i < nb_fields; ++i) {
      pf.emplace_back(fields[i].name, fields[i].data, static_cast<PluginFieldType>(fields[i].type), fields[i].length);
    }
    PluginFieldCollection fc;
    fc.nbFields = static_cast<int32_t>(pf.size());
    fc.fields = pf.data();

    std::unique_ptr<IBuilder> builder(static_cast<IBuilder*>(make_builder(&e->logger, NV_TENSORRT_VERSION)));
    if (!builder) {
      SetError(err, err_bytes, "createInferBuilder failed: " + e->logger.Last());
      return 1;
    }
    std::unique_ptr<INetworkDefinition> network(builder->createNetworkV2(0));
    std::unique_ptr<IPluginV3> plugin(creator->createPlugin(plugin_name, &fc, TensorRTPhase::kBUILD));
    if (!network || !plugin) {
      SetError(err, err_bytes, std::string("creating the network or the plugin failed: ") + e->logger.Last());
      return 1;
    }
    std::vector<ITensor*> tensors;
    for (int32_t i = 0; i < nb_inputs; ++i) {
      Dims d{};
      d.nbDims = inputs[i].nb_dims;
      for (int k = 0; k < d.nbDims; ++k) d.d[k] = inputs[i].dims[k];
      tensors.push_back(network->addInput(inputs[i].name, static_cast<DataType>(inputs[i].dtype), d));
      e->input_names.emplace_back(inputs[i].name);
    }
    IPluginV3Layer* layer = network->addPluginV3(tensors.data(), nb_inputs, nullptr, 0, *plugin);
    if (layer == nullptr) {
      SetError(err, err_bytes, "addPluginV3 failed: " + e->logger.Last());
      return 1;
    }
    static const char* const kOutputs[] = {"out0", "out1", "out2", "out3"};
    for (int32_t o = 0; o < layer->getNbOutputs() && o < 4; ++o) {
      ITensor* t = layer->getOutput(o);
      t->setName(kOutputs[o]);
      network->markOutput(*t);
      e->output_names.emplace_back(kOutputs[o]);
    }
    std::unique_ptr<IBuilderConfig> config(builder->createBuilderConfig());
    std::unique_ptr<IHostMemory> plan(builder->buildSerializedNetwork(*network, *config));
    if (!plan) {
      SetError(err, err_bytes, "building the engine failed: " + e->logger.Last());
      return 1;
    }
    e->runtime.reset(static_cast<IRuntime*>(make_runtime(&e->logger, NV_TENSORRT_VERSION)));
    if (e->runtime) e->engine.reset(e->runtime->deserializeCudaEngine(plan->data(), plan->size()));
    if (e->engine) e->context.reset(e->engine->createExecutionContext());
    if (!e->context) {
      SetError(err, err_bytes, "deserializing the engine failed: " + e->logger.Last());
      return 1;
    }
    *handle = e.release();
    return 0;
  } catch (const std::exception& ex) {
    SetError(err, err_bytes, std::string("host error while building the engine: ") + ex.what());
    return 1;
  }
}

__attribute__((visibility("default"))) int32_t rk_trt_nb_outputs(void* handle) {
  return static_cast<int32_t>(static_cast<Engine*>(handle)->output_names.size());
}

__attribute__((visibility("default"))) int rk_trt_output(void* handle, int32_t index, rk_trt_tensor* out) {
  Engine* e = static_cast<Engine*>(handle);
  if (index < 0 || index >= static_cast<int32_t>(e->output_names.size())) return 1;
  const char* name = e->output_names[static_cast<size_t>(index)].c_str();
  const Dims d = e->engine->getTensorShape(name);
  out->name = name;
  out->dtype = static_cast<int32_t>(e->engine->getTensorDataType(name));
  out->nb_dims = d.nbDims;
  for (int k = 0; k < d.nbDims && k < 8; ++k) out->dims[k] = d.d[k];
  out->data = nullptr;
  return 0;
}

__attribute__((visibility("default"))) int rk_trt_run(void* handle, const rk_trt_tensor* inputs, int32_t nb_inputs,
                                                        int32_t iterations, float* times_ms, void* const* outputs,
                                                        char* err, size_t err_bytes) {
  Engine* e = static_cast<Engine*>(handle);
  std::vector<void*> buffers;
  cudaStream_t stream = nullptr;
  cudaEvent_t start = nullptr, stop = nullptr;
  auto cleanup = [&]() {
    for (void* p : buffers) cudaFree(p);
    if (start != nullptr) cudaEventDestroy(start);
    if (stop != nullptr) cudaEventDestroy(stop);
    if (stream != nullptr) cudaStreamDestroy(stream);
  };
  auto fail = [&](const std::string& m) {
    SetError(err, err_bytes, m);
    cleanup();
    return 1;
  };
  cudaError_t c = cudaStreamCreate(&stream);
  if (c == cudaSuccess) c = cudaEventCreate(&start);
  if (c == cudaSuccess) c = cudaEventCreate(&stop);
  if (c != cudaSuccess) return fail("CUDA: " + CudaText(c));
  if (nb_inputs != static_cast<int32_t>(e->input_names.size())) return fail("the inputs differ from the built engine's");
  for (int32_t i = 0; i < nb_inputs; ++i) {
    const char* name = e->input_names[static_cast<size_t>(i)].c_str();
    const size_t bytes = Bytes(e->engine->getTensorShape(name), e->engine->getTensorDataType(name));
    void* p = nullptr;
    c = cudaMalloc(&p, bytes < 256 ? 256 : bytes);
    if (c != cudaSuccess) return fail("CUDA: " + CudaText(c));
    buffers.push_back(p);
    c = cudaMemcpy(p, inputs[i].data, bytes, cudaMemcpyHostToDevice);
    if (c != cudaSuccess) return fail("CUDA: " + CudaText(c));
    if (!e->context->setTensorAddress(name, p)) return fail(std::string("setTensorAddress ") + name + ": " + e->logger.Last());
  }
  std::vector<std::pair<void*, size_t>> outs;
  for (const std::string& name : e->output_names) {
    const size_t bytes = Bytes(e->engine->getTensorShape(name.c_str()), e->engine->getTensorDataType(name.c_str()));
    void* p = nullptr;
    c = cudaMalloc(&p, bytes < 256 ? 256 : bytes);
    if (c != cudaSuccess) return fail("CUDA: " + CudaText(c));
    buffers.push_back(p);
    outs.emplace_back(p, bytes);
    if (!e->context->setTensorAddress(name.c_str(), p)) return fail("setTensorAddress " + name + ": " + e->logger.Last());
  }
  for (int32_t it = 0; it < iterations; ++it) {
    cudaEventRecord(start, stream);
    if (!e->context->enqueueV3(stream)) return fail("enqueueV3 failed: " + e->logger.Last());
    cudaEventRecord(stop, stream);
    c = cudaEventSynchronize(stop);
    if (c != cudaSuccess) return fail("CUDA: " + CudaText(c));
    cudaEventElapsedTime(&times_ms[it], start, stop);
  }
  for (size_t o = 0; o < outs.size(); ++o) {
    c = cudaMemcpy(outputs[o], outs[o].first, outs[o].second, cudaMemcpyDeviceToHost);
    if (c != cudaSuccess) return fail("CUDA: " + CudaText(c));
  }
  cleanup();
  return 0;
}

__attribute__((visibility("default"))) void rk_trt_destroy(void* handle) { delete static_cast<Engine*>(handle); }

}  // extern "C"
