// The backend-neutral render plan (render/plan.hpp): levels, bricks with their ranges and
// empty flags, the coarser stand-in of progressive frames, and what a frame reports.
#include <gtest/gtest.h>

#include "render/dtype.hpp"
#include "render/plan.hpp"
#include "render_fixture.hpp"

namespace vx::render {
namespace {

using Fixture = RenderFixture;

constexpr const char* kCells = "synthetic:cells?shape=64x128x128&chunk=32";

TEST(RenderPlan, TwoDimensionalLayerMapsPixelsOntoItsChunkBox) {
  Fixture f(kCells);
  auto scene = default_scene(f.inputs.data, 128, 96);
  BrickStats stats;
  auto plan = make_plan(scene, f.inputs, RenderOptions{}, stats);
  ASSERT_TRUE(plan) << plan.error().what();
  EXPECT_FALSE(plan->volume);
  ASSERT_EQ(plan->layers.size(), scene.layers.size());
  const auto& lp = plan->layers[0];
  ASSERT_TRUE(lp.slice.has_value());
  EXPECT_FALSE(lp.volume.has_value());
  const auto& s = *lp.slice;
  EXPECT_EQ(s.level, lp.level);
  EXPECT_TRUE(s.complete);
  EXPECT_EQ(s.pins.size(), std::size_t(s.gx) * std::size_t(s.gy));
  for (const auto& pin : s.pins)
    EXPECT_TRUE(pin);
  EXPECT_EQ(s.x.pixels, 128);
  EXPECT_EQ(s.y.pixels, 96);
  EXPECT_EQ(s.lut.rgb.size(), std::size_t(3 * kLut));
  // Every pixel's voxel lies inside the chunk box the plan pinned (or outside the data).
  for (const auto* a : {&s.x, &s.y}) {
    const int grid = a == &s.x ? s.gx : s.gy;
    for (int p = 0; p < a->pixels; ++p) {
      const double u = a->voxel(p);
      if (u <= -0.5 || u >= double(a->n) - 0.5) continue;
      const auto c = std::int64_t(std::floor(std::clamp(u, 0.0, double(a->n - 1)))) / a->chunk;
      EXPECT_GE(c, a->first_chunk);
      EXPECT_LT(c, a->first_chunk + grid);
    }
  }
  Frame frame;
  describe_frame(*plan, frame);
  ASSERT_EQ(frame.levels.size(), scene.layers.size());  // one per layer (channel)
  EXPECT_EQ(frame.levels[0], lp.level);
  EXPECT_FALSE(frame.refining);
  EXPECT_EQ(frame.width, 128);
}

TEST(RenderPlan, HiddenLayersPlanNothingAndReportLevelMinusOne) {
  Fixture f(kCells);
  auto scene = default_scene(f.inputs.data, 64, 64);
  for (auto& l : scene.layers)
    l.visible = false;
  BrickStats stats;
  auto plan = make_plan(scene, f.inputs, RenderOptions{}, stats);
  ASSERT_TRUE(plan) << plan.error().what();
  Frame frame;
  describe_frame(*plan, frame);
  for (std::size_t i = 0; i < plan->layers.size(); ++i) {
    EXPECT_FALSE(plan->layers[i].slice || plan->layers[i].volume);
    EXPECT_EQ(frame.levels[i], -1);
  }
}

TEST(RenderPlan, VolumeBricksCarryRangesAndEmptyFlagsOfTheLook) {
  Fixture f(kCells);
  auto scene = default_scene(f.inputs.data, 96, 96);
  scene.dims.ndisplay = 3;
  for (auto& l : scene.layers)
    l.rendering = Rendering::kMip;
  BrickStats stats;
  auto plan = make_plan(scene, f.inputs, RenderOptions{}, stats);
  ASSERT_TRUE(plan) << plan.error().what();
  ASSERT_TRUE(plan->volume);
  const auto& lp = plan->layers[0];
  ASSERT_TRUE(lp.volume.has_value());
  const auto& v = *lp.volume;
  EXPECT_EQ(v.look.mode, Mode::kMip);
  EXPECT_FALSE(v.bricks.empty());
  std::uint64_t in = 0, drawn = 0;
  for (const auto& b : v.bricks) {
    ASSERT_TRUE(b.pin);  // waiting frames have every brick
    ++in;
    EXPECT_LE(b.range[0], b.range[1]);
    EXPECT_EQ(b.empty, b.range[1] <= v.look.lo);
    drawn += !b.empty;
    for (std::size_t d = 0; d < 3; ++d) {
      EXPECT_GE(b.pos[d], v.blo[d]);
      EXPECT_LT(b.pos[d], v.blo[d] + v.bdim[d]);
    }
  }
  EXPECT_EQ(v.bricks_in, in);
  EXPECT_EQ(v.bricks_drawn, drawn);
  // The range is the brick's own: the cache's copy of that chunk has those extremes.
  const auto& b = v.bricks.front();
  float lo = 1e30f, hi = -1e30f;
  with_dtype(f.src->info().dtype, [&]<class T>() {
    for (const T x : b.pin.as<T>()) {
      lo = std::min(lo, float(x));
      hi = std::max(hi, float(x));
    }
  });
  EXPECT_EQ(b.range[0], lo);
  EXPECT_EQ(b.range[1], hi);
  // The frame counts the bricks of every layer (here one per channel).
  std::uint64_t all_in = 0, all_drawn = 0;
  for (const auto& l : plan->layers)
    if (l.volume) all_in += l.volume->bricks_in, all_drawn += l.volume->bricks_drawn;
  Frame frame;
  describe_frame(*plan, frame);
  EXPECT_EQ(frame.bricks, all_in);
  EXPECT_EQ(frame.bricks_drawn, all_drawn);
}

TEST(RenderPlan, BrickEmptyFollowsTheMode) {
  LayerLook look;
  look.lo = 100;
  look.iso = 500;
  const std::array<float, 2> low{0, 100}, mid{0, 400}, high{0, 600};
  for (const auto m : {Mode::kMip, Mode::kAttenuatedMip, Mode::kTranslucent}) {
    look.mode = m;
    EXPECT_TRUE(brick_empty(look, low));
    EXPECT_FALSE(brick_empty(look, mid));
  }
  look.mode = Mode::kIso;
  EXPECT_TRUE(brick_empty(look, mid));
  EXPECT_FALSE(brick_empty(look, high));
  for (const auto m : {Mode::kMinip, Mode::kAverage}) {
    look.mode = m;
    EXPECT_FALSE(brick_empty(look, low));
  }
}

TEST(RenderPlan, OddCanvasForVideoIsAClearError) {
  Fixture f(kCells);
  auto scene = default_scene(f.inputs.data, 63, 64);
  BrickStats stats;
  RenderOptions opt;
  opt.format = PixelFormat::kNV12;
  auto plan = make_plan(scene, f.inputs, opt, stats);
  ASSERT_FALSE(plan);
  EXPECT_EQ(plan.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(plan.error().message.find("63x64"), std::string::npos) << plan.error().message;
}

}  // namespace
}  // namespace vx::render
