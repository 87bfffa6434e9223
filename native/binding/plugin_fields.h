// pluginFields / parsePluginFields / pluginFieldSpecs: the TensorRT plugin fields from JS.
#pragma once

#include <napi.h>

#include <vector>

#include "../trt/fields.h"

namespace rkjs {

void DefinePluginFields(Napi::Env env, Napi::Object exports);

// [{ name, type: "float64" | "float32" | "int32" | "int64" | "char", value }] -> fields in their
// types' bytes (throws a TypeError / RangeError naming the field). Shared by parsePluginFields and
// tensorrtRun.
std::vector<rk::trt::OwnedField> FieldsFromJs(const Napi::Array& list);

}  // namespace rkjs
