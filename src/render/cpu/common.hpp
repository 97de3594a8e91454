// The interface a planned layer offers to the CPU renderer's row pass that composites all
// layers into the frame. Axis mapping, colour tables and dtype dispatch are backend-neutral
// (render/plan.hpp, render/dtype.hpp); the cpu namespace sees them unqualified.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "render/dtype.hpp"
#include "render/plan.hpp"

namespace vx::render::cpu {

// One layer, planned and (for 3D) already rendered, composited into rows of the frame.
class RowDrawer {
 public:
  virtual ~RowDrawer() = default;
  // Composites the layer into row `py` of the frame: float R, G and B planes of `width`
  // (acc, acc + width, acc + 2 * width), with its blending.
  virtual void draw_row(int py, int width, float* acc) const = 0;
};

}  // namespace vx::render::cpu
