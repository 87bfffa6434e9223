// Plugin fields <-> PluginConfig. See fields.h. The names are the kernel's config keys (`%config`),
// so a configuration tuned in the notebook reads the same inside a TensorRT engine.
#include "fields.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <sstream>

#include "rk/stages.h"

namespace rk {
namespace trt {
namespace {

// Which plugins require a field: {postprocess, decode, nms}.
constexpr bool kAll[3] = {true, true, true};
constexpr bool kHeads[3] = {true, true, false};   // read by the plugins that see the heads
constexpr bool kNmsSide[3] = {true, false, true};  // read by the plugins that run NMS
constexpr bool kNmsOnly[3] = {false, false, true};   // NMS alone cannot take it from a head
constexpr bool kNone[3] = {false, false, false};

#define RK_SPEC(name, type, req, meaning) \
  FieldSpec { name, type, {req[0], req[1], req[2]}, meaning }

const std::vector<FieldSpec>& Specs() {
  static const std::vector<FieldSpec> specs = {
      RK_SPEC("preset", FieldType::kChar, kAll, "torchvision, detectron2, odtk or custom (provenance)"),
      RK_SPEC("num_levels", FieldType::kInt32, kHeads, "L, the number of pyramid levels (P3.. upward)"),
      RK_SPEC("num_classes", FieldType::kInt32, kNmsOnly, "K; 0 or absent: from the class head (required by RetinaNetNMS)"),
      RK_SPEC("score_thresh", FieldType::kFloat64, kHeads, "keep candidates with score > f32(score_thresh)"),
      RK_SPEC("score_thresh_per_class", FieldType::kFloat32, kNone, "K per-class thresholds (score > t_c, same test and place); score_thresh is then their minimum"),
      RK_SPEC("topk_candidates", FieldType::kInt32, kAll, "candidates kept per image and level before NMS"),
      RK_SPEC("nms_thresh", FieldType::kFloat64, kNmsSide, "suppress a box when its IoU with a kept box of its class is > nms_thresh"),
      RK_SPEC("detections_per_img", FieldType::kInt32, kNmsSide, "D, detections kept per image"),
      RK_SPEC("anchor_sizes", FieldType::kFloat64, kHeads, "L*S anchor sizes, level by level (px; multiples of the stride with anchor_cell odtk)"),
      RK_SPEC("aspect_ratios", FieldType::kFloat64, kHeads, "R aspect ratios h/w"),
      RK_SPEC("anchor_cell", FieldType::kChar, kHeads, "torchvision, detectron2 or odtk cell anchor arithmetic"),
      RK_SPEC("anchor_order", FieldType::kChar, kHeads, "ratio_major or size_major anchor index"),
      RK_SPEC("anchor_strides", FieldType::kFloat64, kHeads, "L strides, or the string padded_size"),
      RK_SPEC("anchor_offset", FieldType::kFloat64, kHeads, "grid offset in strides"),
      RK_SPEC("box_coder_weights", FieldType::kFloat64, kHeads, "4 divisors of dx, dy, dw, dh"),
      RK_SPEC("bbox_xform_clip", FieldType::kFloat64, kHeads, "upper clamp of dw, dh, or the string none"),
      RK_SPEC("pixel_offset", FieldType::kInt32, kAll, "1: ODTK's +1 pixel convention in decode and IoU"),
      RK_SPEC("clip_boxes", FieldType::kChar, kAll, "none, image_before_nms, canvas_in_decode or output_after_nms"),
      RK_SPEC("remove_empty_boxes", FieldType::kInt32, kNmsSide, "1: drop boxes with width or height <= 0 after the cap"),
      RK_SPEC("score_input", FieldType::kChar, kHeads, "logits or probabilities"),
      RK_SPEC("candidate_order", FieldType::kChar, kHeads, "anchor_major or class_major tie order"),
      RK_SPEC("nms_algorithm", FieldType::kChar, kNmsSide, "torchvision_batched or greedy_per_class"),
      RK_SPEC("torchvision_nms_device", FieldType::kChar, kNmsSide, "cpu or cuda path switch of batched_nms"),
      RK_SPEC("layout", FieldType::kChar, kHeads, "concatenated (cls [N,R,K], box [N,R,4]) or per_level (2L inputs [N,A*K,H,W], [N,A*4,H,W])"),
      RK_SPEC("padded_size", FieldType::kInt32, kHeads, "(H, W) of the network input"),
      RK_SPEC("level_sizes", FieldType::kInt32, kNone, "L*(H, W) feature sizes; required with layout concatenated"),
      RK_SPEC("image_size", FieldType::kInt32, kNone, "(h, w) clip size when there is no image_sizes input; default padded_size"),
      RK_SPEC("serial_version", FieldType::kInt32, kNone, "version of a serialized field set (written by the plugin)"),
  };
  return specs;
}
#undef RK_SPEC

size_t TypeBytes(FieldType t) {
  switch (t) {
    case FieldType::kFloat64:
    case FieldType::kInt64: return 8;
    case FieldType::kFloat32:
    case FieldType::kInt32: return 4;
    case FieldType::kFloat16:
    case FieldType::kBF16:
    case FieldType::kInt16: return 2;
    default: return 1;
  }
}

std::string Quote(const std::string& s) { return "\"" + s + "\""; }

std::string Num(double v) {
  std::ostringstream o;
  o.precision(17);
  o << v;
  return o.str();
}

size_t EditDistance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t prev = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t tmp = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, prev + (a[i - 1] == b[j - 1] ? 0 : 1)});
      prev = tmp;
    }
  }
  return row[b.size()];
}

