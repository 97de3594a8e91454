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
  auto* cmd = app.add_subcommand("demo",
                                 "Show the built-in procedural dataset (1 TiB virtual, computed on "
                                 "demand), convert a crop of\n"
                                 "it to a multiscale OME-Zarr, describe the result, and render a "
                                 "slice of it to a PNG beside it.\n"
                                 "(Live streaming of it will follow.)");
  auto out = std::make_shared<std::string>("voxcast-demo.ome.zarr");
  auto shape = std::make_shared<std::string>("128x512x512");
  cmd->add_option("-o,--output", *out, "Where to write the converted crop")->capture_default_str();
  cmd->add_option("--shape", *shape, "ZxYxX of the crop to convert")->capture_default_str();
  cmd->footer("Example: voxcast demo -o /tmp/demo.ome.zarr");
  return [out, shape, &g]() {
    auto full = data::open_volume("synthetic:cells");
    if (!full) return report(full.error().what());
    fmt::print("== The built-in dataset ==\n");
    print_info((*full)->info());
    const std::string crop = "synthetic:cells?shape=" + *shape;
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
