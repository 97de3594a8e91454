// Colour conversion of the frame: float RGB in [0, 1] to 8-bit RGBA and to BT.709
// limited-range Y'CbCr (what H.264 encoders take), 4:2:0 chroma from the mean of 2x2 pixels.
#pragma once

#include <cstdint>

#include "render/kernels/hd.hpp"

namespace vx::render::kernels {

VX_HD std::uint8_t unorm8(float v) {
  return std::uint8_t(min_of(max_of(v, 0.f), 1.f) * 255.f + 0.5f);
}

VX_HD float luma709(float r, float g, float b) {
  return 0.2126f * r + 0.7152f * g + 0.0722f * b;
}

// Y', Cb and Cr of an RGB colour in [0, 1], as floats (16..235, 16..240).
VX_HD void rgb_to_ycbcr709(float r, float g, float b, float& y, float& cb, float& cr) {
  const float luma = luma709(r, g, b);
  y = 16.f + 219.f * luma;
  cb = 128.f + 224.f * (b - luma) / 1.8556f;
  cr = 128.f + 224.f * (r - luma) / 1.5748f;
}

VX_HD std::uint8_t y_byte(float r, float g, float b) {
  return std::uint8_t(16.f + 219.f * luma709(r, g, b) + 0.5f);
}

// Cb and Cr bytes of a colour (for 4:2:0, the mean colour of a 2x2 block: the transform is
// affine, so that equals the mean of the four pixels' chroma).
VX_HD void chroma_bytes(float r, float g, float b, std::uint8_t& cb, std::uint8_t& cr) {
  const float l = luma709(r, g, b);
  cb = std::uint8_t(128.f + 224.f * (b - l) / 1.8556f + 0.5f);
  cr = std::uint8_t(128.f + 224.f * (r - l) / 1.5748f + 0.5f);
}

}  // namespace vx::render::kernels
