// Tests of the post-processing core without Node: hand-computed anchors, decode and NMS values, and
// invariants of the whole pipeline on random heads (thread count never changes a result, fp16
// widened equals f32, padding rows are zeros). Built and run under ASan + UBSan by
// test/sanitizers.test.ts.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "rk/engine.h"
#include "rk/math.h"
#include "rk/stages.h"

namespace {

int failures = 0;
int checks = 0;

#define CHECK(cond, ...)                                  \
  do {                                                    \
    ++checks;                                             \
    if (!(cond)) {                                        \
      ++failures;                                         \
      std::printf("FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
      std::printf(__VA_ARGS__);                           \
      std::printf("\n");                                  \
    }                                                     \
  } while (0)

rk::PostprocessParams Torchvision(int num_classes) {
  rk::PostprocessParams p;
  p.num_classes = num_classes;
  const int bases[5] = {32, 64, 128, 256, 512};
  for (int l = 0; l < 5; ++l) {
    p.anchors.sizes[l][0] = bases[l];
    p.anchors.sizes[l][1] = static_cast<int>(bases[l] * std::pow(2.0, 1.0 / 3));
    p.anchors.sizes[l][2] = static_cast<int>(bases[l] * std::pow(2.0, 2.0 / 3));
  }
  p.anchors.ratios[0] = 0.5;
  p.anchors.ratios[1] = 1.0;
  p.anchors.ratios[2] = 2.0;
  return p;
}

rk::HeadShapes Shapes(int batch, int K, int ph, int pw) {
  rk::HeadShapes s;
  s.batch = batch;
  s.num_levels = 5;
  s.anchors_per_loc = 9;
  s.num_classes = K;
  s.padded_height = ph;
  s.padded_width = pw;
  int h = ph, w = pw;
  for (int l = 0; l < 5; ++l) {
    if (l < 3) {
      s.levels[l] = {ph / (8 << l), pw / (8 << l)};
    } else {
      s.levels[l] = {(h + 1) / 2, (w + 1) / 2};
    }
    h = s.levels[l].height;
    w = s.levels[l].width;
  }
  return s;
}

void TestAnchors() {
  const rk::PostprocessParams p = Torchvision(2);
  const rk::HeadShapes s = Shapes(1, 2, 800, 1344);
  rk::AnchorGrid g;
  CHECK(rk::MakeAnchorGrid(p.anchors, s, &g).ok(), "grid");
  const float want[9][4] = {{-23, -11, 23, 11}, {-28, -14, 28, 14}, {-35, -18, 35, 18}, {-16, -16, 16, 16}, {-20, -20, 20, 20},
                            {-25, -25, 25, 25}, {-11, -23, 11, 23}, {-14, -28, 14, 28}, {-18, -35, 18, 35}};
  for (int a = 0; a < 9; ++a) {
    for (int j = 0; j < 4; ++j) CHECK(g.cell[0][a][j] == want[a][j], "P3 cell %d corner %d = %g", a, j, g.cell[0][a][j]);
  }
  CHECK(g.stride_y[3] == 61.0, "P6 stride from 800 rows over 13 = %g", g.stride_y[3]);
  const rk::Box b = rk::GridAnchor(g, s, 0, 9);  // (y 0, x 1, a 0)
  CHECK(b.x1 == -15 && b.y1 == -11 && b.x2 == 31 && b.y2 == 11, "P3 (0, 1) a0");
}

void TestDecodeAndIou() {
  rk::DecodeParams d;
  const rk::Box anchor{0, 0, 10, 20};
  const rk::Box b = rk::DecodeBox(anchor, 0.1f, -0.2f, 0.0f, std::log(2.0f), d, 0, 0);
  // widths 10, heights 20, centre (5, 10) -> (6, 6), size (10, 40)
  CHECK(std::fabs(b.x1 - 1.0f) < 1e-5f && std::fabs(b.y1 - -14.0f) < 1e-5f && std::fabs(b.x2 - 11.0f) < 1e-5f && std::fabs(b.y2 - 26.0f) < 1e-4f,
        "decode (%g, %g, %g, %g)", b.x1, b.y1, b.x2, b.y2);
  const rk::Box clamped = rk::DecodeBox(anchor, 0, 0, 100.0f, 0, d, 0, 0);
  CHECK(std::isfinite(clamped.x2) && clamped.x2 - clamped.x1 < 10.0f * 62.6f, "dw clamp");
  const rk::Box a1{0, 0, 10, 10}, a2{5, 0, 15, 10};
  CHECK(std::fabs(rk::Iou(a1, rk::BoxArea(a1, 0), a2, rk::BoxArea(a2, 0), 0) - 50.0f / 150.0f) < 1e-7f, "IoU");
  // +1 convention: widths 11, overlap 6 -> 66 / (121 + 121 - 66)
  CHECK(std::fabs(rk::Iou(a1, rk::BoxArea(a1, 1), a2, rk::BoxArea(a2, 1), 1) - 66.0f / 176.0f) < 1e-7f, "IoU +1");
  CHECK(rk::SigmoidF32(0.0f) == 0.5f, "sigmoid(0)");
  CHECK(rk::HalfToFloat(0x3C00) == 1.0f && rk::HalfToFloat(0xC000) == -2.0f && rk::HalfToFloat(0x0001) == std::ldexp(1.0f, -24), "half");
  CHECK(std::isinf(rk::HalfToFloat(0x7C00)) && std::isnan(rk::HalfToFloat(0x7E00)), "half inf/nan");
}

// The division-free IoU test agrees with the division: every threshold kind, both comparisons,
// ratios a few ulps either side of the threshold (ties included), and random box pairs.
void TestIouCut() {
  std::mt19937 rng(7);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  std::vector<double> thresholds = {0.0, 0.5, 0.3, 0.7, 0.45, 1.0, 1e-30, 0.25, static_cast<double>(0.6f), 0.6};
  for (int i = 0; i < 20; ++i) thresholds.push_back(unit(rng));
  int disagreements = 0, quick_decided = 0;
  // Both off conventions: the greedy loop's test (the skip of empty intersections, then the division),
  // against SuppressesPair and, where it decides, QuickSuppresses.
  auto check_pair = [&](const rk::Box& a, const rk::Box& b, double t, bool in_double, const rk::IouCut& cut) {
    for (const float off : {0.0f, 1.0f}) {
      const float aa = rk::BoxArea(a, off), ab = rk::BoxArea(b, off);
      const bool overlap = rk::MinLikeStd(a.x2, b.x2) - rk::MaxLikeStd(a.x1, b.x1) + off > 0.0f &&
                           rk::MinLikeStd(a.y2, b.y2) - rk::MaxLikeStd(a.y1, b.y1) + off > 0.0f;
      const bool want = overlap && rk::Suppresses(rk::Iou(a, aa, b, ab, off), t, in_double);
      if (rk::SuppressesPair(a, aa, b, ab, off, t, in_double, cut) != want) ++disagreements;
      const rk::QuickIou quick = rk::QuickSuppresses(cut, a, aa, b, ab, off);
      if (quick.decided) {
        ++quick_decided;
        if (quick.hit != want) ++disagreements;
      }
    }
  };
  for (const double t : thresholds) {
    for (const bool in_double : {true, false}) {
      const rk::IouCut cut = rk::MakeIouCut(t, in_double);
      CHECK(cut.usable, "cut for %.17g", t);
      if (!cut.usable) continue;
      for (int trial = 0; trial < 2000; ++trial) {
        // A union of any magnitude, an intersection near t * uni, walked 40 ulps either way.
        const float uni = static_cast<float>(std::ldexp(0.5 + unit(rng), static_cast<int>(unit(rng) * 80.0) - 40));
        float inter = static_cast<float>(t * uni);
        for (int k = 0; k < 40; ++k) inter = std::nextafter(inter, -INFINITY);
        for (int k = 0; k < 81; ++k, inter = std::nextafter(inter, INFINITY)) {
          const bool want = rk::Suppresses(inter / uni, t, in_double);
          if (rk::PassesCut(cut, inter, uni) != want) ++disagreements;
          const rk::QuickIou quick = rk::QuickRatio(cut, inter, uni);
          if (quick.decided && quick.hit != want) ++disagreements;
        }
      }
      // Exact ties of the f32 rounding: inter / uni == the midpoint, for uni a power of two.
      const float uni = 1024.0f;
      const float inter = static_cast<float>(cut.mid * uni);
      if (static_cast<double>(inter) == cut.mid * uni) {
        CHECK(rk::PassesCut(cut, inter, uni) == rk::Suppresses(inter / uni, t, in_double), "tie at %.17g", t);
      }
      for (int trial = 0; trial < 2000; ++trial) {
        auto box = [&] {
          const float x = static_cast<float>(unit(rng) * 100.0), y = static_cast<float>(unit(rng) * 100.0);
          return rk::Box{x, y, x + static_cast<float>(unit(rng) * 40.0), y + static_cast<float>(unit(rng) * 40.0)};
        };
        check_pair(box(), box(), t, in_double, cut);
      }
    }
  }
  // Boxes with NaN, infinite or huge coordinates, and empty or inverted ones: the quick test must
  // leave every case it cannot prove to the exact one.
  const float specials[] = {NAN, INFINITY, -INFINITY, 3.0e38f, -3.0e38f, 0.0f, -0.0f, 1.0e-30f, 5.0f, 50.0f};
  for (int trial = 0; trial < 20000; ++trial) {
    auto coord = [&] { return unit(rng) < 0.3 ? specials[static_cast<int>(unit(rng) * 10) % 10] : static_cast<float>(unit(rng) * 60.0); };
    const rk::Box a{coord(), coord(), coord(), coord()}, b{coord(), coord(), coord(), coord()};
    const double t = thresholds[static_cast<size_t>(trial) % thresholds.size()];
    check_pair(a, b, t, true, rk::MakeIouCut(t, true));
  }
  CHECK(disagreements == 0, "%d disagreements with the division", disagreements);
  CHECK(quick_decided > 100000, "the quick test decided only %d random pairs", quick_decided);
  std::printf("IoU cut: %d random pairs decided by the quick test\n", quick_decided);
  CHECK(!rk::MakeIouCut(-0.1, true).usable && !rk::MakeIouCut(NAN, true).usable, "no cut below 0 or for NaN");
  const rk::IouCut half = rk::MakeIouCut(0.5, true);
  CHECK(half.mid == 0.5 + std::ldexp(1.0, -25) && !half.tie_up, "cut of 0.5: mid %.17g", half.mid);
}

void TestNms() {
  // Three boxes of class 0 (two overlapping), one of class 1 on top of them.
  const rk::Box boxes[4] = {{0, 0, 10, 10}, {1, 1, 11, 11}, {20, 20, 30, 30}, {0, 0, 10, 10}};
  const float scores[4] = {0.9f, 0.8f, 0.7f, 0.95f};
  const int32_t labels[4] = {0, 0, 0, 1};
  for (const rk::NmsDevice dev : {rk::NmsDevice::kCpu, rk::NmsDevice::kCuda}) {
    rk::NmsParams p;
    p.iou_thresh = 0.5;
    p.torchvision_device = dev;
    std::vector<uint8_t> ws(rk::NmsWorkspaceSize(4));
    int32_t keep[4];
    const int32_t n = rk::Nms(p, 0, boxes, scores, labels, 4, keep, ws.data());
    CHECK(n == 3 && keep[0] == 3 && keep[1] == 0 && keep[2] == 2, "keep %d: %d %d %d", n, keep[0], keep[1], keep[2]);
  }
  // Per-class path (> 1000 boxes) and coordinate trick agree on separable classes.
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(0, 500);
  const int N = 1200;
  std::vector<rk::Box> bx(N);
  std::vector<float> sc(N);
  std::vector<int32_t> lb(N);
  for (int i = 0; i < N; ++i) {
    const float x = u(rng), y = u(rng), w = 5 + u(rng) / 10, h = 5 + u(rng) / 10;
    bx[i] = {x, y, x + w, y + h};
    sc[i] = u(rng) / 500;
    lb[i] = i % 7;
  }
  std::vector<uint8_t> ws(rk::NmsWorkspaceSize(N));
  std::vector<int32_t> k1(N), k2(N);
  rk::NmsParams p;
  p.torchvision_device = rk::NmsDevice::kCpu;  // 4800 coordinates > 4000: per-class
  const int32_t n1 = rk::Nms(p, 0, bx.data(), sc.data(), lb.data(), N, k1.data(), ws.data());
  p.torchvision_device = rk::NmsDevice::kCuda;  // below 100000: coordinate trick
  const int32_t n2 = rk::Nms(p, 0, bx.data(), sc.data(), lb.data(), N, k2.data(), ws.data());
  CHECK(n1 > 0 && n1 <= N, "kept %d", n1);
  // The trick's f32 shift can move an IoU across the threshold; at these magnitudes it rarely does.
  CHECK(std::abs(n1 - n2) <= 2, "paths agree closely: %d vs %d", n1, n2);
  for (int i = 1; i < n1; ++i) CHECK(sc[k1[i - 1]] >= sc[k1[i]], "sorted");
}

struct Heads {
  std::vector<float> cls, box;
  std::vector<uint16_t> cls16, box16;
  std::vector<int32_t> sizes;
};

uint16_t ToHalf(float f) {  // round to nearest even, finite inputs in range
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint32_t sign = (x >> 16) & 0x8000u;
  int e = static_cast<int>((x >> 23) & 0xFF) - 127 + 15;
  uint32_t m = x & 0x7FFFFFu;
  if (e <= 0) return static_cast<uint16_t>(sign);
  if (e >= 31) return static_cast<uint16_t>(sign | 0x7C00u);
  uint32_t h = (static_cast<uint32_t>(e) << 10) | (m >> 13);
  const uint32_t rem = m & 0x1FFFu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;
  return static_cast<uint16_t>(sign | h);
}

Heads RandomHeads(const rk::HeadShapes& s, float bg_mean, uint32_t seed) {
  Heads h;
  const size_t anchors = static_cast<size_t>(s.TotalAnchors()) * s.batch;
  h.cls.resize(anchors * s.num_classes);
  h.box.resize(anchors * 4);
  std::mt19937 rng(seed);
  std::normal_distribution<float> bg(bg_mean, 1.5f), delta(0.0f, 0.5f);
  for (float& v : h.cls) v = bg(rng);
  for (float& v : h.box) v = delta(rng);
  for (float& v : h.cls) v = rk::HalfToFloat(ToHalf(v));  // exactly representable in fp16
  for (float& v : h.box) v = rk::HalfToFloat(ToHalf(v));
  for (float v : h.cls) h.cls16.push_back(ToHalf(v));
  for (float v : h.box) h.box16.push_back(ToHalf(v));
  for (int n = 0; n < s.batch; ++n) {
    h.sizes.push_back(s.padded_height - 8 * n);
    h.sizes.push_back(s.padded_width - 16 * n);
  }
  return h;
}

struct Output {
  std::vector<int32_t> counts, labels;
  std::vector<float> boxes, scores;
  rk::Detections view;
  Output(int batch, int d) : counts(batch), labels(static_cast<size_t>(batch) * d, -7), boxes(static_cast<size_t>(batch) * d * 4, -7.0f), scores(static_cast<size_t>(batch) * d, -7.0f) {
    view = {d, counts.data(), boxes.data(), scores.data(), labels.data()};
  }
};

void TestPipeline() {
  const int K = 5;
  rk::PostprocessParams p = Torchvision(K);
  p.select.topk_candidates = 300;
  p.output.detections_per_img = 120;
  const rk::HeadShapes s = Shapes(3, K, 320, 384);
  for (const float bg : {-6.0f, -2.5f}) {
    const Heads h = RandomHeads(s, bg, 11);
    rk::HeadTensors t;
    t.cls[0] = h.cls.data();
    t.box[0] = h.box.data();
    t.image_sizes = h.sizes.data();
    std::vector<Output> outs;
    for (const int threads : {1, 4}) {
      outs.emplace_back(s.batch, p.output.detections_per_img);
      auto engine = rk::MakeCpuEngine(p, threads);
      const rk::Status st = engine->Run(s, t, rk::Residency::kHost, &outs.back().view, nullptr);
      CHECK(st.ok(), "run: %s", st.message().c_str());
    }
    rk::HeadTensors t16 = t;
    t16.dtype = rk::DType::kFloat16;
    t16.cls[0] = h.cls16.data();
    t16.box[0] = h.box16.data();
    outs.emplace_back(s.batch, p.output.detections_per_img);
    CHECK(rk::MakeCpuEngine(p, 2)->Run(s, t16, rk::Residency::kHost, &outs.back().view, nullptr).ok(), "fp16 run");
    const Output& a = outs[0];
    for (size_t o = 1; o < outs.size(); ++o) {
      CHECK(outs[o].counts == a.counts && outs[o].labels == a.labels && outs[o].scores == a.scores && outs[o].boxes == a.boxes,
            "variant %zu equals 1 thread (bg %g)", o, bg);
    }
    const int D = p.output.detections_per_img;
    for (int n = 0; n < s.batch; ++n) {
      const int c = a.counts[n];
      CHECK(c > 0 && c <= D, "count %d", c);
      for (int i = 0; i < c; ++i) {
        const float* b = &a.boxes[(static_cast<size_t>(n) * D + i) * 4];
        CHECK(b[0] >= 0 && b[2] <= h.sizes[2 * n + 1] && b[1] >= 0 && b[3] <= h.sizes[2 * n], "clipped to the image");
        CHECK(a.labels[n * D + i] >= 0 && a.labels[n * D + i] < K, "label");
        CHECK(a.scores[n * D + i] > 0.05f, "score over threshold");
        if (i > 0) CHECK(a.scores[n * D + i - 1] >= a.scores[n * D + i], "sorted");
      }
      for (int i = c; i < D; ++i) CHECK(a.scores[n * D + i] == 0 && a.labels[n * D + i] == 0, "padding zeros");
    }
  }
}

void TestErrors() {
  rk::PostprocessParams p = Torchvision(3);
  p.select.score_thresh = 1.5;
  CHECK(rk::ValidateParams(p).code() == rk::Code::kInvalidArgument, "score_thresh");
  CHECK(rk::ValidateParams(p).message().find("score_thresh") != std::string::npos, "names the field");
  p = Torchvision(3);
  rk::HeadShapes s = Shapes(1, 4, 64, 64);
  CHECK(rk::ValidateShapes(p, s).code() == rk::Code::kShapeMismatch, "K mismatch");
  // NaN delta of a selected candidate
  s = Shapes(1, 3, 64, 64);
  Heads h = RandomHeads(s, -10, 3);
  h.cls[40 * 3 + 1] = 5.0f;
  h.box[40 * 4 + 2] = std::nanf("");
  rk::HeadTensors t;
  t.cls[0] = h.cls.data();
  t.box[0] = h.box.data();
  t.image_sizes = h.sizes.data();
  Output o(1, 10);
  const rk::Status st = rk::MakeCpuEngine(p, 1)->Run(s, t, rk::Residency::kHost, &o.view, nullptr);
  CHECK(st.code() == rk::Code::kNonFinite && st.message().find("anchor row 40") != std::string::npos, "NaN delta: %s", st.message().c_str());
}

}  // namespace

int main() {
  TestAnchors();
  TestDecodeAndIou();
  TestIouCut();
  TestNms();
  TestPipeline();
  TestErrors();
  std::printf("%d checks, %d failed\n", checks, failures);
  if (failures == 0) std::printf("all passed\n");
  return failures == 0 ? 0 : 1;
}
