#include "data/downsample.hpp"

#include <cmath>
#include <cstring>
#include <type_traits>

namespace vx::data {
namespace {

// Mean of pairs along axis d of a float array of `shape` (in place into `out`).
template <class F>
void halve_axis(const std::vector<F>& in, std::vector<F>& out, std::vector<std::int64_t>& shape,
                int d) {
  std::int64_t outer = 1, inner = 1;
  for (int i = 0; i < d; ++i)
    outer *= shape[std::size_t(i)];
  for (std::size_t i = std::size_t(d) + 1; i < shape.size(); ++i)
    inner *= shape[i];
  const std::int64_t n = shape[std::size_t(d)], m = (n + 1) / 2;
  out.resize(std::size_t(outer * m * inner));
  for (std::int64_t o = 0; o < outer; ++o)
    for (std::int64_t i = 0; i < m; ++i) {
      const F* a = in.data() + (o * n + 2 * i) * inner;
      F* dst = out.data() + (o * m + i) * inner;
      if (2 * i + 1 < n) {
        const F* b = a + inner;
        for (std::int64_t k = 0; k < inner; ++k)
          dst[k] = (a[k] + b[k]) * F(0.5);
      } else {
        std::memcpy(dst, a, std::size_t(inner) * sizeof(F));
      }
    }
  shape[std::size_t(d)] = m;
}

template <class T, class F>
void downsample_typed(std::span<const std::byte> region, std::vector<std::int64_t> rshape,
                      const std::vector<bool>& spatial, std::span<std::byte> chunk,
                      const std::vector<std::int64_t>& cshape) {
  const T* src = reinterpret_cast<const T*>(region.data());
  std::vector<F> a(region.size() / sizeof(T)), b;
  for (std::size_t i = 0; i < a.size(); ++i)
    a[i] = F(src[i]);
  for (int d = 0; d < int(rshape.size()); ++d) {
    if (!spatial[std::size_t(d)]) continue;
    halve_axis(a, b, rshape, d);
    std::swap(a, b);
  }
  // Place the rshape-sized result into the chunk (cshape, C order); the rest is fill.
  T* dst = reinterpret_cast<T*>(chunk.data());
  const int nd = int(rshape.size());
  std::vector<std::int64_t> pos(std::size_t(nd), 0);
  const std::int64_t row = rshape.back();
  for (std::size_t k = 0; k < a.size(); k += std::size_t(row)) {
    std::int64_t off = 0;
    for (int d = 0; d < nd; ++d)
      off = off * cshape[std::size_t(d)] + (d == nd - 1 ? 0 : pos[std::size_t(d)]);
    for (std::int64_t x = 0; x < row; ++x) {
      const F v = a[k + std::size_t(x)];
      if constexpr (std::is_integral_v<T>)
        dst[off + x] = T(std::floor(v + F(0.5)));
      else
        dst[off + x] = T(v);
    }
    for (int d = nd - 2; d >= 0; --d) {
      if (++pos[std::size_t(d)] < rshape[std::size_t(d)]) break;
      pos[std::size_t(d)] = 0;
    }
  }
}

}  // namespace

void downsample_2x_mean(DType t, std::span<const std::byte> region,
                        const std::vector<std::int64_t>& rshape, const std::vector<bool>& spatial,
                        std::span<std::byte> chunk, const std::vector<std::int64_t>& cshape) {
  switch (t) {  // float accumulation is exact for 8/16-bit data; wider types use double
    case DType::kUInt8:
      return downsample_typed<std::uint8_t, float>(region, rshape, spatial, chunk, cshape);
    case DType::kInt8:
      return downsample_typed<std::int8_t, float>(region, rshape, spatial, chunk, cshape);
    case DType::kUInt16:
      return downsample_typed<std::uint16_t, float>(region, rshape, spatial, chunk, cshape);
    case DType::kInt16:
      return downsample_typed<std::int16_t, float>(region, rshape, spatial, chunk, cshape);
    case DType::kUInt32:
      return downsample_typed<std::uint32_t, double>(region, rshape, spatial, chunk, cshape);
    case DType::kInt32:
      return downsample_typed<std::int32_t, double>(region, rshape, spatial, chunk, cshape);
    case DType::kFloat32:
      return downsample_typed<float, float>(region, rshape, spatial, chunk, cshape);
    case DType::kFloat64:
      return downsample_typed<double, double>(region, rshape, spatial, chunk, cshape);
  }
}

}  // namespace vx::data
