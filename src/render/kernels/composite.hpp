// Compositing: how a sample joins a ray (each 3D mode), how a ray's result or a 2D layer's
// colour joins the frame (each blending), and iso shading.
#pragma once

#include "render/kernels/hd.hpp"

namespace vx::render::kernels {

// Translucent rays stop at this opacity, as napari's do.
constexpr float kOpaqueAlpha = 0.99f;

// ---- 3D: one sample s into a ray's accumulator ---------------------------------------------

VX_HD float mip_step(float acc, float s) {
  return s > acc ? s : acc;
}
// A minimum starts as NaN (no sample yet).
VX_HD float minip_step(float acc, float s) {
  return s < acc || acc != acc ? s : acc;
}
VX_HD void average_step(float& sum, float& count, float s) {
  sum += s;
  count += 1;
}
// Attenuated MIP (napari's, independent of the sampling step): a sample is dimmed by the
// ray's transmittance so far; `decay` is the sample's own factor exp(-attenuation * t *
// step) (a table on the CPU). Returns the new maximum; `transmittance` is updated.
VX_HD float attenuated_step(float acc, float& transmittance, float s, float decay) {
  const float scaled = s * transmittance;
  transmittance *= decay;
  return scaled > acc ? scaled : acc;
}
// Front to back: colour += (1 - opacity so far) * the premultiplied sample colour. V is
// float (one channel) or a 4-vector (GCC vector extension on the CPU, float4-like on the GPU).
template <class V>
VX_HD V over_step(V acc, float acc_alpha, V premultiplied) {
  return acc + (1 - acc_alpha) * premultiplied;
}
// Iso: the ray position (in slices along the ray) where the threshold is first crossed
// between the previous sample `prev` (NaN: none) at k - dir and this one `s` at k; false
// while not crossed (s below, or NaN: no data).
VX_HD bool iso_crossing(float prev, float s, float iso, float k, float dir, float& hit) {
  if (!(s >= iso)) return false;
  const float t = prev == prev && s != prev ? clamp_of((iso - prev) / (s - prev), 0.f, 1.f) : 1.f;
  hit = k - dir * (1 - t);
  return true;
}

// Iso: the normal at p from central differences 1.5 voxels apart (n, pointing down the
// gradient) and the largest of the seven samples (the value the colour comes from).
// `sample(z, y, x)` reads the volume at a voxel position.
template <class Sample>
VX_HD float iso_normal(const Sample& sample, const double p[3], double n[3]) {
  float best = sample(p[0], p[1], p[2]);
  for (int k = 0; k < 3; ++k) {
    double m[3] = {p[0], p[1], p[2]}, q[3] = {p[0], p[1], p[2]};
    m[k] -= 1.5;
    q[k] += 1.5;
    const float vm = sample(m[0], m[1], m[2]), vq = sample(q[0], q[1], q[2]);
    n[k] = double(vm - vq);
    best = max_of(best, max_of(vm, vq));
  }
  return best;
}

// |n . v| / (|n| |v|), or 1 where the normal vanishes. `sqrt` is the caller's.
template <class Sqrt>
VX_HD double iso_cosine(const double n[3], const double v[3], Sqrt sqrt) {
  const double nn = sqrt(n[0] * n[0] + n[1] * n[1] + n[2] * n[2]);
  const double vn = sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]);
  const double d = n[0] * v[0] + n[1] * v[1] + n[2] * v[2];
  return nn > 0 ? (d < 0 ? -d : d) / (nn * vn) : 1.0;
}

// Iso shading (napari's headlight): ambient 0.2, Lambert, specular exponent 40. `cosine` is
// |n . v| / (|n| |v|) (1 where the normal vanishes), `t` the normalized value at the hit.
// Returns the shade in [0, 1] that indexes the colour table. `pow` as in step_opacity.
template <class Pow>
VX_HD double iso_shade(double t, double cosine, Pow pow) {
  const double lambert = cosine < 1.0 ? cosine : 1.0;
  return min_of(1.0, max_of(0.0, t * (0.2 + lambert) + pow(lambert, 40.0)));  // NaN: 0
}

// ---- A layer's colour into the frame (2D rows and the 3D warp) -----------------------------

enum class Blend { kTranslucent, kAdditive, kOpaque, kMinimum };

// 2D: colour c of a layer with opacity w (0 where the layer has no data) into frame value o.
template <Blend B>
VX_HD float blend_2d(float o, float c, float w, bool ok) {
  if constexpr (B == Blend::kAdditive)
    return o + w * c;
  else if constexpr (B == Blend::kTranslucent)
    return o + w * (c - o);
  else if constexpr (B == Blend::kOpaque)
    return ok ? c : o;
  else
    return ok ? min_of(o, 1 - w * (1 - c)) : o;
}

// 3D: a ray's colour `rgb` (premultiplied by its coverage `alpha`) with layer opacity `op`.
VX_HD float blend_3d(Blend b, float o, float rgb, float alpha, float op) {
  switch (b) {
    case Blend::kTranslucent:
      return o * (1 - alpha * op) + rgb * op;
    case Blend::kAdditive:
      return o + rgb * op;
    case Blend::kOpaque:
      return o * (1 - alpha) + rgb;
    case Blend::kMinimum:
      break;
  }
  return min_of(o, 1 - op * (1 - rgb / alpha));
}

}  // namespace vx::render::kernels
