// Render timings of a renderer backend, warm cache: median of N frames after one warm-up.
//   voxcast_bench_render [DATA] [WxH] [frames] [zoom] [--3d MODE] [--angles A,B,C]
//                        [--interactive] [--perspective FOV] [--i420]
//                        [--renderer auto|cpu|cuda] [--cache-mb N]
// zoom 0 frames the whole volume (the default scene); 2D defaults to 1 (a voxel per pixel).
// Prints one JSON line per run: times, levels, chunks touched and drawn, bytes decoded.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <chrono>
#include <cstring>

#include "render/renderer.hpp"
#include "render/select.hpp"

using namespace vx;
using Clock = std::chrono::steady_clock;

int main(int argc, char** argv) {
  std::vector<std::string> pos;
  std::string mode, angles = "0,30,120", backend = "cpu";
  std::uint64_t cache_mb = 2048;
  bool interactive = false, i420 = false;
  double fov = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--3d" && i + 1 < argc)
      mode = argv[++i];
    else if (a == "--angles" && i + 1 < argc)
      angles = argv[++i];
    else if (a == "--perspective" && i + 1 < argc)
      fov = std::atof(argv[++i]);
    else if (a == "--interactive")
      interactive = true;
    else if (a == "--i420")
      i420 = true;
    else if (a == "--renderer" && i + 1 < argc)
      backend = argv[++i];
    else if (a == "--cache-mb" && i + 1 < argc)
      cache_mb = std::strtoull(argv[++i], nullptr, 10);
    else
      pos.push_back(a);
  }
  const std::string spec = pos.size() > 0 ? pos[0] : "synthetic:cells?shape=64x2048x2048&chunk=64";
  const std::string size = pos.size() > 1 ? pos[1] : "1920x1080";
  const int frames = pos.size() > 2 ? std::atoi(pos[2].c_str()) : 30;
  const double zoom = pos.size() > 3 ? std::atof(pos[3].c_str()) : (mode.empty() ? 1.0 : 0.0);
  auto src = data::open_volume(spec);
  if (!src) {
    fmt::print(stderr, "{}\n", src.error().what());
    return 1;
  }
  const int w = std::stoi(size.substr(0, size.find('x'))),
            h = std::stoi(size.substr(size.find('x') + 1));
  data::ChunkCache cache(data::CacheOptions{cache_mb << 20, 0, 16});
  render::RenderInputs in{&cache, {cache.add_source(*src)}, render::SceneData{{(*src)->info()}}};
  auto scene = render::default_scene(in.data, w, h);
  if (zoom > 0) scene.camera.zoom = zoom;  // 2D at 1: level 0, the canvas is all data
  if (!mode.empty()) {
    auto patch = render::json::object();
    patch["dims"] = {{"ndisplay", 3}};
    double a0 = 0, a1 = 0, a2 = 0;
    std::sscanf(angles.c_str(), "%lf,%lf,%lf", &a0, &a1, &a2);
    patch["camera"] = {{"angles", {a0, a1, a2}}, {"perspective", fov}};
    auto layers = render::json::array();
    for (std::size_t i = 0; i < scene.layers.size(); ++i)
      layers.push_back({{"rendering", mode}});
    patch["layers"] = layers;
    auto s = render::apply_patch(scene, patch, in.data);
    if (!s) {
      fmt::print(stderr, "{}\n", s.error().what());
      return 1;
    }
    scene = *s;
  }
  render::RenderOptions opt;
  opt.interactive = interactive;
  if (i420) opt.format = render::PixelFormat::kI420;  // what a video encoder takes
  auto choice = render::make_renderer(backend);
  if (!choice) {
    fmt::print(stderr, "--renderer {}: {}\n", backend, choice.error().message);
    return 1;
  }
  auto& renderer = choice->renderer;
  auto first = renderer->render(scene, in, opt);  // warm-up: fills the cache
  if (!first) {
    fmt::print(stderr, "{}\n", first.error().what());
    return 1;
  }
  const auto decoded = cache.counters().bytes_decoded;
  std::vector<double> ms;
  for (int i = 0; i < frames; ++i) {
    const auto t = Clock::now();
    auto f = renderer->render(scene, in, opt);
    ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t).count());
    if (!f) return 1;
    renderer->recycle(std::move(*f));  // as a streaming session does once a frame is encoded
  }
  std::sort(ms.begin(), ms.end());
  fmt::print(
      "{{\"renderer\": \"{}\", \"data\": \"{}\", \"size\": \"{}\", \"mode\": \"{}\", \"angles\": "
      "\"{}\", "
      "\"interactive\": {}, \"format\": \"{}\", \"zoom\": {:.3f}, \"layers\": {}, \"levels\": "
      "[{}], "
      "\"median_ms\": {:.2f}, \"min_ms\": {:.2f}, \"max_ms\": {:.2f}, \"chunks_touched\": {}, "
      "\"chunks_drawn\": {}, \"bytes_decoded\": {}, \"chunks_cached\": {}}}\n",
      choice->name, spec, size, mode.empty() ? "2d" : mode, mode.empty() ? "" : angles, interactive,
      i420 ? "i420" : "rgba", scene.camera.zoom, scene.layers.size(), fmt::join(first->levels, ","),
      ms[ms.size() / 2], ms.front(), ms.back(), first->bricks, first->bricks_drawn, decoded,
      cache.counters().entries);
  return 0;
}
