// 2D layers per pixel: the value of a pixel of a slice packed by render/slice_pack.hpp, and
// its blend into the frame. The CUDA backend runs this per thread; the host tests run it per
// pixel against the CPU backend's row pass (the reference), which computes the same values
// row by row.
#pragma once

#include <cstddef>
#include <cstdint>

#include "render/kernels/composite.hpp"
#include "render/kernels/hd.hpp"
#include "render/kernels/sample.hpp"
#include "render/kernels/transfer.hpp"

namespace vx::render::kernels {

// A 2D layer's slice: its voxels over the plan's box of chunks, packed densely (box_h rows of
// box_w elements of `dtype`, data::DType's value), a flag per chunk of the box that is not in
// memory (its voxels are no data), and per screen axis the sample maps of
// render/slice_sampling.hpp.
struct SliceView {
  const void* voxels;
  int dtype;
  int box_w, box_h;             // elements
  int tile_w, tile_h, gx;       // chunk extents; chunks per row of the box
  const std::uint8_t* missing;  // per chunk of the box, row-major
  const int* rel_x;             // per pixel column: the first sample's column in the box
  const float* fx;              // its weight towards the next column
  const std::uint8_t* in_x;     // whether the column's centre lies in the data
  const int *rel_y0, *rel_y1;   // per pixel row: the two sampled rows in the box
  const float* fy;
  const std::uint8_t* in_y;
  bool linear;       // bilinear (else nearest: rel_x, rel_y0)
  const float* lut;  // lut_size x R, G, B planes
  int lut_size;
  float lo, scale, alpha;
  int blend;  // Blend
};

// The value of pixel (x, y), as the CPU's row pass computes it: the two sampled rows
// interpolated first, then the two columns; false where the pixel is outside the data, a
// chunk it reads is not in memory, or the value is NaN.
template <class T>
VX_HD bool slice_value(const SliceView& s, int x, int y, float& v) {
  if (!s.in_x[x] || !s.in_y[y]) return false;
  const T* img = static_cast<const T*>(s.voxels);
  const int rx0 = s.rel_x[x], ry0 = s.rel_y0[y], ry1 = s.rel_y1[y];
  const int rx1 = min_of(rx0 + 1, s.box_w - 1);
  const auto missing = [&](int ry, int rx) {
    return s.missing[(ry / s.tile_h) * s.gx + rx / s.tile_w] != 0;
  };
  const auto at = [&](int ry, int rx) {
    return float(img[static_cast<long long>(ry) * s.box_w + rx]);
  };
  // The row pass reads a chunk's line only when both rows' chunks are there.
  if (missing(ry0, rx0) || missing(ry1, rx0)) return false;
  if (!s.linear) {
    v = at(ry0, rx0);
    return v == v;
  }
  if (missing(ry0, rx1) || missing(ry1, rx1)) return false;
  const float fy = s.fy[y];
  const float a = fy != 0 ? lerp(at(ry0, rx0), at(ry1, rx0), fy) : at(ry0, rx0);
  const float b = fy != 0 ? lerp(at(ry0, rx1), at(ry1, rx1), fy) : at(ry0, rx1);
  v = lerp(a, b, s.fx[x]);
  return v == v;
}

// Blends value v of the layer into pixel px of the float RGB planes `acc` (planes of `plane`).
template <Blend B>
VX_HD void blend_slice_as(const SliceView& s, float v, float* acc, std::size_t plane,
                          std::size_t px) {
  const int q = table_index(v, s.lo, s.scale, float(s.lut_size - 1));
  for (int k = 0; k < 3; ++k) {
    float& out = acc[k * plane + px];
    out = blend_2d<B>(out, s.lut[k * s.lut_size + q], s.alpha, true);
  }
}

VX_HD void blend_slice(const SliceView& s, float v, float* acc, std::size_t plane, std::size_t px) {
  switch (Blend(s.blend)) {
    case Blend::kTranslucent:
      return blend_slice_as<Blend::kTranslucent>(s, v, acc, plane, px);
    case Blend::kAdditive:
      return blend_slice_as<Blend::kAdditive>(s, v, acc, plane, px);
    case Blend::kOpaque:
      return blend_slice_as<Blend::kOpaque>(s, v, acc, plane, px);
    case Blend::kMinimum:
      return blend_slice_as<Blend::kMinimum>(s, v, acc, plane, px);
  }
}

// Pixel (x, y) of a 2D layer: from `fine`, or where that has no data from `fallback` (a
// coarser, complete level; null: none), as the row pass does.
template <class T>
VX_HD void slice_pixel(const SliceView& fine, const SliceView* fallback, int x, int y, int width,
                       int height, float* acc) {
  float v;
  const SliceView* s = &fine;
  if (!slice_value<T>(fine, x, y, v)) {
    if (!fallback || !slice_value<T>(*fallback, x, y, v)) return;
    s = fallback;
  }
  const std::size_t plane = std::size_t(width) * std::size_t(height);
  blend_slice(*s, v, acc, plane, std::size_t(y) * std::size_t(width) + std::size_t(x));
}

}  // namespace vx::render::kernels
