// tensorrtRun(): the TensorRT plugin path of %optimize, present when the addon was built with
// TENSORRT_ROOT (the engine runner and the plugin library sit beside the addon).
#pragma once

#include <napi.h>

namespace rkjs {

void DefineTensorrt(Napi::Env env, Napi::Object exports);

}  // namespace rkjs
