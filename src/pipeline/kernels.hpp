// Building blocks of the built-in pipelines: separable passes over float32 (z, y, x) blocks
// that shrink the block by the pass's radius (the halo is used up as it goes), written so
// that the inner loops run over contiguous x and vectorize; planes run in parallel (oneTBB).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "pipeline/pipeline.hpp"

namespace vx::pipeline {

// A per-axis parameter (a number, or one value per spatial axis in the data's order) as
// (z, y, x); 2D data gets 0 on z. Errors name `field`.
Result<Vec3> per_axis(const json& value, int spatial_dims, std::string_view field);
// `physical` / voxel size, per axis (z stays 0 in 2D).
Vec3 to_voxels(const Vec3& physical, const LevelContext& level);

// A kernel of odd sides on level-0 voxels, C order (z, y, x), resampled onto voxels `factor`
// times as large per axis (LevelContext::downsample): each coarse voxel takes the part of
// every fine voxel inside it (both centred on the kernel's centre), so the sum is kept and a
// PSF measured at level 0 applies at a coarser level. `shape` becomes the new (odd) sides.
// Factors of 1 (or below) leave an axis as it is.
std::vector<float> resample_kernel(const std::vector<float>& w, Ext3& shape, const Vec3& factor);

// Calls f(T{}) with the C++ type of a dtype.
template <class F>
void dispatch_dtype(data::DType t, F&& f) {
  switch (t) {
    case data::DType::kUInt8:
      f(std::uint8_t{});
      break;
    case data::DType::kInt8:
      f(std::int8_t{});
      break;
    case data::DType::kUInt16:
      f(std::uint16_t{});
      break;
    case data::DType::kInt16:
      f(std::int16_t{});
      break;
    case data::DType::kUInt32:
      f(std::uint32_t{});
      break;
    case data::DType::kInt32:
      f(std::int32_t{});
      break;
    case data::DType::kFloat32:
      f(float{});
      break;
    case data::DType::kFloat64:
      f(double{});
      break;
  }
}

// An owned block.
struct Block {
  // Blocks are reused: a freed one goes back to its thread's pool (up to 8 MiB a thread), so
  // a chunk's passes do not fault fresh pages in each time (kernels.cpp, BlockFree).
  struct Free {
    void operator()(float* p) const;
  };
  std::unique_ptr<float[], Free> data;  // not zeroed: every pass writes all of its output
  Ext3 shape{0, 0, 0};
  Block() = default;
  explicit Block(Ext3 s);
  BlockView view() { return {data.get(), shape}; }
};

// scipy.ndimage's Gaussian kernel: radius int(truncate * sigma + 0.5), normalized.
std::vector<float> gaussian_kernel(double sigma, double truncate);
inline std::int64_t gaussian_radius(double sigma, double truncate) {
  return sigma > 1e-15 ? std::int64_t(truncate * sigma + 0.5) : 0;
}

// scipy.ndimage's 'reflect' (numpy's 'symmetric', d c b a | a b c d) of index i into [0, n).
std::int64_t reflect_index(std::int64_t i, std::int64_t n);

// Correlates along `axis` (0 z, 1 y, 2 x) with `weights` (odd length 2r+1): the result is
// shape - 2r along that axis.
Block correlate_axis(const BlockView& in, int axis, std::span<const float> weights);
// Minimum or maximum over 2r+1 voxels along `axis`: the result is shape - 2r along it.
Block extremum_axis(const BlockView& in, int axis, std::int64_t r, bool maximum);
// The centre of `in` of `out.shape` (margins equal on both sides per axis) into `out`.
void crop_into(const BlockView& in, const BlockView& out);

// Gaussian blur (scipy.ndimage.gaussian_filter, mode 'reflect' given by the halo) of `in`
// (out.shape + 2 * halo) into `out`; `sigma` in voxels per axis.
void gaussian_into(const BlockView& in, const Vec3& sigma, double truncate, const BlockView& out);

// Median over a (2r+1) box on the axes where r > 0 (scipy.ndimage.median_filter(size=2r+1)).
void median_into(const BlockView& in, const Ext3& radius, const BlockView& out);

}  // namespace vx::pipeline
