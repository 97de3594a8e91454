// The CUDA renderer's kernels: ray casting of 3D layers through the device brick pool (one
// thread per pixel), the background, the store into RGBA8 / I420 / NV12, and the gather of
// a chunk into a float brick. The per-sample and per-pixel arithmetic is the CPU's
// (render/kernels/*.hpp, VX_HD).
#include <cstdint>
#include <type_traits>

#include "render/cuda/launch.hpp"
#include "render/kernels/color.hpp"
#include "render/kernels/composite.hpp"
#include "render/kernels/sample.hpp"
#include "render/kernels/slice.hpp"
#include "render/kernels/transfer.hpp"

namespace vx::render::cuda {
namespace {

namespace k = vx::render::kernels;

constexpr int kTintLut = 1024;  // the CPU pass's table size for translucent and attenuated

struct Vol {
  const VolumeArgs& a;
  __device__ const float* brick(int b0, int b1, int b2) const {
    b0 -= a.blo[0], b1 -= a.blo[1], b2 -= a.blo[2];
    if (b0 < 0 || b1 < 0 || b2 < 0 || b0 >= a.bdim[0] || b1 >= a.bdim[1] || b2 >= a.bdim[2])
      return nullptr;
    return a.bricks[(b0 * a.bdim[1] + b1) * a.bdim[2] + b2];
  }
  __device__ bool empty(int b0, int b1, int b2) const {
    b0 -= a.blo[0], b1 -= a.blo[1], b2 -= a.blo[2];
    if (b0 < 0 || b1 < 0 || b2 < 0 || b0 >= a.bdim[0] || b1 >= a.bdim[1] || b2 >= a.bdim[2])
      return true;
    return a.empty[(b0 * a.bdim[1] + b1) * a.bdim[2] + b2] != 0;
  }
  __device__ float voxel(int i0, int i1, int i2) const {
    const float* b = brick(i0 / a.chunk[0], i1 / a.chunk[1], i2 / a.chunk[2]);
    if (!b) return 0.f;  // not resident: never seen, as on the CPU
    return b[((i0 % a.chunk[0]) * a.chunk[1] + i1 % a.chunk[1]) * a.chunk[2] + i2 % a.chunk[2]];
  }
  // Trilinear (or nearest), clamped to the volume, voxel centres at integers.
  __device__ float sample(double p0, double p1, double p2) const {
    const double p[3] = {p0, p1, p2};
    if (!a.linear) {
      int i[3];
      for (int d = 0; d < 3; ++d)
        i[d] = k::min_of(a.n[d] - 1, k::max_of(0, int(floor(p[d] + 0.5))));
      return voxel(i[0], i[1], i[2]);
    }
    int i0[3], i1[3];
    float f[3];
    for (int d = 0; d < 3; ++d) {
      const double c = k::min_of(double(a.n[d] - 1), k::max_of(0.0, p[d]));
      i0[d] = int(c);
      i1[d] = k::min_of(i0[d] + 1, a.n[d] - 1);
      f[d] = float(c - double(i0[d]));
    }
    float c[8];
    for (int corner = 0; corner < 8; ++corner)
      c[corner] = voxel((corner & 4) ? i1[0] : i0[0], (corner & 2) ? i1[1] : i0[1],
                        (corner & 1) ? i1[2] : i0[2]);
    return k::trilinear(c, f[0], f[1], f[2]);
  }
};

__device__ double host_pow(double x, double y) {
  return pow(x, y);
}

// The ray's entry and exit parameters in the box [lo, hi] (slab method); false: a miss.
__device__ bool clip(const double o[3], const double d[3], const double lo[3], const double hi[3],
                     double& t0, double& t1) {
  t0 = -1e300, t1 = 1e300;
  for (int k = 0; k < 3; ++k) {
    if (d[k] == 0) {
      if (o[k] < lo[k] || o[k] > hi[k]) return false;
      continue;
    }
    double a = (lo[k] - o[k]) / d[k], b = (hi[k] - o[k]) / d[k];
    if (a > b) {
      const double s = a;
      a = b;
      b = s;
    }
    t0 = k::max_of(t0, a);
    t1 = k::min_of(t1, b);
  }
  return t0 <= t1;
}

__global__ void volume_kernel(VolumeArgs a, float* acc) {
  const int x = blockIdx.x * blockDim.x + threadIdx.x;
  const int y = blockIdx.y * blockDim.y + threadIdx.y;
  if (x >= a.width || y >= a.height) return;
  const Vol vol{a};
  double o[3], d[3];
  for (int k = 0; k < 3; ++k) {
    o[k] = a.o0[k] + x * a.ox[k] + y * a.oy[k];
    d[k] = a.d0[k] + x * a.dx[k] + y * a.dy[k];
  }
  const double lo3[3] = {-0.5, -0.5, -0.5};
  const double hi3[3] = {a.n[0] - 0.5, a.n[1] - 0.5, a.n[2] - 0.5};
  double t0, t1;
  if (!clip(o, d, lo3, hi3, t0, t1)) return;
  if (a.perspective) t0 = k::max_of(t0, 1e-6);  // in front of the eye
  if (t0 > t1) return;
  // One sample per voxel along the axis the ray advances most on (as the CPU's slices).
  const double dmax = k::max_of(fabs(d[0]), k::max_of(fabs(d[1]), fabs(d[2])));
  const double dt = 1.0 / dmax;
  const float step = float(sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2]) * dt);
  const float tint_scale = float(kTintLut - 1) / (a.hi - a.lo);
  const bool skip = a.mode == RayMode::kMip || a.mode == RayMode::kAttenuatedMip ||
                    a.mode == RayMode::kTranslucent || a.mode == RayMode::kIso;
  float p0 = a.mode == RayMode::kMinip || a.mode == RayMode::kIso ? nanf("") : a.lo;
  float p1 = a.mode == RayMode::kAttenuatedMip ? 1.f : a.mode == RayMode::kIso ? nanf("") : 0.f;
  float c[4] = {0, 0, 0, 0};  // translucent: premultiplied RGBA
  double hit = 0;
  bool found = false;
  for (double t = t0 + 0.5 * dt; t <= t1; t += dt) {
    const double p[3] = {o[0] + t * d[0], o[1] + t * d[1], o[2] + t * d[2]};
    if (skip) {
      // Empty-space skipping: where every voxel the sample reads lies in one empty brick,
      // jump to where the ray leaves that brick (less a voxel), on the same sample lattice.
      int b[3];
      double blo[3], bhi[3];
      bool inside = true;
      for (int k = 0; k < 3; ++k) {
        const int v = k::min_of(a.n[k] - 1, k::max_of(0, int(floor(p[k]))));
        b[k] = v / a.chunk[k];
        blo[k] = double(b[k]) * a.chunk[k];
        bhi[k] = double(b[k] + 1) * a.chunk[k] - 2;
        inside &= p[k] >= blo[k] && p[k] <= bhi[k];
      }
      if (inside && vol.empty(b[0], b[1], b[2])) {
        double e0, e1;
        if (clip(o, d, blo, bhi, e0, e1) && e1 > t) {
          t += floor((e1 - t) / dt) * dt;
          continue;
        }
      }
    }
    const float s = vol.sample(p[0], p[1], p[2]);
    switch (a.mode) {
      case RayMode::kMip:
        p0 = k::mip_step(p0, s);
        break;
      case RayMode::kMinip:
        p0 = k::minip_step(p0, s);
        break;
      case RayMode::kAverage:
        k::average_step(p0, p1, s);
        break;
      case RayMode::kAttenuatedMip: {
        const int q = k::table_index(s, a.lo, tint_scale, float(kTintLut - 1));
        const float decay = expf(-a.attenuation * float(q) / (kTintLut - 1) * step);
        p0 = k::attenuated_step(p0, p1, s, decay);
        break;
      }
      case RayMode::kTranslucent: {
        const int q = k::table_index(s, a.lo, tint_scale, float(kTintLut - 1));
        const double tq = double(q) / (kTintLut - 1);
        const float al = float(k::step_opacity(tq, double(step), host_pow));
        const int i = int(llround(tq * (a.lut_size - 1)));
        const float src[4] = {al * a.lut[i], al * a.lut[a.lut_size + i],
                              al * a.lut[2 * a.lut_size + i], al};
        const float acc_alpha = c[3];
        for (int k4 = 0; k4 < 4; ++k4)
          c[k4] = k::over_step(c[k4], acc_alpha, src[k4]);
        if (c[3] >= k::kOpaqueAlpha) t = t1 + 1;  // early ray termination
        break;
      }
      case RayMode::kIso: {
        float h;
        const float prev = p1;
        p1 = s;
        if (k::iso_crossing(prev, s, a.iso, float(t / dt), 1.f, h)) {
          hit = double(h) * dt;
          found = true;
          t = t1 + 1;
        }
        break;
      }
    }
  }
  // The ray's colour (premultiplied by coverage alpha), then into the frame.
  float rgb[3], alpha = 1;
  if (a.mode == RayMode::kTranslucent) {
    if (c[3] <= 0) return;
    rgb[0] = c[0], rgb[1] = c[1], rgb[2] = c[2], alpha = c[3];
  } else if (a.mode == RayMode::kIso) {
    if (!found) return;
    const double p[3] = {o[0] + hit * d[0], o[1] + hit * d[1], o[2] + hit * d[2]};
    double n[3];
    const float best =
        k::iso_normal([&](double z, double y, double x) { return vol.sample(z, y, x); }, p, n);
    double v[3];
    for (int k3 = 0; k3 < 3; ++k3)
      v[k3] = a.perspective ? p[k3] - a.eye[k3] : d[k3];
    const double cosine = k::iso_cosine(n, v, [](double x) { return sqrt(x); });
    const double tt =
        k::min_of(1.0, k::max_of(0.0, (double(best) - a.lo) / (double(a.hi) - a.lo)));  // NaN: 0
    const double shaded = k::iso_shade(tt, cosine, host_pow);
    const int q = int(llround(shaded * (a.lut_size - 1)));
    for (int k3 = 0; k3 < 3; ++k3)
      rgb[k3] = a.lut[k3 * a.lut_size + q];
  } else {
    float val = a.mode == RayMode::kAverage ? (p1 > 0 ? p0 / p1 : a.lo) : p0;
    if (val != val) return;  // minip without a sample
    const bool cutoff = a.blend == int(k::Blend::kTranslucent);
    if (cutoff && (a.mode == RayMode::kMinip ? val >= a.hi : val <= a.lo)) return;
    const int q = k::table_index(val, a.lut_lo, a.lut_scale, float(a.lut_size - 1));
    for (int k3 = 0; k3 < 3; ++k3)
      rgb[k3] = a.lut[k3 * a.lut_size + q];
  }
  const std::size_t plane = std::size_t(a.width) * std::size_t(a.height);
  const std::size_t px = std::size_t(y) * std::size_t(a.width) + std::size_t(x);
  for (int k3 = 0; k3 < 3; ++k3) {
    float& out = acc[k3 * plane + px];
    out = k::blend_3d(k::Blend(a.blend), out, rgb[k3], alpha, a.opacity);
  }
}

