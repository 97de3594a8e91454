// The per-pixel 2D path (render/slice_pack.hpp + render/kernels/slice.hpp), which the CUDA
// backend runs one thread per pixel, run here on the host against the CPU backend's row pass
// (the reference): the same frame, byte for byte, for nearest and bilinear sampling, every
// blending, several channels and dtypes, and a refining frame drawn partly from the coarser
// fallback level. So CI checks the GPU's 2D arithmetic and packing without a GPU.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "render/dtype.hpp"
#include "render/kernels/color.hpp"
#include "render/slice_pack.hpp"
#include "render_fixture.hpp"

namespace vx::render {
namespace {

// The frame as the CUDA backend composes it: background, then each layer's pixels through
// kernels::slice_pixel, then RGBA8 by kernels::unorm8.
std::vector<std::uint8_t> per_pixel_rgba(const RenderPlan& plan) {
  const int W = plan.width, H = plan.height;
  const std::size_t plane = std::size_t(W) * std::size_t(H);
  std::vector<float> acc(3 * plane);
  for (std::size_t k = 0; k < 3; ++k)
    std::fill(acc.begin() + std::ptrdiff_t(k * plane),
              acc.begin() + std::ptrdiff_t((k + 1) * plane), float(plan.background[k]));
  for (const auto& layer : plan.layers) {
    if (!layer.slice) continue;
    PackedSlice fine, coarse;
    pack_slice(*layer.slice, fine);
    const auto a = fine.view(fine.voxels.data(), fine.tables.data());
    kernels::SliceView b{};
    if (layer.slice->fallback) {
      pack_slice(*layer.slice->fallback, coarse);
      b = coarse.view(coarse.voxels.data(), coarse.tables.data());
    }
    with_dtype(layer.slice->dtype, [&]<class T>() {
      for (int y = 0; y < H; ++y)
        for (int x = 0; x < W; ++x)
          kernels::slice_pixel<T>(a, layer.slice->fallback ? &b : nullptr, x, y, W, H, acc.data());
    });
  }
  std::vector<std::uint8_t> out(plane * 4);
  for (std::size_t i = 0; i < plane; ++i) {
    for (std::size_t k = 0; k < 3; ++k)
      out[4 * i + k] = kernels::unorm8(acc[k * plane + i]);
    out[4 * i + 3] = 255;
  }
  return out;
}

Scene patched(const Scene& base, const json& patch, const SceneData& data) {
  auto s = apply_patch(base, patch, data);
  if (!s) throw std::runtime_error(s.error().what());
  return *s;
}

void expect_same_frame(const Scene& scene, const RenderInputs& in, const std::string& what,
                       const RenderOptions& opt = {}) {
  BrickStats stats;
  auto plan = make_plan(scene, in, opt, stats);
  ASSERT_TRUE(plan) << plan.error().what();
  auto reference = make_cpu_renderer()->render(scene, in, opt);
  ASSERT_TRUE(reference) << reference.error().what();
  const auto got = per_pixel_rgba(*plan);
  ASSERT_EQ(got.size(), reference->pixels.size());
  std::size_t off = 0, drawn = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    off += got[i] != reference->pixels[i];
    drawn += (i % 4 != 3) && reference->pixels[i] != 0;
  }
  EXPECT_EQ(off, 0u) << what << ": " << off << " of " << got.size() << " bytes differ";
  EXPECT_GT(drawn, got.size() / 20) << what << ": the frame is mostly background";
}

TEST(SlicePack, PerPixelPathEqualsTheRowPassForEverySampling) {
  RenderFixture f("synthetic:cells?shape=48x160x144&chunk=32");
  const auto base = default_scene(f.inputs.data, 128, 96);
  expect_same_frame(base, f.inputs, "default view");
  // Zoomed in off-centre: weights between voxel centres, chunks cut by the screen's edges.
  Scene zoomed = base;
  zoomed.camera.zoom = 2.7;
  zoomed.camera.center[1] += 13.3;
  zoomed.camera.center[2] -= 21.7;
  expect_same_frame(zoomed, f.inputs, "zoomed, bilinear");
  json one, patch;
  one["interpolation"] = "nearest";
  patch["layers"] = json::array();
  for (std::size_t i = 0; i < base.layers.size(); ++i)
    patch["layers"].push_back(one);
  const auto nearest = patched(zoomed, patch, f.inputs.data);
  for (const auto& l : nearest.layers)
    ASSERT_EQ(l.interpolation, Interpolation::kNearest);
  expect_same_frame(nearest, f.inputs, "zoomed, nearest");
  // Zoomed out: a coarser level, the volume smaller than the screen.
  Scene out = base;
  out.camera.zoom = 0.3;
  expect_same_frame(out, f.inputs, "zoomed out");
}

TEST(SlicePack, PerPixelPathEqualsTheRowPassForEveryBlendingAndDtype) {
  for (const char* dtype : {"uint16", "uint8", "float32"}) {
    RenderFixture f(std::string("synthetic:cells?shape=16x96x128&chunk=32&channels=2&dtype=") +
                    dtype);
    auto base = default_scene(f.inputs.data, 128, 96);
    base.camera.zoom = 1.3;
    ASSERT_EQ(base.layers.size(), 2u);
    for (const auto& [b0, b1] : {std::pair{"translucent", "additive"},
                                 {"opaque", "minimum"},
                                 {"additive", "translucent"},
                                 {"minimum", "opaque"}}) {
      json l0, l1, patch;
      l0["blending"] = b0;
      l0["opacity"] = 0.8;
      l1["blending"] = b1;
      l1["gamma"] = 0.7;
      patch["layers"] = json::array({l0, l1});
      const auto s = patched(base, patch, f.inputs.data);
      ASSERT_EQ(to_string(s.layers[0].blending), b0);
      ASSERT_EQ(to_string(s.layers[1].blending), b1);
      expect_same_frame(s, f.inputs, std::string(dtype) + " " + b0 + " + " + b1);
    }
  }
}

TEST(SlicePack, ARefiningFrameUsesTheFallbackWhereTheRowPassDoes) {
  // Reads take 1.5 s: the overview's chunks are read first (waited for); the zoomed view's
  // are then asked for and cannot arrive while both frames below are drawn.
  RenderFixture f("synthetic:cells?shape=32x256x256&chunk=32&latency_ms=1500");
  auto renderer = make_cpu_renderer();
  ASSERT_TRUE(renderer->render(default_scene(f.inputs.data, 32, 32), f.inputs));
  Scene s = default_scene(f.inputs.data, 128, 96);
  s.camera.zoom = 2;
  RenderOptions progressive;
  progressive.wait = false;
  BrickStats stats;
  auto plan = make_plan(s, f.inputs, progressive, stats);
  ASSERT_TRUE(plan);
  ASSERT_TRUE(plan->layers[0].slice);
  ASSERT_FALSE(plan->layers[0].slice->complete);
  ASSERT_TRUE(plan->layers[0].slice->fallback) << "no coarser level stands in";
  expect_same_frame(s, f.inputs, "refining", progressive);
}

}  // namespace
}  // namespace vx::render
