// Movie files through libavformat (docs/movies.md): H.264 in MP4 (x264) or VP9 in WebM
// (libvpx). Tuned for files, not streams: lookahead, quality-based (constant rate factor),
// yuv420p, BT.709 limited range signalled in the stream and the container. MP4 gets
// "+faststart" (the index before the media, so a browser plays while it downloads). No vendor
// header here.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "core/error.hpp"

namespace vx::codec {

enum class MovieFormat { kMp4, kWebm };

// "mp4" / "webm", and back (nullopt for anything else).
std::string_view to_string(MovieFormat f);
std::optional<MovieFormat> movie_format_from_string(std::string_view s);
// The file extension with its dot (".mp4", ".webm").
std::string movie_extension(MovieFormat f);

// Quality is on x264's CRF scale, 0..51 (lower is better, 18 visually lossless), for both
// formats: WebM maps it linearly onto VP9's 0..63, so one setting means about the same.
constexpr int kMaxMovieQuality = 51;
int vp9_crf(int quality);

struct MovieFileOptions {
  MovieFormat format = MovieFormat::kMp4;
  int width = 0, height = 0;  // even
  int fps = 30;
  int quality = 18;
  std::string preset = "veryfast";  // x264's preset (MP4 only)
};

class MovieWriter {
 public:
  // Opens `path` for writing (replacing it). Errors name the path.
  static Result<std::unique_ptr<MovieWriter>> open(const std::string& path,
                                                   const MovieFileOptions& options);
  virtual ~MovieWriter() = default;  // without finish(): the file is left incomplete
  // Appends one I420 frame (Y, then U, then V planes, tightly packed), in display order.
  virtual Status write(const std::uint8_t* i420) = 0;
  // Flushes the encoder, writes the index and closes the file.
  virtual Status finish() = 0;
  virtual std::int64_t frames() const = 0;
};

}  // namespace vx::codec
