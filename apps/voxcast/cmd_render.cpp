#include <fmt/format.h>

#include <cctype>
#include <charconv>
#include <filesystem>

#include "codec/encoder.hpp"
#include "codec/png.hpp"
#include "commands.hpp"
#include "core/log.hpp"
#include "data/chunk_cache.hpp"
#include "data/file_io.hpp"
#include "mpi_run.hpp"
#include "render/renderer.hpp"
#include "render/select.hpp"
#include "stream/view_sources.hpp"

namespace vx::app {
namespace {

// "png" or "jpeg" from the output's extension (any case), "" when neither.
std::string image_type(const std::string& path) {
  auto ext = std::filesystem::path(path).extension().string();
  for (auto& ch : ext)
    ch = char(std::tolower(static_cast<unsigned char>(ch)));
  if (ext == ".png") return "png";
  if (ext == ".jpg" || ext == ".jpeg") return "jpeg";
  return "";
}

Status write_jpeg(const std::string& path, int width, int height,
                  std::span<const std::uint8_t> rgba) {
  codec::EncoderOptions eo{width, height};
  eo.jpeg_quality = 92;
  VX_ASSIGN(auto enc, codec::make_encoder(codec::Codec::kJpeg, eo));
  codec::Encoded out;
  VX_TRY(enc.encoder->encode(rgba.data(), true, out));
  return data::write_file_atomic(path, std::as_bytes(std::span(out.data)));
}

}  // namespace

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
    std::string renderer = "auto";
    bool still = true;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("DATA", o->data, "Dataset path or synthetic:NAME[?k=v&...]")->required();
  cmd->add_option("--view", o->view, "Scene JSON file (default: the data's default view)");
  cmd->add_option("--size", o->size, "Canvas WxH, overriding the view's canvas");
  cmd->add_option("-o,--output", o->out, "Output image: .png, or .jpg/.jpeg (JPEG, quality 92)")
      ->required();
  cmd->add_flag("--still", o->still, "Final quality (the default; kept for scripts)");
  cmd->add_option("--renderer", o->renderer,
                  "Renderer backend: auto (CUDA where available, else the CPU), cpu, or cuda "
                  "(an error naming why where it is not available). docs/gpu.md")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "cpu", "cuda"}));
  cmd->footer(
      "Example: voxcast render brain.ome.zarr --view view.json --size 1920x1080 -o view.png\n"
      "  view.json for 3D: {\"dims\": {\"ndisplay\": 3}, \"camera\": {\"angles\": [0, 30, 120]}}\n"
      "Under mpirun -np N, 3D views are split over the ranks (each reads its part of the\n"
      "volume) and composited; rank 0 writes the image (docs/cluster.md).");
  return [o, &g]() {
    // Under mpirun: every rank renders its part of the volume, rank 0 writes (sort-last).
    auto launched = world_if_launched();
    if (!launched) return report(launched.error().what());
    const std::unique_ptr<cluster::World> world = std::move(*launched);
    const auto type = image_type(o->out);
    if (type.empty())
      return usage_error(fmt::format("-o '{}': unknown image type '{}'; use .png, .jpg or .jpeg",
                                     o->out, std::filesystem::path(o->out).extension().string()));
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
        return usage_error(fmt::format("--size '{}': expected WxH, e.g. 1920x1080", o->size));
      if (!patch.is_object())
        return usage_error(fmt::format("{}: a view must be a JSON object", o->view));
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
    // Derived layers (pipelines) charge the cache's budget; declared before the cache.
    Budget budget("host", g.cache_bytes());
    stream::ViewSources derived(budget);
    data::CacheOptions co{g.cache_bytes(), g.io_threads, 16};
    co.budget = &budget;
    data::ChunkCache cache(co);
    render::RenderInputs inputs{&cache, {cache.add_source(*src)}, sd};
    if (auto st = derived.resolve(patch, inputs); !st) {
      const auto msg = fmt::format("{}: {}", o->view, st.error().what());
      return st.error().code == ErrorCode::kInvalidArgument ? usage_error(msg) : report(msg);
    }
    // Defaults from the data (contrast estimated where the metadata has no window), then the
    // view on top, so that what it sets wins.
    auto defaults = render::default_scene(sd, w, h);
    std::vector<std::string> warnings;
    if (auto st = render::estimate_contrast(defaults, inputs, &warnings); !st)
      return report(st.error().what());
    for (const auto& msg : warnings)
      VX_LOG(warn, "data.contrast", "message={}", log_quote(msg));
    auto scene = render::apply_patch(defaults, patch, inputs.data);
    if (!scene) {
      const auto msg =
          fmt::format("{}: {}", o->view.empty() ? "--size" : o->view, scene.error().what());
      return scene.error().code == ErrorCode::kInvalidArgument ? usage_error(msg) : report(msg);
    }
    // A slice past the end is a mistake in the view, not a black picture.
    if (auto st = render::check_slices_in_range(*scene, inputs.data); !st)
      return usage_error(
          fmt::format("{}: {}", o->view.empty() ? "the view" : o->view, st.error().message));
    // Sort-last over MPI composites the CPU renderer's intermediate images (src/cluster).
    if (world && o->renderer == "cuda")
      return report("--renderer cuda: sort-last rendering over MPI runs on the CPU renderer");
    auto choice = render::make_renderer(world ? "cpu" : o->renderer);
    if (!choice)
      return report(fmt::format("--renderer {}: {}", o->renderer, choice.error().message));
    if (!choice->fallback.empty())
      VX_LOG(info, "render.renderer", "renderer={} fallback={}", choice->name,
             log_quote(choice->fallback));
    auto& renderer = choice->renderer;
    const auto misses_before = cache.counters().misses;  // contrast estimation read some
    render::RenderOptions ro;
    ro.compositor = world.get();
    // A 2D view is one slice of bricks: rank 0 draws it alone; 3D views are split.
    const bool idle = world && scene->dims.ndisplay != 3 && world->rank() != 0;
    auto frame =
        idle ? Result<render::Frame>(render::Frame{}) : renderer->render(*scene, inputs, ro);
    if (world) {
      if (auto st = world->agree(frame ? Status{} : Status(tl::unexpected(frame.error()))); !st)
        return report(st.error().what());
      const auto cc = world->counters();
      VX_LOG(info, "render.part",
             "rank={} ranks={} chunks_read={} bytes_sent={} composite_ms={:.1f}", world->rank(),
             world->size(), cache.counters().misses - misses_before, cc.bytes_sent,
             cc.composite_seconds * 1e3);
      if (world->rank() != 0) return 0;
    }
    if (!frame) return report(frame.error().what());
    for (const auto& f : frame->failed)  // drawn without them: say so, one line each
      VX_LOG(warn, "render.chunk_failed", "message={}", log_quote(f));
    auto st = type == "png" ? codec::write_png(o->out, frame->width, frame->height, frame->pixels)
                            : write_jpeg(o->out, frame->width, frame->height, frame->pixels);
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