class Parser {
 public:
  Parser(PluginKind kind, const FieldView* fields, int32_t count) : kind_(kind), fields_(fields), count_(count) {}

  Status Error(const std::string& field, const std::string& expected, const std::string& received) const {
    return Status(Code::kInvalidArgument, std::string(PluginName(kind_)) + ": plugin field " + Quote(field) +
                                              ": expected " + expected + " but received " + received);
  }

  // Known names only, no duplicates.
  Status CheckNames() {
    for (int32_t i = 0; i < count_; ++i) {
      const FieldView& f = fields_[i];
      if (f.name == nullptr) {
        return Status(Code::kInvalidArgument, std::string(PluginName(kind_)) + ": plugin field " +
                                                  std::to_string(i) + " has no name");
      }
      const std::string name(f.name);
      bool known = false;
      for (const FieldSpec& s : Specs()) known = known || name == s.name;
      if (!known) {
        std::string near;
        size_t best = SIZE_MAX;
        for (const FieldSpec& s : Specs()) {
          const size_t d = EditDistance(name, s.name);
          if (d < best) best = d, near = s.name;
        }
        std::string hint = best <= std::max<size_t>(2, name.size() / 2) ? " (did you mean " + Quote(near) + "?)" : "";
        std::string list;
        for (const FieldSpec& s : Specs()) list += (list.empty() ? "" : ", ") + std::string(s.name);
        return Status(Code::kInvalidArgument, std::string(PluginName(kind_)) + ": unknown plugin field " +
                                                  Quote(name) + hint + "; the fields are " + list);
      }
      for (int32_t j = 0; j < i; ++j) {
        if (fields_[j].name != nullptr && name == fields_[j].name) {
          return Error(name, "one field of that name", "it twice");
        }
      }
    }
    for (const FieldSpec& s : Specs()) {
      if (s.required[static_cast<int>(kind_)] && Find(s.name) == nullptr) {
        return Status(Code::kInvalidArgument,
                      std::string(PluginName(kind_)) + ": missing plugin field " + Quote(s.name) + " (" +
                          FieldTypeName(s.type) + ": " + s.meaning +
                          "); `%optimize --export-plugin FILE` writes every field of a configuration");
      }
    }
    return Status::Ok();
  }

  const FieldView* Find(const char* name) const {
    for (int32_t i = 0; i < count_; ++i) {
      if (fields_[i].name != nullptr && std::strcmp(fields_[i].name, name) == 0) return &fields_[i];
    }
    return nullptr;
  }

  bool IsString(const FieldView& f) const { return f.type == FieldType::kChar; }

  std::string String(const FieldView& f) const {
    const char* s = static_cast<const char*>(f.data);
    if (s == nullptr || f.length <= 0) return std::string();
    return std::string(s, strnlen(s, static_cast<size_t>(f.length)));
  }

