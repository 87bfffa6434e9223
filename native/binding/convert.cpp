#include "convert.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

namespace rkjs {

std::string Describe(const Napi::Value& v) {
  if (v.IsUndefined()) return "undefined";
  if (v.IsNull()) return "null";
  if (v.IsNumber()) return std::to_string(v.As<Napi::Number>().DoubleValue());
  if (v.IsString()) return "\"" + v.As<Napi::String>().Utf8Value() + "\"";
  if (v.IsBoolean()) return v.As<Napi::Boolean>().Value() ? "true" : "false";
  if (v.IsTypedArray()) {
    static const char* kNames[] = {"Int8Array", "Uint8Array", "Uint8ClampedArray", "Int16Array",
                                   "Uint16Array", "Int32Array", "Uint32Array", "Float32Array",
                                   "Float64Array", "BigInt64Array", "BigUint64Array"};
    const int t = static_cast<int>(v.As<Napi::TypedArray>().TypedArrayType());
    return (t >= 0 && t < 11) ? kNames[t] : "a TypedArray";
  }
  if (v.IsArray()) return "an array";
  if (v.IsFunction()) return "a function";
  if (v.IsObject()) return "an object";
  return "a value";
}

namespace {

Napi::Value Field(const Napi::Object& obj, const char* name, const std::string& path, bool required = true) {
  Napi::Value v = obj.Get(name);
  if (required && (v.IsUndefined() || v.IsNull())) {
    ThrowTypeError(obj.Env(), "Expected a value for " + path + " but received " + Describe(v));
  }
  return v;
}

double Number(const Napi::Object& obj, const char* name, const std::string& path) {
  Napi::Value v = Field(obj, name, path);
  if (!v.IsNumber()) ThrowTypeError(obj.Env(), "Expected a number for " + path + " but received " + Describe(v));
  return v.As<Napi::Number>().DoubleValue();
}

int32_t Int(const Napi::Object& obj, const char* name, const std::string& path) {
  const double d = Number(obj, name, path);
  if (!(std::floor(d) == d) || d < -2147483648.0 || d > 2147483647.0) {
    ThrowRangeError(obj.Env(), "Expected an integer for " + path + " but received " + std::to_string(d));
  }
  return static_cast<int32_t>(d);
}

bool Bool(const Napi::Object& obj, const char* name, const std::string& path) {
  Napi::Value v = Field(obj, name, path);
  if (!v.IsBoolean()) ThrowTypeError(obj.Env(), "Expected a boolean for " + path + " but received " + Describe(v));
  return v.As<Napi::Boolean>().Value();
}

Napi::Object Object(const Napi::Object& obj, const char* name, const std::string& path) {
  Napi::Value v = Field(obj, name, path);
  if (!v.IsObject()) ThrowTypeError(obj.Env(), "Expected an object for " + path + " but received " + Describe(v));
  return v.As<Napi::Object>();
}

Napi::Array Array(const Napi::Object& obj, const char* name, const std::string& path) {
  Napi::Value v = Field(obj, name, path);
  if (!v.IsArray()) ThrowTypeError(obj.Env(), "Expected an array for " + path + " but received " + Describe(v));
  return v.As<Napi::Array>();
}

double ArrayNumber(const Napi::Array& arr, uint32_t i, const std::string& path) {
  Napi::Value v = arr.Get(i);
  if (!v.IsNumber()) {
    ThrowTypeError(arr.Env(), "Expected a number for " + path + "[" + std::to_string(i) + "] but received " + Describe(v));
  }
  return v.As<Napi::Number>().DoubleValue();
}

template <typename E, size_t N>
E Enum(const Napi::Object& obj, const char* name, const std::string& path,
       const std::pair<const char*, E> (&table)[N]) {
  Napi::Value v = Field(obj, name, path);
  std::string options;
  for (size_t i = 0; i < N; ++i) options += (i ? ", \"" : "\"") + std::string(table[i].first) + "\"";
  if (!v.IsString()) ThrowTypeError(obj.Env(), "Expected one of " + options + " for " + path + " but received " + Describe(v));
  const std::string s = v.As<Napi::String>().Utf8Value();
  for (size_t i = 0; i < N; ++i) {
    if (s == table[i].first) return table[i].second;
  }
  ThrowRangeError(obj.Env(), "Expected one of " + options + " for " + path + " but received \"" + s + "\"");
}

void SetCode(Napi::Error& err, const char* code) { err.Set("code", Napi::String::New(err.Env(), code)); }

// A TypedArray of the given type with at least `elements` elements, or a TypeError / RangeError.
const void* TypedData(const Napi::Value& v, napi_typedarray_type type, size_t elements,
                      const std::string& path, const char* type_name) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != type) {
    ThrowTypeError(v.Env(), "Expected a " + std::string(type_name) + " for " + path + " but received " + Describe(v));
  }
  Napi::TypedArray ta = v.As<Napi::TypedArray>();
  if (ta.ElementLength() != elements) {
    Napi::Error err = Napi::RangeError::New(
        v.Env(), "Expected " + std::to_string(elements) + " elements for " + path +
                     " (from the declared shapes) but received " + std::to_string(ta.ElementLength()));
    SetCode(err, "ERR_RK_SHAPE");
    throw err;
  }
  return static_cast<const uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
}


