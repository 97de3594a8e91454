#include "codec/movie_file.hpp"

#include "codec/encoder_backends.hpp"

#include "codec/av_util.hpp"

#include <algorithm>

extern "C" {
#include <libavutil/opt.h>
}

namespace vx::codec {
namespace {

using av::CodecDeleter;
using av::error_text;
using av::FormatDeleter;

class AvMovieWriter final : public MovieWriter {
 public:
  AvMovieWriter(std::string path, std::unique_ptr<AVFormatContext, FormatDeleter> fmt,
                std::unique_ptr<AVCodecContext, CodecDeleter> enc, AVStream* stream)
      : path_(std::move(path)),
        fmt_(std::move(fmt)),
        enc_(std::move(enc)),
        stream_(stream),
        frame_(av_frame_alloc()),
        packet_(av_packet_alloc()) {}

  Status write(const std::uint8_t* pixels) override {
    AVFrame* f = frame_.get();
    av::wrap_i420(f, pixels, enc_->width, enc_->height);
    f->pts = frames_++;
    if (const int rc = avcodec_send_frame(enc_.get(), f); rc < 0)
      return fail(ErrorCode::kIo, "{}: encoding frame {} failed: {}", path_, frames_ - 1,
                  error_text(rc));
    return drain();
  }

  Status finish() override {
    if (const int rc = avcodec_send_frame(enc_.get(), nullptr); rc < 0 && rc != AVERROR_EOF)
      return fail(ErrorCode::kIo, "{}: flushing the encoder failed: {}", path_, error_text(rc));
    VX_TRY(drain());
    if (const int rc = av_write_trailer(fmt_.get()); rc < 0)
      return fail(ErrorCode::kIo, "{}: writing the index failed: {}", path_, error_text(rc));
    if (const int rc = avio_closep(&fmt_->pb); rc < 0)
      return fail(ErrorCode::kIo, "{}: closing failed: {}", path_, error_text(rc));
    return {};
  }

  std::int64_t frames() const override { return frames_; }

 private:
  Status drain() {
    for (;;) {
      const int rc = avcodec_receive_packet(enc_.get(), packet_.get());
      if (rc == AVERROR(EAGAIN) || rc == AVERROR_EOF) return {};
      if (rc < 0) return fail(ErrorCode::kIo, "{}: no packet: {}", path_, error_text(rc));
      av_packet_rescale_ts(packet_.get(), enc_->time_base, stream_->time_base);
      packet_->stream_index = stream_->index;
      // Takes the packet's reference (and unrefs it) whatever it returns.
      if (const int wr = av_interleaved_write_frame(fmt_.get(), packet_.get()); wr < 0)
        return fail(ErrorCode::kIo, "{}: writing failed (disk full?): {}", path_, error_text(wr));
    }
  }

