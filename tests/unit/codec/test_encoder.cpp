// Encoders against a real decoder (libavcodec's h264, turbojpeg's own decompressor): one
// access unit per frame, decodable at once with no reordering delay, IDR on demand, and
// the picture survives (PSNR against the rendered frame).
#include <gtest/gtest.h>
#include <turbojpeg.h>

#include <cmath>

#include "codec/encoder.hpp"
#include "render/renderer.hpp"

extern "C" {
#include <libavcodec/avcodec.h>
}

namespace vx::codec {
namespace {

struct Rendered {
  std::vector<render::Frame> frames;
};

// A few frames of a moving slice, in the layout the encoder asks for.
std::vector<render::Frame> render_frames(render::PixelFormat format, int n, int w, int h) {
  auto src = *data::open_volume("synthetic:cells?shape=32x128x160&chunk=32");
  data::ChunkCache cache(data::CacheOptions{64u << 20, 2, 4});
  render::RenderInputs in{&cache, {cache.add_source(src)}, render::SceneData{{src->info()}}};
  auto scene = render::default_scene(in.data, w, h);
  auto renderer = render::make_cpu_renderer();
  render::RenderOptions opt;
  opt.format = format;
  std::vector<render::Frame> out;
  for (int i = 0; i < n; ++i) {
    scene.dims.point[0] = 8 + i;
    auto f = renderer->render(scene, in, opt);
    EXPECT_TRUE(f) << f.error().what();
    out.push_back(std::move(*f));
  }
  return out;
}

double psnr(const std::uint8_t* a, const std::uint8_t* b, std::size_t n) {
  double se = 0;
  for (std::size_t i = 0; i < n; ++i)
    se += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
  return se == 0 ? 99 : 10 * std::log10(255.0 * 255.0 / (se / double(n)));
}

TEST(H264Encoder, OneAccessUnitPerFrameDecodedWithoutDelayAndKeyframesOnDemand) {
  const int w = 160, h = 128;
  auto frames = render_frames(render::PixelFormat::kI420, 6, w, h);
  auto choice = make_encoder(Codec::kH264, EncoderOptions{w, h});
  ASSERT_TRUE(choice) << choice.error().what();
  auto& enc = *choice->encoder;
  EXPECT_EQ(enc.input_format(), render::PixelFormat::kI420);
  // No GPU here: NVENC is not available and the table says why.
  if (enc.name() == "libx264") EXPECT_NE(choice->fallback.find("h264_nvenc"), std::string::npos);

  const AVCodec* dec = avcodec_find_decoder(AV_CODEC_ID_H264);
  ASSERT_NE(dec, nullptr);
  AVCodecContext* ctx = avcodec_alloc_context3(dec);
  ctx->flags |= AV_CODEC_FLAG_LOW_DELAY;
  ASSERT_EQ(avcodec_open2(ctx, dec, nullptr), 0);
  AVPacket* pkt = av_packet_alloc();
  AVFrame* pic = av_frame_alloc();
  for (int i = 0; i < 6; ++i) {
    Encoded out;
    const bool force = i == 0 || i == 4;
    ASSERT_TRUE(enc.encode(frames[std::size_t(i)].pixels.data(), force, out));
    ASSERT_FALSE(out.data.empty()) << "frame " << i << " held back";
    EXPECT_EQ(out.keyframe, force) << "frame " << i;
    // Annex B start code.
    EXPECT_EQ(out.data[0], 0);
    EXPECT_EQ(out.data[1], 0);
    pkt->data = out.data.data();
    pkt->size = int(out.data.size());
    ASSERT_EQ(avcodec_send_packet(ctx, pkt), 0);
    // max_num_reorder_frames = 0 in the VUI: the decoder returns this frame right away.
    ASSERT_EQ(avcodec_receive_frame(ctx, pic), 0) << "frame " << i << " not output at once";
    EXPECT_EQ(ctx->has_b_frames, 0);
    ASSERT_EQ(pic->width, w);
    const auto& src = frames[std::size_t(i)].pixels;
    std::vector<std::uint8_t> y(std::size_t(w * h));
    for (int r = 0; r < h; ++r)
      std::copy_n(pic->data[0] + r * pic->linesize[0], w, y.begin() + r * w);
    EXPECT_GT(psnr(y.data(), src.data(), y.size()), 35) << "frame " << i;
    av_frame_unref(pic);
  }
  av_frame_free(&pic);
  av_packet_free(&pkt);
  avcodec_free_context(&ctx);
}

TEST(H264Encoder, RefusesOddSizesClearly) {
  auto choice = make_encoder(Codec::kH264, EncoderOptions{161, 128});
  ASSERT_FALSE(choice);
  EXPECT_NE(choice.error().message.find("161x128"), std::string::npos);
}

TEST(JpegEncoder, EncodesTheRgbaFrameFaithfully) {
  const int w = 160, h = 128;
  auto frames = render_frames(render::PixelFormat::kRgba8, 1, w, h);
  auto choice = make_encoder(Codec::kJpeg, EncoderOptions{w, h});
  ASSERT_TRUE(choice) << choice.error().what();
  EXPECT_EQ(choice->encoder->input_format(), render::PixelFormat::kRgba8);
  Encoded out;
  ASSERT_TRUE(choice->encoder->encode(frames[0].pixels.data(), false, out));
  EXPECT_TRUE(out.keyframe);
  ASSERT_GT(out.data.size(), 100u);
  EXPECT_EQ(out.data[0], 0xFF);
  EXPECT_EQ(out.data[1], 0xD8);
  tjhandle d = tjInitDecompress();
  std::vector<std::uint8_t> rgba(std::size_t(w * h * 4));
  ASSERT_EQ(
      tjDecompress2(d, out.data.data(), out.data.size(), rgba.data(), w, w * 4, h, TJPF_RGBX, 0),
      0);
  tjDestroy(d);
  EXPECT_GT(psnr(rgba.data(), frames[0].pixels.data(), rgba.size()), 30);
}

}  // namespace
}  // namespace vx::codec

namespace vx::codec {
namespace {

TEST(Encoder, ImageViewsMustBeHostPackedAndInTheEncodersFormat) {
  const int w = 64, h = 32;
  auto choice = make_encoder(Codec::kJpeg, EncoderOptions{w, h});
  ASSERT_TRUE(choice) << choice.error().what();
  auto& enc = *choice->encoder;
  std::vector<std::uint8_t> px(image_bytes(PixelFormat::kRgba8, w, h), 128);
  Encoded out;
  auto view = host_image(PixelFormat::kRgba8, w, h, px.data());
  ASSERT_TRUE(enc.encode(view, true, out));
  EXPECT_GT(out.data.size(), 100u);
  auto device = view;
  device.memory = MemoryKind::kDevice;
  auto st = enc.encode(device, true, out);
  ASSERT_FALSE(st);
  EXPECT_NE(st.error().message.find("device memory"), std::string::npos) << st.error().message;
  auto nv12 = host_image(PixelFormat::kNV12, w, h, px.data());
  st = enc.encode(nv12, true, out);
  ASSERT_FALSE(st);
  EXPECT_NE(st.error().message.find("nv12"), std::string::npos) << st.error().message;
  auto padded = view;
  padded.pitch += 16;
  st = enc.encode(padded, true, out);
  ASSERT_FALSE(st);
  EXPECT_NE(st.error().message.find("pitch"), std::string::npos) << st.error().message;
}

}  // namespace
}  // namespace vx::codec
