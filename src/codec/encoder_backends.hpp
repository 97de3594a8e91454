// The backends behind make_encoder() (private to src/codec).
#pragma once

#include "codec/encoder.hpp"

namespace vx::codec {

// "h264_nvenc" or "libx264" through libavcodec.
Result<std::unique_ptr<Encoder>> open_avcodec_h264(const std::string& backend,
                                                   const EncoderOptions& options);
Result<std::unique_ptr<Encoder>> open_turbojpeg(const EncoderOptions& options);

// Sends libav's messages to our log (debug level) instead of stderr; once per process.
void hook_av_log();
// The last warning or error libavcodec logged on this thread (then forgets it).
std::string take_last_av_message();

}  // namespace vx::codec
