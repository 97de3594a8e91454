#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <filesystem>
#include <optional>

#include "commands.hpp"
#include "core/log.hpp"
#include "jobs/kind.hpp"
#include "jobs/movie.hpp"
#include "jobs/queue.hpp"
#include "local_job.hpp"
#include "mpi_run.hpp"
#include "pipeline/pipeline.hpp"

namespace vx::app {

Runner add_movie(CLI::App& app, const GlobalOptions& g) {
  auto* cmd = app.add_subcommand(
      "movie",
      "Render a keyframe timeline into a movie (H.264 in MP4, or VP9 in WebM when the output\n"
      "ends in .webm): every frame at final quality, numeric\n"
      "fields interpolated between keyframes (camera by quaternion slerp), discrete ones\n"
      "switched at the midpoint. Layers may show pipelines ({\"source\": {\"pipeline\": ...}},\n"
      "as in view files): their live parameters interpolate too. The timeline format is in\n"
      "docs/movies.md.");
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
  cmd->add_option("--quality", o->quality,
                  "x264 CRF scale: 0 (best) to 51; 18 is visually lossless (WebM: mapped onto "
                  "VP9's 0..63)")
      ->capture_default_str()
      ->check(CLI::Range(0, 51));
  cmd->add_option("-o,--output", o->out, "The movie to write: NAME.mp4 or NAME.webm")->required();
  cmd->add_flag("-q,--quiet", o->quiet, "No progress bar");
  cmd->footer(
      "Example: voxcast movie brain.ome.zarr --timeline spin.json --fps 30 --size 1280x720 -o "
      "spin.mp4\n"
      "  spin.json: {\"keyframes\": [{\"time\": 0, \"scene\": {\"dims\": {\"ndisplay\": 3}}},\n"
      "              {\"time\": 4, \"patch\": {\"camera\": {\"angles\": [0, 180, 90]}}}]}");
  return [o, &g]() {
    // Under mpirun: every frame is split over the ranks (sort-last); rank 0 encodes.
    auto launched = world_if_launched();
    if (!launched) return report(launched.error().what());
    const std::unique_ptr<cluster::World> world = std::move(*launched);
    const auto size = parse_size(o->size);
    if (!size)
      return usage_error(fmt::format("--size '{}': expected WxH, e.g. 1920x1080", o->size));
    const auto [w, h] = *size;
    if (w < jobs::kMinMovieSide || h < jobs::kMinMovieSide || w > jobs::kMaxMovieSide ||
        h > jobs::kMaxMovieSide || w % 2 || h % 2)
      return usage_error(fmt::format("--size {}: even sides of {} to {} pixels", o->size,
                                     jobs::kMinMovieSide, jobs::kMaxMovieSide));
    // The container follows the output's extension, in any case (as the Python client's).
    auto ext = std::filesystem::path(o->out).extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(),
                   [](unsigned char c) { return char(std::tolower(c)); });
    const auto container = codec::movie_format_from_string(ext.empty() ? "" : ext.substr(1));
    if (!container)
      return usage_error(fmt::format("-o {}: the movie's name must end in .mp4 or .webm", o->out));
    auto timeline = render::read_scene_file(o->timeline);  // any JSON file, errors name it
    if (!timeline) return report(timeline.error().what());
    // Derived layers (pipelines) charge the cache's budget; declared before the dataset, whose
    // cache must go first.
    Budget budget("host", g.cache_bytes());
    pipeline::Manager pipelines(pipeline::builtin_registry(), budget);
    auto local = open_local_dataset(o->data, g, w, h, &budget);
    if (!local) return report(local.error().what());
    local->dataset.pipelines = &pipelines;
    auto kind = jobs::make_movie_kind(local->lookup(), world.get());
    const jobs::json params = {{"timeline", *timeline},
                               {"fps", o->fps},
                               {"width", w},
                               {"height", h},
                               {"quality", o->quality},
                               {"format", std::string(codec::to_string(*container))}};
    // The CLI's names for the job's fields.
    const std::vector<std::pair<std::string, std::string>> names = {
        {"params.timeline", o->timeline}, {"params", "movie"}};
    if (auto st = kind->validate(params); !st) return job_error(st.error(), names);
    // Each rank (one without MPI) says how many chunks its part of the frames read.
    const auto misses_before = local->cache->counters().misses;
    const auto log_part = [&] {
      VX_LOG(info, "movie.part", "rank={} ranks={} chunks_read={} bytes_sent={}",
             world ? world->rank() : 0, world ? world->size() : 1,
             local->cache->counters().misses - misses_before,
             world ? world->counters().bytes_sent : 0);
    };
    if (world && world->rank() != 0) {
      const int rc = run_partial_rank(*world, *kind, params);
      log_part();
      return rc;
    }
    // The job writes into a private folder beside the output; its movie file is renamed onto
    // the output only when complete.
    namespace fs = std::filesystem;
    const fs::path out(o->out);
    const fs::path work =
        out.parent_path() / ("." + out.filename().string() + "." + jobs::JobQueue::new_id());
    const auto t0 = std::chrono::steady_clock::now();
    std::uint64_t frames = 0;
    auto files =
        run_with_progress(*kind, params, work.string(), "movie", "frames", o->quiet, &frames);
    if (world)
      if (auto st = agree_on(world.get(), files); !st) files = tl::unexpected(st.error());
    log_part();
    std::error_code ec;
    if (files) fs::rename(work / jobs::movie_file_name(*container), out, ec);
    fs::remove_all(work);
    if (!files)  // e.g. the disk filled: say which movie could not be written
      return report(fmt::format("{}: {}", o->out, files.error().what()));
    if (ec) return report(fmt::format("{}: cannot write: {}", o->out, ec.message()));
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const auto bytes = fs::file_size(out, ec);
    VX_LOG(info, "movie.done", "output={} frames={} seconds={:.2f} bytes={}", log_quote(o->out),
           frames, secs, bytes);
    fmt::print("wrote {} frames in {:.1f} s ({:.1f} fps) to {}: {:.1f} MiB\n", frames, secs,
               double(frames) / std::max(1e-9, secs), o->out, double(bytes) / (1 << 20));
    return 0;
  };
}

}  // namespace vx::app
