// tensorrtRun(): `%optimize --backend tensorrt` through a small TensorRT engine (native/trt/runner.h),
// built only with TENSORRT_ROOT. The runner library is opened beside the addon with dlopen, and it
// opens libnvinfer itself, so a machine without a TensorRT runtime gets an error saying so.
#include "tensorrt.h"

#if defined(RK_WITH_TENSORRT)
#include <dlfcn.h>

#include <string>
#include <vector>

#include "../trt/runner.h"
#include "convert.h"
#include "plugin_fields.h"

namespace rkjs {
namespace {

std::string AddonDir() {
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&DefineTensorrt), &info) == 0 || info.dli_fname == nullptr) return ".";
  const std::string path(info.dli_fname);
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

struct Runner {
  decltype(&rk_trt_build) build = nullptr;
  decltype(&rk_trt_run) run = nullptr;
  decltype(&rk_trt_output) output = nullptr;
  decltype(&rk_trt_nb_outputs) nb_outputs = nullptr;
  decltype(&rk_trt_destroy) destroy = nullptr;
  std::string error;
};

const Runner& LoadRunner() {
  static Runner r = [] {
    Runner x;
    const std::string path = AddonDir() + "/" RK_TRT_RUNNER;
    void* h = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (h == nullptr) {
      const char* why = dlerror();
      x.error = "the TensorRT engine runner " + path + " could not be opened: " + (why ? why : "?");
      return x;
    }
    x.build = reinterpret_cast<decltype(&rk_trt_build)>(dlsym(h, "rk_trt_build"));
    x.run = reinterpret_cast<decltype(&rk_trt_run)>(dlsym(h, "rk_trt_run"));
    x.output = reinterpret_cast<decltype(&rk_trt_output)>(dlsym(h, "rk_trt_output"));
    x.nb_outputs = reinterpret_cast<decltype(&rk_trt_nb_outputs)>(dlsym(h, "rk_trt_nb_outputs"));
    x.destroy = reinterpret_cast<decltype(&rk_trt_destroy)>(dlsym(h, "rk_trt_destroy"));
    if (!x.build || !x.run || !x.output || !x.nb_outputs || !x.destroy) x.error = path + " lacks the rk_trt_* functions";
    return x;
  }();
  return r;
}

Napi::Error Error(Napi::Env env, const std::string& message, const char* code) {
  Napi::Error e = Napi::Error::New(env, message);
  e.Set("code", Napi::String::New(env, code));
  return e;
}

