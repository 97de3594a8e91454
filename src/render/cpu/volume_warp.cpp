// The warp of the intermediate image onto the screen (orthographic: affine per row, the
// pixels whose rays meet the box found from the slabs; perspective: per pixel), and iso
// shading. See volume.hpp for the method.
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>

#include "render/cpu/volume_impl.hpp"
#include "render/kernels/composite.hpp"
#include "render/kernels/transfer.hpp"

namespace vx::render::cpu {
namespace {

template <class T>
float load(const std::byte* chunk, std::int64_t offset) {
  return float(reinterpret_cast<const T*>(chunk)[offset]);
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
void shade_iso_typed(const Projection& proj, const Geom& g, const Bricks& br, const Slicing& s,
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
      Vec3 n;
      const float best = kernels::iso_normal(
          [&](double z, double y, double x) {
            return sample3<T>(g, br, Vec3{z, y, x});
          },
          p.data(), n.data());
      const Vec3 view = s.persp ? Vec3{p[0] - s.e[0], p[1] - s.e[1], p[2] - s.e[2]} : dv;
      const double cosine =
          kernels::iso_cosine(n.data(), view.data(), [](double x) { return std::sqrt(x); });
      const double t = std::min(
          1.0, std::max(0.0, (double(best) - look.lo) / (double(look.hi) - look.lo)));  // NaN: 0
      const double shaded =
          kernels::iso_shade(t, cosine, [](double x, double y) { return std::pow(x, y); });
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
        const int q = kernels::table_index(val, look_.lut.lo, look_.lut.scale, float(kLut - 1));
        for (int i = 0; i < 3; ++i)
          rgb[i] = look_.lut.plane(i)[q];
      }
      const float op = look_.opacity;
      for (int i = 0; i < 3; ++i) {
        float& o = out[std::size_t(i) * plane];  // rgb is premultiplied by alpha
        o = kernels::blend_3d(blend_of(look_.blending), o, rgb[i], alpha, op);
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

void shade_iso(const Projection& proj, const Geom& g, const Bricks& br, const Slicing& s,
               const Look& look, Planes& pl) {
  with_dtype(g.dtype, [&]<class T>() { shade_iso_typed<T>(proj, g, br, s, look, pl); });
}

std::unique_ptr<RowDrawer> make_volume_drawer(const Projection& proj, const Geom& g, Bricks bricks,
                                              Look look, const Slicing& s, Planes pl) {
  return std::make_unique<VolumeDrawer>(proj, g, std::move(bricks), std::move(look), s,
                                        std::move(pl));
}

}  // namespace vx::render::cpu
