// The interface a planned layer offers to the CPU renderer's row pass that composites all
// layers into the frame. Axis mapping, colour tables and dtype dispatch are backend-neutral
// (render/plan.hpp, render/dtype.hpp); the cpu namespace sees them unqualified.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "render/dtype.hpp"
#include "render/kernels/composite.hpp"
#include "render/plan.hpp"

namespace vx::render::cpu {

// The shared compositing functions' name for a layer's blending (the same order).
constexpr kernels::Blend blend_of(Blending b) {
  return kernels::Blend(int(b));
}
static_assert(blend_of(Blending::kMinimum) == kernels::Blend::kMinimum &&
              blend_of(Blending::kOpaque) == kernels::Blend::kOpaque &&
              blend_of(Blending::kAdditive) == kernels::Blend::kAdditive &&
              blend_of(Blending::kTranslucent) == kernels::Blend::kTranslucent);

// One layer, planned and (for 3D) already rendered, composited into rows of the frame.
class RowDrawer {
 public:
  virtual ~RowDrawer() = default;
  // Composites the layer into row `py` of the frame: float R, G and B planes of `width`
  // (acc, acc + width, acc + 2 * width), with its blending.
  virtual void draw_row(int py, int width, float* acc) const = 0;
};

}  // namespace vx::render::cpu
