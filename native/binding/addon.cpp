// Module entry: the Postprocessor class and the stage functions the TypeScript API exposes alone
// (anchor generation, NMS), plus build information.
#include <napi.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "convert.h"
#include "plugin_fields.h"
#include "postprocessor.h"
#include "tensorrt.h"
#include "rk/stages.h"
#if defined(RK_WITH_CUDA)
#include "rk/cuda_engine.h"
#endif
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#if defined(__unix__)
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#endif

#ifndef RK_VERSION
#define RK_VERSION "0.0.0"
#endif

namespace rkjs {
namespace {

// anchors(params, { featureSizes, paddedSize, anchorsPerLocation }) -> Float32Array [sum(HWA) * 4]
Napi::Value Anchors(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsObject() || !info[1].IsObject()) {
    ThrowTypeError(env, "Expected anchors(params, shapes) but received other arguments");
  }
  std::vector<float> class_thresh;  // unused by the anchors
  const rk::PostprocessParams params = ParamsFromJs(info[0].As<Napi::Object>(), &class_thresh);
  Napi::Object shapes = info[1].As<Napi::Object>();
  rk::HeadShapes s;
  s.batch = 1;
  s.num_classes = params.num_classes;
  s.anchors_per_loc = params.anchors.AnchorsPerLocation();
  Napi::Value fsv = shapes.Get("featureSizes");
  if (!fsv.IsArray()) ThrowTypeError(env, "Expected [[H, W], ...] for featureSizes");
  Napi::Array fs = fsv.As<Napi::Array>();
  s.num_levels = static_cast<int32_t>(std::min<uint32_t>(fs.Length(), rk::kMaxLevels));
  for (int l = 0; l < s.num_levels; ++l) {
    Napi::Value lv = fs.Get(static_cast<uint32_t>(l));
    if (!lv.IsArray()) ThrowTypeError(env, "Expected [H, W] for featureSizes[" + std::to_string(l) + "]");
    s.levels[l].height = lv.As<Napi::Array>().Get(0u).As<Napi::Number>().Int32Value();
    s.levels[l].width = lv.As<Napi::Array>().Get(1u).As<Napi::Number>().Int32Value();
  }
  Napi::Value pv = shapes.Get("paddedSize");
  if (pv.IsArray()) {
    s.padded_height = pv.As<Napi::Array>().Get(0u).As<Napi::Number>().Int32Value();
    s.padded_width = pv.As<Napi::Array>().Get(1u).As<Napi::Number>().Int32Value();
  }
  rk::Status st = rk::ValidateShapes(params, s);
  rk::AnchorGrid grid;
  if (st.ok()) st = rk::MakeAnchorGrid(params.anchors, s, &grid);
  if (!st.ok()) throw StatusError(env, st);
  Napi::Float32Array out = Napi::Float32Array::New(env, static_cast<size_t>(s.TotalAnchors()) * 4);
  st = rk::GenerateAnchors(grid, s, out.Data());
  if (!st.ok()) throw StatusError(env, st);
  return out;
}

// nms(boxes Float32Array [n*4], scores Float32Array [n], labels Int32Array [n], params) -> Int32Array keep
Napi::Value Nms(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 4 || !info[0].IsTypedArray() || !info[1].IsTypedArray() || !info[2].IsTypedArray() ||
      !info[3].IsObject()) {
    ThrowTypeError(env, "Expected nms(boxes: Float32Array, scores: Float32Array, labels: Int32Array, params)");
  }
  auto boxes = info[0].As<Napi::TypedArray>();
  auto scores = info[1].As<Napi::TypedArray>();
  auto labels = info[2].As<Napi::TypedArray>();
  if (boxes.TypedArrayType() != napi_float32_array || scores.TypedArrayType() != napi_float32_array ||
      labels.TypedArrayType() != napi_int32_array) {
    ThrowTypeError(env, "Expected Float32Array boxes and scores and Int32Array labels for nms()");
  }
  const size_t n = scores.ElementLength();
  if (boxes.ElementLength() != n * 4 || labels.ElementLength() != n) {
    ThrowRangeError(env, "Expected boxes of " + std::to_string(n * 4) + " and labels of " + std::to_string(n) +
                             " elements for " + std::to_string(n) + " scores but received " +
                             std::to_string(boxes.ElementLength()) + " and " + std::to_string(labels.ElementLength()));
  }
  Napi::Object po = info[3].As<Napi::Object>();
  rk::NmsParams p;
  p.iou_thresh = po.Get("iouThresh").As<Napi::Number>().DoubleValue();
  const std::string algo = po.Get("algorithm").ToString().Utf8Value();
  p.algorithm = algo == "greedy_per_class" ? rk::NmsAlgorithm::kGreedyPerClass : rk::NmsAlgorithm::kTorchvisionBatched;
  p.torchvision_device = po.Get("torchvisionDevice").ToString().Utf8Value() == "cuda" ? rk::NmsDevice::kCuda : rk::NmsDevice::kCpu;
  p.compare_in_double = po.Get("compareInDouble").ToBoolean().Value();
  const int32_t pixel_offset = po.Get("pixelOffset").ToNumber().Int32Value();
  std::vector<rk::Box> b(n);
  const float* bp = reinterpret_cast<const float*>(static_cast<const uint8_t*>(boxes.ArrayBuffer().Data()) + boxes.ByteOffset());
  for (size_t i = 0; i < n; ++i) b[i] = rk::Box{bp[4 * i], bp[4 * i + 1], bp[4 * i + 2], bp[4 * i + 3]};
  const float* sp = reinterpret_cast<const float*>(static_cast<const uint8_t*>(scores.ArrayBuffer().Data()) + scores.ByteOffset());
  const int32_t* lp = reinterpret_cast<const int32_t*>(static_cast<const uint8_t*>(labels.ArrayBuffer().Data()) + labels.ByteOffset());
  std::vector<uint8_t> ws(rk::NmsWorkspaceSize(static_cast<int32_t>(n)));
  std::vector<int32_t> keep(n);
  const int32_t kept = rk::Nms(p, pixel_offset, b.data(), sp, lp, static_cast<int32_t>(n), keep.data(), ws.data());
  Napi::Int32Array out = Napi::Int32Array::New(env, static_cast<size_t>(kept));
  for (int32_t i = 0; i < kept; ++i) out[static_cast<size_t>(i)] = keep[static_cast<size_t>(i)];
  return out;
}

