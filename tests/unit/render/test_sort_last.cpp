// Sort-last rendering through RenderOptions::compositor, without MPI: N threads each render
// one part of the volume and an in-process compositor combines their partial images front
// to back (what src/cluster does across processes with binary-swap). The picture must equal
// the one-process render within 2 levels for every mode and camera and any part count.
#include <gtest/gtest.h>

#include <condition_variable>
#include <mutex>
#include <thread>

#include "render/renderer.hpp"

namespace vx::render {
namespace {

// All parts' images meet here; the last to arrive composites them in order into part 0's.
class ThreadCompositor {
 public:
  explicit ThreadCompositor(int n) : n_(n), slots_(std::size_t(n)) {}

  class Part final : public Compositor {
   public:
    Part(ThreadCompositor& all, int rank) : all_(all), rank_(rank) {}
    int rank() const override { return rank_; }
    int size() const override { return all_.n_; }
    Status composite(PartialOp op, std::vector<float>& pixels,
                     std::span<const int> order) override {
      return all_.arrive(rank_, op, pixels, order);
    }

   private:
    ThreadCompositor& all_;
    int rank_;
  };

 private:
  Status arrive(int rank, PartialOp op, std::vector<float>& px, std::span<const int> order) {
    std::unique_lock lock(mutex_);
    slots_[std::size_t(rank)] = &px;
    const auto gen = generation_;
    if (++arrived_ < n_) {
      cv_.wait(lock, [&] { return generation_ != gen; });
      return {};
    }
    const std::size_t pixels = px.size() / std::size_t(partial_channels(op));
    std::vector<float> out = *slots_[std::size_t(order[0])];
    for (std::size_t i = 1; i < order.size(); ++i) {
      if (slots_[std::size_t(order[i])]->size() != out.size())
        return fail(ErrorCode::kInternal, "parts disagree on the image size");
      composite_partial(op, out.data(), slots_[std::size_t(order[i])]->data(), out.data(), pixels);
    }
    *slots_[0] = std::move(out);
    arrived_ = 0;
    ++generation_;
    cv_.notify_all();
    return {};
  }

