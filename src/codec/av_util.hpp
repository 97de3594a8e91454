// What the libav-based parts of src/codec share (private to src/codec: libav headers never
// reach a public header): error text, owning pointers, and an I420 frame over our buffer.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/error.h>
#include <libavutil/frame.h>
}

namespace vx::codec::av {

// libav's text for an AVERROR code.
inline std::string error_text(int code) {
  char buf[AV_ERROR_MAX_STRING_SIZE] = {};
  av_strerror(code, buf, sizeof buf);
  return buf;
}

struct CodecDeleter {
  void operator()(AVCodecContext* c) const { avcodec_free_context(&c); }
};
struct FormatDeleter {
  void operator()(AVFormatContext* f) const {
    if (f->pb) avio_closep(&f->pb);
    avformat_free_context(f);
  }
};
struct FrameDeleter {
  void operator()(AVFrame* f) const { av_frame_free(&f); }
};
struct PacketDeleter {
  void operator()(AVPacket* p) const { av_packet_free(&p); }
};
using CodecPtr = std::unique_ptr<AVCodecContext, CodecDeleter>;
using FormatPtr = std::unique_ptr<AVFormatContext, FormatDeleter>;
using FramePtr = std::unique_ptr<AVFrame, FrameDeleter>;
using PacketPtr = std::unique_ptr<AVPacket, PacketDeleter>;

// Points `f` at an I420 buffer of w x h (planes Y, U, V, no padding: the renderer's layout),
// with no copy, tagged BT.709 limited range.
inline void wrap_i420(AVFrame* f, const std::uint8_t* pixels, int w, int h) {
  f->format = AV_PIX_FMT_YUV420P;
  f->width = w;
  f->height = h;
  f->data[0] = const_cast<std::uint8_t*>(pixels);
  f->data[1] = f->data[0] + std::size_t(w) * std::size_t(h);
  f->data[2] = f->data[1] + std::size_t(w / 2) * std::size_t(h / 2);
  f->linesize[0] = w;
  f->linesize[1] = f->linesize[2] = w / 2;
  f->color_range = AVCOL_RANGE_MPEG;
  f->colorspace = AVCOL_SPC_BT709;
  f->color_primaries = AVCOL_PRI_BT709;
  f->color_trc = AVCOL_TRC_BT709;
}

}  // namespace vx::codec::av