  std::string path_;
  std::unique_ptr<AVFormatContext, FormatDeleter> fmt_;
  std::unique_ptr<AVCodecContext, CodecDeleter> enc_;
  AVStream* stream_;  // owned by fmt_
  av::FramePtr frame_;
  av::PacketPtr packet_;
  std::int64_t frames_ = 0;
};

}  // namespace

std::string_view to_string(MovieFormat f) {
  return f == MovieFormat::kWebm ? "webm" : "mp4";
}

std::optional<MovieFormat> movie_format_from_string(std::string_view s) {
  if (s == "mp4") return MovieFormat::kMp4;
  if (s == "webm") return MovieFormat::kWebm;
  return std::nullopt;
}

std::string movie_extension(MovieFormat f) {
  return "." + std::string(to_string(f));
}

int vp9_crf(int quality) {
  return (std::clamp(quality, 0, kMaxMovieQuality) * 63 + kMaxMovieQuality / 2) / kMaxMovieQuality;
}

namespace {

// The encoder's settings per format: quality-based, threads beside the renderers (which keep
// the other cores busy).
void set_up_encoder(AVCodecContext* enc, const MovieFileOptions& o) {
  if (o.format == MovieFormat::kMp4) {
    enc->thread_count = 2;
    av_opt_set(enc->priv_data, "preset", o.preset.c_str(), 0);
    av_opt_set_double(enc->priv_data, "crf", o.quality, 0);
    return;
  }
  // VP9 in constant-quality mode (a CRF and no target bitrate), "good" deadline at a speed a
  // movie job can afford, rows in parallel.
  enc->bit_rate = 0;
  enc->thread_count = 2;
  av_opt_set_int(enc->priv_data, "crf", vp9_crf(o.quality), 0);
  av_opt_set(enc->priv_data, "deadline", "good", 0);
  av_opt_set_int(enc->priv_data, "cpu-used", 4, 0);
  av_opt_set_int(enc->priv_data, "row-mt", 1, 0);
}

}  // namespace

Result<std::unique_ptr<MovieWriter>> MovieWriter::open(const std::string& path,
                                                       const MovieFileOptions& o) {
  const bool webm = o.format == MovieFormat::kWebm;
  const char* codec_name = webm ? "libvpx-vp9" : "libx264";
  if (o.width <= 0 || o.height <= 0 || o.width % 2 || o.height % 2)
    return fail(ErrorCode::kInvalidArgument, "{}: {}x{}: yuv420p needs even, positive sizes", path,
                o.width, o.height);
  if (o.fps < 1 || o.fps > 240)
    return fail(ErrorCode::kInvalidArgument, "{}: fps {}: 1 to 240", path, o.fps);
  if (o.quality < 0 || o.quality > kMaxMovieQuality)
    return fail(ErrorCode::kInvalidArgument, "{}: quality {}: 0 (best) to {}", path, o.quality,
                kMaxMovieQuality);
  hook_av_log();
  AVFormatContext* raw = nullptr;
  const std::string muxer(to_string(o.format));
  if (const int rc = avformat_alloc_output_context2(&raw, nullptr, muxer.c_str(), path.c_str());
      rc < 0)
    return fail(ErrorCode::kUnsupported, "{}: no {} muxer: {}", path, muxer, error_text(rc));
  std::unique_ptr<AVFormatContext, FormatDeleter> fmt(raw);
  const AVCodec* codec = avcodec_find_encoder_by_name(codec_name);
  if (!codec) return fail(ErrorCode::kUnsupported, "{}: not in this libavcodec", codec_name);
  std::unique_ptr<AVCodecContext, CodecDeleter> enc(avcodec_alloc_context3(codec));
  if (!enc) return fail(ErrorCode::kIo, "{}: out of memory", codec_name);
  enc->width = o.width;
  enc->height = o.height;
  enc->pix_fmt = AV_PIX_FMT_YUV420P;
  enc->time_base = AVRational{1, o.fps};
  enc->framerate = AVRational{o.fps, 1};
  enc->gop_size = std::max(1, o.fps * 2);  // a keyframe every 2 s: seeking stays quick
  enc->color_range = AVCOL_RANGE_MPEG;
  enc->colorspace = AVCOL_SPC_BT709;
  enc->color_primaries = AVCOL_PRI_BT709;
  enc->color_trc = AVCOL_TRC_BT709;
  if (fmt->oformat->flags & AVFMT_GLOBALHEADER) enc->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
  set_up_encoder(enc.get(), o);
  take_last_av_message();
  if (const int rc = avcodec_open2(enc.get(), codec, nullptr); rc < 0) {
    const auto said = take_last_av_message();
    return fail(ErrorCode::kUnsupported, "{}: cannot open ({}){}", codec_name, error_text(rc),
                said.empty() ? "" : ": " + said);
  }
  AVStream* st = avformat_new_stream(fmt.get(), nullptr);
  if (!st) return fail(ErrorCode::kIo, "{}: out of memory", path);
  st->time_base = enc->time_base;
  st->avg_frame_rate = enc->framerate;
  if (const int rc = avcodec_parameters_from_context(st->codecpar, enc.get()); rc < 0)
    return fail(ErrorCode::kInternal, "{}: codec parameters: {}", path, error_text(rc));
  if (const int rc = avio_open(&fmt->pb, path.c_str(), AVIO_FLAG_WRITE); rc < 0)
    return fail(ErrorCode::kIo, "{}: cannot open for writing: {}", path, error_text(rc));
  AVDictionary* opts = nullptr;
  // MP4: the index first (+faststart) and the colour description in a colr box (write_colr).
  // WebM writes the colour description (its Colour element) from the stream's parameters.
  if (!webm) av_dict_set(&opts, "movflags", "+faststart+write_colr", 0);
  const int rc = avformat_write_header(fmt.get(), &opts);
  av_dict_free(&opts);
  if (rc < 0)
    return fail(ErrorCode::kIo, "{}: writing the header failed: {}", path, error_text(rc));
  return std::unique_ptr<MovieWriter>(
      std::make_unique<AvMovieWriter>(path, std::move(fmt), std::move(enc), st));
}

}  // namespace vx::codec