// streamMax(arrays: Float32Array[]) -> max over every element: one streaming pass on one thread,
// 16 floats per step, the floor the CPU benchmark compares the post-processing with.
Napi::Value StreamMax(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsArray()) ThrowTypeError(env, "Expected streamMax(arrays: Float32Array[])");
  Napi::Array arrays = info[0].As<Napi::Array>();
  float best = -INFINITY;
  for (uint32_t i = 0; i < arrays.Length(); ++i) {
    Napi::Value v = arrays.Get(i);
    if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
      ThrowTypeError(env, "Expected Float32Array elements for streamMax");
    }
    Napi::Float32Array a = v.As<Napi::Float32Array>();
    const float* p = a.Data();
    const size_t n = a.ElementLength();
    size_t j = 0;
#if defined(__SSE2__)
    __m128 m0 = _mm_set1_ps(-INFINITY), m1 = m0, m2 = m0, m3 = m0;
    for (; j + 16 <= n; j += 16) {
      m0 = _mm_max_ps(m0, _mm_loadu_ps(p + j));
      m1 = _mm_max_ps(m1, _mm_loadu_ps(p + j + 4));
      m2 = _mm_max_ps(m2, _mm_loadu_ps(p + j + 8));
      m3 = _mm_max_ps(m3, _mm_loadu_ps(p + j + 12));
    }
    float lanes[4];
    _mm_storeu_ps(lanes, _mm_max_ps(_mm_max_ps(m0, m1), _mm_max_ps(m2, m3)));
    for (float l : lanes) best = l > best ? l : best;
#endif
    for (; j < n; ++j) best = p[j] > best ? p[j] : best;
  }
  return Napi::Number::New(env, best);
}

Napi::Object BuildInfo(Napi::Env env) {
  Napi::Object info = Napi::Object::New(env);
  info.Set("version", RK_VERSION);
#if defined(__clang__)
  info.Set("compiler", "clang " __clang_version__);
#elif defined(__GNUC__)
  info.Set("compiler", "g++ " __VERSION__);
#else
  info.Set("compiler", "unknown");
#endif
#if defined(__SSE2__)
  info.Set("simd", "sse2");
#else
  info.Set("simd", "none");
#endif
  info.Set("napiVersion", Napi::Number::New(env, NAPI_VERSION));
  info.Set("hardwareConcurrency", Napi::Number::New(env, std::thread::hardware_concurrency()));
  Napi::Object cuda = Napi::Object::New(env);
#if defined(RK_WITH_CUDA)
  cuda.Set("compiled", true);
  cuda.Set("runtimeVersion", Napi::Number::New(env, rk::CudaRuntimeVersion()));
  cuda.Set("architectures", RK_CUDA_ARCHITECTURES);
#else
  cuda.Set("compiled", false);
  cuda.Set("reason", "nvcc was not found when the addon was built");
#endif
  info.Set("cuda", cuda);
  Napi::Object trt = Napi::Object::New(env);
#if defined(RK_WITH_TENSORRT)
  trt.Set("compiled", true);
  trt.Set("headersVersion", RK_TRT_VERSION);
  trt.Set("library", RK_TRT_LIBRARY);  // file name, beside the addon
#else
  trt.Set("compiled", false);
  trt.Set("reason", RK_TRT_REASON);
#endif
  info.Set("tensorrt", trt);
  return info;
}

