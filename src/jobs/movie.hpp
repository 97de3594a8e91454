// Movies: every frame of a keyframe timeline (render/timeline.hpp) rendered at final
// quality through the shared cache and encoded as H.264 in MP4 or VP9 in WebM
// (codec/movie_file.hpp). Frames
// render in parallel, each on its own renderer, and are encoded in order as they come.
// docs/movies.md.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>

#include "codec/movie_file.hpp"
#include "core/error.hpp"
#include "render/renderer.hpp"
#include "render/timeline.hpp"

namespace vx::jobs {

// Caps: a movie is at most this many frames, and this many pixels over all its frames
// (4 min at 30 fps of 4K; 300 frames of 1080p are 0.6 Gpx).
constexpr int kMaxMovieFrames = 7200;
constexpr std::uint64_t kMaxMoviePixels = 16ull << 30;
constexpr int kMinMovieSide = 16, kMaxMovieSide = 4096;
constexpr int kMinFps = 1, kMaxFps = 120;

struct MovieOptions {
  int fps = 30;
  int width = 1920, height = 1080;  // even
  int quality = 18;                 // x264's CRF scale, 0..51: lower is better (both formats)
  std::string preset = "veryfast";  // x264 preset
  codec::MovieFormat format = codec::MovieFormat::kMp4;
  // Sort-last over MPI (src/cluster, docs/cluster.md): every frame is split over the ranks
  // and rendered by all of them in order (each frame a collective); rank 0 composites and
  // encodes, the other ranks write nothing.
  render::Compositor* compositor = nullptr;
};

struct MovieProgress {
  std::function<void(int done, int total)> on_frame;  // after each frame is encoded
  const std::atomic<bool>* cancel = nullptr;          // checked before and during each frame
};

struct MovieResult {
  int frames = 0;
  double seconds = 0;
  std::uint64_t bytes = 0;
};

// Frames of a timeline at `fps`: max(1, round(duration * fps)); the first is the first
// keyframe, the last the last keyframe, the others evenly between.
int movie_frames(const render::Timeline& timeline, int fps);
// The time of frame i of n.
double movie_frame_time(const render::Timeline& timeline, int i, int n);

// The movie job's result file: "movie.mp4" or "movie.webm".
std::string movie_file_name(codec::MovieFormat format);

// The caps (frames, pixels), and options in range: kInvalidArgument saying the cap.
Status check_movie(const render::Timeline& timeline, const MovieOptions& options);

// The scene of the movie at time t, whose layers name sources of the movie's inputs; it may
// add sources to them (derived layers whose parameters move: render::SourceBlend). Called
// one frame at a time, in order, never while another call runs. Default: render::scene_at().
using FrameScene = std::function<Result<render::Scene>(double t)>;

// Renders the movie into `path` (with a compositor, only on rank 0). It is written under a
// temporary name beside it and renamed when complete: a cancel (kCancelled) or a failure leaves no
// file at `path`.
Result<MovieResult> render_movie(const render::Timeline& timeline,
                                 const render::RenderInputs& inputs, const MovieOptions& options,
                                 const std::string& path, const MovieProgress& progress = {},
                                 const FrameScene& frame_scene = {});

}  // namespace vx::jobs