// tensorrtRun({ plugin, fields: [{name, type, value}], inputs: [{name, dtype, shape, data}],
//               iterations, nvinfer? }) -> { outputs: [{ shape, data }], timesMs: number[] }
Napi::Value TensorrtRun(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Runner& r = LoadRunner();
  if (!r.error.empty()) throw Error(env, r.error, "ERR_RK_UNAVAILABLE");
  if (info.Length() < 1 || !info[0].IsObject()) ThrowTypeError(env, "Expected tensorrtRun({ plugin, fields, inputs, iterations })");
  const Napi::Object spec = info[0].As<Napi::Object>();
  const std::string plugin = spec.Get("plugin").ToString().Utf8Value();
  const Napi::Value nv = spec.Get("nvinfer");
  const std::string nvinfer = nv.IsString() ? nv.As<Napi::String>().Utf8Value() : "";
  const int32_t iterations = spec.Get("iterations").IsNumber() ? spec.Get("iterations").As<Napi::Number>().Int32Value() : 1;
  if (iterations < 1 || iterations > 100000) ThrowRangeError(env, "Expected iterations in [1, 100000] but received " + std::to_string(iterations));

  if (!spec.Get("fields").IsArray()) ThrowTypeError(env, "Expected fields [{ name, type, value }] but received " + Describe(spec.Get("fields")));
  const std::vector<rk::trt::OwnedField> owned = FieldsFromJs(spec.Get("fields").As<Napi::Array>());
  std::vector<rk_trt_field> fields;  // FieldType numbers nvinfer1::PluginFieldType (static_assert in plugin.cpp)
  for (const rk::trt::OwnedField& f : owned) {
    fields.push_back(rk_trt_field{f.name.c_str(), static_cast<int32_t>(f.type), f.length, f.bytes.data()});
  }

  const Napi::Array il = spec.Get("inputs").As<Napi::Array>();
  std::vector<std::string> input_names(il.Length());
  std::vector<rk_trt_tensor> inputs(il.Length());
  for (uint32_t i = 0; i < il.Length(); ++i) {
    const Napi::Object t = il.Get(i).As<Napi::Object>();
    input_names[i] = t.Get("name").ToString().Utf8Value();
    const std::string dtype = t.Get("dtype").ToString().Utf8Value();
    rk_trt_tensor& x = inputs[i];
    x.dtype = dtype == "float16" ? 1 : dtype == "int32" ? 3 : 0;
    const Napi::Array shape = t.Get("shape").As<Napi::Array>();
    x.nb_dims = static_cast<int32_t>(shape.Length());
    for (uint32_t k = 0; k < shape.Length() && k < 8; ++k) x.dims[k] = shape.Get(k).As<Napi::Number>().Int64Value();
    const Napi::Value d = t.Get("data");
    if (!d.IsTypedArray()) ThrowTypeError(env, "Expected a TypedArray for input " + input_names[i] + " but received " + Describe(d));
    const Napi::TypedArray ta = d.As<Napi::TypedArray>();
    x.data = static_cast<const uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
  }
  for (uint32_t i = 0; i < il.Length(); ++i) inputs[i].name = input_names[i].c_str();

  const std::string library = AddonDir() + "/" RK_TRT_LIBRARY;
  char err[2048] = {0};
  void* handle = nullptr;
  if (r.build(nvinfer.c_str(), library.c_str(), plugin.c_str(), fields.data(), static_cast<int32_t>(fields.size()),
              inputs.data(), static_cast<int32_t>(inputs.size()), &handle, err, sizeof err) != 0) {
    throw Error(env, err, std::string(err).rfind("no TensorRT runtime", 0) == 0 ? "ERR_RK_UNAVAILABLE" : "ERR_RK_TENSORRT");
  }
  const int32_t n_out = r.nb_outputs(handle);
  std::vector<Napi::TypedArray> outs;
  std::vector<void*> out_ptrs;
  Napi::Array result_outputs = Napi::Array::New(env, static_cast<size_t>(n_out));
  for (int32_t o = 0; o < n_out; ++o) {
    rk_trt_tensor t{};
    r.output(handle, o, &t);
    size_t n = 1;
    Napi::Array shape = Napi::Array::New(env, static_cast<size_t>(t.nb_dims));
    for (int k = 0; k < t.nb_dims; ++k) n *= static_cast<size_t>(t.dims[k]), shape.Set(static_cast<uint32_t>(k), static_cast<double>(t.dims[k]));
    Napi::TypedArray arr;
    if (t.dtype == 1) arr = Napi::Uint16Array::New(env, n);
    else if (t.dtype == 3) arr = Napi::Int32Array::New(env, n);
    else arr = Napi::Float32Array::New(env, n);
    out_ptrs.push_back(static_cast<uint8_t*>(arr.ArrayBuffer().Data()) + arr.ByteOffset());
    Napi::Object o_js = Napi::Object::New(env);
    o_js.Set("shape", shape);
    o_js.Set("dtype", t.dtype == 1 ? "float16" : t.dtype == 3 ? "int32" : "float32");
    o_js.Set("data", arr);
    result_outputs.Set(static_cast<uint32_t>(o), o_js);
  }
  std::vector<float> times(static_cast<size_t>(iterations));
  const int rc = r.run(handle, inputs.data(), static_cast<int32_t>(inputs.size()), iterations, times.data(), out_ptrs.data(), err, sizeof err);
  r.destroy(handle);
  if (rc != 0) throw Error(env, err, "ERR_RK_TENSORRT");
  Napi::Object out = Napi::Object::New(env);
  out.Set("outputs", result_outputs);
  Napi::Array t = Napi::Array::New(env, times.size());
  for (size_t i = 0; i < times.size(); ++i) t.Set(static_cast<uint32_t>(i), static_cast<double>(times[i]));
  out.Set("timesMs", t);
  return out;
}

}  // namespace

void DefineTensorrt(Napi::Env env, Napi::Object exports) {
  exports.Set("tensorrtRun", Napi::Function::New<TensorrtRun>(env, "tensorrtRun"));
}

}  // namespace rkjs

#else

namespace rkjs {
void DefineTensorrt(Napi::Env, Napi::Object) {}
}  // namespace rkjs

#endif
