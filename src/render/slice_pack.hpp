// A 2D layer's slice packed for a backend that samples it per pixel (the CUDA one, and the
// host tests of its arithmetic): the slice's voxels over the plan's box of chunks side by side,
// and one blob of tables (missing chunks, the axis maps of render/slice_sampling.hpp, the
// colour table). Two blobs, so a device copy is two uploads; `view()` gives the
// kernels::SliceView over wherever the blobs are.
#pragma once

#include <cstddef>
#include <vector>

#include "render/kernels/slice.hpp"
#include "render/plan.hpp"

namespace vx::render {

struct PackedSlice {
  std::vector<std::byte> voxels;  // box_h rows of box_w elements (the plan's dtype)
  std::vector<std::byte> tables;
  // The view with the blobs at `voxels` and `tables` (host copies, or device ones).
  kernels::SliceView view(const void* voxels_at, const void* tables_at) const;

 private:
  friend void pack_slice(const SlicePlan& p, PackedSlice& out);
  kernels::SliceView shape_{};  // everything but the addresses
  // Where each table starts in `tables`.
  std::size_t missing_ = 0, rel_x_ = 0, fx_ = 0, in_x_ = 0, rel_y0_ = 0, rel_y1_ = 0, fy_ = 0,
              in_y_ = 0, lut_ = 0;
};

// Packs `p` into `out` (reusing its memory). Elements of chunks that are not in memory are
// left as they were: the tables mark those chunks, and no pixel reads them.
void pack_slice(const SlicePlan& p, PackedSlice& out);

}  // namespace vx::render
