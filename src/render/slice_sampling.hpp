// How the pixels of a 2D layer's screen axis sample its voxels (render/plan.hpp's SliceAxis):
// the one mapping every backend draws 2D slices with, so that they agree to the voxel.
#pragma once

#include <cstdint>
#include <vector>

#include "render/plan.hpp"

namespace vx::render {

// One sampled screen axis: per pixel, the chunk (column or row of the chunk grid) and the
// element offset inside it of the sample and of its linear neighbour, and the weight.
struct AxisSamples {
  std::vector<std::int32_t> c0, c1;  // chunk index in the box's grid
  std::vector<std::int64_t> o0, o1;  // element offset inside the chunk
  std::vector<float> f;              // weight of the second sample (linear)
  std::vector<std::int32_t> rel;     // first sample's index relative to the box's first voxel
  std::vector<std::uint8_t> inside;
};

// Per pixel of `a`: nearest (the voxel whose centre is closest) or linear (the two voxels
// around the pixel's centre, clamped to the volume).
AxisSamples sample_axis(const SliceAxis& a, bool linear);

// Whether some weight of `s` falls between voxel centres (else bilinear equals nearest).
bool any_fraction(const AxisSamples& s);

}  // namespace vx::render
