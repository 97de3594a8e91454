// synthetic:cells, the generator (synthetic_cells.hpp): nuclei (even channels) and membranes
// (odd channels) of a jittered Voronoi tessellation inside a lobed tissue mask.
#include "data/synthetic_cells.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace vx::data::synth {
namespace {

using SynthParams = Params;

// How it stays fast (issue 11: a synthetic chunk should cost no more than decoding a stored
// one, >= 500 M voxels/s per core; bench/bench_synthetic.cpp measures it): everything is float
// and computed 16 voxels of a row at a time in fixed-width loops the compiler vectorizes
// (SSE2 at least, AVX2/AVX-512 with the project's -march); hashes are 32-bit integer mixes.
// The low-frequency fields (tissue lobes, region brightness) are exact value noise, but
// their x part is shared by all rows of a chunk and their lattice values are interpolated in
// y and z once per row, so a voxel costs one multiply-add per field; rows wholly inside or
// outside the tissue skip the lobes. The Voronoi search runs per tile of the chunk (8 x 8 x 16
// voxels at level 0, 8 x 8 x 16 or 4 x 4 x 16 above): of the cells around the tile, only those
// that can be the nearest (or second nearest) anywhere in it are kept, by box-to-point
// distance bounds, so a voxel tests a handful of points instead of 27, and tiles outside the
// tissue test none; eight rows are searched interleaved, as one row's minimum chain is
// latency-bound. Coarse levels (3, 4: a cell is 3 or 1.5 voxels) still test many points per
// voxel, and are the slow ones. Every value depends only on global coordinates and the
// seed: a chunk is the same whichever thread reads it, and chunks tile seamlessly.

constexpr float kCell = 24.0f;      // cell spacing in level-0 voxels
constexpr float kMaxRadius = 7.5f;  // largest nucleus radius (level-0 voxels)

// lowbias32 (Chris Wellons): a full-avalanche 32-bit mix; vectorizes (pmulld).
inline std::uint32_t mix32(std::uint32_t h) {
  h ^= h >> 16;
  h *= 0x7feb352du;
  h ^= h >> 15;
  h *= 0x846ca68bu;
  h ^= h >> 16;
  return h;
}
// Coordinates wrap to 32 bits: still a deterministic function of the voxel.
inline std::uint32_t hash_yz(std::int64_t y, std::int64_t z, std::uint32_t seed) {
  return mix32(std::uint32_t(y) * 0x9E3779B1u ^ mix32(std::uint32_t(z) * 0x85EBCA77u ^ seed));
}
inline std::uint32_t hash_x(std::uint32_t x, std::uint32_t hyz) {
  return mix32(x * 0xC2B2AE3Du ^ hyz);
}
inline float unitf(std::uint32_t h) {  // [0, 1)
  return float(h >> 8) * (1.0f / 16777216.0f);
}
// exp(-x) for x >= 0 to ~1e-5 absolute: (1 - x/16 + ...)^16, a cubic then four squarings.
inline float expneg(float x) {
  x = std::min(x, 24.0f);
  const float u = x * (1.0f / 16.0f);
  float y = 1.0f - u * (1.0f - u * 0.5f * (1.0f - u * (1.0f / 3.0f)));
  y = std::max(y, 0.0f);
  y *= y;
  y *= y;
  y *= y;
  return y * y;
}

// Value noise (smoothstep-interpolated lattice values in [0, 1)) along the rows of a chunk.
// The x part (which lattice cell, smoothstep weight) is the same for every row of the chunk
// and computed once; the lattice values of a row's (y, z) are interpolated once per lattice
// point in x (the corner values cached while rows stay between the same lattice planes), so
// a voxel is one multiply-add. Exact, and continuous across chunks.
class NoiseRow {
 public:
  // Rows of n voxels whose centres are at level-0 x = x0 + (i + 0.5) * s.
  NoiseRow(double fz, double fy, double fx, std::uint32_t seed, double x0, double s, int n)
      : f_{fz, fy}, seed_(seed), sx_(std::size_t(n)) {
    const double q0 = (x0 + 0.5 * s) * fx, dq = s * fx;
    ix0_ = std::int64_t(std::floor(q0));
    nl_ = int(std::int64_t(std::floor(q0 + (n - 1) * dq)) - ix0_ + 2);
    // Segments of voxels between lattice points. Where rounding puts a voxel on the other
    // side of a lattice point, t is a hair outside [0, 1]: the same value there.
    int xa = 0;
    for (int j = 0; j + 1 < nl_; ++j) {
      const int xb =
          j + 2 == nl_ ? n : std::clamp(int(std::ceil((double(ix0_ + j + 1) - q0) / dq)), xa, n);
      ends_.push_back(xb);
      for (int i = xa; i < xb; ++i) {
        const double t = q0 + i * dq - double(ix0_ + j);
        sx_[std::size_t(i)] = float(t * t * (3 - 2 * t));
      }
      xa = xb;
    }
    corners_.resize(std::size_t(4 * nl_));
    a_.resize(std::size_t(nl_));
  }

