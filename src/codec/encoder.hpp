// Video and image encoders for the pixel channel, behind one interface, chosen from a probed
// table best first with a fallback that always works:
//   H.264: h264_nvenc (libavcodec, where the driver and the GPU have NVENC; H100/H200 do
//          not) -> libx264 (libavcodec).
//   JPEG:  libturbojpeg (for clients without a video decoder).
// H.264 is tuned for interaction: zero latency (one frame in, one access unit out), no
// B-frames, VUI with bitstream_restriction and max_num_reorder_frames = 0 (browser decoders
// output at once), Annex B with SPS/PPS before every IDR, IDR on demand, BT.709 limited
// range signalled, the level chosen by the encoder from the resolution.
// No vendor header appears here (libavcodec, turbojpeg stay in the .cpp files).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/image.hpp"

namespace vx::codec {

enum class Codec { kH264 = 1, kJpeg = 2 };  // the values of the frame header's codec byte

std::string_view codec_name(Codec c);  // "h264", "jpeg"

struct EncoderOptions {
  int width = 0, height = 0;  // even for H.264
  int fps = 60;               // for rate control: the expected frame rate
  int bitrate_kbps = 0;       // H.264: 0 is quality-based (crf), capped at 20 Mbit/s
  int crf = 23;               // H.264 quality when bitrate_kbps is 0 (lower is better)
  int jpeg_quality = 85;
};

struct Encoded {
  std::vector<std::uint8_t> data;  // one Annex B access unit, or one JPEG file
  bool keyframe = false;
};

class Encoder {
 public:
  virtual ~Encoder() = default;
  virtual std::string_view name() const = 0;  // "libx264", "h264_nvenc", "turbojpeg"
  virtual Codec codec() const = 0;
  // The frame layout it takes (the renderer writes it directly): I420 or RGBA8.
  virtual PixelFormat input_format() const = 0;
  // Encodes one frame of options().width x height in input_format(); `out` is replaced.
  virtual Status encode(const std::uint8_t* pixels, bool force_keyframe, Encoded& out) = 0;
  // The same from an image view, which must be in host memory, packed and in input_format()
  // (kInvalidArgument naming what differs otherwise; a frame a GPU renderer drew is
  // downloaded by that renderer once, as NV12/I420, before it gets here: docs/gpu.md).
  Status encode(const ImageView& image, bool force_keyframe, Encoded& out);
};

struct EncoderChoice {
  std::unique_ptr<Encoder> encoder;
  // Why a better backend was not used ("h264_nvenc: no CUDA-capable device ..."), or empty.
  std::string fallback;
};

// The best backend for `codec` that opens with these options.
Result<EncoderChoice> make_encoder(Codec codec, const EncoderOptions& options);

}  // namespace vx::codec