// A device address: a number, or a handle from upload() ({ pointer, bytes }) whose size is checked.
const void* DevicePointer(const Napi::Value& v, const std::string& name, size_t expected_bytes) {
  Napi::Env env = v.Env();
  double pointer = 0;
  if (v.IsNumber()) {
    pointer = v.As<Napi::Number>().DoubleValue();
  } else if (v.IsObject() && v.As<Napi::Object>().Get("pointer").IsNumber()) {
    Napi::Object o = v.As<Napi::Object>();
    pointer = o.Get("pointer").As<Napi::Number>().DoubleValue();
    Napi::Value bytes = o.Get("bytes");
    if (pointer == 0) ThrowRangeError(env, "Expected a live device array for " + name + " but received one that was freed");
    if (bytes.IsNumber() && bytes.As<Napi::Number>().DoubleValue() != static_cast<double>(expected_bytes)) {
      ThrowRangeError(env, "Expected " + std::to_string(expected_bytes) + " bytes in the device array for " + name +
                               " but received " + std::to_string(static_cast<size_t>(bytes.As<Napi::Number>().DoubleValue())));
    }
  } else {
    ThrowTypeError(env, "Expected a device array from upload() (or a device pointer) for " + name +
                            " of a device-resident run but received " + Describe(v));
  }
  if (!(pointer > 0) || pointer != static_cast<double>(static_cast<uint64_t>(pointer))) {
    ThrowRangeError(env, "Expected a non-null device pointer for " + name + " but received " + std::to_string(pointer));
  }
  return reinterpret_cast<const void*>(static_cast<uintptr_t>(pointer));
}

}  // namespace

void ThrowTypeError(Napi::Env env, const std::string& message) {
  Napi::Error err = Napi::TypeError::New(env, message);
  SetCode(err, "ERR_RK_PARAM");
  throw err;
}

void ThrowRangeError(Napi::Env env, const std::string& message) {
  Napi::Error err = Napi::RangeError::New(env, message);
  SetCode(err, "ERR_RK_PARAM");
  throw err;
}

Napi::Error StatusError(Napi::Env env, const rk::Status& status) {
  Napi::Error err = status.code() == rk::Code::kInvalidArgument || status.code() == rk::Code::kShapeMismatch
                        ? Napi::RangeError::New(env, status.message())
                        : Napi::Error::New(env, status.message());
  SetCode(err, rk::CodeName(status.code()));
  return err;
}