  // out[i] = noise at level-0 (pz, py, x0 + (i + 0.5) * s).
  void eval(double pz, double py, float* out) {
    const double qz = pz * f_[0], qy = py * f_[1];
    const double fz = std::floor(qz), fy = std::floor(qy);
    const auto iz = std::int64_t(fz), iy = std::int64_t(fy);
    const int nl = nl_;
    if (iz != iz_ || iy != iy_) {
      iz_ = iz, iy_ = iy;
      for (int c = 0; c < 4; ++c) {
        const auto h = hash_yz(iy + (c & 1), iz + (c >> 1), seed_);
        for (int j = 0; j < nl; ++j)
          corners_[std::size_t(c * nl + j)] = unitf(hash_x(std::uint32_t(ix0_ + j), h));
      }
    }
    auto smooth = [](double t) { return float(t * t * (3 - 2 * t)); };
    const float ty = smooth(qy - fy), tz = smooth(qz - fz);
    const float w[4] = {(1 - ty) * (1 - tz), ty * (1 - tz), (1 - ty) * tz, ty * tz};
    const float* c = corners_.data();
    for (int j = 0; j < nl; ++j)
      a_[std::size_t(j)] =
          w[0] * c[j] + w[1] * c[nl + j] + w[2] * c[2 * nl + j] + w[3] * c[3 * nl + j];
    const float* sx = sx_.data();
    int xa = 0;
    for (std::size_t j = 0; j < ends_.size(); ++j) {
      const float lo = a_[j], d = a_[j + 1] - lo;
      const int xb = ends_[j];
      for (int i = xa; i < xb; ++i)
        out[i] = lo + d * sx[i];
      xa = xb;
    }
  }

