// The slice pass (object order, front to back along the principal axis, into an
// intermediate image on the plane of the first slice) and the warp of that image onto the
// screen. See volume.hpp for the method.
#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <tbb/partitioner.h>
#include <tbb/task_arena.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "render/cpu/volume_impl.hpp"
#include "render/cpu/volume_staging.hpp"
#include "render/kernels/composite.hpp"
#include "render/kernels/transfer.hpp"

namespace vx::render::cpu {
namespace {

constexpr float kOpaque = kernels::kOpaqueAlpha;  // translucent rays stop here, as napari's do

std::optional<Slicing> make_slicing(const Projection& proj, const Geom& g, const Vec3& lo,
                                    const Vec3& hi, double density, int W, int H) {
  Slicing s;
  Vec3 o, d;
  proj.ray(W / 2.0, H / 2.0, o, d);
  const Vec3 dv = g.dir_to_voxel(d);
  s.c = int(std::max_element(dv.begin(), dv.end(),
                             [](double x, double y) { return std::abs(x) < std::abs(y); }) -
            dv.begin());
  const int o1 = (s.c + 1) % 3, o2 = (s.c + 2) % 3;
  s.a = g.stride[std::size_t(o1)] <= g.stride[std::size_t(o2)] ? o1 : o2;
  s.b = s.a == o1 ? o2 : o1;
  const auto C = std::size_t(s.c), A = std::size_t(s.a), B = std::size_t(s.b);
  s.dir = dv[C] > 0 ? 1 : -1;
  s.persp = proj.perspective();
  std::int64_t kmin =
      std::clamp<std::int64_t>(std::int64_t(std::floor(lo[C] + 0.5)), 0, g.n[C] - 1);
  std::int64_t kmax = std::clamp<std::int64_t>(std::int64_t(std::ceil(hi[C] - 0.5)), 0, g.n[C] - 1);
  if (s.persp) {
    s.e = g.to_voxel(proj.eye());
    // Only slices in front of the eye.
    if (s.dir > 0)
      kmin = std::max(kmin, std::int64_t(std::floor(s.e[C])) + 1);
    else
      kmax = std::min(kmax, std::int64_t(std::ceil(s.e[C])) - 1);
  }
  if (kmin > kmax) return std::nullopt;
  s.k0 = s.dir > 0 ? kmin : kmax;
  s.k1 = s.dir > 0 ? kmax : kmin;
  s.cref = double(s.k0);
  s.sh_a = dv[A] / dv[C];
  s.sh_b = dv[B] / dv[C];
  s.step = std::sqrt(dv[0] * dv[0] + dv[1] * dv[1] + dv[2] * dv[2]) / std::abs(dv[C]);
  // The plane's extent: the visible box on the front and back slices, seen from the eye.
  double amin = 1e300, amax = -1e300, bmin = 1e300, bmax = -1e300;
  for (const auto k : {s.k0, s.k1})
    for (const double av : {lo[A], hi[A]})
      for (const double bv : {lo[B], hi[B]}) {
        double qa, qb;
        if (s.persp) {
          const double be = s.beta(double(k));
          qa = s.e[A] + (av - s.e[A]) / be;
          qb = s.e[B] + (bv - s.e[B]) / be;
        } else {
          qa = av - s.sh_a * (double(k) - s.cref);
          qb = bv - s.sh_b * (double(k) - s.cref);
        }
        amin = std::min(amin, qa), amax = std::max(amax, qa);
        bmin = std::min(bmin, qb), bmax = std::max(bmax, qb);
      }
  // Rays per voxel: as many as screen pixels per voxel of the plane, so that every pixel
  // gets its own ray.
  Vec3 p0{};
  p0[C] = s.cref;
  p0[A] = 0.5 * (amin + amax);
  p0[B] = 0.5 * (bmin + bmax);
  auto pixels_per_voxel = [&](std::size_t axis) {
    Vec3 p1 = p0;
    p1[axis] += 1;
    double x0, y0, z0, x1, y1, z1;
    proj.project(g.to_world(p0), x0, y0, z0);
    proj.project(g.to_world(p1), x1, y1, z1);
    return std::hypot(x1 - x0, y1 - y0);
  };
  const double ra = pixels_per_voxel(A) * density, rb = pixels_per_voxel(B) * density;
  constexpr double kMaxRays = 4096;
  const double wa = std::max(amax - amin, 1e-9), wb = std::max(bmax - bmin, 1e-9);
  if (s.persp) {
    s.fa = std::clamp(ra, 0.25, kMaxRays / wa);
    s.fb = std::clamp(rb, 0.25, kMaxRays / wb);
  } else {
    s.fa = std::max(1.0, std::min(std::ceil(ra - 0.05), std::floor(kMaxRays / wa)));
    s.fb = std::max(1.0, std::min(std::ceil(rb - 0.05), std::floor(kMaxRays / wb)));
    s.fa_int = int(s.fa);
  }
  s.amin = amin;
  s.bmin = bmin;
  s.nu = std::max(1, int(std::ceil(wa * s.fa)));
  s.nv = std::max(1, int(std::ceil(wb * s.fb)));
  return s;
}

// The index in `br` of brick (ck, cb, ca) along (c, b, a); -1 outside the box.
std::size_t brick_at(const Bricks& br, const Slicing& s, std::int64_t ck, std::int64_t cb,
                     std::int64_t ca) {
  I3 idx{};
  idx[std::size_t(s.c)] = ck;
  idx[std::size_t(s.b)] = cb;
  idx[std::size_t(s.a)] = ca;
  for (std::size_t d = 0; d < 3; ++d)
    if (idx[d] < br.lo[d] || idx[d] >= br.lo[d] + br.dim[d]) return std::size_t(-1);
  return br.flat(idx[0], idx[1], idx[2]);
}

// Whether the voxel rows b0 and b1 of slice k over [a_lo, a_hi] can change the result: some
// brick on them is not empty (build_line's answer, without reading voxels).
bool rows_matter(const Geom& g, const Bricks& br, const Slicing& s, std::int64_t k, std::int64_t b0,
                 std::int64_t b1, std::int64_t a_lo, std::int64_t a_hi) {
  const auto C = std::size_t(s.c), A = std::size_t(s.a), B = std::size_t(s.b);
  const std::int64_t ck = k / g.chunk[C], cb0 = b0 / g.chunk[B], cb1 = b1 / g.chunk[B];
  for (std::int64_t ca = a_lo / g.chunk[A]; ca <= a_hi / g.chunk[A]; ++ca) {
    const auto i0 = brick_at(br, s, ck, cb0, ca), i1 = brick_at(br, s, ck, cb1, ca);
    if ((i0 != std::size_t(-1) && !br.empty[i0]) || (i1 != std::size_t(-1) && !br.empty[i1]))
      return true;
  }
  return false;
}

// Reads the voxel line of slice k between rows b0 and b1 (weight fb) over [a_lo, a_hi] into
// L[1 .. len], with L[0] and L[len + 1] repeating the ends (clamp to edge). False when every
// brick on it is empty: the row cannot change the result. The voxels come from `st` when it
// holds them.
template <class T>
bool build_line(const Geom& g, const Bricks& br, const Slicing& s, std::int64_t k, std::int64_t b0,
                std::int64_t b1, float fb, std::int64_t a_lo, std::int64_t a_hi, float* L,
                const Staging<T>& st) {
  const bool staged = st.holds(k, s.dir, b0, b1, a_lo, a_hi);
  const auto C = std::size_t(s.c), A = std::size_t(s.a), B = std::size_t(s.b);
  const std::int64_t ck = k / g.chunk[C], cb0 = b0 / g.chunk[B], cb1 = b1 / g.chunk[B];
  const std::int64_t off0 =
      g.base + (k % g.chunk[C]) * g.stride[C] + (b0 % g.chunk[B]) * g.stride[B];
  const std::int64_t off1 =
      g.base + (k % g.chunk[C]) * g.stride[C] + (b1 % g.chunk[B]) * g.stride[B];
  const std::int64_t sa = g.stride[A];
  auto brick = [&](std::int64_t cb, std::int64_t ca) { return brick_at(br, s, ck, cb, ca); };
  const std::int64_t kn = k + s.dir * s.kstep;
  const bool next_in_brick = !staged && kn >= 0 && kn < g.n[C] && kn / g.chunk[C] == ck;
  const std::int64_t next_delta = s.dir * s.kstep * g.stride[C];
  bool any = false;
  for (std::int64_t ca = a_lo / g.chunk[A]; ca <= a_hi / g.chunk[A]; ++ca) {
    const std::int64_t first = std::max(a_lo, ca * g.chunk[A]);
    const std::int64_t last = std::min(a_hi, ca * g.chunk[A] + g.chunk[A] - 1);
    const auto i0 = brick(cb0, ca), i1 = brick(cb1, ca);
    const bool e0 = i0 == std::size_t(-1) || br.empty[i0],
               e1 = i1 == std::size_t(-1) || br.empty[i1];
    any |= !(e0 && e1);
    float* dst = L + 1 + (first - a_lo);
    const std::int64_t cnt = last - first + 1;
    const std::byte* p0 = i0 == std::size_t(-1) ? nullptr : br.ptr[i0];
    const std::byte* p1 = i1 == std::size_t(-1) ? nullptr : br.ptr[i1];
    if (!p0 || !p1) {  // off screen, not fetched: never seen
      std::fill(dst, dst + cnt, 0.f);
      continue;
    }
    const T* x;
    const T* y;
    std::int64_t step = sa;
    if (staged) {
      x = st.line(k, s.dir, b0, first);
      y = st.line(k, s.dir, b1, first);
      step = 1;
    } else {
      x = reinterpret_cast<const T*>(p0) + off0 + (first % g.chunk[A]) * sa;
      y = reinterpret_cast<const T*>(p1) + off1 + (first % g.chunk[A]) * sa;
      if (sa == 1 && next_in_brick) {
        // The same run of the next slice: short runs in separate bricks defeat the hardware
        // prefetcher, and the next slice is a whole row pass away.
        constexpr std::int64_t kLine =
            64 / std::int64_t(sizeof(T)) > 0 ? 64 / std::int64_t(sizeof(T)) : 1;
        for (std::int64_t j = 0; j < cnt; j += kLine) {
          __builtin_prefetch(x + next_delta + j);
          if (fb != 0) __builtin_prefetch(y + next_delta + j);
        }
      }
    }
    if (step == 1) {
      if (fb == 0) {
        for (std::int64_t j = 0; j < cnt; ++j)
          dst[j] = float(x[j]);
      } else {
        for (std::int64_t j = 0; j < cnt; ++j)
          dst[j] = float(x[j]) + fb * (float(y[j]) - float(x[j]));
      }
    } else {
      for (std::int64_t j = 0; j < cnt; ++j)
        dst[j] = float(x[j * sa]) + fb * (float(y[j * sa]) - float(x[j * sa]));
    }
  }
  const auto len = std::size_t(a_hi - a_lo + 1);
  L[0] = L[1];
  L[len + 1] = L[len];
  return any;
}

// Accumulates one sample s into intermediate column u of a row, per mode.
template <Mode M>
struct Op {
  float* p0;
  float* p1;
  F4* c;
  const Look* look;
  float k = 0;  // the slice, for iso depth
  float dir = 1;
  float step = 1;  // voxels between samples
  // Iso, sort-last: only columns in [own_lo, own_hi] may hold this part's hits (the others
  // are evaluated for the previous sample of a crossing).
  std::int64_t own_lo = std::numeric_limits<std::int64_t>::min();
  std::int64_t own_hi = std::numeric_limits<std::int64_t>::max();
  void operator()(std::int64_t u, float s) const {
    // The arithmetic is the shared one (render/kernels/composite.hpp): the GPU runs it too.
    if constexpr (M == Mode::kMip) {
      p0[u] = kernels::mip_step(p0[u], s);
    } else if constexpr (M == Mode::kMinip) {
      p0[u] = kernels::minip_step(p0[u], s);  // NaN: no sample yet
    } else if constexpr (M == Mode::kAverage) {
      kernels::average_step(p0[u], p1[u], s);
    } else if constexpr (M == Mode::kAttenuatedMip) {
      // napari's attenuated MIP, made independent of the sampling step: a sample is dimmed
      // by exp(-attenuation * the path integral of the normalized value in front of it, in
      // voxels). p1 holds that factor; each sample multiplies it by its own (a table).
      const auto q = kernels::table_index(s, look->lo, look->tint_scale, float(kTintLut - 1));
      p0[u] = kernels::attenuated_step(p0[u], p1[u], s, look->decay[std::size_t(q)]);
    } else if constexpr (M == Mode::kTranslucent) {
      // Front to back: colour += (1 - opacity so far) * premultiplied sample colour.
      const F4 acc = c[u];
      if (acc[3] >= kOpaque) return;
      const int q = kernels::table_index(s, look->lo, look->tint_scale, float(kTintLut - 1));
      c[u] = kernels::over_step(acc, acc[3], look->tint[std::size_t(q)]);
    } else {
      if (p0[u] == p0[u]) return;  // already hit
      const float prev = p1[u];
      p1[u] = s;
      // Between the previous sample and this one, where the threshold is crossed (NaN: no
      // data, never a crossing); in sort-last, only in this part's columns.
      float hit;
      if (!kernels::iso_crossing(prev, s, look->iso, k, dir, hit)) return;
      if (u < own_lo || u > own_hi) return;
      p0[u] = hit;
    }
  }
};

// Sort-last: whether position x (voxels) is in [lo - margin, hi + margin).
bool in_part(double x, double lo, double hi, double margin) {
  return x >= lo - margin && x < hi + margin;
}

// Sort-last: narrows [u_lo, u_hi] to the columns whose position A0 + u * dA is in
// [lo - margin, hi + margin). Neighbouring parts compute the same bound, so every column
// has exactly one owner.
void clip_columns(double A0, double dA, double lo, double hi, double margin, std::int64_t& u_lo,
                  std::int64_t& u_hi) {
  if (std::isfinite(lo)) u_lo = std::max(u_lo, std::int64_t(std::ceil((lo - margin - A0) / dA)));
  if (std::isfinite(hi))
    u_hi = std::min(u_hi, std::int64_t(std::ceil((hi + margin - A0) / dA)) - 1);
}

template <class T, Mode M>
void slice_rows(const Geom& g, const Bricks& br, const Slicing& s, const Look& look, Planes& pl,
                int v0, int v1) {
  const auto A = std::size_t(s.a), B = std::size_t(s.b);
  thread_local std::vector<float> L, E, X[2];
  thread_local std::vector<std::int32_t> Q;
  L.resize(std::size_t(g.n[A]) + 2);
  const bool fast = s.fa_int > 0 && look.linear;
  if (fast && s.fa_int > 1) E.resize(std::size_t(s.fa_int) * (std::size_t(g.n[A]) + 1) + 1);
  if (fast) X[0].resize(std::size_t(s.nu)), X[1].resize(std::size_t(s.nu));
  thread_local Staging<T> st;
  st.count = 0;
  st.on = s.kstep == 1 && g.stride[A] > 1 && g.stride[std::size_t(s.c)] < g.stride[A];
  int slab = 0;
  const SortLast* sl = look.sort_last;
  const double margin = M == Mode::kIso ? SortLast::kIsoMargin : 0;
  const auto C = std::size_t(s.c);
  for (std::int64_t k = s.k0;; k += s.dir * s.kstep) {
    if (look.cancel && (++slab & 15) == 0 && look.cancel->load(std::memory_order_relaxed)) return;
    const double kd = double(k);
    if (sl && !in_part(kd, sl->lo[C], sl->hi[C], margin)) {  // another part's slice
      if ((s.k1 - k) * s.dir < s.kstep) break;
      continue;
    }
    const bool own_slice = !sl || in_part(kd, sl->lo[C], sl->hi[C], 0);
    if (st.on && (st.count == 0 || (k - st.k_last) * s.dir > 0)) {
      // The rows each slice of the group reads for this block of rows, and the columns of
      // all of them: the extremes of b_at and a_at over the corners (both are monotonic in
      // v, u and k).
      auto clampi = [](double x, std::int64_t n) {
        return std::clamp<std::int64_t>(std::int64_t(std::clamp(x, -1.0, double(n))), 0, n - 1);
      };
      const auto rows = [&](std::int64_t kk) {
        const double b0 = s.b_at(double(v0), double(kk)), b1 = s.b_at(double(v1 - 1), double(kk));
        return std::pair{clampi(std::floor(std::min(b0, b1)) - 1, g.n[B]),
                         clampi(std::floor(std::max(b0, b1)) + 2, g.n[B])};
      };
      const std::int64_t kl =
          k + s.dir * std::min<std::int64_t>(Staging<T>::kMaxSlices - 1, (s.k1 - k) * s.dir);
      double alo = 1e300, ahi = -1e300;
      for (const double kk : {kd, double(kl)})
        for (const double uu : {0.0, double(s.nu - 1)}) {
          const double a = s.a_at(uu, kk);
          alo = std::min(alo, a), ahi = std::max(ahi, a);
        }
      st.fill(g, br, s, k, s.k1, rows, clampi(std::floor(alo) - 1, g.n[A]),
              clampi(std::floor(ahi) + 2, g.n[A]));
    }
    // The columns a row covers depend on the slice only.
    const double A0 = s.a_at(0, kd), dA = s.beta(kd) / s.fa;
    auto u_lo = std::int64_t(std::max(0.0, std::ceil((-0.5 - A0) / dA)));
    auto u_hi =
        std::int64_t(std::min(double(s.nu - 1), std::floor((double(g.n[A]) - 0.5 - A0) / dA)));
    std::int64_t col_lo = u_lo, col_hi = u_hi;
    if (sl) {
      clip_columns(A0, dA, sl->lo[A], sl->hi[A], margin, u_lo, u_hi);
      clip_columns(A0, dA, sl->lo[A], sl->hi[A], 0, col_lo, col_hi);
    }
    const auto a_lo =
        std::clamp<std::int64_t>(std::int64_t(std::floor(A0 + double(u_lo) * dA)), 0, g.n[A] - 1);
    const auto a_hi = std::clamp<std::int64_t>(std::int64_t(std::floor(A0 + double(u_hi) * dA)) + 1,
                                               0, g.n[A] - 1);
    const double x0 = A0 - double(a_lo - 1);  // line coordinate of column 0
    // Fast path: the rows X[i] (voxel row xb[i] of the slice, interpolated along a at every
    // column) are made once per slice and shared by the rows of the intermediate image
    // between them (fb of them per voxel row), which then only interpolate along b.
    std::int64_t xb[2] = {-1, -1};
    auto x_row = [&](std::int64_t b, std::int64_t keep) -> const float* {
      for (int i = 0; i < 2; ++i)
        if (xb[i] == b) return X[i].data();
      const int i = xb[0] == keep ? 1 : 0;
      xb[i] = b;
      build_line<T>(g, br, s, k, b, b, 0.f, a_lo, a_hi, L.data(), st);
      // Column u samples the line at F * x0 + u in units of 1/F voxel, with one weight for
      // the whole row. For F > 1 the line is first expanded to 1/F voxel spacing (exact for
      // linear interpolation), so the loop stays contiguous.
      const int F = s.fa_int;
      const float* e = L.data();
      if (F > 1) {
        const auto len = std::size_t(a_hi - a_lo + 2);
        if (F == 2) {  // the common case, in a form the compiler vectorizes
          for (std::size_t j = 0; j < len; ++j) {
            E[2 * j] = L[j];
            E[2 * j + 1] = 0.5f * (L[j] + L[j + 1]);
          }
        } else {
          const float invF = 1.f / float(F);
          for (int r = 0; r < F; ++r) {
            const float w = float(r) * invF;
            float* out = E.data() + r;
            for (std::size_t j = 0; j < len; ++j)
              out[j * std::size_t(F)] = L[j] + w * (L[j + 1] - L[j]);
          }
        }
        E[len * std::size_t(F)] = L[len];
        e = E.data();
      }
      const double X0 = double(F) * x0;
      const auto i0 = std::int64_t(std::floor(X0));
      const float fr = float(X0 - double(i0));
      const float* ee = e + i0;
      float* out = X[i].data();
      for (std::int64_t u = u_lo; u <= u_hi; ++u)
        out[u] = ee[u] + fr * (ee[u + 1] - ee[u]);
      return out;
    };
    for (int v = v0; v < v1 && u_lo <= u_hi; ++v) {
      const double bpos = s.b_at(v, kd);
      if (bpos < -0.5 || bpos > double(g.n[B]) - 0.5) continue;
      if (sl && !in_part(bpos, sl->lo[B], sl->hi[B], margin)) continue;
      std::int64_t b0, b1;
      float fb = 0;
      if (look.linear) {
        const double bc = std::clamp(bpos, 0.0, double(g.n[B] - 1));
        b0 = std::int64_t(bc);
        b1 = std::min(b0 + 1, g.n[B] - 1);
        fb = float(bc - double(b0));
      } else {
        b0 = b1 = std::clamp<std::int64_t>(std::int64_t(std::floor(bpos + 0.5)), 0, g.n[B] - 1);
      }
      std::int64_t own_lo = col_lo, own_hi = col_hi;
      if (sl && (!own_slice || !in_part(bpos, sl->lo[B], sl->hi[B], 0))) own_lo = 1, own_hi = 0;
      Op<M> op{pl.p[0].empty() ? nullptr : pl.row(0, v),
               pl.p[1].empty() ? nullptr : pl.row(1, v),
               pl.c.empty() ? nullptr : pl.crow(v),
               &look,
               float(kd),
               float(s.dir * s.kstep),
               float(s.step),
               own_lo,
               own_hi};
      if (fast) {
        if (!rows_matter(g, br, s, k, b0, b1, a_lo, a_hi)) continue;
        const float* r0 = x_row(b0, b1);
        const float* r1 = b1 == b0 ? r0 : x_row(b1, b0);
        if constexpr (M == Mode::kTranslucent) {
          // Two loops: the table indices (vectorized), then the compositing, which skips
          // rays that are already opaque.
          Q.resize(std::size_t(s.nu));
          const float lo = look.lo, ts = look.tint_scale, top = float(kTintLut - 1);
          for (std::int64_t u = u_lo; u <= u_hi; ++u)
            Q[std::size_t(u)] = kernels::table_index(r0[u] + fb * (r1[u] - r0[u]), lo, ts, top);
          F4* c = op.c;
          const F4* tint = look.tint.data();
          for (std::int64_t u = u_lo; u <= u_hi; ++u) {
            const F4 acc = c[u];
            if (acc[3] < kOpaque) c[u] = kernels::over_step(acc, acc[3], tint[Q[std::size_t(u)]]);
          }
        } else {
          for (std::int64_t u = u_lo; u <= u_hi; ++u)
            op(u, r0[u] + fb * (r1[u] - r0[u]));
        }
        continue;
      }
      if (!build_line<T>(g, br, s, k, b0, b1, fb, a_lo, a_hi, L.data(), st)) continue;
      if (look.linear) {
        for (std::int64_t u = u_lo; u <= u_hi; ++u) {
          const double x = x0 + double(u) * dA;
          const auto i = std::int64_t(x);
          const float fr = float(x - double(i));
          op(u, L[std::size_t(i)] + fr * (L[std::size_t(i) + 1] - L[std::size_t(i)]));
        }
      } else {
        for (std::int64_t u = u_lo; u <= u_hi; ++u)
          op(u, L[std::size_t(x0 + double(u) * dA + 0.5)]);
      }
    }
    if ((s.k1 - k) * s.dir < s.kstep) break;
  }
}

// Intermediate rows per task of the slice pass. Per block of rows and group of slices, the
// staging (volume_staging.hpp) reads from the bricks the voxel rows that any slice of the
// group needs: the block's own, the rows the shear moves across over the group (tan of the
// angle to the slicing axis times 31: 18 at 30 degrees) and a margin of 3, so neighbouring
// blocks read the rows they share again. Blocks of 32 voxel rows read each voxel 1.7 times at
// 30 degrees, where the previous fixed grain (16 rows: 8 voxel rows at 2 rays per voxel)
// read it 3.6 times (docs/benchmarks.md). At least 4 blocks per thread of the arena stay, and
// blocks of at least 16 rows, as before. The picture does not depend on the grain.
int row_grain(const Slicing& s) {
  const int by_rows = int(std::ceil(32 * s.fb));
  const int per_thread = s.nv / (4 * std::max(1, tbb::this_task_arena::max_concurrency()));
  return std::max(16, std::min(by_rows, per_thread));
}

}  // namespace

std::unique_ptr<RowDrawer> slice_and_warp(const Projection& proj, const Geom& g, Bricks bricks,
                                          Look look, const Vec3& box_lo, const Vec3& box_hi,
                                          double density) {
  auto s = make_slicing(proj, g, box_lo, box_hi, density, proj.width(), proj.height());
  if (!s) return nullptr;
  if (density < 1 && look.mode == Mode::kTranslucent) {
    // Compositing is the costliest mode: a moving camera also gets every other slice
    // (opacity corrected for the longer step).
    s->kstep = 2;
    s->step *= 2;
  }
  Planes pl;
  pl.nu = s->nu;
  pl.nv = s->nv;
  const std::size_t n = std::size_t(pl.nu) * std::size_t(pl.nv);
  switch (look.mode) {
    // Maxima start at the low contrast limit: a lower value shows the same, and the warp's
    // bilinear weights never meet an infinite sentinel.
    case Mode::kMip:
      pl.p[0].assign(n, look.lo);
      break;
    case Mode::kMinip:
      // A minimum starts as NaN (no sample): rays that graze a corner of the box between
      // two slices would otherwise show the high limit.
      pl.p[0].assign(n, std::numeric_limits<float>::quiet_NaN());
      break;
    case Mode::kAverage:
      pl.p[0].assign(n, 0.f);
      pl.p[1].assign(n, 0.f);
      break;
    case Mode::kAttenuatedMip:
      pl.p[0].assign(n, look.lo);
      pl.p[1].assign(n, 1.f);
      look.tint_scale = float(kTintLut - 1) / (look.hi - look.lo);
      look.decay.resize(kTintLut);
      for (int q = 0; q < kTintLut; ++q)
        look.decay[std::size_t(q)] =
            float(std::exp(-look.attenuation * double(q) / (kTintLut - 1) * s->step));
      break;
    case Mode::kTranslucent: {
      pl.c.assign(n, F4{0, 0, 0, 0});
      // Opacity rises with the normalized value (transparent at the low contrast limit,
      // opaque at the high one), corrected for the distance between samples.
      look.tint.resize(kTintLut);
      look.tint_scale = float(kTintLut - 1) / (look.hi - look.lo);
      for (int q = 0; q < kTintLut; ++q) {
        const double t = double(q) / (kTintLut - 1);
        const auto a = float(
            kernels::step_opacity(t, s->step, [](double x, double y) { return std::pow(x, y); }));
        const auto i = std::size_t(std::lround(t * (kLut - 1)));
        look.tint[std::size_t(q)] =
            F4{a * look.lut.plane(0)[i], a * look.lut.plane(1)[i], a * look.lut.plane(2)[i], a};
      }
      break;
    }
    case Mode::kIso:
      pl.p[0].assign(n, std::numeric_limits<float>::quiet_NaN());
      pl.p[1].assign(n, std::numeric_limits<float>::quiet_NaN());
      break;
  }
  with_dtype(g.dtype, [&]<class T>() {
    auto run = [&]<Mode M>() {
      tbb::parallel_for(
          tbb::blocked_range<int>(0, pl.nv, row_grain(*s)),
          [&](const tbb::blocked_range<int>& r) {
            slice_rows<T, M>(g, bricks, *s, look, pl, r.begin(), r.end());
          },
          tbb::simple_partitioner());
    };
    switch (look.mode) {
      case Mode::kMip:
        return run.template operator()<Mode::kMip>();
      case Mode::kMinip:
        return run.template operator()<Mode::kMinip>();
      case Mode::kAverage:
        return run.template operator()<Mode::kAverage>();
      case Mode::kAttenuatedMip:
        return run.template operator()<Mode::kAttenuatedMip>();
      case Mode::kTranslucent:
        return run.template operator()<Mode::kTranslucent>();
      case Mode::kIso:
        run.template operator()<Mode::kIso>();
        return shade_iso(proj, g, bricks, *s, look, pl);
    }
  });
  if (auto* sl = look.sort_last) {
    sl->status = composite_planes(*s, *sl, look.mode, pl);
    if (!sl->status || sl->compositor->rank() != 0) return nullptr;
  }
  if (look.mode == Mode::kAverage) {
    for (std::size_t i = 0; i < n; ++i)
      pl.p[0][i] = pl.p[1][i] > 0 ? pl.p[0][i] / pl.p[1][i] : look.lo;
  }
  return make_volume_drawer(proj, g, std::move(bricks), std::move(look), *s, std::move(pl));
}

}  // namespace vx::render::cpu
