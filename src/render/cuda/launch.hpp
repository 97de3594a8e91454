// The interface between the CUDA renderer's host code (compiled by the host compiler) and its
// kernels (kernels.cu, nvcc): plain structs and launch functions, no project headers beyond
// the shared arithmetic, so nvcc never sees the rest of the code base.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "render/kernels/slice.hpp"

namespace vx::render::cuda {

enum class RayMode : int { kMip, kMinip, kAttenuatedMip, kAverage, kTranslucent, kIso };
enum class FrameFormat : int { kRgba8, kI420, kNV12 };

// A 3D layer on the device: bricks of float voxels (the displayed axes in the camera's
// (z, y, x) order, chunk extents, edge bricks padded) in a dense box of the brick grid.
struct VolumeArgs {
  int n[3];                    // voxels per axis
  int chunk[3];                // brick extent per axis
  int blo[3];                  // first brick of the box
  int bdim[3];                 // bricks of the box per axis
  const float* const* bricks;  // per brick of the box, z-major; null: not resident (reads 0)
  const std::uint8_t* empty;   // per brick of the box: cannot change the result
  // Rays: voxel-space origin and direction of the ray through pixel centre (x, y) are
  // o0 + x * ox + y * oy and d0 + x * dx + y * dy (affine for both camera kinds).
  double o0[3], ox[3], oy[3];
  double d0[3], dx[3], dy[3];
  int width, height;
  // Look.
  RayMode mode;
  bool linear;
  float lo, hi, iso, attenuation, opacity;
  int blend;         // kernels::Blend
  const float* lut;  // kLut x R, G, B planes (render/plan.hpp)
  int lut_size;      // kLut
  float lut_lo, lut_scale;
  double eye[3];  // perspective: the eye in voxel coordinates (iso shading)
  bool perspective;
};

// Composites one 2D layer (render/kernels/slice.hpp) into the float RGB planes `acc`
// (3 x width x height) on `stream`: each pixel from `fine`, or where that has no data from
// `fallback` (a coarser, complete level; null: none), as the CPU's row pass does.
cudaError_t launch_slice(const kernels::SliceView& fine, const kernels::SliceView* fallback,
                         int width, int height, float* acc, cudaStream_t stream);

// Composites one 3D layer into the float RGB planes `acc` (3 x width x height) on `stream`.
cudaError_t launch_volume(const VolumeArgs& args, float* acc, cudaStream_t stream);

// Fills `acc` with the background colour.
cudaError_t launch_clear(float* acc, int width, int height, float r, float g, float b,
                         cudaStream_t stream);

// Converts the float RGB planes to the frame format (BT.709 limited range for 4:2:0) into
// `out` (packed, pitch = width or 4 * width).
cudaError_t launch_store(const float* acc, int width, int height, FrameFormat format,
                         std::uint8_t* out, cudaStream_t stream);

// Converts `count` voxels of element type `dtype` (data::DType's value) at `src`, gathered as
// z, y, x of extents ext with element strides stride from element offset base, into floats.
cudaError_t launch_gather(const void* src, int dtype, long long base, const long long stride[3],
                          const int ext[3], float* dst, cudaStream_t stream);

}  // namespace vx::render::cuda