 private:
  double f_[2];
  std::uint32_t seed_;
  int nl_ = 0;
  std::int64_t ix0_ = 0, iz_ = INT64_MIN, iy_ = INT64_MIN;
  std::vector<float> sx_, corners_, a_;
  std::vector<int> ends_;
};

// The fixed-width loops over a row segment stay loops, for the vectorizer (fully unrolled
// first, they end up scalar). Not forced: where sqrt sets errno (the fuzz build) they may stay
// scalar, without a warning.
#if defined(__clang__)
#define VX_LANES _Pragma("clang loop unroll(disable)")
#else
#define VX_LANES
#endif

// Row segments are processed kW voxels at a time; tiles are kTz x kTy rows of such segments.
constexpr int kW = 16;
constexpr int kR = 8;  // rows whose Voronoi search runs interleaved

// Feature points of one row of cells (x from gx0), relative to the chunk's origin.
void cell_row(std::uint32_t gx0, std::uint32_t hyz, float bz, float by, float bx, std::int64_t n,
              float* __restrict pz, float* __restrict py, float* __restrict px, float* __restrict r,
              float* __restrict b) {
  for (std::int64_t i = 0; i < n; ++i) {
    const auto h = hash_x(gx0 + std::uint32_t(i), hyz);
    const auto h1 = mix32(h ^ 0x68E31DA4u), h2 = mix32(h ^ 0xB5297A4Du);
    const auto h3 = mix32(h ^ 0x1B56C4E9u), h4 = mix32(h ^ 0x5bd1e995u);
    pz[i] = bz + (0.15f + 0.7f * unitf(h)) * kCell;
    py[i] = by + (0.15f + 0.7f * unitf(h1)) * kCell;
    px[i] = bx + (float(i) + 0.15f + 0.7f * unitf(h2)) * kCell;
    r[i] = 4.0f + 3.5f * unitf(h3);
    const float lit = unitf(h4);  // 12% of the cells have a dark nucleus
    b[i] = lit < 0.12f ? 0.0f : 0.45f + 0.55f * (lit - 0.12f) * (1.0f / 0.88f);
  }
}

struct Cells {  // feature points around a chunk, coordinates relative to the chunk's origin
  std::int64_t c0[3] = {}, cn[3] = {};
  std::vector<float> p[3], r, b;
};

// Everything one read_chunk() needs; one per call, so threads share nothing.
class ChunkGen {
 public:
  ChunkGen(const SynthParams& p, int level, int channel, const std::int64_t start[3],
           const std::int64_t count[3])
      : p_(p),
        level_(level),
        channel_(channel),
        membrane_(channel % 2 == 1),
        s_(float(std::ldexp(1.0, level))),
        lobes4_(4.0 / double(p.shape[0]), 4.0 / double(p.shape[1]), 4.0 / double(p.shape[2]),
                p.seed, double(start[2]) * s_, s_, int(count[2])),
        lobes11_(11.0 / double(p.shape[0]), 11.0 / double(p.shape[1]), 11.0 / double(p.shape[2]),
                 p.seed + 1, double(start[2]) * s_, s_, int(count[2])),
        region_(1.0 / 300, 1.0 / 300, 1.0 / 300, p.seed + 5, double(start[2]) * s_, s_,
                int(count[2])) {
    for (int d = 0; d < 3; ++d) {
      start_[d] = start[d];
      count_[d] = count[d];
      origin_[d] = double(start[d]) * s_;
    }
    const float s = s_;
    blend_ = std::clamp((s - kCell / 4) / (kCell / 2), 0.0f, 1.0f);
    edge_ = std::max(1.0f, 0.6f * s);
    thick_ = std::max(0.8f, 0.5f * s);
    mem_gain_ = std::min(1.0f, 1.6f / thick_);
    mean_level_ = membrane_ ? 0.22f : 0.12f;
    peak_ = membrane_ ? 2200.0f : 3400.0f;
    noise_amp_ = 60.0f / std::sqrt(s * s * s);
    // Tiles about 8 level-0 voxels a side: the candidate points stay few.
    static constexpr int kTile[] = {8, 8, 4, 4, 4};  // measured (bench_synthetic)
    tz_ = ty_ = kTile[std::min(level, 4)];
  }

