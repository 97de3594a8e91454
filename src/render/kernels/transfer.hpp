// Transfer functions: a value through the contrast limits onto a table index (the tables
// fold gamma and colormap in), and the opacity of translucent rendering.
#pragma once

#include "render/kernels/hd.hpp"

namespace vx::render::kernels {

// The entry of a table of top + 1 entries for value v: round(clamp((v - lo) * scale, 0, top)).
// NaN maps to entry 0.
VX_HD int table_index(float v, float lo, float scale, float top) {
  return int(clamp_of((v - lo) * scale, 0.f, top) + 0.5f);
}

// Translucent rendering's opacity of normalized value t in [0, 1] for samples `step` voxels
// apart: opacity per voxel rises with the value (transparent at the low contrast limit,
// opaque at the high one), corrected so that the result does not depend on the step:
// 1 - (1 - t)^step. `pow` is the caller's (std::pow on the host, powf on the device).
template <class F, class Pow>
VX_HD F step_opacity(F t, F step, Pow pow) {
  return F(1) - F(pow(F(1) - t, step));
}

}  // namespace vx::render::kernels
