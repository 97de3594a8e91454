#include "render/slice_sampling.hpp"

#include <algorithm>
#include <cmath>

namespace vx::render {

AxisSamples sample_axis(const SliceAxis& ax, bool linear) {
  AxisSamples a;
  const auto pixels = std::size_t(ax.pixels);
  for (auto* v : {&a.c0, &a.c1, &a.rel})
    v->resize(pixels);
  for (auto* v : {&a.o0, &a.o1})
    v->resize(pixels);
  a.f.resize(pixels);
  a.inside.resize(pixels);
  const std::int64_t n = ax.n, chunk = ax.chunk;
  for (int p = 0; p < ax.pixels; ++p) {
    const double u = ax.voxel(p);  // voxel centres at integers
    const bool in = u > -0.5 && u < double(n) - 0.5;
    std::int64_t i0, i1;
    float f = 0;
    if (linear) {
      const double uc = std::clamp(u, 0.0, double(n - 1));
      i0 = std::int64_t(std::floor(uc));
      i1 = std::min<std::int64_t>(i0 + 1, n - 1);
      f = float(uc - double(i0));
    } else {
      i0 = i1 = std::clamp<std::int64_t>(std::int64_t(std::floor(u + 0.5)), 0, n - 1);
    }
    const auto idx = std::size_t(p);
    a.inside[idx] = in;
    a.f[idx] = f;
    a.c0[idx] = std::int32_t(i0 / chunk - ax.first_chunk);
    a.c1[idx] = std::int32_t(i1 / chunk - ax.first_chunk);
    a.o0[idx] = (i0 % chunk) * ax.stride;
    a.o1[idx] = (i1 % chunk) * ax.stride;
    a.rel[idx] = std::int32_t(i0 - ax.first_chunk * chunk);
  }
  return a;
}

bool any_fraction(const AxisSamples& s) {
  return std::any_of(s.f.begin(), s.f.end(), [](float v) { return v > 1e-4f && v < 1 - 1e-4f; });
}

}  // namespace vx::render