  // Computes rows [z0, z0 + nz) x [y0, y0 + ny) (within count) into rows[(z * ny + y) * ld].
  void band(std::int64_t z0, int nz, std::int64_t y0, int ny, float* rows, std::size_t ld) {
    const auto nx = int(count_[2]);
    const std::size_t nrows = std::size_t(nz * ny);
    mask_.resize(nrows * ld);
    detail_.assign(nrows * ld, 0.0f);
    std::vector<char> row_any(nrows, 0);
    bool partial = false;  // some row is partly inside the tissue
    const double full[3] = {double(p_.shape[0]), double(p_.shape[1]), double(p_.shape[2])};
    for (int k = 0; k < nz; ++k)
      for (int j = 0; j < ny; ++j) {
        float* m = mask_.data() + std::size_t(k * ny + j) * ld;
        const double pz = origin_[0] + (double(z0 + k) + 0.5) * s_;
        const double py = origin_[1] + (double(y0 + j) + 0.5) * s_;
        // Tissue: a lobed ellipsoid.
        const double u = (pz / full[0] - 0.5) / 0.46, v = (py / full[1] - 0.5) / 0.44;
        const auto uv = float(u * u + v * v);
        const auto w0 = float(((origin_[2] + 0.5 * s_) / full[2] - 0.5) / 0.47);
        const auto dw = float(s_ / full[2] / 0.47);
        // Rows wholly inside (or outside) whatever the lobes (in [0, 0.3)) need no noise.
        {
          const double wa = w0, wb = w0 + double(nx - 1) * dw;
          const double lo = wa * wb <= 0 ? 0 : std::min(wa * wa, wb * wb);
          const double rmin = std::sqrt(double(uv) + lo) - 0.15;
          const double rmax = std::sqrt(double(uv) + std::max(wa * wa, wb * wb)) + 0.3 - 0.15;
          if (rmax < 11.0 / 12.0 - 1e-3 || rmin > 1.0 + 1e-3) {
            const bool in = rmax < 11.0 / 12.0 - 1e-3;
            std::fill_n(m, nx, in ? 1.0f : 0.0f);
            row_any[std::size_t(k * ny + j)] = in;
            continue;
          }
        }
        lobes4_.eval(pz, py, m);
        lobes11_.eval(pz, py, tmp_.data());
        int inside = 0;
        for (int i = 0; i < nx; ++i) {
          const float w = w0 + float(i) * dw;
          const float radial =
              std::sqrt(uv + w * w) + 0.22f * m[i] + 0.08f * tmp_[std::size_t(i)] - 0.15f;
          m[i] = std::clamp((1.0f - radial) * 12.0f, 0.0f, 1.0f);
          inside += m[i] > 0;
        }
        row_any[std::size_t(k * ny + j)] = inside > 0;
        partial |= inside > 0 && inside < nx;
      }
    if (blend_ < 1.0f && std::any_of(row_any.begin(), row_any.end(), [](char c) { return c; }))
      for (int x0 = 0; x0 < nx; x0 += kW) {
        const int n = std::min(kW, nx - x0);
        bool in = !partial;
        for (std::size_t r = 0; r < nrows && !in; ++r)
          if (row_any[r])
            for (int i = 0; i < n; ++i)
              in |= mask_[r * ld + std::size_t(x0 + i)] > 0;
        if (in) tile(z0, nz, y0, ny, x0, n, ld);
      }
    // Brightness and noise.
    const auto noise_seed = p_.seed * 31u + std::uint32_t(level_) * 101u + std::uint32_t(channel_);
    const float detail_w = 1.0f - blend_, mean = blend_ * mean_level_;
    for (int k = 0; k < nz; ++k)
      for (int j = 0; j < ny; ++j) {
        const std::size_t r = std::size_t(k * ny + j);
        const float* m = mask_.data() + r * ld;
        const float* dt = detail_.data() + r * ld;
        float* out = rows + r * ld;
        const double pz = origin_[0] + (double(z0 + k) + 0.5) * s_;
        const double py = origin_[1] + (double(y0 + j) + 0.5) * s_;
        if (row_any[r])
          region_.eval(pz, py, tmp_.data());
        else
          std::fill_n(tmp_.begin(), nx, 0.0f);
        const auto hyz = hash_yz(start_[1] + y0 + j, start_[0] + z0 + k, noise_seed);
        const auto x0 = std::uint32_t(start_[2]);
        const float* reg = tmp_.data();
        for (int i = 0; i < nx; ++i) {
          const float region = 0.6f + 0.4f * reg[i];
          const float signal = m[i] * region * (detail_w * dt[i] + mean);
          const float noise = noise_amp_ * (unitf(hash_x(x0 + std::uint32_t(i), hyz)) - 0.5f);
          out[i] = 100.0f + 40.0f * m[i] + peak_ * signal + noise;
        }
      }
  }

  void reserve(std::size_t ld) { tmp_.resize(ld + kW); }

 private:
  void make_cells() {
    if (cells_ready_) return;
    cells_ready_ = true;
    Cells& c = cells_;
    for (int d = 0; d < 3; ++d) {
      const double lo = origin_[d], hi = double(start_[d] + count_[d]) * s_;
      c.c0[d] = std::int64_t(std::floor(lo / kCell)) - 1;
      c.cn[d] = std::int64_t(std::floor(hi / kCell)) + 2 - c.c0[d];
    }
    const auto total = std::size_t(c.cn[0] * c.cn[1] * c.cn[2]);
    for (auto* v : {&c.p[0], &c.p[1], &c.p[2], &c.r, &c.b})
      v->resize(total);
    const std::uint32_t seed = p_.seed + std::uint32_t(channel_ / 2) * 7919u;
    const auto nxc = c.cn[2];
    const auto bx = float(double(c.c0[2]) * kCell - origin_[2]);
    for (std::int64_t k = 0; k < c.cn[0]; ++k)
      for (std::int64_t j = 0; j < c.cn[1]; ++j) {
        const auto gz = c.c0[0] + k, gy = c.c0[1] + j;
        const auto hyz = hash_yz(gy, gz, seed);
        const auto bz = float(double(gz) * kCell - origin_[0]);
        const auto by = float(double(gy) * kCell - origin_[1]);
        const std::size_t o = std::size_t((k * c.cn[1] + j) * nxc);
        cell_row(std::uint32_t(c.c0[2]), hyz, bz, by, bx, nxc, c.p[0].data() + o, c.p[1].data() + o,
                 c.p[2].data() + o, c.r.data() + o, c.b.data() + o);
      }
  }

