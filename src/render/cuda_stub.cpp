// The CUDA entry points of a build without CUDA (VOXCAST_CUDA off, or nvcc not found).
#include "render/cuda_backend.hpp"

namespace vx::render {

Status probe_cuda() {
  return fail(ErrorCode::kUnsupported,
              "this voxcast was built without CUDA (nvcc not found at configure time, or "
              "-DVOXCAST_CUDA=OFF)");
}

Result<std::unique_ptr<Renderer>> open_cuda_renderer() {
  return tl::unexpected(probe_cuda().error());
}

std::optional<BudgetSnapshot> cuda_device_budget() {
  return std::nullopt;
}

}  // namespace vx::render
