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
#if defined(__CUDA_ARCH__)
  // The device's own conversion (one cvt instruction, exact like the code below): the select pass
  // widens every half it reads, and the bit-by-bit version made fp16 heads compute-bound.
  float f;
  asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
  return f;
#else
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
#endif
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

// A decoded box clamped to the canvas [0, w - 1] x [0, h - 1] (ODTK's clamps in decode, fmaxf/fminf:
// a NaN coordinate becomes the bound).
RK_HD Box ClampToCanvas(const Box& b, float canvas_w, float canvas_h) {
  return Box{fmaxf(0.0f, b.x1), fmaxf(0.0f, b.y1), fminf(b.x2, canvas_w - 1.0f), fminf(b.y2, canvas_h - 1.0f)};
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
    const Box b{pred_ctr_x - half_w, pred_ctr_y - half_h, pred_ctr_x + half_w, pred_ctr_y + half_h};
    return p.clip == ClipMode::kCanvasInDecode ? ClampToCanvas(b, canvas_w, canvas_h) : b;
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
  const Box b{pred_ctr_x - 0.5f * pred_w, pred_ctr_y - 0.5f * pred_h, pred_ctr_x + 0.5f * pred_w - 1.0f,
              pred_ctr_y + 0.5f * pred_h - 1.0f};
  return p.clip == ClipMode::kCanvasInDecode ? ClampToCanvas(b, canvas_w, canvas_h) : b;
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

// The intersection area of boxes k and c (its width and height clamped at 0), and whether both of
// its unclamped sides are positive (a non-empty intersection).
struct Intersection {
  float area;
  bool nonempty;
};

RK_HD Intersection Intersect(const Box& k, const Box& c, float off) {
  const float xx1 = MaxLikeStd(k.x1, c.x1);
  const float yy1 = MaxLikeStd(k.y1, c.y1);
  const float xx2 = MinLikeStd(k.x2, c.x2);
  const float yy2 = MinLikeStd(k.y2, c.y2);
  const float w = xx2 - xx1 + off;
  const float h = yy2 - yy1 + off;
  return Intersection{MaxLikeStd(0.0f, w) * MaxLikeStd(0.0f, h), w > 0.0f && h > 0.0f};
}

// IoU of the kept box `k` and a later candidate `c`, as torchvision's nms_kernel (off 0) and
// ODTK's nms_kernel (off 1) evaluate it: inter / ((area_k + area_c) - inter).
RK_HD float Iou(const Box& k, float area_k, const Box& c, float area_c, float off) {
  const float inter = Intersect(k, c, off).area;
  return inter / (area_k + area_c - inter);
}

RK_HD bool Suppresses(float iou, double thresh, bool compare_in_double) {
  return compare_in_double ? static_cast<double>(iou) > thresh : iou > static_cast<float>(thresh);
}

// Suppresses(inter / uni, ...) without the division, for a threshold >= 0. The f32 IoU q =
// RN(inter / uni) passes exactly when q >= tq, the smallest float that passes; rounding is
// monotone, so that is when inter / uni >= mid, the midpoint of tq and the float below it (equal
// counts when a tie rounds to tq, i.e. tq's significand is even). For 0 < uni < inf that is
// inter >= mid * uni in f64, whose product is exact (25 and 24 significant bits). Other unions, and
// thresholds it does not cover (usable = false), take the division.
//
// Quicker still, in f32 alone (QuickSuppresses): up >= mid (1 + 2^-21) and down <= mid (1 - 2^-21),
// so that inter > f32(up * uni) proves inter / uni > mid and inter < f32(down * uni) proves it below
// (each product within 2^-24 of its value while it is a normal float: min_uni keeps it so).
struct IouCut {
  double mid = 0.0;
  bool tie_up = false;
  bool usable = false;
  float up = INFINITY, down = 0.0f, min_uni = INFINITY;  // the quick test decides nothing by default
};

inline IouCut MakeIouCut(double thresh, bool compare_in_double) {  // host
  IouCut c;
  if (!(thresh >= 0.0) || !std::isfinite(thresh)) return c;
  float tq = static_cast<float>(thresh);
  if (compare_in_double) {  // the smallest float above thresh
    while (!(static_cast<double>(tq) > thresh) && std::isfinite(tq)) tq = std::nextafter(tq, INFINITY);
    while (static_cast<double>(std::nextafter(tq, -INFINITY)) > thresh) tq = std::nextafter(tq, -INFINITY);
  } else {  // the smallest float above f32(thresh)
    tq = std::nextafter(tq, INFINITY);
  }
  if (!std::isfinite(tq) || !(tq > 0.0f)) return c;
  const float below = std::nextafter(tq, -INFINITY);
  uint32_t bits = 0;
  memcpy(&bits, &tq, sizeof bits);
  c.mid = (static_cast<double>(below) + static_cast<double>(tq)) / 2.0;
  c.tie_up = (bits & 1u) == 0;
  c.usable = true;
  const double up = c.mid * (1.0 + std::ldexp(1.0, -21)), down = c.mid * (1.0 - std::ldexp(1.0, -21));
  float fu = static_cast<float>(up), fd = static_cast<float>(down);
  if (static_cast<double>(fu) < up) fu = std::nextafter(fu, INFINITY);
  if (static_cast<double>(fd) > down) fd = std::nextafter(fd, -INFINITY);
  const double min_uni = 2.0 * std::ldexp(1.0, -126) / static_cast<double>(fd);  // down * uni >= 2 FLT_MIN
  if (fd > 0.0f && std::isfinite(fu) && min_uni < 1.0e30) {
    c.up = fu;
    c.down = fd;
    c.min_uni = std::nextafter(static_cast<float>(min_uni), INFINITY);
  }
  return c;
}

// Suppresses(inter / uni, ...) for 0 < uni < inf and a usable cut.
RK_HD bool PassesCut(const IouCut& cut, float inter, float uni) {
  const double x = static_cast<double>(inter), r = cut.mid * static_cast<double>(uni);
  return x > r || (cut.tie_up && x == r);
}

// The greedy loop's test in f32 alone, when it can decide: with the union in [min_uni, inf) no
// coordinate is NaN (a NaN makes its box's area NaN), so the std-like min / max equal fminf / fmaxf
// up to the sign of a zero, which cannot change the answer; then the two products bound the ratio.
// decided = false leaves it to SuppressesPair (NaN or huge coordinates, degenerate areas, ratios
// within 2^-20 of the cut).
struct QuickIou {
  bool decided;
  bool hit;
};

RK_HD QuickIou QuickRatio(const IouCut& cut, float inter, float uni) {
  const bool sure = uni >= cut.min_uni && uni < INFINITY;
  const bool pass = inter > cut.up * uni;
  const bool fail = inter < cut.down * uni;
  return QuickIou{sure && (pass || fail), sure && pass};
}

RK_HD QuickIou QuickSuppresses(const IouCut& cut, const Box& k, float area_k, const Box& b, float area_b, float off) {
  const float w = fmaxf(0.0f, fminf(k.x2, b.x2) - fmaxf(k.x1, b.x1) + off);
  const float h = fmaxf(0.0f, fminf(k.y2, b.y2) - fmaxf(k.y1, b.y1) + off);
  const float inter = w * h;
  return QuickRatio(cut, inter, area_k + area_b - inter);
}

// The intersection-over-union test of a kept box k and a later box b (the greedy loop's): the
// empty-intersection skip, then Suppresses(Iou(...)), through the cut when it applies.
RK_HD bool SuppressesPair(const Box& k, float area_k, const Box& b, float area_b, float off, double thresh,
                          bool compare_in_double, const IouCut& cut) {
  const Intersection x = Intersect(k, b, off);
  const float uni = area_k + area_b - x.area;
  if (cut.usable && uni > 0.0f && uni < INFINITY) return PassesCut(cut, x.area, uni);  // an empty one never passes
  return x.nonempty && Suppresses(x.area / uni, thresh, compare_in_double);
}

}  // namespace rk
