// The per-sample and per-pixel arithmetic both backends run (render/kernels/*.hpp, VX_HD):
// compiled here by the host compiler, so CI checks the GPU's arithmetic without a GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "render/kernels/color.hpp"
#include "render/kernels/composite.hpp"
#include "render/kernels/sample.hpp"
#include "render/kernels/transfer.hpp"

namespace vx::render::kernels {
namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
auto host_pow = [](double x, double y) { return std::pow(x, y); };

TEST(Kernels, TableIndexClampsRoundsAndSendsNaNToZero) {
  EXPECT_EQ(table_index(100.f, 100.f, 2.f, 4095.f), 0);
  EXPECT_EQ(table_index(50.f, 100.f, 2.f, 4095.f), 0);
  EXPECT_EQ(table_index(1e9f, 100.f, 2.f, 4095.f), 4095);
  EXPECT_EQ(table_index(101.3f, 100.f, 1.f, 4095.f), 1);
  EXPECT_EQ(table_index(101.6f, 100.f, 1.f, 4095.f), 2);
  EXPECT_EQ(table_index(kNaN, 0.f, 1.f, 4095.f), 0);
}

TEST(Kernels, Interpolation) {
  EXPECT_FLOAT_EQ(lerp(2.f, 6.f, 0.25f), 3.f);
  const float c[8] = {0, 1, 2, 3, 4, 5, 6, 7};  // value = 4z + 2y + x
  EXPECT_FLOAT_EQ(trilinear(c, 0, 0, 0), 0.f);
  EXPECT_FLOAT_EQ(trilinear(c, 1, 1, 1), 7.f);
  EXPECT_FLOAT_EQ(trilinear(c, 0.5f, 0.25f, 0.75f), 4 * 0.5f + 2 * 0.25f + 0.75f);
}

TEST(Kernels, RayAccumulatorsOfEachMode) {
  float m = 0;
  for (const float s : {3.f, 9.f, 4.f})
    m = mip_step(m, s);
  EXPECT_EQ(m, 9.f);
  float n = kNaN;  // no sample yet
  for (const float s : {3.f, 1.f, 4.f})
    n = minip_step(n, s);
  EXPECT_EQ(n, 1.f);
  float sum = 0, count = 0;
  for (const float s : {2.f, 4.f, 9.f})
    average_step(sum, count, s);
  EXPECT_FLOAT_EQ(sum / count, 5.f);
  // Attenuated: each sample is dimmed by the transmittance in front of it.
  float a = 0, tr = 1;
  a = attenuated_step(a, tr, 10.f, 0.5f);  // 10 * 1
  a = attenuated_step(a, tr, 16.f, 0.5f);  // 16 * 0.5 = 8 < 10
  EXPECT_FLOAT_EQ(a, 10.f);
  EXPECT_FLOAT_EQ(tr, 0.25f);
  a = attenuated_step(a, tr, 100.f, 0.5f);  // 100 * 0.25
  EXPECT_FLOAT_EQ(a, 25.f);
}

TEST(Kernels, FrontToBackCompositingStopsGainingPastOpaque) {
  // One channel: premultiplied samples of opacity 0.5 and colour 1.
  float c = 0, alpha = 0;
  for (int i = 0; i < 3; ++i) {
    c = over_step(c, alpha, 0.5f);
    alpha = over_step(alpha, alpha, 0.5f);
  }
  EXPECT_FLOAT_EQ(alpha, 0.875f);
  EXPECT_FLOAT_EQ(c, 0.875f);
  EXPECT_LT(kOpaqueAlpha, 1.f);
  // Opacity per step: two half steps equal one whole step.
  const double one = step_opacity(0.3, 1.0, host_pow);
  const double half = step_opacity(0.3, 0.5, host_pow);
  EXPECT_NEAR(1 - (1 - half) * (1 - half), one, 1e-12);
}

TEST(Kernels, IsoCrossingInterpolatesBetweenSamples) {
  float hit = -1;
  EXPECT_FALSE(iso_crossing(0.f, 4.f, 5.f, 10.f, 1.f, hit));
  EXPECT_FALSE(iso_crossing(0.f, kNaN, 5.f, 10.f, 1.f, hit));  // no data: never a crossing
  ASSERT_TRUE(iso_crossing(4.f, 8.f, 5.f, 10.f, 1.f, hit));
  EXPECT_FLOAT_EQ(hit, 9.25f);  // a quarter of the way from slice 9 to slice 10
  ASSERT_TRUE(iso_crossing(kNaN, 8.f, 5.f, 10.f, -1.f, hit));  // first sample: at it
  EXPECT_FLOAT_EQ(hit, 10.f);
}

TEST(Kernels, IsoShadeIsAmbientLambertAndSpecularClampedToOne) {
  EXPECT_DOUBLE_EQ(iso_shade(0.5, 0.0, host_pow), 0.1);  // ambient only
  EXPECT_DOUBLE_EQ(iso_shade(0.0, 1.0, host_pow), 1.0);  // specular highlight
  EXPECT_DOUBLE_EQ(iso_shade(1.0, 1.0, host_pow), 1.0);  // clamped
  EXPECT_NEAR(iso_shade(0.5, 0.5, host_pow), 0.5 * 0.7 + std::pow(0.5, 40), 1e-15);
  EXPECT_DOUBLE_EQ(iso_shade(std::nan(""), 0.5, host_pow), 0.0);
}

TEST(Kernels, IsoNormalAndCosineFromCentralDifferences) {
  // A ramp rising along x: the normal points down it, and the brightest sample is ahead.
  auto ramp = [](double, double, double x) { return float(10 * x); };
  const double p[3] = {1, 2, 3};
  double n[3];
  EXPECT_FLOAT_EQ(iso_normal(ramp, p, n), 45.f);
  EXPECT_DOUBLE_EQ(n[0], 0);
  EXPECT_DOUBLE_EQ(n[1], 0);
  EXPECT_DOUBLE_EQ(n[2], -30);
  auto host_sqrt = [](double x) { return std::sqrt(x); };
  const double along[3] = {0, 0, 2}, across[3] = {0, 5, 0}, diag[3] = {0, 1, -1};
  EXPECT_DOUBLE_EQ(iso_cosine(n, along, host_sqrt), 1.0);
  EXPECT_DOUBLE_EQ(iso_cosine(n, across, host_sqrt), 0.0);
  EXPECT_NEAR(iso_cosine(n, diag, host_sqrt), std::sqrt(0.5), 1e-15);
  const double none[3] = {0, 0, 0};
  EXPECT_DOUBLE_EQ(iso_cosine(none, along, host_sqrt), 1.0);  // flat: faces the viewer
}

TEST(Kernels, BlendingOfLayers) {
  EXPECT_FLOAT_EQ(blend_2d<Blend::kAdditive>(0.25f, 0.5f, 0.5f, true), 0.5f);
  EXPECT_FLOAT_EQ(blend_2d<Blend::kTranslucent>(0.2f, 1.f, 0.5f, true), 0.6f);
  EXPECT_FLOAT_EQ(blend_2d<Blend::kOpaque>(0.2f, 0.7f, 0.f, true), 0.7f);
  EXPECT_FLOAT_EQ(blend_2d<Blend::kOpaque>(0.2f, 0.7f, 0.f, false), 0.2f);
  EXPECT_FLOAT_EQ(blend_2d<Blend::kMinimum>(0.9f, 0.2f, 1.f, true), 0.2f);
  EXPECT_FLOAT_EQ(blend_2d<Blend::kMinimum>(0.9f, 0.2f, 1.f, false), 0.9f);
  // 3D: a ray of coverage 0.5 and premultiplied colour 0.4 over 1.0.
  EXPECT_FLOAT_EQ(blend_3d(Blend::kTranslucent, 1.f, 0.4f, 0.5f, 1.f), 0.9f);
  EXPECT_FLOAT_EQ(blend_3d(Blend::kAdditive, 0.5f, 0.4f, 0.5f, 0.5f), 0.7f);
  EXPECT_FLOAT_EQ(blend_3d(Blend::kOpaque, 1.f, 0.4f, 0.5f, 1.f), 0.9f);
  EXPECT_FLOAT_EQ(blend_3d(Blend::kMinimum, 1.f, 0.4f, 0.5f, 1.f), 0.8f);
}

TEST(Kernels, Bt709LimitedRange) {
  float y, cb, cr;
  rgb_to_ycbcr709(1, 1, 1, y, cb, cr);
  EXPECT_FLOAT_EQ(y, 235.f);
  EXPECT_NEAR(cb, 128.f, 1e-4);
  EXPECT_NEAR(cr, 128.f, 1e-4);
  EXPECT_EQ(y_byte(0, 0, 0), 16);
  EXPECT_EQ(y_byte(1, 1, 1), 235);
  EXPECT_EQ(y_byte(1, 0, 0), 63);  // 16 + 219 * 0.2126
  std::uint8_t b, r;
  chroma_bytes(1, 0, 0, b, r);
  EXPECT_EQ(b, 102);  // 128 - 224 * 0.2126 / 1.8556
  EXPECT_EQ(r, 240);
  chroma_bytes(0, 0, 1, b, r);
  EXPECT_EQ(b, 240);
  EXPECT_EQ(unorm8(-1.f), 0);
  EXPECT_EQ(unorm8(0.5f), 128);
  EXPECT_EQ(unorm8(2.f), 255);
}

}  // namespace
}  // namespace vx::render::kernels
