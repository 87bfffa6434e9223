// Anchor generation (SPEC 1(2), 2(2), 3(2)): the cell anchors of each level and the strides.
#include <cmath>
#include <string>

#include "rk/stages.h"

namespace rk {
namespace {

// torchvision AnchorGenerator.generate_anchors, f32 throughout, round half to even.
void CellTorchvision(double size, double ratio, float out[4]) {
  const float scale = static_cast<float>(size);
  const float h_ratio = std::sqrt(static_cast<float>(ratio));
  const float w_ratio = 1.0f / h_ratio;
  const float ws = w_ratio * scale;
  const float hs = h_ratio * scale;
  const float c[4] = {-ws / 2.0f, -hs / 2.0f, ws / 2.0f, hs / 2.0f};
  for (int i = 0; i < 4; ++i) out[i] = std::nearbyint(c[i]);  // default rounding: ties to even
}

// Detectron2 DefaultAnchorGenerator.generate_cell_anchors, f64, each corner rounded once to f32.
void CellDetectron2(double size, double ratio, float out[4]) {
  const double area = size * size;
  const double w = std::sqrt(area / ratio);
  const double h = ratio * w;
  out[0] = static_cast<float>(-w / 2.0);
  out[1] = static_cast<float>(-h / 2.0);
  out[2] = static_cast<float>(w / 2.0);
  out[3] = static_cast<float>(h / 2.0);
}

// ODTK generate_anchors: f32, scale c relative to the stride s, centred at s/2.
void CellOdtk(double stride, double scale, double ratio, float out[4]) {
  const float s = static_cast<float>(stride);
  const float r = static_cast<float>(ratio);
  const float c = static_cast<float>(scale);
  const float ws = std::sqrt(s * s / r);
  const float hs = ws * r;
  const float dw = ws * c;
  const float dh = hs * c;
  out[0] = 0.5f * (s - dw);
  out[1] = 0.5f * (s - dh);
  out[2] = 0.5f * (s + dw);
  out[3] = 0.5f * (s + dh);
}

}  // namespace

Status MakeAnchorGrid(const AnchorParams& p, const HeadShapes& s, AnchorGrid* grid) {
  const int A = p.AnchorsPerLocation();
  if (A != s.anchors_per_loc) {
    return Status(Code::kShapeMismatch,
                  "Expected " + std::to_string(A) + " anchors per location (sizes x ratios) but the "
                  "head has " + std::to_string(s.anchors_per_loc));
  }
  grid->num_levels = s.num_levels;
  grid->anchors_per_loc = A;
  grid->offset = p.offset;
  for (int l = 0; l < s.num_levels; ++l) {
    if (p.strides_from_padded_size) {
      if (s.padded_height <= 0 || s.padded_width <= 0) {
        return Status(Code::kInvalidArgument,
                      "Expected padded_size (the batch tensor's H, W) for strides derived from it "
                      "but received none");
      }
      // torchvision: image_size // grid_size, integer division per axis.
      grid->stride_y[l] = static_cast<double>(s.padded_height / s.levels[l].height);
      grid->stride_x[l] = static_cast<double>(s.padded_width / s.levels[l].width);
    } else {
      grid->stride_y[l] = grid->stride_x[l] = p.strides[l];
    }
    for (int si = 0; si < p.num_sizes; ++si) {
      for (int ri = 0; ri < p.num_ratios; ++ri) {
        const int a = p.order == AnchorOrder::kRatioMajor ? ri * p.num_sizes + si
                                                          : si * p.num_ratios + ri;
        float* out = grid->cell[l][a];
        switch (p.cell) {
          case AnchorCell::kTorchvision: CellTorchvision(p.sizes[l][si], p.ratios[ri], out); break;
          case AnchorCell::kDetectron2: CellDetectron2(p.sizes[l][si], p.ratios[ri], out); break;
          case AnchorCell::kOdtk: CellOdtk(grid->stride_x[l], p.sizes[l][si], p.ratios[ri], out); break;
        }
      }
    }
  }
  return Status::Ok();
}

Status GenerateAnchors(const AnchorGrid& g, const HeadShapes& s, float* anchors) {
  int64_t row0 = 0;
  for (int l = 0; l < s.num_levels; ++l) {
    const int64_t n = s.LevelAnchors(l);
    for (int64_t row = 0; row < n; ++row) {
      const Box b = GridAnchor(g, s, l, row);
      float* out = anchors + (row0 + row) * 4;
      out[0] = b.x1;
      out[1] = b.y1;
      out[2] = b.x2;
      out[3] = b.y2;
    }
    row0 += n;
  }
  return Status::Ok();
}

}  // namespace rk
