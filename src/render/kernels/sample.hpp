// Sampling: linear and trilinear interpolation, voxel centres at integers.
#pragma once

#include "render/kernels/hd.hpp"

namespace vx::render::kernels {

// a + f * (b - a): the form every interpolation of both backends uses (bit-equal results).
VX_HD float lerp(float a, float b, float f) {
  return a + f * (b - a);
}

// Trilinear from the 8 corners c[z][y][x] (index z * 4 + y * 2 + x) and weights along z, y, x.
VX_HD float trilinear(const float c[8], float fz, float fy, float fx) {
  const float x00 = lerp(c[0], c[1], fx), x01 = lerp(c[2], c[3], fx);
  const float x10 = lerp(c[4], c[5], fx), x11 = lerp(c[6], c[7], fx);
  return lerp(lerp(x00, x01, fy), lerp(x10, x11, fy), fz);
}

}  // namespace vx::render::kernels
