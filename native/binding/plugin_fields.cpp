// The TensorRT plugin fields from JS: pluginFields() writes a configuration as the exact field list
// the plugins parse (native/trt/fields.cpp: one writer for `%optimize --export-plugin` and for the
// plugins' own serialization), parsePluginFields() reads a field list back with the plugins' own
// parser and its errors. Neither needs TensorRT.
#include "plugin_fields.h"

#include <cstring>
#include <string>
#include <vector>

#include "convert.h"
#include "../trt/fields.h"

namespace rkjs {
// [{ name, type, value }] (pluginFields' form) -> owned fields, each value in its type's bytes.
std::vector<rk::trt::OwnedField> FieldsFromJs(const Napi::Array& list) {
  Napi::Env env = list.Env();
  static const std::pair<const char*, rk::trt::FieldType> kTypes[] = {
      {"float64", rk::trt::FieldType::kFloat64}, {"float32", rk::trt::FieldType::kFloat32},
      {"int32", rk::trt::FieldType::kInt32},     {"int64", rk::trt::FieldType::kInt64},
      {"char", rk::trt::FieldType::kChar}};
  std::vector<rk::trt::OwnedField> out(list.Length());
  for (uint32_t i = 0; i < list.Length(); ++i) {
    rk::trt::OwnedField& o = out[i];
    const Napi::Value item = list.Get(i);
    if (!item.IsObject()) ThrowTypeError(env, "Expected { name, type, value } for field " + std::to_string(i) + " but received " + Describe(item));
    const Napi::Object f = item.As<Napi::Object>();
    if (!f.Get("name").IsString()) ThrowTypeError(env, "Expected a string name for field " + std::to_string(i) + " but received " + Describe(f.Get("name")));
    o.name = f.Get("name").As<Napi::String>().Utf8Value();
    const std::string type = f.Get("type").IsString() ? f.Get("type").As<Napi::String>().Utf8Value() : "";
    for (const auto& k : kTypes) {
      if (type == k.first) o.type = k.second;
    }
    if (o.type == rk::trt::FieldType::kUnknown) {
      ThrowRangeError(env, "Expected the type of field \"" + o.name + "\" to be float64, float32, int32, int64 or char but received " + Describe(f.Get("type")));
    }
    const Napi::Value value = f.Get("value");
    if (o.type == rk::trt::FieldType::kChar) {
      if (!value.IsString()) ThrowTypeError(env, "Expected a string value for the char field \"" + o.name + "\" but received " + Describe(value));
      const std::string text = value.As<Napi::String>().Utf8Value();
      o.bytes.assign(text.begin(), text.end());
      o.bytes.push_back(0);  // not counted in length
      o.length = static_cast<int32_t>(text.size());
      continue;
    }
    std::vector<double> nums;
    if (value.IsNumber()) {
      nums.push_back(value.As<Napi::Number>().DoubleValue());
    } else if (value.IsArray()) {
      const Napi::Array a = value.As<Napi::Array>();
      for (uint32_t k = 0; k < a.Length(); ++k) {
        if (!a.Get(k).IsNumber()) ThrowTypeError(env, "Expected numbers in field \"" + o.name + "\" but received " + Describe(a.Get(k)));
        nums.push_back(a.Get(k).As<Napi::Number>().DoubleValue());
      }
    } else {
      ThrowTypeError(env, "Expected a number or an array of numbers for field \"" + o.name + "\" but received " + Describe(value));
    }
    for (double x : nums) {
      uint8_t buf[8];
      size_t n = 0;
      if (o.type == rk::trt::FieldType::kFloat64) { std::memcpy(buf, &x, 8); n = 8; }
      else if (o.type == rk::trt::FieldType::kFloat32) { const float y = static_cast<float>(x); std::memcpy(buf, &y, 4); n = 4; }
      else if (o.type == rk::trt::FieldType::kInt64) { const int64_t y = static_cast<int64_t>(x); std::memcpy(buf, &y, 8); n = 8; }
      else { const int32_t y = static_cast<int32_t>(x); std::memcpy(buf, &y, 4); n = 4; }
      o.bytes.insert(o.bytes.end(), buf, buf + n);
    }
    o.length = static_cast<int32_t>(nums.size());
  }
  return out;
}

namespace {

rk::trt::PluginKind KindFromJs(const Napi::Value& v) {
  const std::string s = v.IsString() ? v.As<Napi::String>().Utf8Value() : "";
  if (s == "postprocess") return rk::trt::PluginKind::kPostprocess;
  if (s == "decode") return rk::trt::PluginKind::kDecode;
  if (s == "nms") return rk::trt::PluginKind::kNms;
  ThrowRangeError(v.Env(), "Expected the plugin \"postprocess\", \"decode\" or \"nms\" but received " + Describe(v));
}

int32_t IntAt(const Napi::Array& a, uint32_t i, const std::string& what) {
  const Napi::Value v = a.Get(i);
  if (!v.IsNumber()) ThrowTypeError(a.Env(), "Expected an integer for " + what + " but received " + Describe(v));
  return v.As<Napi::Number>().Int32Value();
}

void Pair(const Napi::Object& spec, const char* name, int32_t* h, int32_t* w) {
  const Napi::Value v = spec.Get(name);
  if (!v.IsArray() || v.As<Napi::Array>().Length() != 2) {
    ThrowTypeError(spec.Env(), std::string("Expected [h, w] for ") + name + " but received " + Describe(v));
  }
  *h = IntAt(v.As<Napi::Array>(), 0, name);
  *w = IntAt(v.As<Napi::Array>(), 1, name);
}

Napi::Array PairJs(Napi::Env env, int32_t h, int32_t w) {
  Napi::Array a = Napi::Array::New(env, 2);
  a.Set(0u, Napi::Number::New(env, h));
  a.Set(1u, Napi::Number::New(env, w));
  return a;
}

// The NativeParams shape of kernel/postprocess/config.ts.
Napi::Object ParamsToJs(Napi::Env env, const rk::PostprocessParams& p, int32_t levels, const std::vector<float>& class_thresh) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("numClasses", p.num_classes);
  Napi::Object a = Napi::Object::New(env);
  const rk::AnchorParams& ap = p.anchors;
  a.Set("cell", ap.cell == rk::AnchorCell::kTorchvision ? "torchvision" : ap.cell == rk::AnchorCell::kDetectron2 ? "detectron2" : "odtk");
  a.Set("order", ap.order == rk::AnchorOrder::kRatioMajor ? "ratio_major" : "size_major");
  Napi::Array sizes = Napi::Array::New(env, static_cast<size_t>(levels));
  for (int32_t l = 0; l < levels; ++l) {
    Napi::Array lv = Napi::Array::New(env, static_cast<size_t>(ap.num_sizes));
    for (int32_t i = 0; i < ap.num_sizes; ++i) lv.Set(static_cast<uint32_t>(i), ap.sizes[l][i]);
    sizes.Set(static_cast<uint32_t>(l), lv);
  }
  a.Set("sizes", sizes);
  Napi::Array ratios = Napi::Array::New(env, static_cast<size_t>(ap.num_ratios));
  for (int32_t i = 0; i < ap.num_ratios; ++i) ratios.Set(static_cast<uint32_t>(i), ap.ratios[i]);
  a.Set("ratios", ratios);
  a.Set("stridesFromPaddedSize", ap.strides_from_padded_size);
  Napi::Array strides = Napi::Array::New(env);
  if (!ap.strides_from_padded_size) {
    for (int32_t l = 0; l < levels; ++l) strides.Set(static_cast<uint32_t>(l), ap.strides[l]);
  }
  a.Set("strides", strides);
  a.Set("offset", ap.offset);
  o.Set("anchors", a);
  Napi::Object s = Napi::Object::New(env);
  s.Set("scoreThresh", p.select.score_thresh);
  s.Set("topkCandidates", p.select.topk_candidates);
  s.Set("scoreInput", p.select.score_input == rk::ScoreInput::kLogits ? "logits" : "probabilities");
  s.Set("candidateOrder", p.select.candidate_order == rk::CandidateOrder::kAnchorMajor ? "anchor_major" : "class_major");
  if (!class_thresh.empty()) {
    Napi::Array ct = Napi::Array::New(env, class_thresh.size());
    for (size_t i = 0; i < class_thresh.size(); ++i) ct.Set(static_cast<uint32_t>(i), static_cast<double>(class_thresh[i]));
    s.Set("classThresh", ct);
  }
  o.Set("select", s);
  Napi::Object d = Napi::Object::New(env);
  Napi::Array weights = Napi::Array::New(env, 4);
  for (uint32_t i = 0; i < 4; ++i) weights.Set(i, static_cast<double>(p.decode.weights[i]));
  d.Set("weights", weights);
  d.Set("clampDwdh", p.decode.clamp_dwdh);
  d.Set("bboxXformClip", p.decode.bbox_xform_clip);
  d.Set("pixelOffset", p.decode.pixel_offset);
  d.Set("clip", rk::trt::ClipModeName(p.decode.clip));
  o.Set("decode", d);
  Napi::Object n = Napi::Object::New(env);
  n.Set("iouThresh", p.nms.iou_thresh);
  n.Set("algorithm", p.nms.algorithm == rk::NmsAlgorithm::kTorchvisionBatched ? "torchvision_batched" : "greedy_per_class");
  n.Set("torchvisionDevice", p.nms.torchvision_device == rk::NmsDevice::kCpu ? "cpu" : "cuda");
  n.Set("compareInDouble", p.nms.compare_in_double);
  o.Set("nms", n);
  Napi::Object out = Napi::Object::New(env);
  out.Set("detectionsPerImg", p.output.detections_per_img);
  out.Set("removeEmpty", p.output.remove_empty);
  o.Set("output", out);
  return o;
}

// pluginFields(kind, { params, preset, layout, paddedSize, levelSizes?, imageSize? })
//   -> [{ name, type: "float64" | "float32" | "int32" | "char", value: number[] | string }]
Napi::Value PluginFields(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[1].IsObject()) {
    ThrowTypeError(env, "Expected pluginFields(kind, { params, preset, layout, paddedSize, levelSizes?, imageSize? })");
  }
  const rk::trt::PluginKind kind = KindFromJs(info[0]);
  const Napi::Object spec = info[1].As<Napi::Object>();
  if (!spec.Get("params").IsObject()) ThrowTypeError(env, "Expected params (NativeParams) but received " + Describe(spec.Get("params")));
  rk::trt::PluginConfig c;
  c.params = ParamsFromJs(spec.Get("params").As<Napi::Object>(), &c.class_thresh);
  c.params.select.class_thresh = nullptr;  // the fields carry the values; the plugin uploads them
  const Napi::Value preset = spec.Get("preset");
  c.preset = preset.IsString() ? preset.As<Napi::String>().Utf8Value() : "custom";
  const Napi::Value layout = spec.Get("layout");
  const std::string ls = layout.IsString() ? layout.As<Napi::String>().Utf8Value() : "";
  if (ls != "concatenated" && ls != "per_level") {
    ThrowRangeError(env, "Expected layout \"concatenated\" or \"per_level\" but received " + Describe(layout));
  }
  c.layout = ls == "concatenated" ? rk::Layout::kConcatenated : rk::Layout::kPerLevel;
  const Napi::Value sizes = spec.Get("params").As<Napi::Object>().Get("anchors").As<Napi::Object>().Get("sizes");
  c.num_levels = static_cast<int32_t>(sizes.As<Napi::Array>().Length());
  Pair(spec, "paddedSize", &c.padded_height, &c.padded_width);
  c.image_height = c.padded_height;
  c.image_width = c.padded_width;
  if (!spec.Get("imageSize").IsUndefined()) Pair(spec, "imageSize", &c.image_height, &c.image_width);
  const Napi::Value level_sizes = spec.Get("levelSizes");
  if (!level_sizes.IsUndefined()) {
    if (!level_sizes.IsArray() || level_sizes.As<Napi::Array>().Length() != static_cast<uint32_t>(c.num_levels)) {
      ThrowTypeError(env, "Expected " + std::to_string(c.num_levels) + " [H, W] pairs for levelSizes but received " + Describe(level_sizes));
    }
    for (int32_t l = 0; l < c.num_levels; ++l) {
      const Napi::Value v = level_sizes.As<Napi::Array>().Get(static_cast<uint32_t>(l));
      if (!v.IsArray() || v.As<Napi::Array>().Length() != 2) ThrowTypeError(env, "Expected [H, W] for levelSizes[" + std::to_string(l) + "]");
      c.level_sizes[l] = rk::LevelShape{IntAt(v.As<Napi::Array>(), 0, "levelSizes"), IntAt(v.As<Napi::Array>(), 1, "levelSizes")};
    }
    c.has_level_sizes = true;
  }
  const std::vector<rk::trt::OwnedField> fields = rk::trt::ToFields(kind, c);
  Napi::Array out = Napi::Array::New(env, fields.size());
  for (size_t i = 0; i < fields.size(); ++i) {
    const rk::trt::OwnedField& f = fields[i];
    Napi::Object o = Napi::Object::New(env);
    o.Set("name", f.name);
    o.Set("type", rk::trt::FieldTypeName(f.type));
    if (f.type == rk::trt::FieldType::kChar) {
      o.Set("value", std::string(f.bytes.begin(), f.bytes.begin() + f.length));
    } else {
      Napi::Array v = Napi::Array::New(env, static_cast<size_t>(f.length));
      for (int32_t k = 0; k < f.length; ++k) {
        if (f.type == rk::trt::FieldType::kFloat64) {
          double x;
          std::memcpy(&x, f.bytes.data() + 8 * k, 8);
          v.Set(static_cast<uint32_t>(k), x);
        } else if (f.type == rk::trt::FieldType::kFloat32) {
          float x;
          std::memcpy(&x, f.bytes.data() + 4 * k, 4);
          v.Set(static_cast<uint32_t>(k), static_cast<double>(x));
        } else {
          int32_t x;
          std::memcpy(&x, f.bytes.data() + 4 * k, 4);
          v.Set(static_cast<uint32_t>(k), x);
        }
      }
      o.Set("value", v);
    }
    out.Set(static_cast<uint32_t>(i), o);
  }
  return out;
}