rk::PostprocessParams ParamsFromJs(const Napi::Object& obj, std::vector<float>* class_thresh) {
  static const std::pair<const char*, rk::AnchorCell> kCells[] = {
      {"torchvision", rk::AnchorCell::kTorchvision}, {"detectron2", rk::AnchorCell::kDetectron2},
      {"odtk", rk::AnchorCell::kOdtk}};
  static const std::pair<const char*, rk::AnchorOrder> kOrders[] = {
      {"ratio_major", rk::AnchorOrder::kRatioMajor}, {"size_major", rk::AnchorOrder::kSizeMajor}};
  static const std::pair<const char*, rk::ScoreInput> kInputs[] = {
      {"logits", rk::ScoreInput::kLogits}, {"probabilities", rk::ScoreInput::kProbabilities}};
  static const std::pair<const char*, rk::CandidateOrder> kCandOrders[] = {
      {"anchor_major", rk::CandidateOrder::kAnchorMajor}, {"class_major", rk::CandidateOrder::kClassMajor}};
  static const std::pair<const char*, rk::ClipMode> kClips[] = {
      {"none", rk::ClipMode::kNone}, {"image_before_nms", rk::ClipMode::kImageBeforeNms},
      {"canvas_in_decode", rk::ClipMode::kCanvasInDecode}, {"output_after_nms", rk::ClipMode::kOutputAfterNms}};
  static const std::pair<const char*, rk::NmsAlgorithm> kAlgos[] = {
      {"torchvision_batched", rk::NmsAlgorithm::kTorchvisionBatched},
      {"greedy_per_class", rk::NmsAlgorithm::kGreedyPerClass}};
  static const std::pair<const char*, rk::NmsDevice> kDevices[] = {
      {"cpu", rk::NmsDevice::kCpu}, {"cuda", rk::NmsDevice::kCuda}};

  rk::PostprocessParams p;
  p.num_classes = Int(obj, "numClasses", "numClasses");

  const Napi::Object a = Object(obj, "anchors", "anchors");
  p.anchors.cell = Enum(a, "cell", "anchors.cell", kCells);
  p.anchors.order = Enum(a, "order", "anchors.order", kOrders);
  const Napi::Array sizes = Array(a, "sizes", "anchors.sizes");
  const Napi::Array ratios = Array(a, "ratios", "anchors.ratios");
  const Napi::Array strides = Array(a, "strides", "anchors.strides");
  if (sizes.Length() < 1 || sizes.Length() > rk::kMaxLevels) {
    ThrowRangeError(obj.Env(), "Expected 1.." + std::to_string(rk::kMaxLevels) +
                                   " levels in anchors.sizes but received " + std::to_string(sizes.Length()));
  }
  if (ratios.Length() < 1 || ratios.Length() > rk::kMaxRatios) {
    ThrowRangeError(obj.Env(), "Expected 1.." + std::to_string(rk::kMaxRatios) +
                                   " entries in anchors.ratios but received " + std::to_string(ratios.Length()));
  }
  p.anchors.num_ratios = static_cast<int32_t>(ratios.Length());
  for (uint32_t i = 0; i < ratios.Length(); ++i) p.anchors.ratios[i] = ArrayNumber(ratios, i, "anchors.ratios");
  p.anchors.num_sizes = -1;
  for (uint32_t l = 0; l < sizes.Length(); ++l) {
    const std::string path = "anchors.sizes[" + std::to_string(l) + "]";
    Napi::Value lv = sizes.Get(l);
    if (!lv.IsArray()) ThrowTypeError(obj.Env(), "Expected an array for " + path + " but received " + Describe(lv));
    const Napi::Array level = lv.As<Napi::Array>();
    if (level.Length() < 1 || level.Length() > rk::kMaxSizes ||
        (p.anchors.num_sizes >= 0 && static_cast<int32_t>(level.Length()) != p.anchors.num_sizes)) {
      ThrowRangeError(obj.Env(), "Expected the same number (1.." + std::to_string(rk::kMaxSizes) +
                                     ") of sizes on every level for " + path + " but received " +
                                     std::to_string(level.Length()));
    }
    p.anchors.num_sizes = static_cast<int32_t>(level.Length());
    for (uint32_t i = 0; i < level.Length(); ++i) p.anchors.sizes[l][i] = ArrayNumber(level, i, path);
  }
  p.anchors.strides_from_padded_size = Bool(a, "stridesFromPaddedSize", "anchors.stridesFromPaddedSize");
  for (uint32_t l = 0; l < strides.Length() && l < rk::kMaxLevels; ++l) {
    p.anchors.strides[l] = ArrayNumber(strides, l, "anchors.strides");
  }
  p.anchors.offset = Number(a, "offset", "anchors.offset");

  const Napi::Object s = Object(obj, "select", "select");
  p.select.score_thresh = Number(s, "scoreThresh", "select.scoreThresh");
  p.select.topk_candidates = Int(s, "topkCandidates", "select.topkCandidates");
  p.select.score_input = Enum(s, "scoreInput", "select.scoreInput", kInputs);
  p.select.candidate_order = Enum(s, "candidateOrder", "select.candidateOrder", kCandOrders);
  class_thresh->clear();
  const Napi::Value ct = s.Get("classThresh");
  if (!ct.IsUndefined() && !ct.IsNull()) {
    if (!ct.IsArray()) ThrowTypeError(obj.Env(), "Expected an array of numbers for select.classThresh but received " + Describe(ct));
    const Napi::Array arr = ct.As<Napi::Array>();
    if (static_cast<int64_t>(arr.Length()) != p.num_classes) {
      ThrowRangeError(obj.Env(), "Expected " + std::to_string(p.num_classes) + " per-class thresholds (numClasses) for select.classThresh but received " +
                                     std::to_string(arr.Length()));
    }
    float lowest = INFINITY;
    for (uint32_t i = 0; i < arr.Length(); ++i) {
      const double t = ArrayNumber(arr, i, "select.classThresh");
      if (!(t >= 0.0 && t <= 1.0)) ThrowRangeError(obj.Env(), "Expected numbers in [0, 1] for select.classThresh but received " + std::to_string(t) + " at " + std::to_string(i));
      class_thresh->push_back(static_cast<float>(t));
      lowest = std::min(lowest, static_cast<float>(t));
    }
    // The prefilter bound is the smallest class threshold, whatever scoreThresh said.
    p.select.score_thresh = lowest;
    p.select.class_thresh = class_thresh->data();
  }

  const Napi::Object d = Object(obj, "decode", "decode");
  const Napi::Array weights = Array(d, "weights", "decode.weights");
  if (weights.Length() != 4) {
    ThrowRangeError(obj.Env(), "Expected 4 entries in decode.weights but received " + std::to_string(weights.Length()));
  }
  for (uint32_t i = 0; i < 4; ++i) p.decode.weights[i] = static_cast<float>(ArrayNumber(weights, i, "decode.weights"));
  p.decode.clamp_dwdh = Bool(d, "clampDwdh", "decode.clampDwdh");
  p.decode.bbox_xform_clip = Number(d, "bboxXformClip", "decode.bboxXformClip");
  p.decode.pixel_offset = Int(d, "pixelOffset", "decode.pixelOffset");
  p.decode.clip = Enum(d, "clip", "decode.clip", kClips);

  const Napi::Object n = Object(obj, "nms", "nms");
  p.nms.iou_thresh = Number(n, "iouThresh", "nms.iouThresh");
  p.nms.algorithm = Enum(n, "algorithm", "nms.algorithm", kAlgos);
  p.nms.torchvision_device = Enum(n, "torchvisionDevice", "nms.torchvisionDevice", kDevices);
  p.nms.compare_in_double = Bool(n, "compareInDouble", "nms.compareInDouble");

  const Napi::Object o = Object(obj, "output", "output");
  p.output.detections_per_img = Int(o, "detectionsPerImg", "output.detectionsPerImg");
  p.output.remove_empty = Bool(o, "removeEmpty", "output.removeEmpty");
  return p;
}