#if defined(__unix__)
// mapFile(path) -> ArrayBuffer over the file's pages (copy on write: writes never reach the file),
// unmapped when the buffer is collected. Opening a candidate cache maps its columns instead of
// reading them: pages come in as they are first read.
Napi::Value MapFile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) ThrowTypeError(env, "Expected mapFile(path: string)");
  const std::string path = info[0].As<Napi::String>().Utf8Value();
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    Napi::Error e = Napi::Error::New(env, "Expected a readable file at " + path + " but open failed: " + std::strerror(err));
    e.Set("code", Napi::String::New(env, err == ENOENT ? "ENOENT" : "ERR_RK_FILE"));
    throw e;
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    throw Napi::Error::New(env, "Expected a regular file at " + path);
  }
  const size_t len = static_cast<size_t>(st.st_size);
  if (len == 0) {
    close(fd);
    return Napi::ArrayBuffer::New(env, 0);
  }
  void* p = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
  const int err = errno;
  close(fd);
  if (p == MAP_FAILED) throw Napi::Error::New(env, "Mapping " + path + " failed: " + std::strerror(err));
  return Napi::ArrayBuffer::New(env, p, len, [len](Napi::Env, void* data) { munmap(data, len); });
}
#endif

#if defined(RK_WITH_CUDA)
Napi::Value Devices(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  rk::CudaDeviceList list = rk::ListCudaDevices();
  Napi::Object out = Napi::Object::New(env);
  Napi::Array arr = Napi::Array::New(env, list.devices.size());
  for (size_t i = 0; i < list.devices.size(); ++i) {
    const rk::CudaDeviceInfo& d = list.devices[i];
    Napi::Object o = Napi::Object::New(env);
    o.Set("index", Napi::Number::New(env, d.index));
    o.Set("name", d.name);
    o.Set("sm", std::to_string(d.major) + "." + std::to_string(d.minor));
    o.Set("multiprocessors", Napi::Number::New(env, d.multiprocessors));
    o.Set("memoryBytes", Napi::Number::New(env, static_cast<double>(d.total_memory)));
    arr.Set(static_cast<uint32_t>(i), o);
  }
  out.Set("devices", arr);
  if (!list.reason.empty()) out.Set("reason", list.reason);
  out.Set("driverVersion", Napi::Number::New(env, list.driver_version));
  return out;
}

// upload(typedArray, device = 0) -> { pointer, bytes, device, free() }: a copy in device memory,
// freed by free() or when the handle is garbage-collected.
Napi::Value FreeUpload(const Napi::CallbackInfo& info) {
  Napi::Object self = info.This().As<Napi::Object>();
  Napi::Value handle = self.Get("handle");
  if (handle.IsExternal()) {
    rk::FreeDevice(handle.As<Napi::External<rk::DeviceBuffer>>().Data());
    self.Set("pointer", Napi::Number::New(info.Env(), 0));
  }
  return info.Env().Undefined();
}

Napi::Value Upload(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsTypedArray()) {
    ThrowTypeError(env, "Expected a TypedArray for upload(data) but received " + (info.Length() < 1 ? std::string("nothing") : Describe(info[0])));
  }
  int device = 0;
  if (info.Length() > 1 && !info[1].IsUndefined()) {
    if (!info[1].IsNumber()) ThrowTypeError(env, "Expected an integer for device but received " + Describe(info[1]));
    device = info[1].As<Napi::Number>().Int32Value();
  }
  Napi::TypedArray a = info[0].As<Napi::TypedArray>();
  const uint8_t* data = static_cast<const uint8_t*>(a.ArrayBuffer().Data()) + a.ByteOffset();
  auto* buffer = new rk::DeviceBuffer();
  rk::Status st = rk::UploadToDevice(data, a.ByteLength(), device, buffer);
  if (!st.ok()) {
    delete buffer;
    throw StatusError(env, st);
  }
  Napi::Object out = Napi::Object::New(env);
  out.DefineProperty(Napi::PropertyDescriptor::Value(
      "handle", Napi::External<rk::DeviceBuffer>::New(env, buffer, [](Napi::Env, rk::DeviceBuffer* b) {
        rk::FreeDevice(b);
        delete b;
      })));
  out.Set("pointer", Napi::Number::New(env, static_cast<double>(reinterpret_cast<uintptr_t>(buffer->ptr))));
  out.Set("bytes", Napi::Number::New(env, static_cast<double>(buffer->bytes)));
  out.Set("device", Napi::Number::New(env, device));
  out.Set("free", Napi::Function::New<FreeUpload>(env, "free"));
  return out;
}
#endif

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("Postprocessor", Postprocessor::Define(env));
  exports.Set("anchors", Napi::Function::New<Anchors>(env, "anchors"));
  exports.Set("nms", Napi::Function::New<Nms>(env, "nms"));
  exports.Set("streamMax", Napi::Function::New<StreamMax>(env, "streamMax"));
  exports.Set("buildInfo", BuildInfo(env));
#if defined(__unix__)
  exports.Set("mapFile", Napi::Function::New<MapFile>(env, "mapFile"));
#endif
  DefinePluginFields(env, exports);
  DefineTensorrt(env, exports);
#if defined(RK_WITH_CUDA)
  exports.Set("devices", Napi::Function::New<Devices>(env, "devices"));
  exports.Set("upload", Napi::Function::New<Upload>(env, "upload"));
#endif
  return exports;
}

}  // namespace
}  // namespace rkjs

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) { return rkjs::Init(env, exports); }
NODE_API_MODULE(retinanet_kernel, InitModule)
