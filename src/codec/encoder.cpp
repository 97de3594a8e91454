#include "codec/encoder.hpp"

#include <cstdarg>
#include <mutex>
#include <optional>

extern "C" {
#include <libavutil/log.h>
}

#include "codec/encoder_backends.hpp"
#include "core/log.hpp"

namespace vx::codec {

namespace {

// libavcodec's messages: to our log at debug level, and the last one of each thread kept
// for the error that follows a failed open ("Cannot load libcuda.so.1").
thread_local std::string last_av_message;

void av_to_log(void* avcl, int level, const char* fmt, va_list args) {
  if (level > AV_LOG_WARNING) return;
  char line[512];
  int prefix = 0;  // no "[h264_nvenc @ 0x...]"
  va_list copy;
  va_copy(copy, args);
  av_log_format_line(avcl, level, fmt, copy, line, sizeof line, &prefix);
  va_end(copy);
  std::string msg(line);
  while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' '))
    msg.pop_back();
  VX_LOG(debug, "libav.log", "level={} message={}", level, log_quote(msg));
  last_av_message = std::move(msg);
}

}  // namespace

void hook_av_log() {
  static std::once_flag hooked;
  std::call_once(hooked, [] { av_log_set_callback(av_to_log); });
}

std::string take_last_av_message() {
  return std::exchange(last_av_message, {});
}

std::string_view codec_name(Codec c) {
  return c == Codec::kH264 ? "h264" : "jpeg";
}

Status Encoder::encode(const ImageView& image, bool force_keyframe, Encoded& out) {
  if (!image.host())
    return fail(ErrorCode::kInvalidArgument,
                "{}: takes frames in host memory; this one is in device memory", name());
  if (image.format != input_format())
    return fail(ErrorCode::kInvalidArgument, "{}: takes {} frames, not {}", name(),
                pixel_format_name(input_format()), pixel_format_name(image.format));
  if (!image.packed())
    return fail(ErrorCode::kInvalidArgument, "{}: takes packed frames; pitch {} for width {}",
                name(), image.pitch, image.width);
  return encode(image.data, force_keyframe, out);
}

Result<EncoderChoice> make_encoder(Codec codec, const EncoderOptions& options) {
  EncoderChoice choice;
  if (codec == Codec::kJpeg) {
    VX_ASSIGN(choice.encoder, open_turbojpeg(options));
    return choice;
  }
  hook_av_log();
  // Whether NVENC opens depends on the machine, not on the options: probe it once per
  // process (each failed probe loads the driver libraries again and costs tens of ms), and
  // remember why it failed. Deliberately process-wide state.
  static std::mutex probe_mutex;
  static std::optional<std::string> nvenc_failure;
  std::string why;
  for (const char* backend : {"h264_nvenc", "libx264"}) {
    const bool nvenc = std::string_view(backend) == "h264_nvenc";
    if (nvenc) {
      std::lock_guard lock(probe_mutex);
      if (nvenc_failure) {
        why = *nvenc_failure;
        continue;
      }
    }
    auto e = open_avcodec_h264(backend, options);
    if (e) {
      choice.encoder = std::move(*e);
      choice.fallback = why;
      return choice;
    }
    if (e.error().code == ErrorCode::kInvalidArgument) return tl::unexpected(e.error());
    why += (why.empty() ? "" : "; ") + e.error().message;
    if (nvenc) {
      std::lock_guard lock(probe_mutex);
      nvenc_failure = why;
      VX_LOG(info, "encoder.fallback", "from=h264_nvenc to=libx264 reason={}", log_quote(why));
    }
  }
  return fail(ErrorCode::kUnsupported, "no H.264 encoder opens: {}", why);
}

}  // namespace vx::codec
