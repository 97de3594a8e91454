#include "render/slice_pack.hpp"

#include <cstdint>
#include <cstring>

#include "render/slice_sampling.hpp"

namespace vx::render {
namespace {

// Appends `v`'s bytes to `blob` at a 16-byte boundary; returns their offset.
template <class T>
std::size_t append(std::vector<std::byte>& blob, const std::vector<T>& v) {
  const std::size_t at = (blob.size() + 15) / 16 * 16;
  blob.resize(at + v.size() * sizeof(T));
  if (!v.empty()) std::memcpy(blob.data() + at, v.data(), v.size() * sizeof(T));
  return at;
}

}  // namespace

void pack_slice(const SlicePlan& p, PackedSlice& out) {
  const std::size_t es = data::dtype_size(p.dtype);
  const std::int64_t cw = p.x.chunk, ch = p.y.chunk;
  const std::int64_t bw = p.gx * cw, bh = p.gy * ch;
  // The slice's rows of every pinned chunk, side by side: the elements the CPU's row pass
  // reads (base + row * y.stride + column * x.stride of each chunk).
  out.voxels.resize(std::size_t(bw * bh) * es);
  std::vector<std::uint8_t> missing(std::size_t(p.gx) * std::size_t(p.gy), 0);
  for (int cy = 0; cy < p.gy; ++cy)
    for (int cx = 0; cx < p.gx; ++cx) {
      const auto& pin = p.pins[std::size_t(cy * p.gx + cx)];
      if (!pin) {
        missing[std::size_t(cy * p.gx + cx)] = 1;
        continue;
      }
      const auto bytes = pin.bytes();
      for (std::int64_t r = 0; r < ch; ++r) {
        const std::int64_t first = p.base + r * p.y.stride;
        const std::int64_t last = first + (cw - 1) * p.x.stride;
        if (first < 0 || std::size_t(last + 1) * es > bytes.size()) continue;  // past an edge
        std::byte* dst = out.voxels.data() + std::size_t((cy * ch + r) * bw + cx * cw) * es;
        const std::byte* src = bytes.data() + std::size_t(first) * es;
        if (p.x.stride == 1) {
          std::memcpy(dst, src, std::size_t(cw) * es);
        } else {
          for (std::int64_t k = 0; k < cw; ++k)
            std::memcpy(dst + std::size_t(k) * es, src + std::size_t(k * p.x.stride) * es, es);
        }
      }
    }
  const AxisSamples xs = sample_axis(p.x, p.linear), ys = sample_axis(p.y, p.linear);
  std::vector<std::int32_t> rel_y1(ys.rel.size());
  for (std::size_t i = 0; i < ys.rel.size(); ++i)  // the second row: i1 - i0 after the first
    rel_y1[i] = ys.rel[i] + std::int32_t((std::int64_t(ys.c1[i]) - ys.c0[i]) * ch +
                                         (ys.o1[i] - ys.o0[i]) / p.y.stride);
  auto& blob = out.tables;
  blob.clear();
  out.missing_ = append(blob, missing);
  out.rel_x_ = append(blob, xs.rel);
  out.fx_ = append(blob, xs.f);
  out.in_x_ = append(blob, xs.inside);
  out.rel_y0_ = append(blob, ys.rel);
  out.rel_y1_ = append(blob, rel_y1);
  out.fy_ = append(blob, ys.f);
  out.in_y_ = append(blob, ys.inside);
  out.lut_ = append(blob, p.lut.rgb);
  auto& v = out.shape_;
  v = {};
  v.dtype = int(p.dtype);
  v.box_w = int(bw);
  v.box_h = int(bh);
  v.tile_w = int(cw);
  v.tile_h = int(ch);
  v.gx = p.gx;
  // Bilinear only where it changes anything, as on the CPU.
  v.linear = p.linear && (any_fraction(xs) || any_fraction(ys));
  v.lut_size = kLut;
  v.lo = p.lut.lo;
  v.scale = p.lut.scale;
  v.alpha = p.alpha;
  v.blend = int(p.blend);
}

kernels::SliceView PackedSlice::view(const void* voxels_at, const void* tables_at) const {
  const auto* t = static_cast<const std::byte*>(tables_at);
  kernels::SliceView v = shape_;
  v.voxels = voxels_at;
  v.missing = reinterpret_cast<const std::uint8_t*>(t + missing_);
  v.rel_x = reinterpret_cast<const int*>(t + rel_x_);
  v.fx = reinterpret_cast<const float*>(t + fx_);
  v.in_x = reinterpret_cast<const std::uint8_t*>(t + in_x_);
  v.rel_y0 = reinterpret_cast<const int*>(t + rel_y0_);
  v.rel_y1 = reinterpret_cast<const int*>(t + rel_y1_);
  v.fy = reinterpret_cast<const float*>(t + fy_);
  v.in_y = reinterpret_cast<const std::uint8_t*>(t + in_y_);
  v.lut = reinterpret_cast<const float*>(t + lut_);
  return v;
}

}  // namespace vx::render
