// JS values -> the core's plain structs, on the main thread. The config was validated in
// TypeScript (kernel/postprocess/config.ts); these readers still type-check every field so that a
// caller bypassing the TS layer gets a TypeError, never a crash, and they check buffer sizes
// against the declared shapes, which only the native side can do cheaply.
#pragma once

#include <napi.h>

#include <vector>

#include "rk/engine.h"
#include "rk/params.h"
#include "rk/stages.h"
#include "rk/status.h"
#include "rk/tensor.h"

namespace rkjs {

// Throws a JS error carrying `code` (ERR_RK_*), of type TypeError / RangeError / Error.
[[noreturn]] void ThrowTypeError(Napi::Env env, const std::string& message);
[[noreturn]] void ThrowRangeError(Napi::Env env, const std::string& message);
Napi::Error StatusError(Napi::Env env, const rk::Status& status);
// A short description of a JS value for error messages ("undefined", "Float32Array", "\"x\"").
std::string Describe(const Napi::Value& v);

// [in] NativeParams; [out] the params, and the storage of the per-class thresholds that
// params.select.class_thresh points into (kept alive, and not moved, as long as the params are used).
rk::PostprocessParams ParamsFromJs(const Napi::Object& obj, std::vector<float>* class_thresh);

// Inputs of one run: the shapes, pointers into the JS buffers and the buffers themselves (kept
// referenced by the caller until the run completes).
struct RunInputs {
  rk::HeadShapes shapes;
  rk::HeadTensors tensors;
  rk::Residency residency = rk::Residency::kHost;
  // Candidate lists (the candidate cache) instead of head tensors: inputs.candidates in JS.
  bool from_candidates = false;
  rk::CandidateLists candidates;
  std::vector<Napi::Value> buffers;  // every TypedArray read, to be referenced
};
RunInputs InputsFromJs(const Napi::Object& obj, const rk::PostprocessParams& params);

}  // namespace rkjs
