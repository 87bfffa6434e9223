// pluginFields / parsePluginFields / pluginFieldSpecs: the TensorRT plugin fields from JS.
#pragma once

#include <napi.h>

namespace rkjs {

void DefinePluginFields(Napi::Env env, Napi::Object exports);

}  // namespace rkjs
