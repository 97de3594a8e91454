// The slice pass (object order, front to back along the principal axis, into an
// intermediate image on the plane of the first slice) and the warp of that image onto the
// screen. See volume.hpp for the method.
#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "render/cpu/volume_impl.hpp"

namespace vx::render::cpu {
namespace {

constexpr float kOpaque = 0.99f;  // translucent rays stop here, as napari's do

// How rays are grouped: slices along axis c (front slice k0 to back slice k1, step dir),
// intermediate columns u along axis a and rows v along axis b, on the plane c = cref.
struct Slicing {
  int c = 0, b = 1, a = 2;
  int dir = 1;
  std::int64_t k0 = 0, k1 = 0;
  bool persp = false;
  Vec3 e{};                   // the eye in voxel coordinates (perspective)
  double sh_a = 0, sh_b = 0;  // orthographic: shift per slice, voxels
  double cref = 0;
  double amin = 0, bmin = 0, fa = 1, fb = 1;  // plane origin and rays per voxel
  int nu = 0, nv = 0;
  int fa_int = 0;   // fa when it is an integer and the camera orthographic (fast path)
  int kstep = 1;    // slices advanced per sample
  double step = 1;  // distance between samples along a ray, voxels

  double beta(double k) const {
    return persp ? (k - e[std::size_t(c)]) / (cref - e[std::size_t(c)]) : 1.0;
  }
  // Voxel coordinate along a (b) of intermediate column u (row v) on slice k.
  double a_at(double u, double k) const {
    const double q = amin + (u + 0.5) / fa;
    return persp ? e[std::size_t(a)] + (q - e[std::size_t(a)]) * beta(k) : q + sh_a * (k - cref);
  }
  double b_at(double v, double k) const {
    const double q = bmin + (v + 0.5) / fb;
    return persp ? e[std::size_t(b)] + (q - e[std::size_t(b)]) * beta(k) : q + sh_b * (k - cref);
  }
};

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

template <class T>
float load(const std::byte* chunk, std::int64_t offset) {
  return float(reinterpret_cast<const T*>(chunk)[offset]);
}

// Reads the voxel line of slice k between rows b0 and b1 (weight fb) over [a_lo, a_hi] into
// L[1 .. len], with L[0] and L[len + 1] repeating the ends (clamp to edge). False when every
// brick on it is empty: the row cannot change the result.
template <class T>
bool build_line(const Geom& g, const Bricks& br, const Slicing& s, std::int64_t k, std::int64_t b0,
                std::int64_t b1, float fb, std::int64_t a_lo, std::int64_t a_hi, float* L) {
  const auto C = std::size_t(s.c), A = std::size_t(s.a), B = std::size_t(s.b);
  const std::int64_t ck = k / g.chunk[C], cb0 = b0 / g.chunk[B], cb1 = b1 / g.chunk[B];
  const std::int64_t off0 =
      g.base + (k % g.chunk[C]) * g.stride[C] + (b0 % g.chunk[B]) * g.stride[B];
  const std::int64_t off1 =
      g.base + (k % g.chunk[C]) * g.stride[C] + (b1 % g.chunk[B]) * g.stride[B];
  const std::int64_t sa = g.stride[A];
  auto brick = [&](std::int64_t cb, std::int64_t ca) {
    I3 idx{};
    idx[C] = ck;
    idx[B] = cb;
    idx[A] = ca;
    for (std::size_t d = 0; d < 3; ++d)
      if (idx[d] < br.lo[d] || idx[d] >= br.lo[d] + br.dim[d]) return std::size_t(-1);
    return br.flat(idx[0], idx[1], idx[2]);
  };
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
    const T* x = reinterpret_cast<const T*>(p0) + off0 + (first % g.chunk[A]) * sa;
    const T* y = reinterpret_cast<const T*>(p1) + off1 + (first % g.chunk[A]) * sa;
    if (sa == 1) {
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

// The intermediate image: up to four float planes of nu x nv.
struct Planes {
  int nu = 0, nv = 0;
  std::vector<float> p[2];  // scalar modes
  std::vector<F4> c;        // translucent and shaded iso: premultiplied RGBA
  F4* crow(int v) { return c.data() + std::size_t(v) * std::size_t(nu); }
  const F4* crow(int v) const { return c.data() + std::size_t(v) * std::size_t(nu); }
  float* row(int i, int v) { return p[i].data() + std::size_t(v) * std::size_t(nu); }
  const float* row(int i, int v) const { return p[i].data() + std::size_t(v) * std::size_t(nu); }
};

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
  void operator()(std::int64_t u, float s) const {
    if constexpr (M == Mode::kMip) {
      p0[u] = s > p0[u] ? s : p0[u];
    } else if constexpr (M == Mode::kMinip) {
      p0[u] = s < p0[u] || p0[u] != p0[u] ? s : p0[u];  // NaN: no sample yet
    } else if constexpr (M == Mode::kAverage) {
      p0[u] += s;
      p1[u] += 1;
    } else if constexpr (M == Mode::kAttenuatedMip) {
      // napari's attenuated MIP, made independent of the sampling step: a sample is dimmed
      // by exp(-attenuation * the path integral of the normalized value in front of it, in
      // voxels). p1 holds that factor; each sample multiplies it by its own (a table).
      const float scaled = s * p1[u];
      p0[u] = scaled > p0[u] ? scaled : p0[u];
      p1[u] *= look->decay[std::size_t(
          std::min(float(kTintLut - 1), std::max(0.f, (s - look->lo) * look->tint_scale)) + 0.5f)];
    } else if constexpr (M == Mode::kTranslucent) {
      // Front to back: colour += (1 - opacity so far) * premultiplied sample colour.
      const F4 acc = c[u];
      if (acc[3] >= kOpaque) return;
      const int q = int(
          std::min(float(kTintLut - 1), std::max(0.f, (s - look->lo) * look->tint_scale)) + 0.5f);
      c[u] = acc + (1 - acc[3]) * look->tint[std::size_t(q)];
    } else {
      if (p0[u] == p0[u]) return;  // already hit
      const float prev = p1[u];
      p1[u] = s;
      if (s < look->iso) return;
      // Between the previous sample and this one, where the threshold is crossed.
      const float t =
          prev == prev && s != prev ? std::clamp((look->iso - prev) / (s - prev), 0.f, 1.f) : 1.f;
      p0[u] = k - dir * (1 - t);
    }
  }
};

template <class T, Mode M>
void slice_rows(const Geom& g, const Bricks& br, const Slicing& s, const Look& look, Planes& pl,
                int v0, int v1) {
  const auto A = std::size_t(s.a), B = std::size_t(s.b);
  thread_local std::vector<float> L, E;
  thread_local std::vector<std::int32_t> Q;
  L.resize(std::size_t(g.n[A]) + 2);
  const bool fast = s.fa_int > 0 && look.linear;
  if (fast && s.fa_int > 1) E.resize(std::size_t(s.fa_int) * (std::size_t(g.n[A]) + 1) + 1);
  for (std::int64_t k = s.k0;; k += s.dir * s.kstep) {
    const double kd = double(k);
    const double A0 = s.a_at(0, kd), dA = s.beta(kd) / s.fa;
    for (int v = v0; v < v1; ++v) {
      const double bpos = s.b_at(v, kd);
      if (bpos < -0.5 || bpos > double(g.n[B]) - 0.5) continue;
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
      const auto u_lo = std::int64_t(std::max(0.0, std::ceil((-0.5 - A0) / dA)));
      const auto u_hi =
          std::int64_t(std::min(double(s.nu - 1), std::floor((double(g.n[A]) - 0.5 - A0) / dA)));
      if (u_lo > u_hi) continue;
      const auto a_lo =
          std::clamp<std::int64_t>(std::int64_t(std::floor(A0 + double(u_lo) * dA)), 0, g.n[A] - 1);
      const auto a_hi = std::clamp<std::int64_t>(
          std::int64_t(std::floor(A0 + double(u_hi) * dA)) + 1, 0, g.n[A] - 1);
      if (!build_line<T>(g, br, s, k, b0, b1, fb, a_lo, a_hi, L.data())) continue;
      const double x0 = A0 - double(a_lo - 1);  // line coordinate of column 0
      Op<M> op{pl.p[0].empty() ? nullptr : pl.row(0, v),
               pl.p[1].empty() ? nullptr : pl.row(1, v),
               pl.c.empty() ? nullptr : pl.crow(v),
               &look,
               float(kd),
               float(s.dir * s.kstep),
               float(s.step)};
      if (fast) {
        // Orthographic: column u samples the line at F * x0 + u in units of 1/F voxel,
        // with one weight for the whole row. For F > 1 the line is first expanded to 1/F
        // voxel spacing (exact for linear interpolation), so the loop stays contiguous.
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
        if constexpr (M == Mode::kTranslucent) {
          // Two loops: the table indices (vectorized), then the compositing, which skips
          // rays that are already opaque.
          Q.resize(std::size_t(s.nu));
          const float lo = look.lo, ts = look.tint_scale, top = float(kTintLut - 1);
          for (std::int64_t u = u_lo; u <= u_hi; ++u)
            Q[std::size_t(u)] = std::int32_t(
                std::min(top, std::max(0.f, (ee[u] + fr * (ee[u + 1] - ee[u]) - lo) * ts)) + 0.5f);
          F4* c = op.c;
          const F4* tint = look.tint.data();
          for (std::int64_t u = u_lo; u <= u_hi; ++u) {
            const F4 acc = c[u];
            if (acc[3] < kOpaque) c[u] = acc + (1 - acc[3]) * tint[Q[std::size_t(u)]];
          }
        } else {
          for (std::int64_t u = u_lo; u <= u_hi; ++u)
            op(u, ee[u] + fr * (ee[u + 1] - ee[u]));
        }
      } else if (look.linear) {
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

// Trilinear value at a voxel position (clamped to the volume; bricks not fetched read 0).
template <class T>
float sample3(const Geom& g, const Bricks& br, Vec3 p) {
  std::int64_t i[3][2];
  float f[3];
  for (std::size_t d = 0; d < 3; ++d) {
    const double c = std::clamp(p[d], 0.0, double(g.n[d] - 1));
    i[d][0] = std::int64_t(c);
    i[d][1] = std::min(i[d][0] + 1, g.n[d] - 1);
    f[d] = float(c - double(i[d][0]));
  }
  float out = 0;
  for (int corner = 0; corner < 8; ++corner) {
    I3 v, cidx;
    float w = 1;
    for (std::size_t d = 0; d < 3; ++d) {
      const int bit = (corner >> d) & 1;
      v[d] = i[d][bit];
      cidx[d] = v[d] / g.chunk[d];
      w *= bit ? f[d] : 1 - f[d];
    }
    if (w == 0) continue;
    bool in = true;
    for (std::size_t d = 0; d < 3; ++d)
      in &= cidx[d] >= br.lo[d] && cidx[d] < br.lo[d] + br.dim[d];
    const std::byte* ptr = in ? br.ptr[br.flat(cidx[0], cidx[1], cidx[2])] : nullptr;
    if (!ptr) continue;
    std::int64_t off = g.base;
    for (std::size_t d = 0; d < 3; ++d)
      off += (v[d] % g.chunk[d]) * g.stride[d];
    out += w * load<T>(ptr, off);
  }
  return out;
}

// Iso: shades every hit of the intermediate image (napari's headlight: ambient 0.2,
// Lambert, specular exponent 40, normal from differences 1.5 voxels apart) into RGBA.
template <class T>
void shade_iso(const Projection& proj, const Geom& g, const Bricks& br, const Slicing& s,
               const Look& look, Planes& pl) {
  Planes out;
  out.nu = pl.nu;
  out.nv = pl.nv;
  out.c.assign(std::size_t(pl.nu) * std::size_t(pl.nv), F4{0, 0, 0, 0});
  Vec3 o, d;
  proj.ray(0, 0, o, d);
  const Vec3 dv = g.dir_to_voxel(d);
  tbb::parallel_for(0, pl.nv, [&](int v) {
    const float* depth = pl.row(0, v);
    for (int u = 0; u < pl.nu; ++u) {
      const float h = depth[u];
      if (h != h) continue;
      Vec3 p;
      p[std::size_t(s.c)] = h;
      p[std::size_t(s.a)] = s.a_at(u, h);
      p[std::size_t(s.b)] = s.b_at(v, h);
      float best = sample3<T>(g, br, p);
      Vec3 n;
      for (std::size_t k = 0; k < 3; ++k) {
        Vec3 m = p, q = p;
        m[k] -= 1.5;
        q[k] += 1.5;
        const float vm = sample3<T>(g, br, m), vq = sample3<T>(g, br, q);
        n[k] = double(vm - vq);
        best = std::max({best, vm, vq});
      }
      const Vec3 view = s.persp ? Vec3{p[0] - s.e[0], p[1] - s.e[1], p[2] - s.e[2]} : dv;
      const double nn = std::sqrt(n[0] * n[0] + n[1] * n[1] + n[2] * n[2]);
      const double vn = std::sqrt(view[0] * view[0] + view[1] * view[1] + view[2] * view[2]);
      const double lambert =
          nn > 0 ? std::min(1.0,
                            std::abs(n[0] * view[0] + n[1] * view[1] + n[2] * view[2]) / (nn * vn))
                 : 1.0;
      const double t = std::min(
          1.0, std::max(0.0, (double(best) - look.lo) / (double(look.hi) - look.lo)));  // NaN: 0
      const double shaded =
          std::min(1.0, std::max(0.0, t * (0.2 + lambert) + std::pow(lambert, 40.0)));
      const auto q = std::size_t(std::lround(shaded * (kLut - 1)));
      out.crow(v)[u] = F4{look.lut.plane(0)[q], look.lut.plane(1)[q], look.lut.plane(2)[q], 1};
    }
  });
  pl = std::move(out);
}

// Warps the intermediate image onto the screen while the row pass composites the layers.
class VolumeDrawer final : public RowDrawer {
 public:
  VolumeDrawer(const Projection& proj, const Geom& g, Bricks bricks, Look look, Slicing s,
               Planes pl)
      : proj_(proj),
        g_(g),
        bricks_(std::move(bricks)),
        look_(std::move(look)),
        s_(s),
        pl_(std::move(pl)) {
    // Orthographic affine maps (unused for perspective).
    Vec3 o, d, ox, oy;
    proj_.ray(0, 0, o, d);
    proj_.ray(1, 0, ox, d);
    proj_.ray(0, 1, oy, d);
    o0_ = g_.to_voxel(o);
    const Vec3 vx = g_.to_voxel(ox), vy = g_.to_voxel(oy);
    dv_ = g_.dir_to_voxel(d);
    for (std::size_t k = 0; k < 3; ++k) {
      oX_[k] = vx[k] - o0_[k];
      oY_[k] = vy[k] - o0_[k];
    }
    const auto C = std::size_t(s_.c), A = std::size_t(s_.a), B = std::size_t(s_.b);
    auto uv = [&](const Vec3& ov, double& u, double& v) {
      const double t = (s_.cref - ov[C]) / dv_[C];
      u = (ov[A] + t * dv_[A] - s_.amin) * s_.fa - 0.5;
      v = (ov[B] + t * dv_[B] - s_.bmin) * s_.fb - 0.5;
    };
    double ux, vx2, uy, vy2;
    uv(o0_, u0_, v0_);
    uv(vx, ux, vx2);
    uv(vy, uy, vy2);
    uX_ = ux - u0_, vX_ = vx2 - v0_, uY_ = uy - u0_, vY_ = vy2 - v0_;
  }

  void draw_row(int py, int width, float* acc) const override {
    if (!proj_.perspective()) return draw_row_ortho(py, width, acc);
    const auto C = std::size_t(s_.c), A = std::size_t(s_.a), B = std::size_t(s_.b);
    for (int px = 0; px < width; ++px) {
      Vec3 o, d;
      proj_.ray(px + 0.5, py + 0.5, o, d);
      const Vec3 ov = g_.to_voxel(o), dv = g_.dir_to_voxel(d);
      // Does the ray meet the volume's box in front of the eye?
      double t0 = 0, t1 = 1e300;
      for (std::size_t k = 0; k < 3; ++k) {
        const double lo = -0.5, hi = double(g_.n[k]) - 0.5;
        if (std::abs(dv[k]) < 1e-300) {
          if (ov[k] < lo || ov[k] > hi) t1 = -1e300;
          continue;
        }
        double ta = (lo - ov[k]) / dv[k], tb = (hi - ov[k]) / dv[k];
        if (ta > tb) std::swap(ta, tb);
        t0 = std::max(t0, ta);
        t1 = std::min(t1, tb);
      }
      if (t0 > t1) continue;
      const double t = (s_.cref - ov[C]) / dv[C];
      pixel((ov[A] + t * dv[A] - s_.amin) * s_.fa - 0.5,
            (ov[B] + t * dv[B] - s_.bmin) * s_.fb - 0.5, acc + px, std::size_t(width));
    }
  }

 private:
  // Orthographic: the ray of screen point (X, Y) starts at o0 + X oX + Y oY (voxel
  // coordinates) and runs along dv, so its intermediate position is affine in X, and the
  // pixels of a row whose rays meet the box form one interval, found from the slabs.
  void draw_row_ortho(int py, int width, float* acc) const {
    const double Y = py + 0.5;
    Vec3 base, slope;  // ray origin at X = 0, and per unit of X
    for (std::size_t k = 0; k < 3; ++k) {
      base[k] = o0_[k] + Y * oY_[k];
      slope[k] = oX_[k];
    }
    // Per axis, the ray's parameter interval inside the slab: [lo_k + g_k X, hi_k + g_k X].
    double xmin = 0, xmax = width;
    double lo[3], hi[3], gk[3];
    bool slab[3];
    for (std::size_t k = 0; k < 3; ++k) {
      const double a = -0.5, b = double(g_.n[k]) - 0.5;
      slab[k] = std::abs(dv_[k]) > 1e-12;
      if (!slab[k]) {  // parallel to the slab: inside it for an interval of X
        if (std::abs(slope[k]) < 1e-300) {
          if (base[k] < a || base[k] > b) return;
          continue;
        }
        double x0 = (a - base[k]) / slope[k], x1 = (b - base[k]) / slope[k];
        if (x0 > x1) std::swap(x0, x1);
        xmin = std::max(xmin, x0);
        xmax = std::min(xmax, x1);
        continue;
      }
      const double ta = (a - base[k]) / dv_[k], tb = (b - base[k]) / dv_[k];
      lo[k] = std::min(ta, tb);
      hi[k] = std::max(ta, tb);
      gk[k] = -slope[k] / dv_[k];
    }
    for (std::size_t j = 0; j < 3; ++j)
      for (std::size_t k = 0; k < 3; ++k) {
        if (j == k || !slab[j] || !slab[k]) continue;
        // lo_j + g_j X <= hi_k + g_k X
        const double dg = gk[j] - gk[k], r = hi[k] - lo[j];
        if (std::abs(dg) < 1e-12) {
          if (r < 0) return;
        } else if (dg > 0) {
          xmax = std::min(xmax, r / dg);
        } else {
          xmin = std::max(xmin, r / dg);
        }
      }
    if (!(xmin <= xmax)) return;
    xmin = std::max(xmin, -1.0);  // in range before the conversion to int
    xmax = std::min(xmax, width + 1.0);
    const int p0 = std::max(0, int(std::ceil(xmin - 0.5))),
              p1 = std::min(width - 1, int(std::floor(xmax - 0.5)));
    double u = u0_ + Y * uY_ + (p0 + 0.5) * uX_, v = v0_ + Y * vY_ + (p0 + 0.5) * vX_;
    for (int px = p0; px <= p1; ++px, u += uX_, v += vX_)
      pixel(u, v, acc + px, std::size_t(width));
  }

  // Composites the intermediate image at (u, v) (bilinear) into one pixel.
  // out[0], out[plane], out[2 * plane]: the pixel's R, G and B.
  void pixel(double u, double v, float* out, std::size_t plane) const {
    const bool rgba = look_.mode == Mode::kTranslucent || look_.mode == Mode::kIso;
    const bool cutoff = look_.blending == Blending::kTranslucent;
    {
      const double uc = std::clamp(u, 0.0, double(pl_.nu - 1)),
                   vc = std::clamp(v, 0.0, double(pl_.nv - 1));
      const int u0 = int(uc), v0 = int(vc);
      const int u1 = std::min(u0 + 1, pl_.nu - 1), v1 = std::min(v0 + 1, pl_.nv - 1);
      const float fu = float(uc - u0), fv = float(vc - v0);
      auto bil = [&](int i) {
        const float* r0 = pl_.row(i, v0);
        const float* r1 = pl_.row(i, v1);
        const float a = r0[u0] + fu * (r0[u1] - r0[u0]);
        const float b = r1[u0] + fu * (r1[u1] - r1[u0]);
        return a + fv * (b - a);
      };
      float rgb[3], alpha = 1;
      if (rgba) {
        const F4* r0 = pl_.crow(v0);
        const F4* r1 = pl_.crow(v1);
        const F4 a = r0[u0] + fu * (r0[u1] - r0[u0]);
        const F4 b = r1[u0] + fu * (r1[u1] - r1[u0]);
        const F4 c = a + fv * (b - a);
        for (int i = 0; i < 3; ++i)
          rgb[i] = c[i];
        alpha = c[3];
        if (alpha <= 0) return;
      } else {
        float val = bil(0);
        if (val != val) {  // minip: a corner without samples; the nearest one, if it has
          val = pl_.row(0, fv < 0.5f ? v0 : v1)[fu < 0.5f ? u0 : u1];
          if (val != val) return;
        }
        if (cutoff && (look_.mode == Mode::kMinip ? val >= look_.hi : val <= look_.lo)) return;
        const int q =
            int(std::min(float(kLut - 1), std::max(0.f, (val - look_.lut.lo) * look_.lut.scale)) +
                0.5f);
        for (int i = 0; i < 3; ++i)
          rgb[i] = look_.lut.plane(i)[q];
      }
      const float op = look_.opacity;
      for (int i = 0; i < 3; ++i) {
        float& o = out[std::size_t(i) * plane];
        switch (look_.blending) {  // rgb is premultiplied by alpha
          case Blending::kTranslucent:
            o = o * (1 - alpha * op) + rgb[i] * op;
            break;
          case Blending::kAdditive:
            o += rgb[i] * op;
            break;
          case Blending::kOpaque:
            o = o * (1 - alpha) + rgb[i];
            break;
          case Blending::kMinimum:
            o = std::min(o, 1 - op * (1 - rgb[i] / alpha));
            break;
        }
      }
    }
  }

 private:
  Projection proj_;
  Geom g_;
  Bricks bricks_;
  Look look_;
  Slicing s_;
  Planes pl_;
  Vec3 o0_{}, oX_{}, oY_{}, dv_{};
  double u0_ = 0, v0_ = 0, uX_ = 0, vX_ = 0, uY_ = 0, vY_ = 0;
};

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
        const float a = float(1 - std::pow(1 - t, s->step));
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
      tbb::parallel_for(tbb::blocked_range<int>(0, pl.nv, 8),
                        [&](const tbb::blocked_range<int>& r) {
                          slice_rows<T, M>(g, bricks, *s, look, pl, r.begin(), r.end());
                        });
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
        return shade_iso<T>(proj, g, bricks, *s, look, pl);
    }
  });
  if (look.mode == Mode::kAverage) {
    for (std::size_t i = 0; i < n; ++i)
      pl.p[0][i] = pl.p[1][i] > 0 ? pl.p[0][i] / pl.p[1][i] : look.lo;
  }
  return std::make_unique<VolumeDrawer>(proj, g, std::move(bricks), std::move(look), *s,
                                        std::move(pl));
}

}  // namespace vx::render::cpu
