// Whether the CUDA backend can run here: a driver new enough for the (static) runtime, and a
// device. Without them the binary falls back to the CPU renderer with this reason.
#include <cuda_runtime_api.h>

#include "core/log.hpp"
#include "render/cuda/device.hpp"
#include "render/cuda_backend.hpp"

namespace vx::render {

Status probe_cuda() {
  int devices = 0;
  const cudaError_t e = cudaGetDeviceCount(&devices);
  if (e == cudaErrorInsufficientDriver)
    return fail(ErrorCode::kUnsupported,
                "no CUDA driver (libcuda.so.1 missing, or older than the CUDA {} runtime this "
                "voxcast links): {}",
                CUDART_VERSION / 1000, cudaGetErrorString(e));
  if (e == cudaErrorNoDevice || (e == cudaSuccess && devices == 0))
    return fail(ErrorCode::kUnsupported, "no CUDA device (the driver sees none)");
  if (e != cudaSuccess)
    return fail(ErrorCode::kUnsupported, "CUDA device query failed: {} ({})", cudaGetErrorString(e),
                cudaGetErrorName(e));
  cudaDeviceProp prop{};
  if (auto st = cuda::check(cudaGetDeviceProperties(&prop, 0), "cudaGetDeviceProperties"); !st)
    return st;
  VX_LOG(info, "renderer.cuda", "devices={} device={} memory_mib={} sm={}.{}", devices,
         log_quote(prop.name), prop.totalGlobalMem >> 20, prop.major, prop.minor);
  return {};
}

}  // namespace vx::render
