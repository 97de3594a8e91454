#include <fmt/format.h>

#include <charconv>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "commands.hpp"
#include "core/log.hpp"
#include "core/progress.hpp"
#include "data/chunk_cache.hpp"
#include "jobs/orbit.hpp"
#include "view_sources.hpp"

namespace vx::app {

namespace {

bool parse_pair(const std::string& text, char sep, double& a, double& b) {
  const auto at = text.find(sep, 1);  // after a leading minus
  if (at == std::string::npos) return false;
  const char* s = text.data();
  return std::from_chars(s, s + at, a).ptr == s + at &&
         std::from_chars(s + at + 1, s + text.size(), b).ptr == s + text.size();
}

}  // namespace

Runner add_orbit(CLI::App& app, const GlobalOptions& g) {
  auto* cmd = app.add_subcommand(
      "orbit",
      "Render a grid of views of a dataset, yaw across and pitch down, into sprite sheets,\n"
      "orbit.json and a self-contained index.html: an object to turn with the mouse, a finger\n"
      "or the phone's tilt, on any static web page (<voxcast-orbit src=\"DIR/orbit.json\">).\n"
      "Every view is final quality, with the view's layers and rendering mode.");
  struct Opts {
    std::string data, view, grid = "30x30", yaw = "-60:60", pitch = "-45:45", format = "webp", out;
    int size = 256, quality = 85;
    bool quiet = false;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("DATA", o->data, "Dataset path or synthetic:NAME[?k=v&...]")->required();
  cmd->add_option("--view", o->view, "Scene JSON: layers, rendering, contrast, base camera angles");
  cmd->add_option("--grid", o->grid, "COLUMNSxROWS (yaw steps x pitch steps)")
      ->capture_default_str();
  cmd->add_option("--yaw", o->yaw, "First:last yaw, degrees (columns)")->capture_default_str();
  cmd->add_option("--pitch", o->pitch, "First:last pitch, degrees (rows)")->capture_default_str();
  cmd->add_option("--size", o->size, "Tile side, pixels")
      ->capture_default_str()
      ->check(CLI::Range(16, 4096));
  cmd->add_option("--format", o->format, "webp or jpeg")
      ->capture_default_str()
      ->check(CLI::IsMember({"webp", "jpeg"}));
  cmd->add_option("--quality", o->quality, "1..100 (webp 100: lossless)")
      ->capture_default_str()
      ->check(CLI::Range(1, 100));
  cmd->add_option("-o,--output", o->out, "Directory to write")->required();
  cmd->add_flag("-q,--quiet", o->quiet, "No progress bar");
  cmd->footer(
      "Example: voxcast orbit brain.ome.zarr --view mip.json --grid 30x30 --size 256 -o "
      "site/brain\n"
      "         then put site/brain on any web server and open site/brain/index.html");
  return [o, &g]() {
    jobs::OrbitOptions oo;
    double cols = 0, rows = 0;
    if (!parse_pair(o->grid, 'x', cols, rows) || cols != std::floor(cols) ||
        rows != std::floor(rows))
      return usage_error(fmt::format("--grid '{}': expected COLUMNSxROWS, e.g. 30x30", o->grid));
    oo.columns = int(cols);
    oo.rows = int(rows);
    if (!parse_pair(o->yaw, ':', oo.yaw_min, oo.yaw_max))
      return usage_error(
          fmt::format("--yaw '{}': expected FIRST:LAST in degrees, e.g. -60:60", o->yaw));
    if (!parse_pair(o->pitch, ':', oo.pitch_min, oo.pitch_max))
      return usage_error(
          fmt::format("--pitch '{}': expected FIRST:LAST in degrees, e.g. -45:45", o->pitch));
    oo.size = o->size;
    oo.format = o->format;
    oo.quality = o->quality;
    {
      std::ifstream js(std::string(VOXCAST_WEB_DIR) + "/voxcast-orbit.js");
      std::ostringstream ss;
      ss << js.rdbuf();
      oo.component_js = ss.str();
    }
    auto src = data::open_volume(o->data, g.open_options());
    if (!src) return report(src.error().what());
    render::SceneData sd{{(*src)->info()}};
    if (sd.axis_names().size() < 3)
      return report(fmt::format("{}: an orbit needs three spatial axes", o->data));
    // Derived layers (pipelines) charge the cache's budget; declared before the cache.
    Budget budget("host", g.cache_bytes());
    ViewSources derived(budget);
    data::CacheOptions co{g.cache_bytes(), g.io_threads, 16};
    co.budget = &budget;
    data::ChunkCache cache(co);
    render::RenderInputs inputs{&cache, {cache.add_source(*src)}, sd};
    auto defaults = jobs::orbit_scene(sd, o->size);
    std::vector<std::string> warnings;
    if (auto st = render::estimate_contrast(defaults, inputs, &warnings); !st)
      return report(st.error().what());
    for (const auto& msg : warnings)
      VX_LOG(warn, "data.contrast", "message={}", log_quote(msg));
    render::Scene scene = defaults;
    if (!o->view.empty()) {
      auto j = render::read_scene_file(o->view);
      if (!j) return report(j.error().what());
      if (auto st = derived.resolve(*j, inputs); !st) {
        const auto msg = fmt::format("{}: {}", o->view, st.error().what());
        return st.error().code == ErrorCode::kInvalidArgument ? usage_error(msg) : report(msg);
      }
      auto s = render::apply_patch(defaults, *j, inputs.data);
      if (!s) {
        const auto msg = fmt::format("{}: {}", o->view, s.error().what());
        return s.error().code == ErrorCode::kInvalidArgument ? usage_error(msg) : report(msg);
      }
      scene = std::move(*s);
    }
    ProgressBar bar("orbit", std::uint64_t(oo.columns) * std::uint64_t(oo.rows), "views",
                    !o->quiet);
    jobs::OrbitProgress progress;
    progress.on_view = [&bar](int, int) { bar.add(1); };
    auto result = jobs::render_orbit(scene, inputs, oo, o->out, progress);
    if (!result)  // options out of range (--grid, --size) are usage errors
      return result.error().code == ErrorCode::kInvalidArgument
                 ? usage_error(result.error().message)
                 : report(result.error().what());
    VX_LOG(info, "orbit.done", "dir={} views={} seconds={:.2f} files={} bytes={}",
           log_quote(o->out), result->views, result->seconds, result->files.size(), result->bytes);
    fmt::print("wrote {} views in {:.1f} s to {}: {} sheets, {:.1f} MiB; open {}/index.html\n",
               result->views, result->seconds, o->out, result->files.size() - 2,
               double(result->bytes) / (1 << 20), o->out);
    return 0;
  };
}

}  // namespace vx::app
