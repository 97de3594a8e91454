#include <fmt/format.h>

#include "codec/png.hpp"
#include "commands.hpp"
#include "core/log.hpp"
#include "core/memory.hpp"
#include "core/progress.hpp"
#include "data/chunk_cache.hpp"
#include "data/convert.hpp"
#include "data/data.hpp"
#include "render/renderer.hpp"

namespace vx::app {

Runner add_demo(CLI::App& app, const GlobalOptions& g) {
  auto* cmd = app.add_subcommand(
      "demo",
      "Serve the built-in procedural dataset (1 TiB virtual, two channels, computed on demand)\n"
      "and print the URL to open: the same as `voxcast serve synthetic:cells`.\n"
      "With --offline: convert a crop of it to a multiscale OME-Zarr, describe the result, and\n"
      "render a slice of it to a PNG beside it, without serving.");
  auto out = std::make_shared<std::string>("voxcast-demo.ome.zarr");
  auto shape = std::make_shared<std::string>("128x512x512");
  auto offline = std::make_shared<bool>(false);
  auto serve = std::make_shared<ServeOptions>();
  add_serve_options(*cmd, *serve);
  cmd->add_flag("--offline", *offline, "Convert and render instead of serving");
  cmd->add_option("-o,--output", *out, "--offline: where to write the converted crop")
      ->capture_default_str();
  cmd->add_option("--shape", *shape, "--offline: ZxYxX of the crop to convert")
      ->capture_default_str();
  cmd->footer(
      "Example: voxcast demo            (then open the printed URL)\n"
      "         voxcast demo --offline -o /tmp/demo.ome.zarr");
  return [out, shape, offline, serve, &g]() {
    auto full = data::open_volume("synthetic:cells");
    if (!full) return report(full.error().what());
    fmt::print("== The built-in dataset ==\n");
    print_info((*full)->info());
    if (!*offline) {
      fmt::print("\n");
      return serve_datasets({"synthetic:cells"}, *serve, g);
    }
    const std::string crop = "synthetic:cells?shape=" + *shape;
    if (auto probe = data::open_volume(crop); !probe)  // a bad --shape is a usage error
      return probe.error().code == ErrorCode::kInvalidArgument
                 ? usage_error(fmt::format("--shape '{}': {}", *shape, probe.error().message))
                 : report(probe.error().what());
    fmt::print("\n== Converting {} to {} ==\n", crop, *out);
    data::ConvertOptions c;
    c.cache_bytes = g.cache_bytes();
    c.io_threads = g.io_threads;
    c.overwrite = true;
    c.codec = data::OutputCodec::kZstd;
    auto stats = data::convert_to_ome_zarr(crop, *out, c);
    if (!stats) return report(stats.error().what());
    fmt::print("wrote {} chunks ({} empty) in {:.1f} s: {} decoded, {} on disk\n",
               stats->chunks_written, stats->chunks_empty, stats->seconds,
               format_bytes(double(stats->bytes_decoded)),
               format_bytes(double(stats->bytes_written)));
    auto result = data::open_volume(*out);
    if (!result) return report(result.error().what());
    fmt::print("\n== The result ==\n");
    print_info((*result)->info());

    // A picture of it: the middle slice, both channels, as a client would see it.
    std::string png = *out;
    while (!png.empty() && png.back() == '/')
      png.pop_back();
    for (const char* ext : {".ome.zarr", ".zarr"})
      if (png.ends_with(ext)) png.resize(png.size() - std::string_view(ext).size());
    png += ".png";
    render::SceneData sd{{(*result)->info()}};
    data::ChunkCache cache(data::CacheOptions{g.cache_bytes(), g.io_threads, 16});
    render::RenderInputs inputs{&cache, {cache.add_source(*result)}, sd};
    auto scene = render::default_scene(sd, 1280, 720);
    if (auto st = render::estimate_contrast(scene, inputs); !st) return report(st.error().what());
    auto frame = render::make_cpu_renderer()->render(scene, inputs);
    if (!frame) return report(frame.error().what());
    if (auto st = codec::write_png(png, frame->width, frame->height, frame->pixels); !st)
      return report(st.error().what());
    fmt::print("\n== Rendered the middle slice to {} (1280x720) ==\n", png);
    return 0;
  };
}

}  // namespace vx::app