RunInputs InputsFromJs(const Napi::Object& obj, const rk::PostprocessParams& params) {
  static const std::pair<const char*, rk::Layout> kLayouts[] = {
      {"concatenated", rk::Layout::kConcatenated}, {"per_level", rk::Layout::kPerLevel}};
  static const std::pair<const char*, rk::DType> kDTypes[] = {
      {"float32", rk::DType::kFloat32}, {"float16", rk::DType::kFloat16}};
  Napi::Env env = obj.Env();
  RunInputs in;
  rk::HeadShapes& s = in.shapes;
  rk::HeadTensors& t = in.tensors;
  t.layout = Enum(obj, "layout", "layout", kLayouts);
  t.dtype = Enum(obj, "dtype", "dtype", kDTypes);
  s.batch = Int(obj, "batch", "batch");
  s.num_classes = Int(obj, "numClasses", "numClasses");
  s.anchors_per_loc = Int(obj, "anchorsPerLocation", "anchorsPerLocation");
  const Napi::Array fs = Array(obj, "featureSizes", "featureSizes");
  if (fs.Length() < 1 || fs.Length() > rk::kMaxLevels) {
    ThrowRangeError(env, "Expected 1.." + std::to_string(rk::kMaxLevels) + " levels in featureSizes but received " +
                             std::to_string(fs.Length()));
  }
  s.num_levels = static_cast<int32_t>(fs.Length());
  for (uint32_t l = 0; l < fs.Length(); ++l) {
    Napi::Value lv = fs.Get(l);
    if (!lv.IsArray() || lv.As<Napi::Array>().Length() != 2) {
      ThrowTypeError(env, "Expected [H, W] for featureSizes[" + std::to_string(l) + "] but received " + Describe(lv));
    }
    s.levels[l].height = static_cast<int32_t>(ArrayNumber(lv.As<Napi::Array>(), 0, "featureSizes"));
    s.levels[l].width = static_cast<int32_t>(ArrayNumber(lv.As<Napi::Array>(), 1, "featureSizes"));
  }
  const Napi::Array padded = Array(obj, "paddedSize", "paddedSize");
  if (padded.Length() != 2) ThrowTypeError(env, "Expected [H, W] for paddedSize but received an array of " + std::to_string(padded.Length()));
  s.padded_height = static_cast<int32_t>(ArrayNumber(padded, 0, "paddedSize"));
  s.padded_width = static_cast<int32_t>(ArrayNumber(padded, 1, "paddedSize"));
  rk::Status st = rk::ValidateShapes(params, s);
  if (!st.ok()) throw StatusError(env, st);
  const size_t N = static_cast<size_t>(s.batch);

  Napi::Value residency = obj.Get("residency");
  if (residency.IsString() && residency.As<Napi::String>().Utf8Value() == "device") {
    in.residency = rk::Residency::kDevice;
  }

  Napi::Value lists = obj.Get("candidates");
  if (!lists.IsUndefined()) {
    // The candidate cache's lists: the stages after selection only (host memory, cpu backend).
    if (!lists.IsObject()) ThrowTypeError(env, "Expected an object {offsets, rows, labels, values, deltas} for candidates but received " + Describe(lists));
    const Napi::Object c = lists.As<Napi::Object>();
    const Napi::Value rows = Field(c, "rows", "candidates.rows");
    if (!rows.IsTypedArray()) ThrowTypeError(env, "Expected an Int32Array for candidates.rows but received " + Describe(rows));
    const size_t count = rows.As<Napi::TypedArray>().ElementLength();
    const size_t slots = static_cast<size_t>(s.batch) * static_cast<size_t>(s.num_levels) + 1;
    in.from_candidates = true;
    rk::CandidateLists& cl = in.candidates;
    const Napi::Value offsets = Field(c, "offsets", "candidates.offsets");
    cl.offsets = static_cast<const int64_t*>(TypedData(offsets, napi_bigint64_array, slots, "candidates.offsets", "BigInt64Array"));
    cl.rows = static_cast<const int32_t*>(TypedData(rows, napi_int32_array, count, "candidates.rows", "Int32Array"));
    const Napi::Value labels = Field(c, "labels", "candidates.labels");
    cl.labels = static_cast<const int32_t*>(TypedData(labels, napi_int32_array, count, "candidates.labels", "Int32Array"));
    const Napi::Value values = Field(c, "values", "candidates.values");
    cl.values = static_cast<const float*>(TypedData(values, napi_float32_array, count, "candidates.values", "Float32Array"));
    const Napi::Value deltas = Field(c, "deltas", "candidates.deltas");
    cl.deltas = static_cast<const float*>(TypedData(deltas, napi_float32_array, count * 4, "candidates.deltas", "Float32Array"));
    in.buffers.insert(in.buffers.end(), {offsets, rows, labels, values, deltas});
    const Napi::Value cap = c.Get("listCap");
    if (!cap.IsUndefined() && !cap.IsNull()) {
      if (!cap.IsNumber() || !(cap.As<Napi::Number>().DoubleValue() >= 0) || cap.As<Napi::Number>().DoubleValue() > 2147483647.0) {
        ThrowRangeError(env, "Expected a count >= 0 for candidates.listCap but received " + Describe(cap));
      }
      cl.list_cap = cap.As<Napi::Number>().Int32Value();
    }
    const Napi::Value anchors = c.Get("anchors");
    if (!anchors.IsUndefined() && !anchors.IsNull()) {
      cl.anchors = static_cast<const float*>(TypedData(anchors, napi_float32_array, count * 4, "candidates.anchors", "Float32Array"));
      in.buffers.push_back(anchors);
    }
    for (size_t i = 0; i + 1 < slots; ++i) {
      if (cl.offsets[i] < 0 || cl.offsets[i] > cl.offsets[i + 1] || static_cast<size_t>(cl.offsets[i + 1]) > count) {
        ThrowRangeError(env, "Expected non-decreasing candidates.offsets within [0, " + std::to_string(count) +
                                 "] but received " + std::to_string(cl.offsets[i]) + ", " + std::to_string(cl.offsets[i + 1]) +
                                 " at " + std::to_string(i));
      }
    }
  } else {
  const napi_typedarray_type head_type = t.dtype == rk::DType::kFloat32 ? napi_float32_array : napi_uint16_array;
  const char* head_name = t.dtype == rk::DType::kFloat32 ? "Float32Array" : "Uint16Array (fp16 bits)";
  const Napi::Array cls = Array(obj, "cls", "cls");
  const Napi::Array box = Array(obj, "box", "box");
  const uint32_t want = t.layout == rk::Layout::kConcatenated ? 1 : static_cast<uint32_t>(s.num_levels);
  if (cls.Length() != want || box.Length() != want) {
    ThrowRangeError(env, "Expected " + std::to_string(want) + " class and box arrays for the " +
                             (t.layout == rk::Layout::kConcatenated ? "concatenated" : "per-level") +
                             " layout but received " + std::to_string(cls.Length()) + " and " +
                             std::to_string(box.Length()));
  }
  for (uint32_t i = 0; i < want; ++i) {
    const size_t anchors = t.layout == rk::Layout::kConcatenated ? static_cast<size_t>(s.TotalAnchors())
                                                                 : static_cast<size_t>(s.LevelAnchors(static_cast<int>(i)));
    const std::string suffix = t.layout == rk::Layout::kConcatenated ? "" : "[" + std::to_string(i) + "] (P" + std::to_string(i + 3) + ")";
    Napi::Value c = cls.Get(i), b = box.Get(i);
    if (in.residency == rk::Residency::kDevice) {
      // Device pointers: numbers, or handles from upload(); the CUDA engine checks them.
      const size_t elem = rk::DTypeSize(t.dtype);
      t.cls[i] = DevicePointer(c, "cls_logits" + suffix, N * anchors * static_cast<size_t>(s.num_classes) * elem);
      t.box[i] = DevicePointer(b, "bbox_regression" + suffix, N * anchors * 4 * elem);
      in.buffers.push_back(c);
      in.buffers.push_back(b);
      continue;
    }
    t.cls[i] = TypedData(c, head_type, N * anchors * static_cast<size_t>(s.num_classes), "cls_logits" + suffix, head_name);
    t.box[i] = TypedData(b, head_type, N * anchors * 4, "bbox_regression" + suffix, head_name);
    in.buffers.push_back(c);
    in.buffers.push_back(b);
  }
  Napi::Value anchors = obj.Get("anchors");
  if (!anchors.IsUndefined() && !anchors.IsNull()) {
    const size_t per_image = static_cast<size_t>(s.TotalAnchors()) * 4;
    if (!anchors.IsTypedArray()) ThrowTypeError(env, "Expected a Float32Array for anchors but received " + Describe(anchors));
    const size_t len = anchors.As<Napi::TypedArray>().ElementLength();
    t.anchors_per_image = len == per_image * N && N > 1;
    t.anchors = static_cast<const float*>(
        TypedData(anchors, napi_float32_array, t.anchors_per_image ? per_image * N : per_image, "anchors", "Float32Array"));
    in.buffers.push_back(anchors);
  }
  }
  Napi::Value sizes = Field(obj, "imageSizes", "imageSizes");
  t.image_sizes = static_cast<const int32_t*>(TypedData(sizes, napi_int32_array, N * 2, "image_sizes", "Int32Array"));
  in.buffers.push_back(sizes);
  for (size_t n = 0; n < N; ++n) {
    if (t.image_sizes[2 * n] < 1 || t.image_sizes[2 * n + 1] < 1) {
      ThrowRangeError(env, "Expected image_sizes[" + std::to_string(n) + "] >= 1x1 but received " +
                               std::to_string(t.image_sizes[2 * n]) + "x" + std::to_string(t.image_sizes[2 * n + 1]));
    }
  }
  Napi::Value outs = obj.Get("outputSizes");
  if (!outs.IsUndefined() && !outs.IsNull()) {
    t.output_sizes = static_cast<const int32_t*>(TypedData(outs, napi_int32_array, N * 2, "output_sizes", "Int32Array"));
    in.buffers.push_back(outs);
  }
  return in;
}

}  // namespace rkjs