  // Numbers of any numeric field type, widened to double. A char field holding decimal numbers
  // separated by spaces or commas is read exactly (ONNX attributes have no float64: the export
  // script writes float64 fields as text so that 0.3 stays the double 0.3).
  Status Numbers(const FieldView& f, std::vector<double>* out) const {
    out->clear();
    if (f.type == FieldType::kChar) {
      const std::string text = String(f);
      const char* p = text.c_str();
      while (*p != 0) {
        while (*p == ' ' || *p == ',') ++p;
        if (*p == 0) break;
        char* end = nullptr;
        const double v = std::strtod(p, &end);
        if (end == p) return Error(f.name, "numbers (or decimal text of numbers)", Quote(text));
        out->push_back(v);
        p = end;
      }
      return Status::Ok();
    }
    if (f.length < 0 || (f.length > 0 && f.data == nullptr)) {
      return Error(f.name, "data for " + std::to_string(f.length) + " values", "a null pointer");
    }
    for (int32_t i = 0; i < f.length; ++i) {
      const uint8_t* p = static_cast<const uint8_t*>(f.data) + static_cast<size_t>(i) * TypeBytes(f.type);
      double v = 0;
      switch (f.type) {
        case FieldType::kFloat64: { double x; std::memcpy(&x, p, 8); v = x; break; }
        case FieldType::kFloat32: { float x; std::memcpy(&x, p, 4); v = x; break; }
        case FieldType::kInt64: { int64_t x; std::memcpy(&x, p, 8); v = static_cast<double>(x); break; }
        case FieldType::kInt32: { int32_t x; std::memcpy(&x, p, 4); v = x; break; }
        case FieldType::kInt16: { int16_t x; std::memcpy(&x, p, 2); v = x; break; }
        case FieldType::kInt8: { int8_t x; std::memcpy(&x, p, 1); v = x; break; }
        default:
          return Error(f.name, "a numeric field (float64, float32, int64, int32, int16 or int8)",
                       std::string("type ") + FieldTypeName(f.type));
      }
      out->push_back(v);
    }
    return Status::Ok();
  }

  Status Number(const char* name, double lo, double hi, const std::string& expected, double* out) const {
    const FieldView* f = Find(name);
    std::vector<double> v;
    RK_RETURN_IF_ERROR(Numbers(*f, &v));
    if (v.size() != 1) return Error(name, "1 value", std::to_string(v.size()) + " values");
    if (!(v[0] >= lo && v[0] <= hi)) return Error(name, expected, Num(v[0]));
    *out = v[0];
    return Status::Ok();
  }

  Status Int(const char* name, int64_t lo, int64_t hi, int32_t* out) const {
    double v = 0;
    const std::string expected = "an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
    RK_RETURN_IF_ERROR(Number(name, static_cast<double>(lo), static_cast<double>(hi), expected, &v));
    if (v != std::floor(v)) return Error(name, expected, Num(v));
    *out = static_cast<int32_t>(v);
    return Status::Ok();
  }

  Status Ints(const char* name, size_t count, int64_t lo, int64_t hi, int32_t* out) const {
    const FieldView* f = Find(name);
    std::vector<double> v;
    RK_RETURN_IF_ERROR(Numbers(*f, &v));
    if (v.size() != count) return Error(name, std::to_string(count) + " integers", std::to_string(v.size()) + " values");
    for (size_t i = 0; i < count; ++i) {
      if (!(v[i] >= static_cast<double>(lo) && v[i] <= static_cast<double>(hi)) || v[i] != std::floor(v[i])) {
        return Error(name, "integers in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]",
                     Num(v[i]) + " at index " + std::to_string(i));
      }
      out[i] = static_cast<int32_t>(v[i]);
    }
    return Status::Ok();
  }

  template <typename E, size_t N>
  Status Choice(const char* name, const char* const (&names)[N], const E (&values)[N], E* out) const {
    const FieldView* f = Find(name);
    std::string list;
    for (size_t i = 0; i < N; ++i) list += (i ? ", " : "") + Quote(names[i]);
    if (!IsString(*f)) return Error(name, "a string: one of " + list, std::string("type ") + FieldTypeName(f->type));
    const std::string s = String(*f);
    for (size_t i = 0; i < N; ++i) {
      if (s == names[i]) {
        *out = values[i];
        return Status::Ok();
      }
    }
    return Error(name, "one of " + list, Quote(s));
  }

 private:
  PluginKind kind_;
  const FieldView* fields_;
  int32_t count_;
};

bool Needs(PluginKind kind, const bool (&mask)[3]) { return mask[static_cast<int>(kind)]; }

}  // namespace

const char* FieldTypeName(FieldType t) {
  switch (t) {
    case FieldType::kFloat16: return "float16";
    case FieldType::kFloat32: return "float32";
    case FieldType::kFloat64: return "float64";
    case FieldType::kInt8: return "int8";
    case FieldType::kInt16: return "int16";
    case FieldType::kInt32: return "int32";
    case FieldType::kChar: return "char";
    case FieldType::kDims: return "dims";
    case FieldType::kBF16: return "bfloat16";
    case FieldType::kInt64: return "int64";
    default: return "unknown";
  }
}

const char* PluginName(PluginKind kind) {
  switch (kind) {
    case PluginKind::kPostprocess: return "RetinaNetPostprocess";
    case PluginKind::kDecode: return "RetinaNetDecode";
    case PluginKind::kNms: return "RetinaNetNMS";
  }
  return "RetinaNet?";
}