template <class T>
__global__ void slice_kernel(k::SliceView fine, k::SliceView fallback, bool has_fallback, int width,
                             int height, float* acc) {
  const int x = blockIdx.x * blockDim.x + threadIdx.x;
  const int y = blockIdx.y * blockDim.y + threadIdx.y;
  if (x >= width || y >= height) return;
  k::slice_pixel<T>(fine, has_fallback ? &fallback : nullptr, x, y, width, height, acc);
}

__global__ void clear_kernel(float* acc, int n, float r, float g, float b) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  acc[i] = r;
  acc[n + i] = g;
  acc[2 * n + i] = b;
}

__device__ float clamp01(float v) {
  return k::min_of(k::max_of(v, 0.f), 1.f);
}

// One thread per 2x2 block: four luma bytes (or RGBA pixels) and one chroma pair.
__global__ void store_kernel(const float* acc, int width, int height, FrameFormat format,
                             std::uint8_t* out) {
  const int cx = blockIdx.x * blockDim.x + threadIdx.x;
  const int cy = blockIdx.y * blockDim.y + threadIdx.y;
  const int step = format == FrameFormat::kRgba8 ? 1 : 2;
  if (cx * step >= width || cy * step >= height) return;
  const std::size_t plane = std::size_t(width) * std::size_t(height);
  const float *R = acc, *G = acc + plane, *B = acc + 2 * plane;
  if (format == FrameFormat::kRgba8) {
    const std::size_t i = std::size_t(cy) * width + cx;
    std::uint8_t* o = out + 4 * i;
    o[0] = k::unorm8(R[i]);
    o[1] = k::unorm8(G[i]);
    o[2] = k::unorm8(B[i]);
    o[3] = 255;
    return;
  }
  float r = 0, g = 0, b = 0;
  for (int dy = 0; dy < 2; ++dy)
    for (int dx = 0; dx < 2; ++dx) {
      const std::size_t i = std::size_t(2 * cy + dy) * width + (2 * cx + dx);
      const float pr = clamp01(R[i]), pg = clamp01(G[i]), pb = clamp01(B[i]);
      out[i] = k::y_byte(pr, pg, pb);
      r += pr, g += pg, b += pb;
    }
  std::uint8_t cb, cr;
  k::chroma_bytes(0.25f * r, 0.25f * g, 0.25f * b, cb, cr);
  const std::size_t half = std::size_t(width / 2);
  const std::size_t c = std::size_t(cy) * half + cx;
  if (format == FrameFormat::kI420) {
    out[plane + c] = cb;
    out[plane + plane / 4 + c] = cr;
  } else {
    out[plane + 2 * c] = cb;
    out[plane + 2 * c + 1] = cr;
  }
}