// parsePluginFields(kind, [{ name, type, value }]) -> { params, preset, layout, numLevels,
// paddedSize, levelSizes, imageSize }; throws the plugins' own error (code ERR_RK_PARAM).
Napi::Value ParsePluginFields(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[1].IsArray()) ThrowTypeError(env, "Expected parsePluginFields(kind, [{ name, type, value }, ...])");
  const rk::trt::PluginKind kind = KindFromJs(info[0]);
  const std::vector<rk::trt::OwnedField> fields = FieldsFromJs(info[1].As<Napi::Array>());
  const std::vector<rk::trt::FieldView> views = rk::trt::Views(fields);
  rk::trt::PluginConfig c;
  const rk::Status st = rk::trt::ParseFields(kind, views.data(), static_cast<int32_t>(views.size()), &c);
  if (!st.ok()) throw StatusError(env, st);
  Napi::Object out = Napi::Object::New(env);
  out.Set("params", ParamsToJs(env, c.params, c.num_levels, c.class_thresh));
  out.Set("preset", c.preset);
  out.Set("layout", c.layout == rk::Layout::kConcatenated ? "concatenated" : "per_level");
  out.Set("numLevels", c.num_levels);
  out.Set("paddedSize", PairJs(env, c.padded_height, c.padded_width));
  out.Set("imageSize", PairJs(env, c.image_height, c.image_width));
  if (c.has_level_sizes) {
    Napi::Array ls = Napi::Array::New(env, static_cast<size_t>(c.num_levels));
    for (int32_t l = 0; l < c.num_levels; ++l) ls.Set(static_cast<uint32_t>(l), PairJs(env, c.level_sizes[l].height, c.level_sizes[l].width));
    out.Set("levelSizes", ls);
  } else {
    out.Set("levelSizes", env.Null());
  }
  return out;
}

// fieldSpecs() -> [{ name, type, required: { postprocess, decode, nms }, meaning }]
Napi::Value FieldSpecs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const auto& specs = rk::trt::FieldSpecs();
  Napi::Array out = Napi::Array::New(env, specs.size());
  for (size_t i = 0; i < specs.size(); ++i) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("name", specs[i].name);
    o.Set("type", rk::trt::FieldTypeName(specs[i].type));
    Napi::Object req = Napi::Object::New(env);
    req.Set("postprocess", specs[i].required[0]);
    req.Set("decode", specs[i].required[1]);
    req.Set("nms", specs[i].required[2]);
    o.Set("required", req);
    o.Set("meaning", specs[i].meaning);
    out.Set(static_cast<uint32_t>(i), o);
  }
  return out;
}

}  // namespace

void DefinePluginFields(Napi::Env env, Napi::Object exports) {
  exports.Set("pluginFields", Napi::Function::New<PluginFields>(env, "pluginFields"));
  exports.Set("parsePluginFields", Napi::Function::New<ParsePluginFields>(env, "parsePluginFields"));
  exports.Set("pluginFieldSpecs", Napi::Function::New<FieldSpecs>(env, "pluginFieldSpecs"));
}

}  // namespace rkjs
