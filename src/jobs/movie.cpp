#include "jobs/movie.hpp"

#include <tbb/enumerable_thread_specific.h>
#include <tbb/parallel_pipeline.h>
#include <tbb/task_arena.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <mutex>
#include <optional>

#include "codec/movie_file.hpp"
#include "core/log.hpp"

namespace vx::jobs {

namespace fs = std::filesystem;

namespace {

// The inputs of one frame: source 0 (the world axes) and the sources its layers show,
// renumbered in `scene`; a copy of a few entries however many sources the movie made.
render::RenderInputs frame_inputs(render::Scene& scene, const render::RenderInputs& in) {
  render::RenderInputs out{
      in.cache, {in.sources.at(0)}, render::SceneData{{in.data.sources.at(0)}}};
  std::vector<std::pair<int, int>> renumbered{{0, 0}};
  for (auto& l : scene.layers) {
    auto it = std::find_if(renumbered.begin(), renumbered.end(),
                           [&](const auto& p) { return p.first == l.source; });
    if (it == renumbered.end()) {
      const auto at = std::size_t(l.source);
      out.sources.push_back(in.sources.at(at));
      out.data.sources.push_back(in.data.sources.at(at));
      it = renumbered.insert(renumbered.end(), {l.source, int(out.sources.size()) - 1});
    }
    l.source = it->second;
  }
  return out;
}

struct FrameView {
  render::Scene scene;
  render::RenderInputs inputs;  // the sources of this frame's scene alone
};

// Frame i of n: its scene at the movie's size and the inputs of its sources. Called in
// frame order (frame_scene may add sources to `in`).
Result<FrameView> frame_of(const render::Timeline& tl, const MovieOptions& o,
                           const FrameScene& frame_scene, const render::RenderInputs& in, int i,
                           int n) {
  const double t = movie_frame_time(tl, i, n);
  auto s = frame_scene ? frame_scene(t) : Result<render::Scene>(render::scene_at(tl, t));
  if (!s) return tl::unexpected(with_context(s.error(), fmt::format("frame {}", i)));
  FrameView f;
  f.scene = std::move(*s);
  f.scene.canvas.width = o.width;
  f.scene.canvas.height = o.height;
  f.inputs = frame_inputs(f.scene, in);
  return f;
}

// A rank other than 0 of a sort-last movie: renders its part of every frame, in order, for
// rank 0 to composite. Nothing is encoded or written here.
Result<MovieResult> render_movie_part(const render::Timeline& tl, const render::RenderInputs& in,
                                      const MovieOptions& o, const MovieProgress& progress,
                                      const FrameScene& frame_scene) {
  const auto t0 = std::chrono::steady_clock::now();
  const int total = movie_frames(tl, o.fps);
  auto renderer = render::make_cpu_renderer();
  render::RenderOptions ropt;
  ropt.format = render::PixelFormat::kI420;
  ropt.cancel = progress.cancel;
  ropt.compositor = o.compositor;
  for (int i = 0; i < total; ++i) {
    VX_ASSIGN(auto f, frame_of(tl, o, frame_scene, in, i, total));
    auto frame = renderer->render(f.scene, f.inputs, ropt);
    if (!frame) return tl::unexpected(with_context(frame.error(), fmt::format("frame {}", i)));
    renderer->recycle(std::move(*frame));
    if (progress.on_frame) progress.on_frame(i + 1, total);
  }
  MovieResult r;
  r.frames = total;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

}  // namespace

int movie_frames(const render::Timeline& tl, int fps) {
  const double n = std::round(tl.duration() * fps);
  return n < 1 ? 1 : n > 1e9 ? 1000000000 : int(n);
}

std::string movie_file_name(codec::MovieFormat format) {
  return "movie" + codec::movie_extension(format);
}

double movie_frame_time(const render::Timeline& tl, int i, int n) {
  if (n <= 1 || i <= 0) return tl.start();
  if (i >= n - 1) return tl.end();
  return tl.start() + tl.duration() * double(i) / double(n - 1);
}

Status check_movie(const render::Timeline& tl, const MovieOptions& o) {
  if (o.fps < kMinFps || o.fps > kMaxFps)
    return fail(ErrorCode::kInvalidArgument, "fps {}: {} to {}", o.fps, kMinFps, kMaxFps);
  for (const auto& [name, v] : {std::pair{"width", o.width}, std::pair{"height", o.height}})
    if (v < kMinMovieSide || v > kMaxMovieSide || v % 2)
      return fail(ErrorCode::kInvalidArgument, "{} {}: an even number of pixels, {} to {}", name, v,
                  kMinMovieSide, kMaxMovieSide);
  if (o.quality < 0 || o.quality > codec::kMaxMovieQuality)
    return fail(ErrorCode::kInvalidArgument, "quality {}: 0 (best) to {}", o.quality,
                codec::kMaxMovieQuality);
  const int n = movie_frames(tl, o.fps);
  if (n > kMaxMovieFrames)
    return fail(ErrorCode::kInvalidArgument,
                "{} frames ({} s at {} fps): over the cap of {} frames a movie may have", n,
                tl.duration(), o.fps, kMaxMovieFrames);
  const double px = double(n) * o.width * o.height;
  if (px > double(kMaxMoviePixels))
    return fail(ErrorCode::kInvalidArgument,
                "{} frames of {}x{} are {:.1f} Gpx: over the cap of {} Gpx a movie may have", n,
                o.width, o.height, px / double(1ull << 30), kMaxMoviePixels >> 30);
  return {};
}

Result<MovieResult> render_movie(const render::Timeline& tl, const render::RenderInputs& in,
                                 const MovieOptions& o, const std::string& path,
                                 const MovieProgress& progress, const FrameScene& frame_scene) {
  VX_TRY(check_movie(tl, o));
  if (o.compositor && o.compositor->rank() != 0)
    return render_movie_part(tl, in, o, progress, frame_scene);
  const auto t0 = std::chrono::steady_clock::now();
  const fs::path target(path);
  // The temporary name: hidden, beside the result (same file system, so rename is atomic).
  const fs::path temp = target.parent_path() / ("." + target.filename().string() + ".partial");
  struct Cleanup {  // removes the temporary file unless the movie is complete
    fs::path p;
    bool keep = false;
    ~Cleanup() {
      std::error_code ec;
      if (!keep) fs::remove(p, ec);
    }
  } cleanup{temp};
  codec::MovieFileOptions mo;
  mo.format = o.format;
  mo.width = o.width;
  mo.height = o.height;
  mo.fps = o.fps;
  mo.quality = o.quality;
  mo.preset = o.preset;
  std::unique_ptr<codec::MovieWriter> writer;
  {
    auto w = codec::MovieWriter::open(temp.string(), mo);
    if (!w) return tl::unexpected(w.error());
    writer = std::move(*w);
  }

  const int total = movie_frames(tl, o.fps);
  tbb::enumerable_thread_specific<std::unique_ptr<render::Renderer>> renderers(
      [] { return render::make_cpu_renderer(); });
  std::atomic<bool> stop{false};
  std::mutex error_mutex;
  std::optional<Error> error;
  const auto set_error = [&](const Error& e) {
    std::lock_guard lock(error_mutex);
    if (!error) error = e;
    stop = true;
  };
  const auto cancelled = [&] { return progress.cancel && progress.cancel->load(); };
  render::RenderOptions ropt;
  ropt.format = render::PixelFormat::kI420;
  ropt.cancel = progress.cancel;
  ropt.compositor = o.compositor;
  struct Item {
    int index = 0;
    FrameView view;
    std::vector<std::uint8_t> pixels;  // I420; empty when the frame failed
  };
  int next = 0, done = 0;
  // Batch work, as orbits: a low-priority arena so that live sessions' frames come first.
  // In flight: a few frames per thread, so rendering never waits on the (serial) encoder.
  // Sort-last: one frame at a time, since every frame is a collective that all ranks must
  // enter in the same order (render_movie_part); each frame's render is itself parallel.
  tbb::task_arena arena(tbb::task_arena::automatic, 1, tbb::task_arena::priority::low);
  arena.execute([&] {
    const auto tokens =
        o.compositor ? std::size_t(1) : std::size_t(std::max(2, 2 * arena.max_concurrency()));
    tbb::parallel_pipeline(
        tokens,
        tbb::make_filter<void, std::shared_ptr<Item>>(
            tbb::filter_mode::serial_in_order,
            [&](tbb::flow_control& fc) -> std::shared_ptr<Item> {
              if (next >= total || stop || cancelled()) {
                fc.stop();
                return nullptr;
              }
              auto item = std::make_shared<Item>();
              item->index = next++;
              // Scenes in frame order, here in the serial stage: frame_scene may add sources
              // to `in` while earlier frames render, so each frame takes its own inputs.
              auto f = frame_of(tl, o, frame_scene, in, item->index, total);
              if (!f) {
                set_error(f.error());
                fc.stop();
                return nullptr;
              }
              item->view = std::move(*f);
              return item;
            }) &
            tbb::make_filter<std::shared_ptr<Item>, std::shared_ptr<Item>>(
                tbb::filter_mode::parallel,
                [&](std::shared_ptr<Item> item) {
                  if (stop || cancelled()) return item;
                  auto frame = renderers.local()->render(item->view.scene, item->view.inputs, ropt);
                  if (!frame) {
                    if (frame.error().code != ErrorCode::kCancelled)
                      set_error(with_context(frame.error(), fmt::format("frame {}", item->index)));
                    stop = true;
                    return item;
                  }
                  for (const auto& f : frame->failed)
                    VX_LOG(warn, "movie.chunk_failed", "frame={} message={}", item->index,
                           log_quote(f));
                  item->pixels = std::move(frame->pixels);
                  return item;
                }) &
            tbb::make_filter<std::shared_ptr<Item>, void>(
                tbb::filter_mode::serial_in_order, [&](std::shared_ptr<Item> item) {
                  if (stop || item->pixels.empty()) return;
                  if (auto st = writer->write(item->pixels.data()); !st) {
                    set_error(st.error());
                    return;
                  }
                  ++done;
                  if (progress.on_frame) progress.on_frame(done, total);
                  // The buffer goes back to a renderer: the next frame reuses its pages.
                  render::Frame spent;
                  spent.pixels = std::move(item->pixels);
                  renderers.local()->recycle(std::move(spent));
                }));
  });
  if (error) return tl::unexpected(*error);
  if (cancelled() || done < total)
    return fail(ErrorCode::kCancelled, "movie canceled after {} of {} frames", done, total);
  VX_TRY(writer->finish());
  writer.reset();
  std::error_code ec;
  fs::rename(temp, target, ec);
  if (ec)
    return fail(ErrorCode::kIo, "{}: cannot rename {} to it: {}", path, temp.string(),
                ec.message());
  cleanup.keep = true;
  MovieResult r;
  r.frames = total;
  r.bytes = fs::file_size(target, ec);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

}  // namespace vx::jobs
