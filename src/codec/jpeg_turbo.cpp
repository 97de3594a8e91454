// JPEG through libturbojpeg, from the renderer's RGBA (JPEG's YCbCr is full-range BT.601,
// not the video I420 the renderer writes for H.264, so it converts itself, with SIMD).
#include <turbojpeg.h>

#include "codec/encoder_backends.hpp"

namespace vx::codec {
namespace {

struct TjDeleter {
  void operator()(void* h) const { tjDestroy(h); }
};

class TurboJpegEncoder final : public Encoder {
 public:
  TurboJpegEncoder(tjhandle h, const EncoderOptions& o) : handle_(h), o_(o) {}
  std::string_view name() const override { return "turbojpeg"; }
  Codec codec() const override { return Codec::kJpeg; }
  PixelFormat input_format() const override { return PixelFormat::kRgba8; }

  Status encode(const std::uint8_t* pixels, bool, Encoded& out) override {
    unsigned char* buf = nullptr;
    unsigned long size = 0;
    const int rc = tjCompress2(handle_.get(), pixels, o_.width, o_.width * 4, o_.height, TJPF_RGBX,
                               &buf, &size, TJSAMP_420, o_.jpeg_quality, TJFLAG_FASTDCT);
    if (rc != 0) {
      const std::string why = tjGetErrorStr2(handle_.get());
      if (buf) tjFree(buf);
      return fail(ErrorCode::kIo, "turbojpeg: {}", why);
    }
    out.data.assign(buf, buf + size);
    out.keyframe = true;
    tjFree(buf);
    return {};
  }

 private:
  std::unique_ptr<void, TjDeleter> handle_;
  EncoderOptions o_;
};

}  // namespace

Result<std::unique_ptr<Encoder>> open_turbojpeg(const EncoderOptions& o) {
  if (o.width <= 0 || o.height <= 0)
    return fail(ErrorCode::kInvalidArgument, "turbojpeg: {}x{} is not a size", o.width, o.height);
  tjhandle h = tjInitCompress();
  if (!h) return fail(ErrorCode::kIo, "turbojpeg: cannot start: {}", tjGetErrorStr2(nullptr));
  return std::unique_ptr<Encoder>(std::make_unique<TurboJpegEncoder>(h, o));
}

}  // namespace vx::codec