const std::vector<FieldSpec>& FieldSpecs() { return Specs(); }

Status ParseFields(PluginKind kind, const FieldView* fields, int32_t count, PluginConfig* out) {
  if (count < 0 || (count > 0 && fields == nullptr)) {
    return Status(Code::kInvalidArgument, std::string(PluginName(kind)) + ": expected a field collection but received " +
                                              (fields == nullptr ? "a null one" : std::to_string(count) + " fields"));
  }
  Parser p(kind, fields, count);
  RK_RETURN_IF_ERROR(p.CheckNames());
  PluginConfig c;
  PostprocessParams& pp = c.params;

  if (const FieldView* f = p.Find("serial_version")) {
    int32_t v = 0;
    RK_RETURN_IF_ERROR(p.Int("serial_version", 0, INT32_MAX, &v));
    if (v != kSerialVersion) {
      return p.Error(f->name, "serial_version " + std::to_string(kSerialVersion) +
                                  " (the version this plugin library writes; rebuild the engine with it)",
                     std::to_string(v));
    }
  }
  {
    const FieldView* f = p.Find("preset");
    if (!p.IsString(*f)) return p.Error("preset", "a string", std::string("type ") + FieldTypeName(f->type));
    c.preset = p.String(*f);
    if (c.preset != "torchvision" && c.preset != "detectron2" && c.preset != "odtk" && c.preset != "custom") {
      return p.Error("preset", "one of \"torchvision\", \"detectron2\", \"odtk\", \"custom\"", Quote(c.preset));
    }
  }
  if (p.Find("num_classes") != nullptr) {
    RK_RETURN_IF_ERROR(p.Int("num_classes", Needs(kind, kNmsOnly) ? 1 : 0, 100000, &pp.num_classes));
  }
  RK_RETURN_IF_ERROR(p.Int("topk_candidates", 1, 100000, &pp.select.topk_candidates));
  RK_RETURN_IF_ERROR(p.Int("pixel_offset", 0, 1, &pp.decode.pixel_offset));
  {
    static const char* const names[] = {"none", "image_before_nms", "canvas_in_decode", "output_after_nms"};
    static const ClipMode values[] = {ClipMode::kNone, ClipMode::kImageBeforeNms, ClipMode::kCanvasInDecode,
                                      ClipMode::kOutputAfterNms};
    RK_RETURN_IF_ERROR(p.Choice("clip_boxes", names, values, &pp.decode.clip));
  }

  if (Needs(kind, kNmsSide)) {
    RK_RETURN_IF_ERROR(p.Number("nms_thresh", 0, 1, "a number in [0, 1]", &pp.nms.iou_thresh));
    RK_RETURN_IF_ERROR(p.Int("detections_per_img", 1, 100000, &pp.output.detections_per_img));
    int32_t remove = 0;
    RK_RETURN_IF_ERROR(p.Int("remove_empty_boxes", 0, 1, &remove));
    pp.output.remove_empty = remove == 1;
    static const char* const algos[] = {"torchvision_batched", "greedy_per_class"};
    static const NmsAlgorithm algo_values[] = {NmsAlgorithm::kTorchvisionBatched, NmsAlgorithm::kGreedyPerClass};
    RK_RETURN_IF_ERROR(p.Choice("nms_algorithm", algos, algo_values, &pp.nms.algorithm));
    static const char* const devices[] = {"cpu", "cuda"};
    static const NmsDevice device_values[] = {NmsDevice::kCpu, NmsDevice::kCuda};
    RK_RETURN_IF_ERROR(p.Choice("torchvision_nms_device", devices, device_values, &pp.nms.torchvision_device));
    // torchvision's CPU kernel compares the f32 IoU with the Python float; CUDA kernels and ODTK in f32.
    pp.nms.compare_in_double =
        pp.nms.algorithm == NmsAlgorithm::kTorchvisionBatched && pp.nms.torchvision_device == NmsDevice::kCpu;
  }

  if (Needs(kind, kHeads)) {
    RK_RETURN_IF_ERROR(p.Int("num_levels", 1, kMaxLevels, &c.num_levels));
    const int L = c.num_levels;
    RK_RETURN_IF_ERROR(p.Number("score_thresh", 0, 1, "a number in [0, 1]", &pp.select.score_thresh));
    c.class_thresh.clear();
    if (const FieldView* f = p.Find("score_thresh_per_class")) {
      std::vector<double> t;
      RK_RETURN_IF_ERROR(p.Numbers(*f, &t));
      if (t.empty() || t.size() > 100000 || (pp.num_classes > 0 && static_cast<int64_t>(t.size()) != pp.num_classes)) {
        return p.Error("score_thresh_per_class", pp.num_classes > 0 ? std::to_string(pp.num_classes) + " numbers (num_classes)" : "1..100000 numbers (one per class)",
                       std::to_string(t.size()) + " numbers");
      }
      float lowest = 1.0f;
      for (size_t i = 0; i < t.size(); ++i) {
        if (!(t[i] >= 0.0 && t[i] <= 1.0)) return p.Error("score_thresh_per_class", "numbers in [0, 1]", Num(t[i]) + " at index " + std::to_string(i));
        c.class_thresh.push_back(static_cast<float>(t[i]));
        lowest = std::min(lowest, static_cast<float>(t[i]));
      }
      pp.select.score_thresh = lowest;
    }
    static const char* const inputs[] = {"logits", "probabilities"};
    static const ScoreInput input_values[] = {ScoreInput::kLogits, ScoreInput::kProbabilities};
    RK_RETURN_IF_ERROR(p.Choice("score_input", inputs, input_values, &pp.select.score_input));
    static const char* const orders[] = {"anchor_major", "class_major"};
    static const CandidateOrder order_values[] = {CandidateOrder::kAnchorMajor, CandidateOrder::kClassMajor};
    RK_RETURN_IF_ERROR(p.Choice("candidate_order", orders, order_values, &pp.select.candidate_order));

    AnchorParams& a = pp.anchors;
    static const char* const cells[] = {"torchvision", "detectron2", "odtk"};
    static const AnchorCell cell_values[] = {AnchorCell::kTorchvision, AnchorCell::kDetectron2, AnchorCell::kOdtk};
    RK_RETURN_IF_ERROR(p.Choice("anchor_cell", cells, cell_values, &a.cell));
    static const char* const aorders[] = {"ratio_major", "size_major"};
    static const AnchorOrder aorder_values[] = {AnchorOrder::kRatioMajor, AnchorOrder::kSizeMajor};
    RK_RETURN_IF_ERROR(p.Choice("anchor_order", aorders, aorder_values, &a.order));
    std::vector<double> v;
    RK_RETURN_IF_ERROR(p.Numbers(*p.Find("anchor_sizes"), &v));
    if (v.empty() || v.size() % static_cast<size_t>(L) != 0 || v.size() / L > static_cast<size_t>(kMaxSizes)) {
      return p.Error("anchor_sizes", "num_levels (" + std::to_string(L) + ") x 1.." + std::to_string(kMaxSizes) +
                                         " sizes", std::to_string(v.size()) + " values");
    }
    a.num_sizes = static_cast<int32_t>(v.size() / L);
    for (size_t i = 0; i < v.size(); ++i) {
      if (!(v[i] > 0) || !std::isfinite(v[i])) {
        return p.Error("anchor_sizes", "finite numbers > 0", Num(v[i]) + " at index " + std::to_string(i));
      }
      a.sizes[i / a.num_sizes][i % a.num_sizes] = v[i];
    }
    RK_RETURN_IF_ERROR(p.Numbers(*p.Find("aspect_ratios"), &v));
    if (v.empty() || v.size() > static_cast<size_t>(kMaxRatios)) {
      return p.Error("aspect_ratios", "1.." + std::to_string(kMaxRatios) + " ratios", std::to_string(v.size()) + " values");
    }
    a.num_ratios = static_cast<int32_t>(v.size());
    std::copy(v.begin(), v.end(), a.ratios);
    const FieldView* strides = p.Find("anchor_strides");
    if (p.IsString(*strides) && p.String(*strides) == "padded_size") {
      if (a.cell == AnchorCell::kOdtk) {
        return p.Error("anchor_strides", "per-level strides with anchor_cell \"odtk\"", "\"padded_size\"");
      }
      a.strides_from_padded_size = true;
    } else {
      RK_RETURN_IF_ERROR(p.Numbers(*strides, &v));
      if (v.size() != static_cast<size_t>(L)) {
        return p.Error("anchor_strides", std::to_string(L) + " strides (num_levels)", std::to_string(v.size()) + " values");
      }
      for (int l = 0; l < L; ++l) {
        if (!(v[l] > 0) || !std::isfinite(v[l])) return p.Error("anchor_strides", "finite numbers > 0", Num(v[l]));
        a.strides[l] = v[l];
      }
      a.strides_from_padded_size = false;
    }
    RK_RETURN_IF_ERROR(p.Number("anchor_offset", -1, 1, "a number in [-1, 1]", &a.offset));

    RK_RETURN_IF_ERROR(p.Numbers(*p.Find("box_coder_weights"), &v));
    if (v.size() != 4) return p.Error("box_coder_weights", "4 numbers", std::to_string(v.size()) + " values");
    for (int i = 0; i < 4; ++i) pp.decode.weights[i] = static_cast<float>(v[i]);
    const FieldView* clip = p.Find("bbox_xform_clip");
    if (p.IsString(*clip) && p.String(*clip) == "none") {
      pp.decode.clamp_dwdh = false;
      pp.decode.bbox_xform_clip = 0;
    } else {
      RK_RETURN_IF_ERROR(p.Number("bbox_xform_clip", -1e9, 1e9, "a finite number or the string \"none\"",
                                  &pp.decode.bbox_xform_clip));
      pp.decode.clamp_dwdh = true;
    }

    static const char* const layouts[] = {"concatenated", "per_level"};
    static const Layout layout_values[] = {Layout::kConcatenated, Layout::kPerLevel};
    RK_RETURN_IF_ERROR(p.Choice("layout", layouts, layout_values, &c.layout));
    int32_t padded[2] = {0, 0};
    RK_RETURN_IF_ERROR(p.Ints("padded_size", 2, 1, 1 << 20, padded));
    c.padded_height = padded[0];
    c.padded_width = padded[1];
    if (p.Find("level_sizes") != nullptr) {
      int32_t sizes[2 * kMaxLevels] = {};
      RK_RETURN_IF_ERROR(p.Ints("level_sizes", static_cast<size_t>(2 * L), 1, 1 << 20, sizes));
      for (int l = 0; l < L; ++l) c.level_sizes[l] = LevelShape{sizes[2 * l], sizes[2 * l + 1]};
      c.has_level_sizes = true;
    } else if (c.layout == Layout::kConcatenated) {
      return Status(Code::kInvalidArgument,
                    std::string(PluginName(kind)) + ": missing plugin field \"level_sizes\" (int32: " +
                        std::to_string(2 * L) + " values, (H, W) of each level), required with layout \"concatenated\"");
    }
    c.image_height = c.padded_height;
    c.image_width = c.padded_width;
  }
  if (p.Find("image_size") != nullptr) {
    int32_t size[2] = {0, 0};
    RK_RETURN_IF_ERROR(p.Ints("image_size", 2, 1, 1 << 20, size));
    c.image_height = size[0];
    c.image_width = size[1];
  }

  // The core's own domain checks (their messages name the same keys); K may come from the head.
  PostprocessParams check = pp;
  if (check.num_classes == 0) check.num_classes = 1;
  if (!Needs(kind, kHeads)) check.anchors = AnchorParams{};
  if (!Needs(kind, kHeads)) check.anchors.num_sizes = 1, check.anchors.num_ratios = 1, check.anchors.ratios[0] = 1;
  Status s = ValidateParams(check);
  if (!s.ok()) return Status(s.code(), std::string(PluginName(kind)) + ": " + s.message());
  *out = c;
  return Status::Ok();
}

