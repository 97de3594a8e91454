// H.264 through libavcodec: h264_nvenc and libx264 share everything but their options.
#include <algorithm>
#include <cstring>

#include "codec/encoder_backends.hpp"

#include "codec/av_util.hpp"

extern "C" {
#include <libavutil/opt.h>
}

namespace vx::codec {
namespace {

using ContextDeleter = av::CodecDeleter;
using av::error_text;

class AvH264Encoder final : public Encoder {
 public:
  AvH264Encoder(std::string name, std::unique_ptr<AVCodecContext, ContextDeleter> ctx)
      : name_(std::move(name)),
        ctx_(std::move(ctx)),
        frame_(av_frame_alloc()),
        packet_(av_packet_alloc()) {}

  std::string_view name() const override { return name_; }
  Codec codec() const override { return Codec::kH264; }
  PixelFormat input_format() const override { return PixelFormat::kI420; }

  Status encode(const std::uint8_t* pixels, bool force_keyframe, Encoded& out) override {
    const int w = ctx_->width, h = ctx_->height;
    // The renderer's I420 buffer is handed over as is: no copy, no conversion pass.
    AVFrame* f = frame_.get();
    av::wrap_i420(f, pixels, w, h);
    f->pts = pts_++;
    f->pict_type = force_keyframe ? AV_PICTURE_TYPE_I : AV_PICTURE_TYPE_NONE;
    f->key_frame = force_keyframe ? 1 : 0;
    if (const int rc = avcodec_send_frame(ctx_.get(), f); rc < 0)
      return fail(ErrorCode::kIo, "{}: encoding a frame failed: {}", name_, error_text(rc));
    out.data.clear();
    out.keyframe = false;
    // Zero latency: the access unit of this frame is ready now.
    for (;;) {
      const int rc = avcodec_receive_packet(ctx_.get(), packet_.get());
      if (rc == AVERROR(EAGAIN) || rc == AVERROR_EOF) break;
      if (rc < 0) return fail(ErrorCode::kIo, "{}: no packet: {}", name_, error_text(rc));
      out.data.insert(out.data.end(), packet_->data, packet_->data + packet_->size);
      out.keyframe |= (packet_->flags & AV_PKT_FLAG_KEY) != 0;
      av_packet_unref(packet_.get());
    }
    if (out.data.empty())
      return fail(ErrorCode::kIo, "{}: the encoder held the frame back (not zero-latency)", name_);
    return {};
  }

 private:
  std::string name_;
  std::unique_ptr<AVCodecContext, ContextDeleter> ctx_;
  av::FramePtr frame_;
  av::PacketPtr packet_;
  std::int64_t pts_ = 0;
};

}  // namespace

Result<std::unique_ptr<Encoder>> open_avcodec_h264(const std::string& backend,
                                                   const EncoderOptions& o) {
  if (o.width <= 0 || o.height <= 0 || o.width % 2 || o.height % 2)
    return fail(ErrorCode::kInvalidArgument, "{}: {}x{}: H.264 needs even, positive sizes", backend,
                o.width, o.height);
  const AVCodec* codec = avcodec_find_encoder_by_name(backend.c_str());
  if (!codec) return fail(ErrorCode::kUnsupported, "{}: not in this libavcodec", backend);
  std::unique_ptr<AVCodecContext, ContextDeleter> ctx(avcodec_alloc_context3(codec));
  if (!ctx) return fail(ErrorCode::kIo, "{}: out of memory", backend);
  ctx->width = o.width;
  ctx->height = o.height;
  ctx->pix_fmt = AV_PIX_FMT_YUV420P;
  ctx->time_base = AVRational{1, std::max(1, o.fps)};
  ctx->framerate = AVRational{std::max(1, o.fps), 1};
  ctx->gop_size = 600;  // IDRs on demand (keyframe requests, new clients), and every 10 s
  ctx->max_b_frames = 0;
  ctx->color_range = AVCOL_RANGE_MPEG;
  ctx->colorspace = AVCOL_SPC_BT709;
  ctx->color_primaries = AVCOL_PRI_BT709;
  ctx->color_trc = AVCOL_TRC_BT709;
  const int kbps = o.bitrate_kbps > 0 ? o.bitrate_kbps : 20000;
  ctx->rc_max_rate = std::int64_t(kbps) * 1000;
  ctx->rc_buffer_size = int(std::int64_t(kbps) * 1000 / std::max(1, o.fps) * 2);  // 2 frames
  if (o.bitrate_kbps > 0) ctx->bit_rate = std::int64_t(kbps) * 1000;
  void* priv = ctx->priv_data;
  if (backend == "libx264") {
    av_opt_set(priv, "preset", "ultrafast", 0);  // 60 fps at 1080p on two cores
    av_opt_set(priv, "tune", "zerolatency", 0);  // no lookahead, sliced threads, no B-frames
    av_opt_set_int(priv, "forced-idr", 1, 0);
    if (o.bitrate_kbps <= 0) av_opt_set_double(priv, "crf", o.crf, 0);
    // Headers before every IDR, so a client can join at any keyframe; no B-frames, so the
    // VUI says max_num_reorder_frames = 0 (x264 writes bitstream_restriction).
    av_opt_set(priv, "x264-params", "repeat-headers=1:bframes=0:annexb=1", 0);
    ctx->thread_count = 2;
  } else {  // h264_nvenc
    av_opt_set(priv, "preset", "p1", 0);
    av_opt_set(priv, "tune", "ull", 0);
    av_opt_set_int(priv, "zerolatency", 1, 0);
    av_opt_set_int(priv, "forced-idr", 1, 0);
    av_opt_set_int(priv, "delay", 0, 0);
    if (o.bitrate_kbps <= 0) av_opt_set_int(priv, "cq", o.crf, 0);
  }
  take_last_av_message();
  if (const int rc = avcodec_open2(ctx.get(), codec, nullptr); rc < 0) {
    const auto said = take_last_av_message();
    return fail(ErrorCode::kUnsupported, "{}: cannot open ({}){}", backend, error_text(rc),
                said.empty() ? "" : ": " + said);
  }
  return std::unique_ptr<Encoder>(std::make_unique<AvH264Encoder>(backend, std::move(ctx)));
}

}  // namespace vx::codec