template <class T>
__global__ void gather_kernel(const T* src, long long base, long long s0, long long s1,
                              long long s2, int e0, int e1, int e2, float* dst) {
  const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  const long long n = (long long)e0 * e1 * e2;
  if (i >= n) return;
  const long long z = i / (e1 * e2), yx = i % (e1 * e2), y = yx / e2, x = yx % e2;
  dst[i] = float(src[base + z * s0 + y * s1 + x * s2]);
}

// Calls f with a null pointer of the element type of data::DType value `dtype`.
template <class F>
void with_element(int dtype, F&& f) {
  switch (dtype) {  // data::DType's order
    case 0:
      return f(static_cast<const std::uint8_t*>(nullptr));
    case 1:
      return f(static_cast<const std::int8_t*>(nullptr));
    case 2:
      return f(static_cast<const std::uint16_t*>(nullptr));
    case 3:
      return f(static_cast<const std::int16_t*>(nullptr));
    case 4:
      return f(static_cast<const std::uint32_t*>(nullptr));
    case 5:
      return f(static_cast<const std::int32_t*>(nullptr));
    case 6:
      return f(static_cast<const float*>(nullptr));
    default:
      return f(static_cast<const double*>(nullptr));
  }
}

}  // namespace

cudaError_t launch_volume(const VolumeArgs& args, float* acc, cudaStream_t stream) {
  const dim3 block(16, 8);
  const dim3 grid((args.width + 15) / 16, (args.height + 7) / 8);
  volume_kernel<<<grid, block, 0, stream>>>(args, acc);
  return cudaGetLastError();
}

