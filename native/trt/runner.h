// A small TensorRT engine around one retinanet-kernel plugin, for `%optimize --backend tensorrt`:
// inputs -> RetinaNetPostprocess (or Decode / NMS) -> outputs, built and run by libnvinfer, which
// this library opens at run time (dlopen), so that it builds against TensorRT's headers alone and
// says exactly what is missing when no TensorRT runtime is installed. A C interface: the Node addon
// opens this library (libretinanet_kernel_trt_runner.so) beside itself, also with dlopen.
#pragma once

#include <cstddef>
#include <cstdint>

extern "C" {

// A plugin field; type numbered as nvinfer1::PluginFieldType (kFLOAT64 2, kINT32 5, kCHAR 6).
struct rk_trt_field {
  const char* name;
  int32_t type;
  int32_t length;
  const void* data;
};

// A host tensor; dtype numbered as nvinfer1::DataType (kFLOAT 0, kHALF 1, kINT32 3).
struct rk_trt_tensor {
  const char* name;
  int32_t dtype;
  int32_t nb_dims;
  int64_t dims[8];
  const void* data;  // inputs: host data; outputs: ignored
};

// Builds the engine: opens libnvinfer (`nvinfer` path, or libnvinfer.so.<major of the headers>),
// loads `plugin_library` into its plugin registry, creates `plugin_name` from the fields, and builds
// a network of the inputs and that one layer. Returns 0 and a handle, or non-zero with `err` set.
int rk_trt_build(const char* nvinfer, const char* plugin_library, const char* plugin_name, const rk_trt_field* fields,
                 int32_t nb_fields, const rk_trt_tensor* inputs, int32_t nb_inputs, void** handle, char* err,
                 size_t err_bytes);

// Output i's name, dtype and dims (static shapes).
int rk_trt_output(void* handle, int32_t index, rk_trt_tensor* out);
int32_t rk_trt_nb_outputs(void* handle);

// Copies the inputs to the device once, runs the engine `iterations` times (GPU time of each run in
// times_ms, from CUDA events), copies the outputs of the last run to `outputs` (host buffers sized
// by rk_trt_output). Returns 0, or non-zero with `err` set.
int rk_trt_run(void* handle, const rk_trt_tensor* inputs, int32_t nb_inputs, int32_t iterations, float* times_ms,
               void* const* outputs, char* err, size_t err_bytes);

void rk_trt_destroy(void* handle);

// The TensorRT headers this library was built against, e.g. "11.1.0".
const char* rk_trt_headers_version();
}
