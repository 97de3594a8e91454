// 2x mean downsampling for pyramids (private to src/data).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "data/data.hpp"

namespace vx::data {

// region: a C-order array of `rshape` (dtype t). Halves every axis with spatial[d] set by
// averaging pairs (an odd last voxel is kept as is, so edges average the voxels that exist),
// rounds integers to nearest, and writes the ceil(rshape/2)-shaped result into the corner of
// `chunk` (C order, `cshape`), leaving the rest of `chunk` as it was (the caller's fill).
// Separable passes over contiguous rows, in float for 8/16-bit data (exact), double otherwise.
void downsample_2x_mean(DType t, std::span<const std::byte> region,
                        const std::vector<std::int64_t>& rshape, const std::vector<bool>& spatial,
                        std::span<std::byte> chunk, const std::vector<std::int64_t>& cshape);

}  // namespace vx::data
