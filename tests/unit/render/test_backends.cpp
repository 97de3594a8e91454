// Every renderer backend available at run time against the CPU backend, the reference: the
// same scene, every 3D mode and a 2D view, equal within 2 levels (DESIGN.md convention 8).
// The CUDA cases are instantiated only where render::cuda_renderer_available() (a build with
// CUDA, a driver and a device); elsewhere one line says why they are not.
#include <gtest/gtest.h>

#include <cstdio>

#include "render/select.hpp"
#include "render_fixture.hpp"

namespace vx::render {
namespace {

std::vector<std::string> available_backends() {
  std::vector<std::string> out{"cpu"};
  if (auto ok = cuda_renderer_available(); ok)
    out.push_back("cuda");
  else
    std::printf("[ backends ] cuda cases not instantiated: %s\n", ok.error().message.c_str());
  return out;
}

struct Fixture : RenderFixture {
  Fixture() : RenderFixture("synthetic:cells?shape=64x96x96&chunk=32") {}
};

Scene scene_for(const Fixture& f, const std::string& mode) {
  auto scene = default_scene(f.inputs.data, 128, 96);
  if (mode == "2d") return scene;
  auto patch = json::object();
  patch["dims"] = {{"ndisplay", 3}};
  patch["camera"] = {{"angles", {0, 30, 120}}};
  auto layers = json::array();
  for (std::size_t i = 0; i < scene.layers.size(); ++i)
    layers.push_back({{"rendering", mode}});
  patch["layers"] = layers;
  auto s = apply_patch(scene, patch, f.inputs.data);
  if (!s) throw std::runtime_error(s.error().what());
  return *s;
}

class Backends : public ::testing::TestWithParam<std::tuple<std::string, std::string>> {};

TEST_P(Backends, MatchTheCpuReferenceWithinTwoLevels) {
  const auto& [backend, mode] = GetParam();
  Fixture f;
  const auto scene = scene_for(f, mode);
  auto chosen = make_renderer(backend);
  ASSERT_TRUE(chosen) << chosen.error().what();
  EXPECT_EQ(chosen->name, backend);
  auto reference = make_cpu_renderer()->render(scene, f.inputs);
  ASSERT_TRUE(reference) << reference.error().what();
  for (const auto format : {PixelFormat::kRgba8, PixelFormat::kNV12}) {
    RenderOptions opt;
    opt.format = format;
    auto got = chosen->renderer->render(scene, f.inputs, opt);
    ASSERT_TRUE(got) << got.error().what();
    auto want = make_cpu_renderer()->render(scene, f.inputs, opt);
    ASSERT_TRUE(want) << want.error().what();
    ASSERT_EQ(got->pixels.size(), want->pixels.size());
    EXPECT_EQ(got->format, format);
    EXPECT_EQ(got->levels, want->levels);
    std::size_t off = 0;
    int worst = 0;
    for (std::size_t i = 0; i < got->pixels.size(); ++i) {
      const int d = std::abs(int(got->pixels[i]) - int(want->pixels[i]));
      worst = std::max(worst, d);
      off += d > 2;
    }
    // Ray casting and slice compositing sample at different points along a ray: a few
    // pixels on sharp edges may differ more; 99.5% must be within 2 levels.
    EXPECT_LE(double(off), 0.005 * double(got->pixels.size()))
        << backend << " " << mode << " " << pixel_format_name(format) << ": " << off << " of "
        << got->pixels.size() << " bytes differ by more than 2 (worst " << worst << ")";
  }
}

INSTANTIATE_TEST_SUITE_P(
    AllModes, Backends,
    ::testing::Combine(::testing::ValuesIn(available_backends()),
                       ::testing::Values("2d", "mip", "minip", "attenuated_mip", "average",
                                         "translucent", "iso")),
    [](const auto& info) { return std::get<0>(info.param) + "_" + std::get<1>(info.param); });

TEST(RendererSelection, AutoFallsBackWithAReasonAndNamesAreChecked) {
  auto cpu = make_renderer("cpu");
  ASSERT_TRUE(cpu) << cpu.error().what();
  EXPECT_EQ(cpu->name, "cpu");
  EXPECT_TRUE(cpu->fallback.empty());
  EXPECT_STREQ(cpu->renderer->name(), "cpu");
  auto best = make_renderer("auto");
  ASSERT_TRUE(best) << best.error().what();
  auto cuda = make_renderer("cuda");
  if (cuda_renderer_available()) {
    EXPECT_EQ(best->name, "cuda");
    EXPECT_TRUE(best->fallback.empty());
    ASSERT_TRUE(cuda) << cuda.error().what();
  } else {
    EXPECT_EQ(best->name, "cpu");
    EXPECT_EQ(best->fallback.rfind("cuda: ", 0), 0u) << best->fallback;
    ASSERT_FALSE(cuda);
    EXPECT_EQ(cuda.error().code, ErrorCode::kUnsupported);
    EXPECT_NE(cuda.error().message.find("renderer 'cuda' is not available here: "),
              std::string::npos)
        << cuda.error().message;
    EXPECT_NE(best->fallback.find(cuda_renderer_available().error().message), std::string::npos);
  }
  auto bad = make_renderer("opengl");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(bad.error().message.find("opengl"), std::string::npos);
}

// The device budget is listed (GET /api/v1/resources) while a GPU renderer holds device
// memory, charged for the bricks a frame uploaded, and gone with the last renderer; the CPU
// backend has none.
TEST(RendererSelection, DeviceBudgetsFollowTheGpuRenderers) {
  EXPECT_TRUE(device_budgets().empty());
  Fixture f;
  {
    auto cpu = make_renderer("cpu");
    ASSERT_TRUE(cpu) << cpu.error().what();
    ASSERT_TRUE(cpu->renderer->render(scene_for(f, "mip"), f.inputs));
    EXPECT_TRUE(device_budgets().empty());
  }
  if (auto ok = cuda_renderer_available(); !ok) {  // the CPU half is the test here
    std::printf("[ backends ] no device budget to check: %s\n", ok.error().message.c_str());
    return;
  }
  {
    auto cuda = make_renderer("cuda");
    ASSERT_TRUE(cuda) << cuda.error().what();
    ASSERT_TRUE(cuda->renderer->render(scene_for(f, "mip"), f.inputs));
    const auto budgets = device_budgets();
    ASSERT_EQ(budgets.size(), 1u);
    EXPECT_EQ(budgets[0].name, "device");
    EXPECT_GT(budgets[0].limit, 0u);
    EXPECT_GT(budgets[0].used, 0u) << "a 3D frame uploaded no bricks";
  }
  EXPECT_TRUE(device_budgets().empty());
}

}  // namespace
}  // namespace vx::render