namespace {

void AddString(std::vector<OwnedField>* out, const char* name, const std::string& value) {
  OwnedField f;
  f.name = name;
  f.type = FieldType::kChar;
  f.length = static_cast<int32_t>(value.size());
  f.bytes.assign(value.begin(), value.end());
  f.bytes.push_back(0);
  out->push_back(std::move(f));
}

template <typename T>
void AddNumbers(std::vector<OwnedField>* out, const char* name, FieldType type, const std::vector<T>& values) {
  OwnedField f;
  f.name = name;
  f.type = type;
  f.length = static_cast<int32_t>(values.size());
  f.bytes.resize(values.size() * sizeof(T));
  if (!values.empty()) std::memcpy(f.bytes.data(), values.data(), f.bytes.size());
  out->push_back(std::move(f));
}

void AddDouble(std::vector<OwnedField>* out, const char* name, double v) {
  AddNumbers<double>(out, name, FieldType::kFloat64, {v});
}
void AddInt(std::vector<OwnedField>* out, const char* name, int32_t v) {
  AddNumbers<int32_t>(out, name, FieldType::kInt32, {v});
}

}  // namespace

const char* ClipModeName(ClipMode m) {
  switch (m) {
    case ClipMode::kNone: return "none";
    case ClipMode::kImageBeforeNms: return "image_before_nms";
    case ClipMode::kCanvasInDecode: return "canvas_in_decode";
    case ClipMode::kOutputAfterNms: return "output_after_nms";
  }
  return "none";
}

