#include <fmt/format.h>

#include <charconv>
#include <chrono>
#include <cmath>
#include <filesystem>

#include "commands.hpp"
#include "core/log.hpp"
#include "jobs/kind.hpp"
#include "local_job.hpp"
#include "mpi_run.hpp"
#include "pipeline/pipeline.hpp"
#include "render/select.hpp"

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
    std::string renderer = "auto";
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
      ->check(CLI::Range(16, 1024));
  cmd->add_option("--format", o->format, "webp or jpeg")
      ->capture_default_str()
      ->check(CLI::IsMember({"webp", "jpeg"}));
  cmd->add_option("--quality", o->quality, "1..100 (webp 100: lossless)")
      ->capture_default_str()
      ->check(CLI::Range(1, 100));
  cmd->add_option("-o,--output", o->out, "Directory to write")->required();
  cmd->add_flag("-q,--quiet", o->quiet, "No progress bar");
  cmd->add_option("--renderer", o->renderer,
                  "Renderer backend: auto (CUDA where available, else the CPU), cpu, or cuda "
                  "(an error naming why where it is not available). docs/gpu.md")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "cpu", "cuda"}));
  cmd->footer(
      "Example: voxcast orbit brain.ome.zarr --view mip.json --grid 30x30 --size 256 -o "
      "site/brain\n"
      "         then put site/brain on any web server and open site/brain/index.html");
  return [o, &g]() {
    // Under mpirun: every view is split over the ranks (sort-last); rank 0 writes the files.
    auto launched = world_if_launched();
    if (!launched) return report(launched.error().what());
    const std::unique_ptr<cluster::World> world = std::move(*launched);
    double cols = 0, rows = 0, yaw0 = 0, yaw1 = 0, pitch0 = 0, pitch1 = 0;
    if (!parse_pair(o->grid, 'x', cols, rows) || cols != std::floor(cols) ||
        rows != std::floor(rows) || cols < 1 || rows < 1)
      return usage_error(fmt::format("--grid '{}': expected COLUMNSxROWS, e.g. 30x30", o->grid));
    if (!parse_pair(o->yaw, ':', yaw0, yaw1))
      return usage_error(
          fmt::format("--yaw '{}': expected FIRST:LAST in degrees, e.g. -60:60", o->yaw));
    if (!parse_pair(o->pitch, ':', pitch0, pitch1))
      return usage_error(
          fmt::format("--pitch '{}': expected FIRST:LAST in degrees, e.g. -45:45", o->pitch));
    if (o->renderer == "cuda")  // a machine's limit, not a mistake in the command: exit 1
      if (auto ok = render::cuda_renderer_available(); !ok)
        return report(fmt::format("--renderer cuda: renderer 'cuda' is not available here: {}",
                                  ok.error().message));
    jobs::json params = {{"columns", int(cols)},
                         {"rows", int(rows)},
                         {"size", o->size},
                         {"format", o->format},
                         {"quality", o->quality},
                         {"yaw", jobs::json::array({yaw0, yaw1})},
                         {"pitch", jobs::json::array({pitch0, pitch1})},
                         {"renderer", o->renderer}};
    // Derived layers (pipelines) charge the cache's budget; declared before the dataset, whose
    // cache must go first. The job kind resolves them, as it does for the server's jobs.
    Budget budget("host", g.cache_bytes());
    pipeline::Manager pipelines(pipeline::builtin_registry(), budget);
    auto local = open_local_dataset(o->data, g, 0, 0, &budget);
    if (!local) return report(local.error().what());
    local->dataset.pipelines = &pipelines;
    if (!o->view.empty()) {
      auto j = render::read_scene_file(o->view);
      if (!j) return report(j.error().what());
      params["view"] = std::move(*j);
    }
    // The same job kind as the server's: one code path.
    const auto kind = jobs::make_orbit_kind(local->lookup(), orbit_component_js(), world.get());
    const auto t0 = std::chrono::steady_clock::now();
    if (world && world->rank() != 0) return run_partial_rank(*world, *kind, params);
    auto files = run_with_progress(*kind, params, o->out, "orbit", "views", o->quiet);
    if (world)
      if (auto st = agree_on(world.get(), files); !st) return report(st.error().what());
    if (!files) {
      if (files.error().message.rfind("field 'params.dataset'", 0) == 0)  // e.g. a 2D image
        return report(fmt::format(
            "{}{}", o->data,
            files.error().message.substr(std::string("field 'params.dataset'").size())));
      return job_error(files.error(), {{"params.columns", "--grid"},
                                       {"params.rows", "--grid"},
                                       {"params.size", "--size"},
                                       {"params.yaw", "--yaw"},
                                       {"params.pitch", "--pitch"},
                                       {"params.renderer", "--renderer"},
                                       {"params.view", o->view},
                                       {"params", "orbit"}});
    }
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::uintmax_t bytes = 0;
    for (const auto& f : *files) {
      std::error_code ec;
      const auto n = std::filesystem::file_size(std::filesystem::path(o->out) / f, ec);
      bytes += ec ? 0 : n;
    }
    const int views = int(cols * rows);
    VX_LOG(info, "orbit.done", "dir={} views={} seconds={:.2f} files={} bytes={}",
           log_quote(o->out), views, secs, files->size(), bytes);
    fmt::print("wrote {} views in {:.1f} s to {}: {} sheets, {:.1f} MiB; open {}/index.html\n",
               views, secs, o->out, files->size() - 2, double(bytes) / (1 << 20), o->out);
    return 0;
  };
}

}  // namespace vx::app