cudaError_t launch_clear(float* acc, int width, int height, float r, float g, float b,
                         cudaStream_t stream) {
  const int n = width * height;
  clear_kernel<<<(n + 255) / 256, 256, 0, stream>>>(acc, n, r, g, b);
  return cudaGetLastError();
}

cudaError_t launch_store(const float* acc, int width, int height, FrameFormat format,
                         std::uint8_t* out, cudaStream_t stream) {
  const int step = format == FrameFormat::kRgba8 ? 1 : 2;
  const int w = width / step, h = height / step;
  const dim3 block(32, 8);
  const dim3 grid((w + 31) / 32, (h + 7) / 8);
  store_kernel<<<grid, block, 0, stream>>>(acc, width, height, format, out);
  return cudaGetLastError();
}

cudaError_t launch_gather(const void* src, int dtype, long long base, const long long stride[3],
                          const int ext[3], float* dst, cudaStream_t stream) {
  const long long n = (long long)ext[0] * ext[1] * ext[2];
  const unsigned blocks = unsigned((n + 255) / 256);
  with_element(dtype, [&](auto* type) {
    using T = std::remove_const_t<std::remove_pointer_t<decltype(type)>>;
    gather_kernel<<<blocks, 256, 0, stream>>>(static_cast<const T*>(src), base, stride[0],
                                              stride[1], stride[2], ext[0], ext[1], ext[2], dst);
  });
  return cudaGetLastError();
}

cudaError_t launch_slice(const k::SliceView& fine, const k::SliceView* fallback, int width,
                         int height, float* acc, cudaStream_t stream) {
  const dim3 block(32, 8);
  const dim3 grid((width + 31) / 32, (height + 7) / 8);
  with_element(fine.dtype, [&](auto* type) {
    using T = std::remove_const_t<std::remove_pointer_t<decltype(type)>>;
    slice_kernel<T><<<grid, block, 0, stream>>>(fine, fallback ? *fallback : fine,
                                                fallback != nullptr, width, height, acc);
  });
  return cudaGetLastError();
}

}  // namespace vx::render::cuda
