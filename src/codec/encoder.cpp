#include "codec/encoder.hpp"

#include <mutex>

extern "C" {
#include <libavutil/log.h>
}

#include "codec/encoder_backends.hpp"
#include "core/log.hpp"

namespace vx::codec {

std::string_view codec_name(Codec c) {
  return c == Codec::kH264 ? "h264" : "jpeg";
}

Result<EncoderChoice> make_encoder(Codec codec, const EncoderOptions& options) {
  EncoderChoice choice;
  if (codec == Codec::kJpeg) {
    VX_ASSIGN(choice.encoder, open_turbojpeg(options));
    return choice;
  }
  // libavcodec prints to stderr at info level by default (and every failed NVENC probe says
  // so twice); its errors are enough, ours are logged here.
  static std::once_flag quiet;
  std::call_once(quiet, [] { av_log_set_level(AV_LOG_ERROR); });
  // The probed table, best first.
  std::string why;
  for (const char* backend : {"h264_nvenc", "libx264"}) {
    auto e = open_avcodec_h264(backend, options);
    if (e) {
      choice.encoder = std::move(*e);
      choice.fallback = why;
      if (!why.empty()) VX_LOG(info, "encoder.fallback", "using={} reason=\"{}\"", backend, why);
      return choice;
    }
    if (e.error().code == ErrorCode::kInvalidArgument) return tl::unexpected(e.error());
    why += (why.empty() ? "" : "; ") + e.error().message;
  }
  return fail(ErrorCode::kUnsupported, "no H.264 encoder opens: {}", why);
}

}  // namespace vx::codec
