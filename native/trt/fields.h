// The plugin fields of the TensorRT plugins, without TensorRT: parsing a list of named, typed
// values into a PluginConfig (with errors that name the field, the expected value and what was
// received) and writing a config back as the canonical field list. The plugins (plugin.cpp) use it
// for createPlugin and getFieldsToSerialize; the Node addon uses it for `%optimize --export-plugin`,
// so the exported JSON and the plugin can never disagree on a name or a type.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "rk/params.h"
#include "rk/status.h"
#include "rk/tensor.h"

namespace rk {
namespace trt {

// The same numbering as nvinfer1::PluginFieldType (static_asserted in plugin.cpp).
enum class FieldType : int32_t {
  kFloat16 = 0,
  kFloat32 = 1,
  kFloat64 = 2,
  kInt8 = 3,
  kInt16 = 4,
  kInt32 = 5,
  kChar = 6,
  kDims = 7,
  kUnknown = 8,
  kBF16 = 9,
  kInt64 = 10,
};
const char* FieldTypeName(FieldType t);

// One field as TensorRT hands it over (name, data, type, number of elements; chars need no NUL).
struct FieldView {
  const char* name = nullptr;
  const void* data = nullptr;
  FieldType type = FieldType::kUnknown;
  int32_t length = 0;
};

enum class PluginKind : int32_t { kPostprocess = 0, kDecode = 1, kNms = 2 };
const char* PluginName(PluginKind kind);  // "RetinaNetPostprocess", "RetinaNetDecode", "RetinaNetNMS"
constexpr const char* kPluginVersion = "1";
// Version of the serialized field set (the `serial_version` field); bumped when its meaning changes.
constexpr int32_t kSerialVersion = 1;

// Everything a plugin needs besides the tensors.
struct PluginConfig {
  PostprocessParams params;       // num_classes 0: taken from the class head at configure time
  // score_thresh_per_class: f32(t_c) of each class, or empty. params.select.class_thresh stays null
  // here (the plugin points its copy at device memory holding these); params.select.score_thresh is
  // then their minimum.
  std::vector<float> class_thresh;
  std::string preset = "custom";  // provenance: torchvision, detectron2, odtk or custom
  Layout layout = Layout::kConcatenated;
  int32_t num_levels = 0;
  // Feature sizes (H, W) per level: required with the concatenated layout (the tensor has only
  // sum(HWA)); with the per-level layout they come from the inputs and, when given, are checked.
  bool has_level_sizes = false;
  LevelShape level_sizes[kMaxLevels];
  int32_t padded_height = 0;  // the network input (padded batch) size
  int32_t padded_width = 0;
  // Clip size used when the plugin has no image_sizes input; default: the padded size.
  int32_t image_height = 0;
  int32_t image_width = 0;
};

// Description of one field, for IPluginCreatorV3One::getFieldNames and the docs.
struct FieldSpec {
  const char* name;
  FieldType type;     // the type written by ToFields (parsing also accepts the other numeric types)
  bool required[3];   // per PluginKind
  const char* meaning;
};
const std::vector<FieldSpec>& FieldSpecs();

// [in] the fields TensorRT passed to createPlugin; [out] config. Every unknown field, missing
// required field, wrong type and out-of-domain value is an error naming the field.
Status ParseFields(PluginKind kind, const FieldView* fields, int32_t count, PluginConfig* out);

// The canonical fields of a config: every field the kind reads, plus serial_version.
struct OwnedField {
  std::string name;
  FieldType type = FieldType::kUnknown;
  int32_t length = 0;
  std::vector<uint8_t> bytes;  // length elements (chars: length bytes plus a NUL not counted)
};
std::vector<OwnedField> ToFields(PluginKind kind, const PluginConfig& config);
// Views of owned fields (valid while they live), as ParseFields takes them.
std::vector<FieldView> Views(const std::vector<OwnedField>& fields);
// "none", "image_before_nms", "canvas_in_decode", "output_after_nms".
const char* ClipModeName(ClipMode m);

// The plugin's head shapes from its inputs' dims, checked against the config. `cls_dims` /
// `box_dims`: one entry (concatenated [N, R, K], [N, R, 4]) or one per level ([N, A*K, H, W],
// [N, A*4, H, W]); each is (nbDims, d[0..]). Fills shapes.num_classes from the head when the
// config's num_classes is 0.
struct DimsView {
  int32_t nb = 0;
  int64_t d[8] = {};
};
Status HeadShapesFromDims(const PluginConfig& config, const DimsView* cls_dims, const DimsView* box_dims,
                          int32_t count, HeadShapes* shapes);

}  // namespace trt
}  // namespace rk