  // Detail (before mask and region) of the tile's rows, voxels [x0, x0 + n).
  void tile(std::int64_t z0, int nz, std::int64_t y0, int ny, int x0, int n, std::size_t ld) {
    make_cells();
    const Cells& c = cells_;
    const float s = s_;
    // Voxel centres of the tile, relative to the chunk's origin.
    const std::int64_t first[3] = {z0, y0, x0}, last[3] = {z0 + nz - 1, y0 + ny - 1, x0 + n - 1};
    float lo[3], hi[3];
    std::int64_t g0[3], g1[3];
    for (int d = 0; d < 3; ++d) {
      lo[d] = (float(first[d]) + 0.5f) * s;
      hi[d] = (float(last[d]) + 0.5f) * s;
      // The cells around the tile's voxels (each voxel's 27, as a superset).
      g0[d] = std::int64_t(std::floor((origin_[d] + lo[d]) / kCell)) - 1 - c.c0[d];
      g1[d] = std::int64_t(std::floor((origin_[d] + hi[d]) / kCell)) + 1 - c.c0[d];
      g0[d] = std::max<std::int64_t>(g0[d], 0);
      g1[d] = std::min<std::int64_t>(g1[d], c.cn[d] - 1);
    }
    // Bounds: the nearest point to any voxel of the tile is no farther than the smallest
    // max-distance of a candidate, the second no farther than the second smallest; a point
    // whose min-distance exceeds that bound is never needed. A nucleus shows only within
    // kMaxRadius + edge / 2 of its point, so for nuclei farther points do not matter either.
    cand_.clear();
    dmin_.clear();
    float t1 = 1e30f, t2 = 1e30f;
    for (auto k = g0[0]; k <= g1[0]; ++k)
      for (auto j = g0[1]; j <= g1[1]; ++j)
        for (auto i = g0[2]; i <= g1[2]; ++i) {
          const auto idx = std::size_t((k * c.cn[1] + j) * c.cn[2] + i);
          float mn = 0, mx = 0;
          for (int d = 0; d < 3; ++d) {
            const float q = c.p[d][idx];
            const float a = std::max({0.0f, lo[d] - q, q - hi[d]});
            const float b = std::max(q - lo[d], hi[d] - q);
            mn += a * a;
            mx += b * b;
          }
          if (mx < t1) {
            t2 = t1;
            t1 = mx;
          } else if (mx < t2) {
            t2 = mx;
          }
          cand_.push_back(std::uint32_t(idx));
          dmin_.push_back(mn);
        }
    float bound = t2;
    if (!membrane_) {
      const float rmax = kMaxRadius + 0.5f * edge_;
      bound = std::min(t1, rmax * rmax);
    }
    bound = bound * 1.0001f + 1e-3f;  // rounding
    kx_.clear();
    kyz_[0].clear();
    kyz_[1].clear();
    kr_.clear();
    kb_.clear();
    for (std::size_t q = 0; q < cand_.size(); ++q)
      if (dmin_[q] <= bound) {
        const auto idx = cand_[q];
        kyz_[0].push_back(c.p[0][idx]);
        kyz_[1].push_back(c.p[1][idx]);
        kx_.push_back(c.p[2][idx]);
        kr_.push_back(c.r[idx]);
        kb_.push_back(c.b[idx]);
      }
    const std::size_t nk = kx_.size();
    if (nk == 0) return;  // no nucleus reaches the tile: detail stays 0
    dyz_.resize(nk * kR);
    float px[kW];
    VX_LANES
    for (int i = 0; i < kW; ++i)
      px[i] = (float(x0 + i) + 0.5f) * s;
    const std::uint32_t chroma_seed = p_.seed + 11;
    // kR rows at a time: their minimum chains are independent, so they overlap (one row's
    // chain alone is latency-bound). Rows past the tile get points at infinity.
    const int rows = nz * ny;
    for (int r0 = 0; r0 < rows; r0 += kR) {
      for (int r = 0; r < kR; ++r) {
        const int row = std::min(r0 + r, rows - 1);
        const float pz = (float(z0 + row / ny) + 0.5f) * s;
        const float py = (float(y0 + row % ny) + 0.5f) * s;
        const float far = r0 + r < rows ? 0.0f : 1e30f;
        for (std::size_t q = 0; q < nk; ++q) {
          const float a = kyz_[0][q] - pz, b = kyz_[1][q] - py;
          dyz_[q * kR + std::size_t(r)] = a * a + b * b + far;
        }
      }
      float res[kR][kW];
      if (membrane_) {
        float d1[kR][kW], d2[kR][kW];
        for (int r = 0; r < kR; ++r) {
          VX_LANES
          for (int i = 0; i < kW; ++i)
            d1[r][i] = d2[r][i] = 1e30f;
        }
        for (std::size_t q = 0; q < nk; ++q) {
          const float cx = kx_[q];
          for (int r = 0; r < kR; ++r) {
            const float cyz = dyz_[q * kR + std::size_t(r)];
            VX_LANES
            for (int i = 0; i < kW; ++i) {
              const float dx = px[i] - cx;
              const float dd = dx * dx + cyz;
              d2[r][i] = std::min(d2[r][i], std::max(d1[r][i], dd));
              d1[r][i] = std::min(d1[r][i], dd);
            }
          }
        }
        const float inv = 1.0f / thick_;
        for (int r = 0; r < kR; ++r) {
          VX_LANES
          for (int i = 0; i < kW; ++i) {
            const float g = (std::sqrt(d2[r][i]) - std::sqrt(d1[r][i])) * inv;
            res[r][i] = mem_gain_ * expneg(g * g);
          }
        }
      } else {
        float d1[kR][kW], rr[kR][kW], bb[kR][kW];
        for (int r = 0; r < kR; ++r) {
          VX_LANES
          for (int i = 0; i < kW; ++i) {
            d1[r][i] = 1e30f;
            rr[r][i] = bb[r][i] = 0.0f;
          }
        }
        for (std::size_t q = 0; q < nk; ++q) {
          const float cx = kx_[q], cr = kr_[q], cb = kb_[q];
          for (int r = 0; r < kR; ++r) {
            const float cyz = dyz_[q * kR + std::size_t(r)];
            VX_LANES
            for (int i = 0; i < kW; ++i) {
              const float dx = px[i] - cx;
              const float dd = dx * dx + cyz;
              const bool m = dd < d1[r][i];
              d1[r][i] = m ? dd : d1[r][i];
              rr[r][i] = m ? cr : rr[r][i];
              bb[r][i] = m ? cb : bb[r][i];
            }
          }
        }
        const float inv = 1.0f / edge_;
        const int lv = level_;
        const auto gx0 = std::uint32_t(start_[2] + x0);
        for (int r = 0; r < kR && r0 + r < rows; ++r) {
          // Chromatin texture: a hash of the level-0 position halved.
          const int k = (r0 + r) / ny, j = (r0 + r) % ny;
          const auto gz = std::uint64_t((2 * (start_[0] + z0 + k) + 1) << level_) >> 2;
          const auto gy = std::uint64_t((2 * (start_[1] + y0 + j) + 1) << level_) >> 2;
          const auto hyz = hash_yz(std::int64_t(gy), std::int64_t(gz), chroma_seed);
          VX_LANES
          for (int i = 0; i < kW; ++i) {
            const float v = std::clamp((rr[r][i] - std::sqrt(d1[r][i])) * inv + 0.5f, 0.0f, 1.0f);
            const std::uint32_t gx = ((2 * (gx0 + std::uint32_t(i)) + 1) << lv) >> 2;
            res[r][i] = bb[r][i] * v * (0.8f + 0.2f * unitf(hash_x(gx, hyz)));
          }
        }
      }
      for (int r = 0; r < kR && r0 + r < rows; ++r) {
        const int k = (r0 + r) / ny, j = (r0 + r) % ny;
        float* out = detail_.data() + std::size_t(k * ny + j) * ld + x0;
        for (int i = 0; i < n; ++i)
          out[i] = res[r][i];
      }
    }
  }

