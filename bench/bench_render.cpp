// Render timings of the CPU renderer, warm cache: median of N frames after one warm-up.
//   voxcast_bench_render [DATA] [WxH] [frames] [zoom]
#include <fmt/format.h>

#include <algorithm>
#include <chrono>

#include "render/renderer.hpp"

using namespace vx;
using Clock = std::chrono::steady_clock;

int main(int argc, char** argv) {
  const std::string spec = argc > 1 ? argv[1] : "synthetic:cells?shape=64x2048x2048&chunk=64";
  const std::string size = argc > 2 ? argv[2] : "1920x1080";
  const int frames = argc > 3 ? std::atoi(argv[3]) : 30;
  const double zoom = argc > 4 ? std::atof(argv[4]) : 1.0;  // 1: one voxel per pixel
  auto src = data::open_volume(spec);
  if (!src) {
    fmt::print(stderr, "{}\n", src.error().what());
    return 1;
  }
  const int w = std::stoi(size.substr(0, size.find('x'))),
            h = std::stoi(size.substr(size.find('x') + 1));
  data::ChunkCache cache(data::CacheOptions{2048ull << 20, 0, 16});
  render::RenderInputs in{&cache, {cache.add_source(*src)}, render::SceneData{{(*src)->info()}}};
  auto scene = render::default_scene(in.data, w, h);
  scene.camera.zoom = zoom;  // at 1, level 0 and one voxel per pixel: the canvas is all data
  auto renderer = render::make_cpu_renderer();
  auto first = renderer->render(scene, in);  // warm-up: fills the cache
  if (!first) {
    fmt::print(stderr, "{}\n", first.error().what());
    return 1;
  }
  std::vector<double> ms;
  for (int i = 0; i < frames; ++i) {
    const auto t = Clock::now();
    auto f = renderer->render(scene, in);
    ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t).count());
    if (!f) return 1;
    renderer->recycle(std::move(*f));  // as a streaming session does once a frame is encoded
  }
  std::sort(ms.begin(), ms.end());
  fmt::print(
      "{{\"data\": \"{}\", \"size\": \"{}\", \"zoom\": {}, \"layers\": {}, \"levels\": [{}], "
      "\"median_ms\": {:.2f}, "
      "\"min_ms\": {:.2f}, \"max_ms\": {:.2f}, \"chunks_cached\": {}}}\n",
      spec, size, zoom, scene.layers.size(), fmt::join(first->levels, ","), ms[ms.size() / 2],
      ms.front(), ms.back(), cache.counters().entries);
  return 0;
}