  int n_;
  std::vector<std::vector<float>*> slots_;
  std::mutex mutex_;
  std::condition_variable cv_;
  int arrived_ = 0;
  std::uint64_t generation_ = 0;
};

struct Fixture {
  std::shared_ptr<data::VolumeSource> src;
  data::ChunkCache cache{data::CacheOptions{64u << 20, 2, 4}};
  RenderInputs inputs;
  explicit Fixture(const std::string& spec) {
    auto s = data::open_volume(spec);
    if (!s) throw std::runtime_error(s.error().what());
    src = *s;
    inputs = RenderInputs{&cache, {cache.add_source(src)}, SceneData{{src->info()}}};
  }
};

Frame render_parts(const Scene& scene, const RenderInputs& in, int parts) {
  ThreadCompositor all(parts);
  std::vector<Frame> frames(static_cast<std::size_t>(parts));
  std::vector<std::string> errors(static_cast<std::size_t>(parts));
  std::vector<std::thread> threads;
  for (int r = 0; r < parts; ++r)
    threads.emplace_back([&, r] {
      ThreadCompositor::Part part(all, r);
      RenderOptions opt;
      opt.compositor = &part;
      auto f = make_cpu_renderer()->render(scene, in, opt);
      if (f)
        frames[std::size_t(r)] = std::move(*f);
      else
        errors[std::size_t(r)] = f.error().what();
    });
  for (auto& t : threads)
    t.join();
  for (int r = 0; r < parts; ++r)
    EXPECT_EQ(errors[std::size_t(r)], "") << "part " << r;
  return std::move(frames[0]);
}

int max_diff(const Frame& a, const Frame& b) {
  EXPECT_EQ(a.pixels.size(), b.pixels.size());
  int worst = 0;
  for (std::size_t i = 0; i < std::min(a.pixels.size(), b.pixels.size()); ++i)
    worst = std::max(worst, std::abs(int(a.pixels[i]) - int(b.pixels[i])));
  return worst;
}

struct Case {
  Rendering mode;
  double perspective;
};

class SortLast : public ::testing::TestWithParam<Case> {};

std::string case_name(const ::testing::TestParamInfo<Case>& info) {
  static const char* const names[] = {"mip",     "minip",       "attenuated_mip",
                                      "average", "translucent", "iso"};
  return std::string(names[int(info.param.mode)]) +
         (info.param.perspective > 0 ? "_persp" : "_ortho");
}

TEST_P(SortLast, EqualsTheOneProcessRenderForAnyPartCount) {
  Fixture f("synthetic:cells?shape=40x56x48&chunk=16&channels=2");
  Scene s = default_scene(f.inputs.data, 80, 60);
  ASSERT_TRUE(estimate_contrast(s, f.inputs));
  s.dims.ndisplay = 3;
  s.camera.angles = {10, 30, 120};
  s.camera.perspective = GetParam().perspective;
  for (auto& l : s.layers) {  // two layers: one collective each, in the same order everywhere
    l.rendering = GetParam().mode;
    if (l.rendering == Rendering::kMinip) l.contrast_limits = {0, 100};  // minima are low
  }
  auto one = make_cpu_renderer()->render(s, f.inputs);
  ASSERT_TRUE(one) << one.error().what();
  std::uint64_t lit = 0;
  for (std::size_t i = 0; i < one->pixels.size(); i += 4)
    lit += one->pixels[i] + one->pixels[i + 1] + one->pixels[i + 2] > 30;
  ASSERT_GT(lit, 200u) << "the reference is nearly black: nothing would be compared";
  for (int parts : {2, 3, 5}) {
    const Frame many = render_parts(s, f.inputs, parts);
    EXPECT_LE(max_diff(many, *one), 2) << parts << " parts";
  }
}

INSTANTIATE_TEST_SUITE_P(
    Modes, SortLast,
    ::testing::Values(Case{Rendering::kMip, 0}, Case{Rendering::kMip, 40},
                      Case{Rendering::kMinip, 0}, Case{Rendering::kMinip, 40},
                      Case{Rendering::kAttenuatedMip, 0}, Case{Rendering::kAttenuatedMip, 40},
                      Case{Rendering::kAverage, 0}, Case{Rendering::kAverage, 40},
                      Case{Rendering::kTranslucent, 0}, Case{Rendering::kTranslucent, 40},
                      Case{Rendering::kIso, 0}, Case{Rendering::kIso, 40}),
    case_name);

TEST(SortLastParts, MorePartsThanBricks) {
  // 1 x 2 x 1 bricks over 4 parts: two parts draw nothing and still take part.
  Fixture f("synthetic:cells?shape=16x32x16&chunk=16&channels=1");
  Scene s = default_scene(f.inputs.data, 48, 40);
  ASSERT_TRUE(estimate_contrast(s, f.inputs));
  s.dims.ndisplay = 3;
  s.camera.angles = {0, 20, 70};
  s.layers[0].rendering = Rendering::kTranslucent;
  auto one = make_cpu_renderer()->render(s, f.inputs);
  ASSERT_TRUE(one);
  EXPECT_LE(max_diff(render_parts(s, f.inputs, 4), *one), 2);
}

TEST(SortLastParts, ProgressiveFramesAreRefused) {
  Fixture f("synthetic:cells?shape=16x16x16&chunk=16&channels=1");
  Scene s = default_scene(f.inputs.data, 32, 32);
  s.dims.ndisplay = 3;
  ThreadCompositor all(1);
  ThreadCompositor::Part part(all, 0);
  RenderOptions opt;
  opt.compositor = &part;
  opt.wait = false;
  auto r = make_cpu_renderer()->render(s, f.inputs, opt);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("sort-last"), std::string::npos) << r.error().message;
}

}  // namespace
}  // namespace vx::render