  const SynthParams& p_;
  int level_, channel_;
  bool membrane_;
  float s_;
  std::int64_t start_[3], count_[3];
  double origin_[3];
  float blend_, edge_, thick_, mem_gain_, mean_level_, peak_, noise_amp_;
  int tz_, ty_;
  NoiseRow lobes4_, lobes11_, region_;
  bool cells_ready_ = false;
  Cells cells_;
  std::vector<float> mask_, detail_, tmp_;
  std::vector<std::uint32_t> cand_;
  std::vector<float> dmin_, kx_, kyz_[2], kr_, kb_, dyz_;

 public:
  int tile_z() const { return tz_; }
  int tile_y() const { return ty_; }
};

void store_row(DType dtype, const float* row, std::span<std::byte> out, std::size_t off,
               std::size_t n, std::size_t width) {
  switch (dtype) {
    case DType::kUInt8: {
      auto* d = reinterpret_cast<std::uint8_t*>(out.data()) + off;
      for (std::size_t i = 0; i < n; ++i)
        d[i] = std::uint8_t(std::clamp(row[i] / 16.0f, 0.0f, 255.0f));
      std::fill(d + n, d + width, std::uint8_t(0));
      break;
    }
    case DType::kUInt16: {
      auto* d = reinterpret_cast<std::uint16_t*>(out.data()) + off;
      for (std::size_t i = 0; i < n; ++i)
        d[i] = std::uint16_t(std::clamp(row[i] + 0.5f, 0.0f, 65535.0f));
      std::fill(d + n, d + width, std::uint16_t(0));
      break;
    }
    case DType::kFloat32: {
      auto* d = reinterpret_cast<float*>(out.data()) + off;
      std::copy(row, row + n, d);
      std::fill(d + n, d + width, 0.0f);
      break;
    }
    default:
      break;
  }
}

}  // namespace

