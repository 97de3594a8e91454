#include "pipeline/kernels.hpp"

#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <new>
#include <type_traits>
#include <utility>

namespace vx::pipeline {

Result<Vec3> per_axis(const json& v, int spatial_dims, std::string_view field) {
  Vec3 out{0, 0, 0};
  if (v.is_number()) {
    out = {v.get<double>(), v.get<double>(), v.get<double>()};
  } else if (v.is_array() && v.size() == 1) {
    out = {v[0].get<double>(), v[0].get<double>(), v[0].get<double>()};
  } else if (v.is_array() && int(v.size()) == spatial_dims) {
    for (int i = 0; i < spatial_dims; ++i)
      out[std::size_t(3 - spatial_dims + i)] = v[std::size_t(i)].get<double>();
  } else {
    return fail(ErrorCode::kInvalidArgument,
                "{}: expected a number or {} values (one per spatial axis), got {}", field,
                spatial_dims, v.dump());
  }
  if (spatial_dims == 2) out[0] = 0;
  return out;
}

std::int64_t reflect_index(std::int64_t i, std::int64_t n) {
  if (n == 1) return 0;
  const std::int64_t p = 2 * n;  // period 2n, mirrored about -0.5 and n - 0.5
  std::int64_t m = i % p;
  if (m < 0) m += p;
  return m < n ? m : p - 1 - m;
}

Vec3 to_voxels(const Vec3& physical, const LevelContext& level) {
  Vec3 out{};
  for (std::size_t a = 0; a < 3; ++a)
    out[a] = level.voxel_size[a] > 0 ? physical[a] / level.voxel_size[a] : physical[a];
  if (level.spatial_dims == 2) out[0] = 0;
  return out;
}

std::vector<float> resample_kernel(const std::vector<float>& w, Ext3& shape, const Vec3& factor) {
  std::vector<float> cur = w;
  for (std::size_t a = 0; a < 3; ++a) {
    const double f = factor[a];
    if (!(f > 1 + 1e-9) || shape[a] <= 0) continue;
    const std::int64_t r = shape[a] / 2;
    // Coarse voxel j covers [(j - 1/2) f, (j + 1/2) f]; fine voxel i covers [i - 1/2, i + 1/2].
    const auto R = std::int64_t(std::ceil((double(r) + 0.5) / f - 0.5 - 1e-12));
    const std::int64_t n = 2 * R + 1;
    std::vector<double> m(std::size_t(n * shape[a]), 0.0);  // m[j][i]
    for (std::int64_t j = -R; j <= R; ++j)
      for (std::int64_t i = -r; i <= r; ++i) {
        const double lo = std::max((double(j) - 0.5) * f, double(i) - 0.5);
        const double hi = std::min((double(j) + 0.5) * f, double(i) + 0.5);
        if (hi > lo) m[std::size_t((j + R) * shape[a] + (i + r))] = hi - lo;
      }
    Ext3 out_shape = shape;
    out_shape[a] = n;
    std::vector<float> out(std::size_t(out_shape[0] * out_shape[1] * out_shape[2]), 0.0f);
    // Strides: before the axis (outer), the axis, after it (inner).
    std::int64_t outer = 1, inner = 1;
    for (std::size_t b = 0; b < a; ++b)
      outer *= shape[b];
    for (std::size_t b = a + 1; b < 3; ++b)
      inner *= shape[b];
    for (std::int64_t o = 0; o < outer; ++o)
      for (std::int64_t j = 0; j < n; ++j)
        for (std::int64_t i = 0; i < shape[a]; ++i) {
          const double k = m[std::size_t(j * shape[a] + i)];
          if (k == 0) continue;
          const float* src = cur.data() + (o * shape[a] + i) * inner;
          float* dst = out.data() + (o * n + j) * inner;
          for (std::int64_t x = 0; x < inner; ++x)
            dst[x] += float(k) * src[x];
        }
    cur = std::move(out);
    shape = out_shape;
  }
  return cur;
}

namespace {

// A thread's free blocks. Each allocation has a 64-byte header holding its capacity (floats)
// and stays 64-byte aligned after it.
constexpr std::size_t kHeader = 64 / sizeof(float);
constexpr std::size_t kPoolBytes = 8 << 20;

struct BlockPool {
  std::vector<float*> free;  // data pointers (after the header)
  std::size_t bytes = 0;
  ~BlockPool() {
    for (float* p : free)
      release(p);
  }
  static std::size_t capacity(const float* p) {
    std::size_t c;
    std::memcpy(&c, p - kHeader, sizeof(c));
    return c;
  }
  static void release(float* p) { ::operator delete[](p - kHeader, std::align_val_t(64)); }
  float* take(std::size_t n) {
    // The smallest free block that fits and wastes at most half of itself.
    auto best = free.end();
    for (auto it = free.begin(); it != free.end(); ++it) {
      const auto c = capacity(*it);
      if (c >= n && c <= 2 * n && (best == free.end() || c < capacity(*best))) best = it;
    }
    if (best != free.end()) {
      float* p = *best;
      bytes -= capacity(p) * sizeof(float);
      free.erase(best);
      return p;
    }
    auto* raw =
        static_cast<float*>(::operator new[]((n + kHeader) * sizeof(float), std::align_val_t(64)));
    std::memcpy(raw, &n, sizeof(n));
    return raw + kHeader;
  }
  void give(float* p) {
    const auto b = capacity(p) * sizeof(float);
    while (!free.empty() && bytes + b > kPoolBytes) {  // the oldest go first
      bytes -= capacity(free.front()) * sizeof(float);
      release(free.front());
      free.erase(free.begin());
    }
    if (b > kPoolBytes) return release(p);
    free.push_back(p);
    bytes += b;
  }
};

BlockPool& block_pool() {
  thread_local BlockPool pool;
  return pool;
}

}  // namespace

Block::Block(Ext3 s)
    : data(block_pool().take(std::size_t(std::max<std::int64_t>(1, s[0] * s[1] * s[2])))),
      shape(s) {}

void Block::Free::operator()(float* p) const {
  if (p) block_pool().give(p);
}

std::vector<float> gaussian_kernel(double sigma, double truncate) {
  const auto r = gaussian_radius(sigma, truncate);
  std::vector<double> w(std::size_t(2 * r + 1));
  double sum = 0;
  for (std::int64_t i = -r; i <= r; ++i) {
    w[std::size_t(i + r)] = std::exp(-0.5 / (sigma * sigma) * double(i * i));
    sum += w[std::size_t(i + r)];
  }
  std::vector<float> out(w.size());
  for (std::size_t i = 0; i < w.size(); ++i)
    out[i] = float(w[i] / sum);
  if (r == 0) out = {1.0f};
  return out;
}

namespace {

Ext3 shrunk(Ext3 s, int axis, std::int64_t r) {
  s[std::size_t(axis)] -= 2 * r;
  return s;
}

// Runs fn(z) for every plane of the output, in parallel.
template <class F>
void for_planes(std::int64_t nz, F&& fn) {
  tbb::parallel_for(std::int64_t(0), nz, [&](std::int64_t z) { fn(z); });
}

}  // namespace

namespace {

// One output row of a correlation: dst[x] = sum_j w[j] * (base + j * step)[x]. The sum for
// kLanes voxels stays in registers across the taps (one load and one FMA per tap and voxel,
// no store until the end), and a symmetric kernel (every Gaussian) adds the two voxels a
// weight shares before multiplying: half the multiplications.
void correlate_row(const float* base, std::int64_t step, std::span<const float> w, float* dst,
                   std::int64_t n, bool symmetric) {
  constexpr std::int64_t kLanes = 32;
  const auto k = std::int64_t(w.size());
  const auto r = k / 2;
  auto block = [&](std::int64_t x0, auto lanes) {
    constexpr std::int64_t L = decltype(lanes)::value;
    float acc[L];
    const float* c = base + r * step + x0;
    for (std::int64_t i = 0; i < L; ++i)
      acc[i] = w[std::size_t(r)] * c[i];
    if (symmetric) {
      for (std::int64_t j = 0; j < r; ++j) {
        const float* a = base + j * step + x0;
        const float* b = base + (k - 1 - j) * step + x0;
        const float wj = w[std::size_t(j)];
        for (std::int64_t i = 0; i < L; ++i)
          acc[i] += wj * (a[i] + b[i]);
      }
    } else {
      for (std::int64_t j = 0; j < k; ++j) {
        if (j == r) continue;
        const float* a = base + j * step + x0;
        const float wj = w[std::size_t(j)];
        for (std::int64_t i = 0; i < L; ++i)
          acc[i] += wj * a[i];
      }
    }
    std::copy(acc, acc + L, dst + x0);
  };
  std::int64_t x = 0;
  for (; x + kLanes <= n; x += kLanes)
    block(x, std::integral_constant<std::int64_t, kLanes>{});
  for (; x < n; ++x)
    block(x, std::integral_constant<std::int64_t, 1>{});
}

}  // namespace

Block correlate_axis(const BlockView& in, int axis, std::span<const float> w) {
  const auto r = std::int64_t(w.size() / 2);
  Block out(shrunk(in.shape, axis, r));
  const auto oz = out.shape[0], oy = out.shape[1], ox = out.shape[2];
  const auto iy = in.shape[1], ix = in.shape[2];
  bool symmetric = true;
  for (std::size_t j = 0; j < w.size() / 2; ++j)
    symmetric = symmetric && w[j] == w[w.size() - 1 - j];
  // Taps are whole rows shifted by one step of the axis (along x, by one voxel), so every
  // axis reads contiguous memory and vectorizes.
  const std::int64_t step = axis == 0 ? iy * ix : axis == 1 ? ix : 1;
  for_planes(oz, [&](std::int64_t z) {
    for (std::int64_t y = 0; y < oy; ++y)
      correlate_row(in.data + (z * iy + y) * ix, step, w, &out.data[std::size_t((z * oy + y) * ox)],
                    ox, symmetric);
  });
  return out;
}

Block extremum_axis(const BlockView& in, int axis, std::int64_t r, bool maximum) {
  Block out(shrunk(in.shape, axis, r));
  const auto oz = out.shape[0], oy = out.shape[1], ox = out.shape[2];
  const auto iy = in.shape[1], ix = in.shape[2];
  const auto k = 2 * r + 1;
  for_planes(oz, [&](std::int64_t z) {
    for (std::int64_t y = 0; y < oy; ++y) {
      float* dst = &out.data[std::size_t((z * oy + y) * ox)];
      for (std::int64_t j = 0; j < k; ++j) {
        const float* src = axis == 0   ? in.data + ((z + j) * iy + y) * ix
                           : axis == 1 ? in.data + (z * iy + y + j) * ix
                                       : in.data + (z * iy + y) * ix + j;
        if (j == 0) {
          std::copy(src, src + ox, dst);
        } else if (maximum) {
          for (std::int64_t x = 0; x < ox; ++x)
            dst[x] = std::max(dst[x], src[x]);
        } else {
          for (std::int64_t x = 0; x < ox; ++x)
            dst[x] = std::min(dst[x], src[x]);
        }
      }
    }
  });
  return out;
}

void crop_into(const BlockView& in, const BlockView& out) {
  Ext3 m{};
  for (int a = 0; a < 3; ++a)
    m[std::size_t(a)] = (in.shape[std::size_t(a)] - out.shape[std::size_t(a)]) / 2;
  for_planes(out.shape[0], [&](std::int64_t z) {
    for (std::int64_t y = 0; y < out.shape[1]; ++y) {
      const float* src = &in.at(z + m[0], y + m[1], m[2]);
      std::copy(src, src + out.shape[2], &out.at(z, y, 0));
    }
  });
}

void gaussian_into(const BlockView& in, const Vec3& sigma, double truncate, const BlockView& out) {
  Block cur;
  BlockView v = in;
  for (int a = 0; a < 3; ++a) {
    if (sigma[std::size_t(a)] <= 1e-15) continue;
    const auto w = gaussian_kernel(sigma[std::size_t(a)], truncate);
    // Only the margin this pass needs: cut what the block has beyond out + 2r first.
    Block next = correlate_axis(v, a, w);
    cur = std::move(next);
    v = cur.view();
  }
  crop_into(v, out);
}

namespace {

// Batcher's odd-even merge sort network on n (a power of two) wires, pruned to the
// comparators that can change wire `keep` (the median's position).
std::vector<std::pair<int, int>> median_network(int n, int keep) {
  std::vector<std::pair<int, int>> net;
  for (int p = 1; p < n; p <<= 1)
    for (int k = p; k >= 1; k >>= 1)
      for (int j = k % p; j + k < n; j += 2 * k)
        for (int i = 0; i < std::min(k, n - j - k); ++i)
          if ((i + j) / (2 * p) == (i + j + k) / (2 * p)) net.emplace_back(i + j, i + j + k);
  std::vector<char> needed(std::size_t(n), 0);
  needed[std::size_t(keep)] = 1;
  std::vector<std::pair<int, int>> pruned;
  for (auto it = net.rbegin(); it != net.rend(); ++it) {
    if (needed[std::size_t(it->first)] || needed[std::size_t(it->second)]) {
      needed[std::size_t(it->first)] = needed[std::size_t(it->second)] = 1;
      pruned.push_back(*it);
    }
  }
  std::reverse(pruned.begin(), pruned.end());
  return pruned;
}

}  // namespace

void median_into(const BlockView& in, const Ext3& radius, const BlockView& out) {
  const auto rz = radius[0], ry = radius[1], rx = radius[2];
  const auto kz = 2 * rz + 1, ky = 2 * ry + 1, kx = 2 * rx + 1;
  const int count = int(kz * ky * kx);
  const int mid = count / 2;
  // The offsets' voxels sit in the block at (z + dz, y + dy, x + dx) for the output voxel
  // (z, y, x) when the block is cropped to out.shape + 2 * radius first.
  Ext3 m{};
  for (int a = 0; a < 3; ++a)
    m[std::size_t(a)] =
        (in.shape[std::size_t(a)] - out.shape[std::size_t(a)]) / 2 - radius[std::size_t(a)];
  int wires = 1;
  while (wires < count)
    wires <<= 1;
  if (wires <= 128) {
    // Sorting network across a segment of the row: each comparator is a min and a max over
    // contiguous arrays, which vectorize. Padding wires hold +inf (they sort above all).
    const auto net = median_network(wires, mid);
    constexpr std::int64_t kSeg = 64;
    for_planes(out.shape[0], [&](std::int64_t z) {
      std::vector<float> buf(std::size_t(wires * kSeg));
      for (std::int64_t y = 0; y < out.shape[1]; ++y) {
        for (std::int64_t x0 = 0; x0 < out.shape[2]; x0 += kSeg) {
          const auto len = std::min(kSeg, out.shape[2] - x0);
          int wi = 0;
          for (std::int64_t dz = 0; dz < kz; ++dz)
            for (std::int64_t dy = 0; dy < ky; ++dy)
              for (std::int64_t dx = 0; dx < kx; ++dx, ++wi) {
                const float* src = &in.at(z + m[0] + dz, y + m[1] + dy, x0 + m[2] + dx);
                std::copy(src, src + len, &buf[std::size_t(wi * kSeg)]);
              }
          for (; wi < wires; ++wi)
            std::fill_n(&buf[std::size_t(wi * kSeg)], kSeg, std::numeric_limits<float>::infinity());
          for (const auto& [a, b] : net) {
            float* pa = &buf[std::size_t(a * kSeg)];
            float* pb = &buf[std::size_t(b * kSeg)];
            for (std::int64_t i = 0; i < kSeg; ++i) {
              const float lo = std::min(pa[i], pb[i]), hi = std::max(pa[i], pb[i]);
              pa[i] = lo;
              pb[i] = hi;
            }
          }
          std::copy_n(&buf[std::size_t(mid * kSeg)], len, &out.at(z, y, x0));
        }
      }
    });
    return;
  }
  for_planes(out.shape[0], [&](std::int64_t z) {
    std::vector<float> vals(static_cast<std::size_t>(count));
    for (std::int64_t y = 0; y < out.shape[1]; ++y)
      for (std::int64_t x = 0; x < out.shape[2]; ++x) {
        std::size_t i = 0;
        for (std::int64_t dz = 0; dz < kz; ++dz)
          for (std::int64_t dy = 0; dy < ky; ++dy)
            for (std::int64_t dx = 0; dx < kx; ++dx)
              vals[i++] = in.at(z + m[0] + dz, y + m[1] + dy, x + m[2] + dx);
        std::nth_element(vals.begin(), vals.begin() + mid, vals.end());
        out.at(z, y, x) = vals[std::size_t(mid)];
      }
  });
}

}  // namespace vx::pipeline
