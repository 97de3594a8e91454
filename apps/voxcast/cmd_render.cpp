#include <fmt/format.h>

#include <charconv>

#include "codec/png.hpp"
#include "commands.hpp"
#include "core/log.hpp"
#include "data/chunk_cache.hpp"
#include "render/renderer.hpp"

namespace vx::app {

Runner add_render(CLI::App& app, const GlobalOptions& g) {
  auto* cmd = app.add_subcommand(
      "render",
      "Render one view of a dataset to a PNG, exactly as a streaming client would see it at final\n"
      "quality. The view is scene JSON (canvas, camera, dims, layers; every field optional, the\n"
      "defaults are what napari would show): a 2D slice, or with dims.ndisplay 3 a 3D view\n"
      "(layers[].rendering: mip, minip, attenuated_mip, average, translucent, iso; camera.angles\n"
      "in napari's convention, camera.perspective a field of view in degrees). docs/rendering.md.");
  struct Opts {
    std::string data, view, size, out;
    bool still = true;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("DATA", o->data, "Dataset path or synthetic:NAME[?k=v&...]")->required();
  cmd->add_option("--view", o->view, "Scene JSON file (default: the data's default view)");
  cmd->add_option("--size", o->size, "Canvas WxH, overriding the view's canvas");
  cmd->add_option("-o,--output", o->out, "Output .png")->required();
  cmd->add_flag("--still", o->still, "Final quality (the default; kept for scripts)");
  cmd->footer(
      "Example: voxcast render brain.ome.zarr --view view.json --size 1920x1080 -o view.png\n"
      "  view.json for 3D: {\"dims\": {\"ndisplay\": 3}, \"camera\": {\"angles\": [0, 30, 120]}}");
  return [o, &g]() {
    auto src = data::open_volume(o->data, g.open_options());
    if (!src) return report(src.error().what());
    render::SceneData sd{{(*src)->info()}};
    render::json patch = render::json::object();
    if (!o->view.empty()) {
      auto j = render::read_scene_file(o->view);
      if (!j) return report(j.error().what());
      patch = std::move(*j);
    }
    if (!o->size.empty()) {
      int w = 0, h = 0;
      const auto x = o->size.find('x');
      const char* s = o->size.data();
      if (x == std::string::npos || std::from_chars(s, s + x, w).ptr != s + x ||
          std::from_chars(s + x + 1, s + o->size.size(), h).ptr != s + o->size.size())
        return report(fmt::format("--size '{}': expected WxH, e.g. 1920x1080", o->size));
      if (!patch.is_object())
        return report(fmt::format("{}: a view must be a JSON object", o->view));
      patch["canvas"]["width"] = w;
      patch["canvas"]["height"] = h;
    }
    // Canvas first, so the default framing fits the requested size.
    const auto& canvas =
        patch.is_object() && patch.contains("canvas") ? patch["canvas"] : render::json::object();
    const int w =
        canvas.is_object() && canvas.value("width", 0) > 0 ? canvas.value("width", 1280) : 1280;
    const int h =
        canvas.is_object() && canvas.value("height", 0) > 0 ? canvas.value("height", 720) : 720;
    data::ChunkCache cache(data::CacheOptions{g.cache_bytes(), g.io_threads, 16});
    render::RenderInputs inputs{&cache, {cache.add_source(*src)}, sd};
    // Defaults from the data (contrast estimated where the metadata has no window), then the
    // view on top, so that what it sets wins.
    auto defaults = render::default_scene(sd, w, h);
    std::vector<std::string> warnings;
    if (auto st = render::estimate_contrast(defaults, inputs, &warnings); !st)
      return report(st.error().what());
    for (const auto& msg : warnings)
      VX_LOG(warn, "data.contrast", "message={}", log_quote(msg));
    auto scene = render::apply_patch(defaults, patch, sd);
    if (!scene)
      return report(
          fmt::format("{}: {}", o->view.empty() ? "--size" : o->view, scene.error().what()));
    auto renderer = render::make_cpu_renderer();
    auto frame = renderer->render(*scene, inputs);
    if (!frame) return report(frame.error().what());
    for (const auto& f : frame->failed)  // drawn without them: say so, one line each
      VX_LOG(warn, "render.chunk_failed", "message={}", log_quote(f));
    auto st = codec::write_png(o->out, frame->width, frame->height, frame->pixels);
    if (!st) return report(st.error().what());
    const auto c = cache.counters();
    VX_LOG(info, "render.done",
           "output={} size={}x{} renderer={} levels={} chunks_read={} bytes_read={}",
           log_quote(o->out), frame->width, frame->height, renderer->name(),
           fmt::join(frame->levels, ","), c.misses, c.bytes_read);
    return 0;
  };
}

}  // namespace vx::app
