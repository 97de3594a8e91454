// VX_HD marks the per-sample and per-pixel arithmetic that both backends run: __host__
// __device__ under nvcc, nothing for the host compiler (so the CPU renderer and the host
// unit tests compile and check the very code the GPU runs).
#pragma once

#if defined(__CUDACC__)
#define VX_HD __host__ __device__ __forceinline__
#else
#define VX_HD inline
#endif

namespace vx::render::kernels {

template <class T>
VX_HD T min_of(T a, T b) {
  return b < a ? b : a;
}
template <class T>
VX_HD T max_of(T a, T b) {
  return a < b ? b : a;
}
// Clamps to [lo, hi]; NaN gives lo (comparisons with NaN are false).
VX_HD float clamp_of(float v, float lo, float hi) {
  return min_of(hi, max_of(lo, v));
}

}  // namespace vx::render::kernels