std::vector<FieldView> Views(const std::vector<OwnedField>& fields) {
  std::vector<FieldView> views;
  views.reserve(fields.size());
  for (const OwnedField& f : fields) {
    views.push_back(FieldView{f.name.c_str(), f.bytes.empty() ? nullptr : f.bytes.data(), f.type, f.length});
  }
  return views;
}

std::vector<OwnedField> ToFields(PluginKind kind, const PluginConfig& c) {
  const PostprocessParams& pp = c.params;
  std::vector<OwnedField> out;
  AddString(&out, "preset", c.preset);
  if (pp.num_classes > 0) AddInt(&out, "num_classes", pp.num_classes);
  AddInt(&out, "topk_candidates", pp.select.topk_candidates);
  AddInt(&out, "pixel_offset", pp.decode.pixel_offset);
  AddString(&out, "clip_boxes", ClipModeName(pp.decode.clip));
  if (Needs(kind, kNmsSide)) {
    AddDouble(&out, "nms_thresh", pp.nms.iou_thresh);
    AddInt(&out, "detections_per_img", pp.output.detections_per_img);
    AddInt(&out, "remove_empty_boxes", pp.output.remove_empty ? 1 : 0);
    AddString(&out, "nms_algorithm", pp.nms.algorithm == NmsAlgorithm::kTorchvisionBatched ? "torchvision_batched" : "greedy_per_class");
    AddString(&out, "torchvision_nms_device", pp.nms.torchvision_device == NmsDevice::kCpu ? "cpu" : "cuda");
  }
  if (Needs(kind, kHeads)) {
    const AnchorParams& a = pp.anchors;
    const int L = c.num_levels;
    AddInt(&out, "num_levels", L);
    AddDouble(&out, "score_thresh", pp.select.score_thresh);
    if (!c.class_thresh.empty()) AddNumbers(&out, "score_thresh_per_class", FieldType::kFloat32, c.class_thresh);
    AddString(&out, "score_input", pp.select.score_input == ScoreInput::kLogits ? "logits" : "probabilities");
    AddString(&out, "candidate_order", pp.select.candidate_order == CandidateOrder::kAnchorMajor ? "anchor_major" : "class_major");
    AddString(&out, "anchor_cell", a.cell == AnchorCell::kTorchvision ? "torchvision" : a.cell == AnchorCell::kDetectron2 ? "detectron2" : "odtk");
    AddString(&out, "anchor_order", a.order == AnchorOrder::kRatioMajor ? "ratio_major" : "size_major");
    std::vector<double> sizes;
    for (int l = 0; l < L; ++l) sizes.insert(sizes.end(), a.sizes[l], a.sizes[l] + a.num_sizes);
    AddNumbers(&out, "anchor_sizes", FieldType::kFloat64, sizes);
    AddNumbers(&out, "aspect_ratios", FieldType::kFloat64, std::vector<double>(a.ratios, a.ratios + a.num_ratios));
    if (a.strides_from_padded_size) {
      AddString(&out, "anchor_strides", "padded_size");
    } else {
      AddNumbers(&out, "anchor_strides", FieldType::kFloat64, std::vector<double>(a.strides, a.strides + L));
    }
    AddDouble(&out, "anchor_offset", a.offset);
    std::vector<double> weights(pp.decode.weights, pp.decode.weights + 4);
    AddNumbers(&out, "box_coder_weights", FieldType::kFloat64, weights);
    if (pp.decode.clamp_dwdh) {
      AddDouble(&out, "bbox_xform_clip", pp.decode.bbox_xform_clip);
    } else {
      AddString(&out, "bbox_xform_clip", "none");
    }
    AddString(&out, "layout", c.layout == Layout::kConcatenated ? "concatenated" : "per_level");
    AddNumbers<int32_t>(&out, "padded_size", FieldType::kInt32, {c.padded_height, c.padded_width});
    if (c.has_level_sizes) {
      std::vector<int32_t> ls;
      for (int l = 0; l < L; ++l) ls.push_back(c.level_sizes[l].height), ls.push_back(c.level_sizes[l].width);
      AddNumbers(&out, "level_sizes", FieldType::kInt32, ls);
    }
  }
  if (c.image_height > 0 && c.image_width > 0 &&
      (!Needs(kind, kHeads) || c.image_height != c.padded_height || c.image_width != c.padded_width)) {
    AddNumbers<int32_t>(&out, "image_size", FieldType::kInt32, {c.image_height, c.image_width});
  }
  AddInt(&out, "serial_version", kSerialVersion);
  return out;
}

