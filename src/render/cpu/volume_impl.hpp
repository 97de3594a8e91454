// Internals of the 3D path shared by volume.cpp (planning: level, bricks, fetching) and
// volume_pass.cpp (the slice pass and the warp onto the screen).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <vector>

#include "render/camera.hpp"
#include "render/cpu/common.hpp"
#include "render/cpu/volume.hpp"

namespace vx::render::cpu {

// Four floats in one SIMD register (GCC/Clang vector extension: SSE here, NEON on ARM).
using F4 = float __attribute__((vector_size(16)));
constexpr int kTintLut = 1024;

// The bricks (chunks) a view needs, as a dense box of the chunk grid.
struct Bricks {
  I3 lo{}, dim{};                     // first brick and extent of the box
  std::vector<const std::byte*> ptr;  // per brick of the box; null: not needed or missing
  std::vector<std::uint8_t> empty;    // per brick: cannot change the result
  std::size_t flat(std::int64_t i0, std::int64_t i1, std::int64_t i2) const {
    return std::size_t(((i0 - lo[0]) * dim[1] + (i1 - lo[1])) * dim[2] + (i2 - lo[2]));
  }
};

// The layer's look (render/plan.hpp) and the tables the slice pass derives from it.
struct Look : LayerLook {
  // Translucent: kTintLut entries of premultiplied RGBA (opacity corrected to the distance
  // between samples), small enough to stay in L1; index clamp((v - lo) * tint_scale).
  std::vector<F4> tint;
  float tint_scale = 1;
  // Attenuated MIP: per entry (same index), exp(-attenuation * value * step).
  std::vector<float> decay;
  const std::atomic<bool>* cancel = nullptr;  // checked between slabs of slices
  const SortLast* sort_last = nullptr;        // null: one process draws everything
};

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

// Iso: shades every hit of the intermediate image (its depths) into premultiplied RGBA.
void shade_iso(const Projection& proj, const Geom& g, const Bricks& br, const Slicing& s,
               const Look& look, Planes& pl);
// Sort-last: composites this part's intermediate image with the other parts' (front to back
// for the view; volume_sort_last.cpp); part 0 gets the composite. Average planes hold sums
// and counts here.
Status composite_planes(const Slicing& s, const SortLast& sl, Mode mode, Planes& pl);
// The drawer that warps the intermediate image onto the screen (volume_warp.cpp).
std::unique_ptr<RowDrawer> make_volume_drawer(const Projection& proj, const Geom& g, Bricks bricks,
                                              Look look, const Slicing& s, Planes pl);

// Draws the layer: slices the bricks into an intermediate image, then returns the drawer
// that warps it onto the screen. [box_lo, box_hi] is the visible part of the volume (voxel
// coordinates); `density` scales the rays per axis (1: at least one per screen pixel; 0.5
// for interactive frames that could not go to a coarser level).
std::unique_ptr<RowDrawer> slice_and_warp(const Projection& proj, const Geom& g, Bricks bricks,
                                          Look look, const Vec3& box_lo, const Vec3& box_hi,
                                          double density);

}  // namespace vx::render::cpu
