// Movie files: H.264 in MP4 through libavformat (docs/movies.md). Tuned for files, not
// streams: x264 with lookahead and B-frames, quality-based (CRF), yuv420p, BT.709 limited
// range signalled in the stream and the container, "+faststart" (the index before the
// media, so a browser plays while it downloads). No vendor header here.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "core/error.hpp"

namespace vx::codec {

struct Mp4Options {
  int width = 0, height = 0;  // even
  int fps = 30;
  int crf = 18;  // x264's constant rate factor, 0..51: lower is better (18: visually lossless)
  std::string preset = "veryfast";
};

class Mp4Writer {
 public:
  // Opens `path` for writing (replacing it). Errors name the path.
  static Result<std::unique_ptr<Mp4Writer>> open(const std::string& path,
                                                 const Mp4Options& options);
  virtual ~Mp4Writer() = default;  // without finish(): the file is left incomplete
  // Appends one I420 frame (Y, then U, then V planes, tightly packed), in display order.
  virtual Status write(const std::uint8_t* i420) = 0;
  // Flushes the encoder, writes the index and closes the file.
  virtual Status finish() = 0;
  virtual std::int64_t frames() const = 0;
};

}  // namespace vx::codec
