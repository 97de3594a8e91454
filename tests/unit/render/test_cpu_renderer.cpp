#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>

#include "codec/png.hpp"
#include "data/mapped_array.hpp"
#include "render/renderer.hpp"
#include "render_fixture.hpp"

namespace vx::render {
namespace {

using Fixture = RenderFixture;

TEST(CpuRenderer, SliceAtAnIntegerPointIsTheStoredPlaneThroughContrastAndColormap) {
  Fixture f("synthetic:cells?shape=40x64x96&chunk=32");
  Scene s = default_scene(f.inputs.data, 96, 64);
  s.camera.zoom = 1;  // one pixel per voxel, centred: pixel (x, y) is voxel (x, y)
  s.dims.point[0] = 17;
  s.layers.resize(1);
  s.layers[0].colormap = "gray";
  s.layers[0].contrast_limits = {100, 3000};
  s.layers[0].interpolation = Interpolation::kNearest;
  s.layers[0].blending = Blending::kTranslucent;
  auto frame = make_cpu_renderer()->render(s, f.inputs);
  ASSERT_TRUE(frame) << frame.error().what();
  ASSERT_EQ(frame->levels, std::vector<int>{0});
  std::vector<std::uint16_t> plane(64 * 96);
  const std::int64_t start[4] = {0, 17, 0, 0}, shape[4] = {1, 1, 64, 96};
  ASSERT_TRUE(
      data::read_region(f.cache, 0, 0, start, shape, std::as_writable_bytes(std::span(plane))));
  int worst = 0;
  for (int y = 0; y < 64; ++y)
    for (int x = 0; x < 96; ++x) {
      const double t = std::clamp((plane[std::size_t(y * 96 + x)] - 100.0) / 2900.0, 0.0, 1.0);
      const int expect = int(std::lround(t * 255));
      const std::uint8_t* px = &frame->pixels[std::size_t(y * 96 + x) * 4];
      EXPECT_EQ(px[0], px[1]);
      EXPECT_EQ(px[3], 255);
      worst = std::max(worst, std::abs(int(px[0]) - expect));
    }
  // Tolerance 1: the value is quantized to a 4096-entry table before the 256-entry colormap.
  EXPECT_LE(worst, 1);
}

TEST(CpuRenderer, BilinearSamplingMatchesAReferenceAtAnyZoom) {
  Fixture f("synthetic:cells?shape=16x64x96&chunk=32");
  Scene s = default_scene(f.inputs.data, 120, 70);
  s.camera.zoom = 1.7;
  s.camera.center = {0, 30.3, 41.9};
  s.dims.point[0] = 5;
  s.layers.resize(1);
  s.layers[0].colormap = "gray";
  s.layers[0].contrast_limits = {100, 3000};
  s.layers[0].interpolation = Interpolation::kLinear;
  auto frame = make_cpu_renderer()->render(s, f.inputs);
  ASSERT_TRUE(frame) << frame.error().what();
  std::vector<std::uint16_t> plane(64 * 96);
  const std::int64_t start[4] = {0, 5, 0, 0}, shape[4] = {1, 1, 64, 96};
  ASSERT_TRUE(
      data::read_region(f.cache, 0, 0, start, shape, std::as_writable_bytes(std::span(plane))));
  auto at = [&](std::int64_t y, std::int64_t x) { return double(plane[std::size_t(y * 96 + x)]); };
  int worst = 0, drawn = 0;
  for (int py = 0; py < 70; ++py)
    for (int px = 0; px < 120; ++px) {
      const double u = 30.3 + (py + 0.5 - 35) / 1.7, w = 41.9 + (px + 0.5 - 60) / 1.7;
      const std::uint8_t* pix = &frame->pixels[std::size_t(py * 120 + px) * 4];
      if (u <= -0.5 || u >= 63.5 || w <= -0.5 || w >= 95.5) {
        EXPECT_EQ(pix[0], 0) << "outside the data is background";
        continue;
      }
      const double uc = std::clamp(u, 0.0, 63.0), wc = std::clamp(w, 0.0, 95.0);
      const auto y0 = std::int64_t(uc), x0 = std::int64_t(wc);
      const auto y1 = std::min<std::int64_t>(y0 + 1, 63), x1 = std::min<std::int64_t>(x0 + 1, 95);
      const double fy = uc - double(y0), fx = wc - double(x0);
      const double v = (at(y0, x0) * (1 - fx) + at(y0, x1) * fx) * (1 - fy) +
                       (at(y1, x0) * (1 - fx) + at(y1, x1) * fx) * fy;
      const int expect = int(std::lround(std::clamp((v - 100) / 2900, 0.0, 1.0) * 255));
      worst = std::max(worst, std::abs(int(pix[0]) - expect));
      ++drawn;
    }
  EXPECT_GT(drawn, 5000);
  EXPECT_LE(worst, 1);
}

TEST(CpuRenderer, ZoomedOutViewsDrawFromACoarseLevelOnly) {
  Fixture f("synthetic:cells?shape=64x512x512&chunk=32");
  Scene s = default_scene(f.inputs.data, 64, 64);  // 512 voxels in 64 pixels: 8 per pixel
  auto frame = make_cpu_renderer()->render(s, f.inputs);
  ASSERT_TRUE(frame) << frame.error().what();
  EXPECT_EQ(frame->levels, (std::vector<int>{3, 3}));
  // Level 3 is 8x64x64: one z plane is 2 x 2 chunks of 32 per channel.
  EXPECT_EQ(f.cache.counters().misses, 8u);
  // Something was drawn: the tissue in the middle is brighter than the empty corner.
  auto mean_green = [&](int x0, int y0, int n) {
    double sum = 0;
    for (int y = y0; y < y0 + n; ++y)
      for (int x = x0; x < x0 + n; ++x)
        sum += frame->pixels[std::size_t(y * 64 + x) * 4 + 1];
    return sum / (n * n);
  };
  EXPECT_GT(mean_green(24, 24, 16), mean_green(0, 0, 6) + 5);
}

TEST(CpuRenderer, WritesI420AndNV12InItsOwnPassMatchingTheRgbaFrame) {
  Fixture f("synthetic:cells?shape=16x64x96&chunk=32");
  Scene s = default_scene(f.inputs.data, 96, 64);
  auto renderer = make_cpu_renderer();
  auto rgba = renderer->render(s, f.inputs);
  auto i420 = renderer->render(s, f.inputs, RenderOptions{PixelFormat::kI420});
  auto nv12 = renderer->render(s, f.inputs, RenderOptions{PixelFormat::kNV12});
  ASSERT_TRUE(rgba && i420 && nv12);
  const int W = 96, H = 64;
  ASSERT_EQ(i420->pixels.size(), std::size_t(W * H * 3 / 2));
  ASSERT_EQ(nv12->pixels.size(), std::size_t(W * H * 3 / 2));
  int worst = 0, chroma_seen = 0;
  for (int y = 0; y < H; ++y)
    for (int x = 0; x < W; ++x) {
      const std::uint8_t* p = &rgba->pixels[std::size_t(y * W + x) * 4];
      float Y, cb, cr;
      rgb_to_ycbcr709(p[0] / 255.f, p[1] / 255.f, p[2] / 255.f, Y, cb, cr);
      worst = std::max(worst,
                       std::abs(int(i420->pixels[std::size_t(y * W + x)]) - int(std::lround(Y))));
      EXPECT_EQ(i420->pixels[std::size_t(y * W + x)], nv12->pixels[std::size_t(y * W + x)]);
    }
  EXPECT_LE(worst, 1);
  const std::size_t luma = std::size_t(W * H);
  for (std::size_t c = 0; c < luma / 4; ++c) {
    EXPECT_EQ(i420->pixels[luma + c], nv12->pixels[luma + 2 * c]);
    EXPECT_EQ(i420->pixels[luma + luma / 4 + c], nv12->pixels[luma + 2 * c + 1]);
    chroma_seen += i420->pixels[luma + c] != 128;
    // Chroma is the mean of the 2x2 block's chroma.
    const int cx = int(c % std::size_t(W / 2)), cy = int(c / std::size_t(W / 2));
    float cb_sum = 0, cr_sum = 0;
    for (int k = 0; k < 4; ++k) {
      const std::uint8_t* p = &rgba->pixels[std::size_t((2 * cy + k / 2) * W + 2 * cx + k % 2) * 4];
      float Y, cb, cr;
      rgb_to_ycbcr709(p[0] / 255.f, p[1] / 255.f, p[2] / 255.f, Y, cb, cr);
      cb_sum += cb;
      cr_sum += cr;
    }
    EXPECT_LE(std::abs(int(i420->pixels[luma + c]) - int(std::lround(cb_sum / 4))), 1);
    EXPECT_LE(std::abs(int(i420->pixels[luma + luma / 4 + c]) - int(std::lround(cr_sum / 4))), 1);
  }
  EXPECT_GT(chroma_seen, 100);  // cyan and magenta layers: chroma is not neutral
  s.canvas.width = 95;
  auto odd = renderer->render(s, f.inputs, RenderOptions{PixelFormat::kI420});
  ASSERT_FALSE(odd);
  EXPECT_NE(odd.error().message.find("even"), std::string::npos);
}

TEST(CpuRenderer, RefiningFramesDrawCoarseDataThenConvergeToTheColdRender) {
  const std::string spec = "synthetic:cells?shape=32x256x256&chunk=32";
  Fixture f(spec);
  Scene s = default_scene(f.inputs.data, 128, 96);
  s.camera.zoom = 2;  // level 0, a quarter of the plane on screen
  // The overview (coarse levels) is in memory, the zoomed view is not.
  Scene overview = default_scene(f.inputs.data, 32, 32);
  auto renderer = make_cpu_renderer();
  ASSERT_TRUE(renderer->render(overview, f.inputs));
  std::mutex m;
  std::condition_variable cv;
  int arrivals = 0;
  RenderOptions progressive;
  progressive.wait = false;
  progressive.on_chunk = [&] {
    std::lock_guard lock(m);
    ++arrivals;
    cv.notify_all();
  };
  auto first = renderer->render(s, f.inputs, progressive);
  ASSERT_TRUE(first) << first.error().what();
  EXPECT_TRUE(first->refining);

  Result<Frame> frame = first;
  for (int i = 0; i < 200 && frame && frame->refining; ++i) {
    {
      std::unique_lock lock(m);
      cv.wait_for(lock, std::chrono::milliseconds(50), [&] { return arrivals > 0; });
      arrivals = 0;
    }
    frame = renderer->render(s, f.inputs, progressive);
  }
  ASSERT_TRUE(frame);
  ASSERT_FALSE(frame->refining) << "the view never became final";
  Fixture cold(spec);
  auto reference = renderer->render(s, cold.inputs);
  ASSERT_TRUE(reference);
  EXPECT_EQ(frame->pixels, reference->pixels);
  EXPECT_NE(first->pixels, reference->pixels);
  // The first frame was drawn from the coarse level: it covers (nearly) every pixel the
  // final frame covers, instead of leaving them to the background.
  int covered_first = 0, covered_final = 0;
  for (std::size_t i = 0; i < reference->pixels.size(); i += 4) {
    covered_first += first->pixels[i] + first->pixels[i + 1] + first->pixels[i + 2] > 0;
    covered_final += reference->pixels[i] + reference->pixels[i + 1] + reference->pixels[i + 2] > 0;
  }
  EXPECT_GT(covered_final, 1000);
  EXPECT_GT(covered_first, covered_final * 8 / 10);
}

TEST(Contrast, EstimatedFromTheCoarsestLevelWhereMetadataHasNoWindow) {
  // A .npy (no display window) of values 1000..1999 in equal numbers.
  const auto path = (std::filesystem::temp_directory_path() / "vx_contrast.npy").string();
  const std::vector<std::int64_t> shape = {10, 10, 10};
  const auto header = data::make_npy_header(data::DType::kUInt16, shape);
  std::vector<std::uint16_t> values(1000);
  for (std::size_t i = 0; i < values.size(); ++i)
    values[i] = std::uint16_t(1000 + (i * 7919) % 1000);
  {
    std::ofstream out(path, std::ios::binary);
    out.write(header.data(), std::streamsize(header.size()));
    out.write(reinterpret_cast<const char*>(values.data()), std::streamsize(values.size() * 2));
  }
  Fixture f(path);
  Scene s = default_scene(f.inputs.data, 64, 64);
  EXPECT_EQ(s.layers[0].contrast_limits, (std::array<double, 2>{0, 65535}));  // the dtype's range
  ASSERT_TRUE(estimate_contrast(s, f.inputs));
  EXPECT_NEAR(s.layers[0].contrast_limits[0], 1005, 2);
  EXPECT_NEAR(s.layers[0].contrast_limits[1], 1994, 2);
  std::filesystem::remove(path);

  // Channels with an OME window keep it.
  Fixture g("synthetic:cells?shape=16x32x32");
  Scene t = default_scene(g.inputs.data, 32, 32);
  const auto before = t.layers[0].contrast_limits;
  ASSERT_TRUE(estimate_contrast(t, g.inputs));
  EXPECT_EQ(t.layers[0].contrast_limits, before);
}

TEST(Contrast, ALargeSingleLevelSourceIsSampledNotLeftAtTheDtypeRange) {
  // 4160 x 4160 uint8 (17 Mi voxels, more than the estimate reads whole), one level, values
  // spread evenly over 50..150: the estimate reads chunks spread over it instead.
  const auto path = (std::filesystem::temp_directory_path() / "vx_contrast_big.npy").string();
  const std::vector<std::int64_t> shape = {4160, 4160};
  const auto header = data::make_npy_header(data::DType::kUInt8, shape);
  std::vector<std::uint8_t> values(std::size_t(shape[0] * shape[1]));
  for (std::size_t y = 0; y < std::size_t(shape[0]); ++y)
    for (std::size_t x = 0; x < std::size_t(shape[1]); ++x)
      values[y * std::size_t(shape[1]) + x] = std::uint8_t(50 + (y * 31 + x * 17) % 101);
  {
    std::ofstream out(path, std::ios::binary);
    out.write(header.data(), std::streamsize(header.size()));
    out.write(reinterpret_cast<const char*>(values.data()), std::streamsize(values.size()));
  }
  Fixture f(path);
  ASSERT_EQ(f.inputs.data.sources[0].levels.size(), 1u);
  Scene s = default_scene(f.inputs.data, 64, 64);
  EXPECT_EQ(s.layers[0].contrast_limits, (std::array<double, 2>{0, 255}));
  ASSERT_TRUE(estimate_contrast(s, f.inputs));
  EXPECT_NEAR(s.layers[0].contrast_limits[0], 50, 1.5);
  EXPECT_NEAR(s.layers[0].contrast_limits[1], 150, 1.5);
  EXPECT_NEAR(s.layers[0].iso_threshold, 100, 1.5);
  std::filesystem::remove(path);
}

TEST(Png, WritesAReadablePngAndRefusesBadSizes) {
  const auto path = (std::filesystem::temp_directory_path() / "vx_test.png").string();
  std::vector<std::uint8_t> rgba(4 * 3 * 4, 200);
  ASSERT_TRUE(codec::write_png(path, 4, 3, rgba));
  std::ifstream in(path, std::ios::binary);
  char sig[8];
  in.read(sig, 8);
  EXPECT_EQ(std::string(sig, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  EXPECT_FALSE(codec::write_png(path, 5, 3, rgba));
  EXPECT_FALSE(codec::write_png("/nonexistent-dir/x.png", 4, 3, rgba));
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace vx::render
