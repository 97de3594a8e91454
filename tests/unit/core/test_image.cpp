// Image views and the frame pool (core/image.hpp).
#include "core/image.hpp"

#include <gtest/gtest.h>

namespace vx {
namespace {

TEST(Image, BytesAndPitchOfEachFormat) {
  EXPECT_EQ(image_bytes(PixelFormat::kRgba8, 6, 4), 96u);
  EXPECT_EQ(image_bytes(PixelFormat::kI420, 6, 4), 36u);
  EXPECT_EQ(image_bytes(PixelFormat::kNV12, 6, 4), 36u);
  std::vector<std::uint8_t> px(96);
  auto v = host_image(PixelFormat::kRgba8, 6, 4, px.data());
  EXPECT_EQ(v.pitch, 24u);
  EXPECT_TRUE(v.host());
  EXPECT_TRUE(v.packed());
  EXPECT_EQ(v.bytes(), 96u);
  auto y = host_image(PixelFormat::kNV12, 6, 4, px.data());
  EXPECT_EQ(y.pitch, 6u);
  EXPECT_EQ(y.bytes(), 36u);
  y.pitch = 8;  // a padded device allocation
  y.memory = MemoryKind::kDevice;
  EXPECT_FALSE(y.packed());
  EXPECT_FALSE(y.host());
  EXPECT_EQ(y.bytes(), 48u);
  EXPECT_EQ(pixel_format_name(PixelFormat::kNV12), "nv12");
}

TEST(FramePool, HandsBackSpentBuffersUpToItsLimit) {
  FramePool pool(2);
  auto a = pool.acquire(1000);
  EXPECT_EQ(a.size(), 1000u);
  const auto* mem = a.data();
  pool.release(std::move(a));
  EXPECT_EQ(pool.spare(), 1u);
  auto b = pool.acquire(800);  // the spare one, resized
  EXPECT_EQ(b.data(), mem);
  EXPECT_EQ(b.size(), 800u);
  EXPECT_EQ(pool.spare(), 0u);
  pool.release(std::move(b));
  pool.release(std::vector<std::uint8_t>(10));
  pool.release(std::vector<std::uint8_t>(10));  // over the limit: freed
  EXPECT_EQ(pool.spare(), 2u);
  pool.release(std::vector<std::uint8_t>());  // nothing to keep
  EXPECT_EQ(pool.spare(), 2u);
}

}  // namespace
}  // namespace vx
