#include <fmt/format.h>

#include <charconv>
#include <filesystem>
#include <optional>

#include "commands.hpp"
#include "core/log.hpp"
#include "core/progress.hpp"
#include "data/chunk_cache.hpp"
#include "jobs/kind.hpp"
#include "jobs/movie.hpp"
#include "jobs/queue.hpp"

namespace vx::app {

Runner add_movie(CLI::App& app, const GlobalOptions& g) {
  auto* cmd = app.add_subcommand(
      "movie",
      "Render a keyframe timeline into an H.264 MP4: every frame at final quality, numeric\n"
      "fields interpolated between keyframes (camera by quaternion slerp), discrete ones\n"
      "switched at the midpoint. The timeline format is in docs/movies.md.");
  struct Opts {
    std::string data, timeline, size = "1920x1080", out;
    int fps = 30, quality = 18;
    bool quiet = false;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("DATA", o->data, "Dataset path or synthetic:NAME[?k=v&...]")->required();
  cmd->add_option("--timeline", o->timeline, "Timeline JSON: {\"keyframes\": [...]}")->required();
  cmd->add_option("--fps", o->fps, "Frames per second")
      ->capture_default_str()
      ->check(CLI::Range(jobs::kMinFps, jobs::kMaxFps));
  cmd->add_option("--size", o->size, "Frame WxH, even numbers")->capture_default_str();
  cmd->add_option("--quality", o->quality, "x264 CRF: 0 (best) to 51; 18 is visually lossless")
      ->capture_default_str()
      ->check(CLI::Range(0, 51));
  cmd->add_option("-o,--output", o->out, "The MP4 file to write")->required();
  cmd->add_flag("-q,--quiet", o->quiet, "No progress bar");
  cmd->footer(
      "Example: voxcast movie brain.ome.zarr --timeline spin.json --fps 30 --size 1280x720 -o "
      "spin.mp4\n"
      "  spin.json: {\"keyframes\": [{\"time\": 0, \"scene\": {\"dims\": {\"ndisplay\": 3}}},\n"
      "              {\"time\": 4, \"patch\": {\"camera\": {\"angles\": [0, 180, 90]}}}]}");
  return [o, &g]() {
    int w = 0, h = 0;
    {
      const auto x = o->size.find('x');
      const char* s = o->size.data();
      if (x == std::string::npos || std::from_chars(s, s + x, w).ptr != s + x ||
          std::from_chars(s + x + 1, s + o->size.size(), h).ptr != s + o->size.size())
        return usage_error(fmt::format("--size '{}': expected WxH, e.g. 1920x1080", o->size));
      if (w < jobs::kMinMovieSide || h < jobs::kMinMovieSide || w > jobs::kMaxMovieSide ||
          h > jobs::kMaxMovieSide || w % 2 || h % 2)
        return usage_error(fmt::format("--size {}: even sides of {} to {} pixels", o->size,
                                       jobs::kMinMovieSide, jobs::kMaxMovieSide));
    }
    auto timeline = render::read_scene_file(o->timeline);  // any JSON file, errors name it
    if (!timeline) return report(timeline.error().what());
    auto src = data::open_volume(o->data, g.open_options());
    if (!src) return report(src.error().what());
    render::SceneData sd{{(*src)->info()}};
    data::ChunkCache cache(data::CacheOptions{g.cache_bytes(), g.io_threads, 16});
    jobs::Dataset dataset;
    dataset.inputs = render::RenderInputs{&cache, {cache.add_source(*src)}, sd};
    dataset.defaults = render::default_scene(sd, w, h);
    std::vector<std::string> warnings;
    if (auto st = render::estimate_contrast(dataset.defaults, dataset.inputs, &warnings); !st)
      return report(st.error().what());
    for (const auto& msg : warnings)
      VX_LOG(warn, "data.contrast", "message={}", log_quote(msg));
    auto kind = jobs::make_movie_kind([&dataset](int i) -> Result<jobs::Dataset> {
      if (i != 0) return fail(ErrorCode::kInvalidArgument, "dataset {}: there is one", i);
      return dataset;
    });
    const jobs::json params = {{"timeline", *timeline},
                               {"fps", o->fps},
                               {"width", w},
                               {"height", h},
                               {"quality", o->quality}};
    if (auto st = kind->validate(params); !st) {
      auto msg = st.error().message;
      // The CLI's names for the job's fields.
      for (const auto& [from, to] :
           {std::pair<std::string, std::string>{"field 'params.timeline'", o->timeline},
            std::pair<std::string, std::string>{"field 'params'", "movie"}})
        if (msg.rfind(from, 0) == 0) msg = to + msg.substr(from.size());
      return st.error().code == ErrorCode::kInvalidArgument ? usage_error(msg) : report(msg);
    }
    // The job writes into a private folder beside the output; its movie.mp4 is renamed onto
    // the output only when complete.
    namespace fs = std::filesystem;
    const fs::path out(o->out);
    const fs::path work =
        out.parent_path() / ("." + out.filename().string() + "." + jobs::JobQueue::new_id());
    std::optional<ProgressBar> bar;
    std::uint64_t shown = 0;
    const auto t0 = std::chrono::steady_clock::now();
    auto files =
        jobs::run_local(*kind, params, work.string(), [&](std::uint64_t done, std::uint64_t total) {
          if (!bar) bar.emplace("movie", total, "frames", !o->quiet);
          bar->add(done - shown);
          shown = done;
        });
    bar.reset();
    std::error_code ec;
    if (files) fs::rename(work / "movie.mp4", out, ec);
    fs::remove_all(work);
    if (!files) return report(files.error().what());
    if (ec) return report(fmt::format("{}: cannot write: {}", o->out, ec.message()));
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const auto bytes = fs::file_size(out, ec);
    VX_LOG(info, "movie.done", "output={} frames={} seconds={:.2f} bytes={}", log_quote(o->out),
           shown, secs, bytes);
    fmt::print("wrote {} frames in {:.1f} s ({:.1f} fps) to {}: {:.1f} MiB\n", shown, secs,
               double(shown) / std::max(1e-9, secs), o->out, double(bytes) / (1 << 20));
    return 0;
  };
}

}  // namespace vx::app