void generate_chunk(const Params& p, int level, int channel, const std::int64_t start[3],
                    const std::int64_t count[3], const std::int64_t cs[3], DType dtype,
                    std::span<std::byte> out) {
  ChunkGen gen(p, level, channel, start, count);
  const std::size_t ld = std::size_t(cs[2]) + kW;  // room for a last full-width segment
  gen.reserve(ld);
  const int tz = gen.tile_z(), ty = gen.tile_y();
  std::vector<float> rows(std::size_t(tz * ty) * ld);
  const std::size_t plane = std::size_t(cs[1] * cs[2]);
  const std::size_t esize = dtype_size(dtype);
  for (std::int64_t z = 0; z < cs[0]; z += tz) {
    const int nz = int(std::min<std::int64_t>(tz, std::max<std::int64_t>(0, count[0] - z)));
    for (std::int64_t y = 0; y < cs[1]; y += ty) {
      const int ny = int(std::min<std::int64_t>(ty, std::max<std::int64_t>(0, count[1] - y)));
      if (nz > 0 && ny > 0) gen.band(z, nz, y, ny, rows.data(), ld);
      for (int k = 0; k < tz && z + k < cs[0]; ++k)
        for (int j = 0; j < ty && y + j < cs[1]; ++j) {
          const std::size_t off = std::size_t(z + k) * plane + std::size_t((y + j) * cs[2]);
          if (k >= nz || j >= ny) {
            fill_with(out.subspan(off * esize, std::size_t(cs[2]) * esize), dtype, 0);
            continue;
          }
          store_row(dtype, rows.data() + std::size_t(k * ny + j) * ld, out, off,
                    std::size_t(count[2]), std::size_t(cs[2]));
        }
    }
  }
}

}  // namespace vx::data::synth