Status HeadShapesFromDims(const PluginConfig& c, const DimsView* cls, const DimsView* box, int32_t count,
                          HeadShapes* shapes) {
  auto dims = [](const DimsView& d) {
    std::string s = "[";
    for (int i = 0; i < d.nb; ++i) s += (i ? ", " : "") + std::to_string(d.d[i]);
    return s + "]";
  };
  auto shape_error = [](const std::string& what, const std::string& expected, const std::string& got) {
    return Status(Code::kShapeMismatch, "input " + what + ": expected " + expected + " but received " + got);
  };
  HeadShapes s;
  const int L = c.num_levels;
  const int32_t A = c.params.anchors.AnchorsPerLocation();
  s.num_levels = L;
  s.anchors_per_loc = A;
  s.padded_height = c.padded_height;
  s.padded_width = c.padded_width;
  if (c.layout == Layout::kConcatenated) {
    if (count != 1) return shape_error("heads", "one class and one box tensor (layout concatenated)", std::to_string(count) + " of each");
    if (cls[0].nb != 3) return shape_error("0 (class logits)", "[N, sum(H*W*A), K]", dims(cls[0]));
    if (box[0].nb != 3 || box[0].d[2] != 4) return shape_error("1 (box deltas)", "[N, sum(H*W*A), 4]", dims(box[0]));
    s.batch = static_cast<int32_t>(cls[0].d[0]);
    s.num_classes = static_cast<int32_t>(cls[0].d[2]);
    int64_t rows = 0;
    for (int l = 0; l < L; ++l) {
      s.levels[l] = c.level_sizes[l];
      rows += static_cast<int64_t>(c.level_sizes[l].height) * c.level_sizes[l].width * A;
    }
    if (cls[0].d[1] != rows) {
      return shape_error("0 (class logits)", "[N, " + std::to_string(rows) + ", K] (sum of level_sizes H*W times " +
                                                 std::to_string(A) + " anchors)", dims(cls[0]));
    }
    if (box[0].d[0] != cls[0].d[0] || box[0].d[1] != rows) {
      return shape_error("1 (box deltas)", "[" + std::to_string(cls[0].d[0]) + ", " + std::to_string(rows) + ", 4]", dims(box[0]));
    }
  } else {
    if (count != L) return shape_error("heads", std::to_string(L) + " class and " + std::to_string(L) + " box tensors (layout per_level)", std::to_string(count) + " of each");
    for (int l = 0; l < L; ++l) {
      const DimsView& cd = cls[l];
      const DimsView& bd = box[l];
      const std::string lv = std::to_string(l);
      if (cd.nb != 4 || cd.d[1] % A != 0) return shape_error(lv + " (class logits of level " + lv + ")", "[N, A*K, H, W] with A = " + std::to_string(A), dims(cd));
      if (l == 0) {
        s.batch = static_cast<int32_t>(cd.d[0]);
        s.num_classes = static_cast<int32_t>(cd.d[1] / A);
      }
      const std::string want_cls = "[" + std::to_string(s.batch) + ", " + std::to_string(int64_t{A} * s.num_classes) + ", H, W]";
      if (cd.d[0] != s.batch || cd.d[1] != int64_t{A} * s.num_classes) return shape_error(lv + " (class logits of level " + lv + ")", want_cls, dims(cd));
      const std::string want_box = "[" + std::to_string(s.batch) + ", " + std::to_string(4 * A) + ", " + std::to_string(cd.d[2]) + ", " + std::to_string(cd.d[3]) + "]";
      if (bd.nb != 4 || bd.d[0] != s.batch || bd.d[1] != 4 * A || bd.d[2] != cd.d[2] || bd.d[3] != cd.d[3]) {
        return shape_error(std::to_string(L + l) + " (box deltas of level " + lv + ")", want_box, dims(bd));
      }
      s.levels[l] = LevelShape{static_cast<int32_t>(cd.d[2]), static_cast<int32_t>(cd.d[3])};
      if (c.has_level_sizes && (s.levels[l].height != c.level_sizes[l].height || s.levels[l].width != c.level_sizes[l].width)) {
        return shape_error(lv + " (class logits of level " + lv + ")",
                           "H, W = " + std::to_string(c.level_sizes[l].height) + ", " + std::to_string(c.level_sizes[l].width) + " (level_sizes)",
                           dims(cd));
      }
    }
  }
  if (c.params.num_classes > 0 && s.num_classes != c.params.num_classes) {
    return shape_error("0 (class logits)", std::to_string(c.params.num_classes) + " classes (num_classes)",
                       std::to_string(s.num_classes) + " classes in " + dims(cls[0]));
  }
  *shapes = s;
  return Status::Ok();
}

}  // namespace trt
}  // namespace rk
