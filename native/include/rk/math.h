// The float32 arithmetic of every preset, written once for the host and the device so that the CPU
// and CUDA backends compute the same bits. Each operation is a separate f32 rounding, in the order
// the framework evaluates it (SPEC sections given); CUDA code is built with --fmad=false so that no
// multiply-add is contracted. The TypeScript reference (kernel/postprocess/reference.ts) mirrors it.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "rk/params.h"

#if defined(__CUDACC__)
#define RK_HD __host__ __device__ __forceinline__
#else
#define RK_HD inline
#endif

namespace rk {

struct Box {
  float x1, y1, x2, y2;
};

RK_HD float BitsToFloat(uint32_t bits) {
  float f;
  memcpy(&f, &bits, sizeof f);
  return f;
}

RK_HD uint32_t FloatToBits(float f) {
  uint32_t bits;
  memcpy(&bits, &f, sizeof bits);
  return bits;
}

// IEEE binary16 -> binary32, exact (subnormals, infinities and NaN kept).
RK_HD float HalfToFloat(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exponent = (h >> 10) & 0x1Fu;
  uint32_t mantissa = h & 0x3FFu;
  if (exponent == 0x1Fu) return BitsToFloat(sign | 0x7F800000u | (mantissa << 13));
  if (exponent == 0) {
    if (mantissa == 0) return BitsToFloat(sign);
    // Subnormal: normalise the mantissa.
    int shift = 0;
    while ((mantissa & 0x400u) == 0) {
      mantissa <<= 1;
      ++shift;
    }
    mantissa &= 0x3FFu;
    exponent = static_cast<uint32_t>(1 - shift);
  }
  return BitsToFloat(sign | ((exponent + 112u) << 23) | (mantissa << 13));
}

// exp rounded once to f32. Evaluating in f64 and rounding gives the correctly rounded expf except
// in vanishingly rare double-rounding cases, on the host, on the device and in JavaScript alike.
RK_HD float ExpF32(float x) { return static_cast<float>(exp(static_cast<double>(x))); }

// torch.sigmoid on f32: 1 / (1 + exp(-x)), three roundings (SPEC 1(4)).
RK_HD float SigmoidF32(float x) {
  const float e = ExpF32(-x);
  const float d = 1.0f + e;
  return 1.0f / d;
}

// A logit value c with: SigmoidF32(x) >= s implies x > c. Used to prefilter in logit space; the
// decision itself is always made on SigmoidF32. The margin covers the three f32 roundings.
RK_HD float LogitLowerBound(float s) {
  if (!(s > 0.0f)) return -INFINITY;
  const double lo = static_cast<double>(s) * (1.0 - 1.0e-6);  // > 3 ulp of f32 below s
  if (lo >= 1.0 - 1.0e-7) return 15.0f;  // s within f32 rounding of 1: saturated logits tie there
  const double logit = log(lo / (1.0 - lo)) - 1.0e-4;
  return static_cast<float>(logit);
}

// torch.clamp(x, max=m): NaN passes through.
RK_HD float ClampMax(float x, float m) { return x > m ? m : x; }
// std::max / std::min as torchvision's CPU kernels call them: (a < b) ? b : a.
RK_HD float MaxLikeStd(float a, float b) { return a < b ? b : a; }
RK_HD float MinLikeStd(float a, float b) { return b < a ? b : a; }

// Anchor of one location = f32(shift) + f32 cell (SPEC 1(2), 2(2), 3(4)): torchvision adds an
// integer shift, Detectron2 an f32 arange computed in f64, ODTK x*s as an integer; all are
// f32((offset + x) * stride) with offset*stride evaluated first in f64.
RK_HD float GridShift(double offset, double stride, int32_t index) {
  return static_cast<float>(offset * stride + stride * static_cast<double>(index));
}

RK_HD Box ShiftCell(const float cell[4], float shift_x, float shift_y) {
  return Box{shift_x + cell[0], shift_y + cell[1], shift_x + cell[2], shift_y + cell[3]};
}

// Box decode. pixel_offset 0: torchvision BoxCoder.decode_single / Detectron2 apply_deltas (SPEC
// 1(3)); pixel_offset 1: ODTK decode.cu with its +1 convention and canvas clamps (SPEC 3(3)).
RK_HD Box DecodeBox(const Box& a, float dx, float dy, float dw, float dh, const DecodeParams& p,
                    float canvas_w, float canvas_h) {
  if (p.pixel_offset == 0) {
    const float widths = a.x2 - a.x1;
    const float heights = a.y2 - a.y1;
    const float ctr_x = a.x1 + 0.5f * widths;
    const float ctr_y = a.y1 + 0.5f * heights;
    dx = dx / p.weights[0];
    dy = dy / p.weights[1];
    dw = dw / p.weights[2];
    dh = dh / p.weights[3];
    if (p.clamp_dwdh) {
      const float clip = static_cast<float>(p.bbox_xform_clip);
      dw = ClampMax(dw, clip);
      dh = ClampMax(dh, clip);
    }
    const float pred_ctr_x = dx * widths + ctr_x;
    const float pred_ctr_y = dy * heights + ctr_y;
    const float pred_w = ExpF32(dw) * widths;
    const float pred_h = ExpF32(dh) * heights;
    const float half_w = 0.5f * pred_w;
    const float half_h = 0.5f * pred_h;
    Box b{pred_ctr_x - half_w, pred_ctr_y - half_h, pred_ctr_x + half_w, pred_ctr_y + half_h};
    if (p.clip == ClipMode::kCanvasInDecode) {
      b.x1 = fmaxf(0.0f, b.x1);
      b.y1 = fmaxf(0.0f, b.y1);
      b.x2 = fminf(b.x2, canvas_w - 1.0f);
      b.y2 = fminf(b.y2, canvas_h - 1.0f);
    }
    return b;
  }
  // ODTK: no weights, no dw/dh clamp unless asked for.
  const float w = a.x2 - a.x1 + 1.0f;
  const float h = a.y2 - a.y1 + 1.0f;
  if (p.clamp_dwdh) {
    const float clip = static_cast<float>(p.bbox_xform_clip);
    dw = ClampMax(dw, clip);
    dh = ClampMax(dh, clip);
  }
  const float pred_ctr_x = dx * w + a.x1 + 0.5f * w;
  const float pred_ctr_y = dy * h + a.y1 + 0.5f * h;
  const float pred_w = ExpF32(dw) * w;
  const float pred_h = ExpF32(dh) * h;
  Box b{pred_ctr_x - 0.5f * pred_w, pred_ctr_y - 0.5f * pred_h, pred_ctr_x + 0.5f * pred_w - 1.0f,
        pred_ctr_y + 0.5f * pred_h - 1.0f};
  if (p.clip == ClipMode::kCanvasInDecode) {
    b.x1 = fmaxf(0.0f, b.x1);
    b.y1 = fmaxf(0.0f, b.y1);
    b.x2 = fminf(b.x2, canvas_w - 1.0f);
    b.y2 = fminf(b.y2, canvas_h - 1.0f);
  }
  return b;
}

// torchvision clip_boxes_to_image: clamp(min=0, max=size), NaN kept.
RK_HD float ClampLikeTorch(float v, float lo, float hi) {
  v = v < lo ? lo : v;
  return v > hi ? hi : v;
}

RK_HD Box ClipBox(const Box& b, float height, float width) {
  return Box{ClampLikeTorch(b.x1, 0.0f, width), ClampLikeTorch(b.y1, 0.0f, height),
             ClampLikeTorch(b.x2, 0.0f, width), ClampLikeTorch(b.y2, 0.0f, height)};
}

// Detectron2's last step (SPEC 2(6)): scale from the image size (h, w) to the output size (oh, ow)
// when one is given (ratios rounded once from f64), then clip to the output (or image) size.
// output_hw: null, or a pointer to (oh, ow).
RK_HD Box RescaleAndClip(const Box& b, int32_t image_h, int32_t image_w, const int32_t* output_hw) {
  if (output_hw == nullptr) return ClipBox(b, static_cast<float>(image_h), static_cast<float>(image_w));
  const int32_t oh = output_hw[0], ow = output_hw[1];
  const float sx = static_cast<float>(static_cast<double>(ow) / image_w);
  const float sy = static_cast<float>(static_cast<double>(oh) / image_h);
  return ClipBox(Box{b.x1 * sx, b.y1 * sy, b.x2 * sx, b.y2 * sy}, static_cast<float>(oh), static_cast<float>(ow));
}

// Box area with the optional +1 convention: ((x2 - x1) + off) * ((y2 - y1) + off).
RK_HD float BoxArea(const Box& b, float off) { return (b.x2 - b.x1 + off) * (b.y2 - b.y1 + off); }

// IoU of the kept box `k` and a later candidate `c`, as torchvision's nms_kernel (off 0) and
// ODTK's nms_kernel (off 1) evaluate it: inter / ((area_k + area_c) - inter).
RK_HD float Iou(const Box& k, float area_k, const Box& c, float area_c, float off) {
  const float xx1 = MaxLikeStd(k.x1, c.x1);
  const float yy1 = MaxLikeStd(k.y1, c.y1);
  const float xx2 = MinLikeStd(k.x2, c.x2);
  const float yy2 = MinLikeStd(k.y2, c.y2);
  const float w = MaxLikeStd(0.0f, xx2 - xx1 + off);
  const float h = MaxLikeStd(0.0f, yy2 - yy1 + off);
  const float inter = w * h;
  return inter / (area_k + area_c - inter);
}

RK_HD bool Suppresses(float iou, double thresh, bool compare_in_double) {
  return compare_in_double ? static_cast<double>(iou) > thresh : iou > static_cast<float>(thresh);
}

}  // namespace rk
