// The CUDA backend's entry points (private to src/render): defined in cuda/ when the build
// has CUDA (VOXCAST_CUDA), else by cuda_stub.cpp, which says the build has none.
#pragma once

#include <memory>
#include <optional>

#include "core/resources.hpp"
#include "render/renderer.hpp"

namespace vx::render {

// Probes the driver and the device (called once per process by cuda_renderer_available()).
Status probe_cuda();
// A CUDA renderer on device 0 (after a successful probe).
Result<std::unique_ptr<Renderer>> open_cuda_renderer();
// The "device" budget of the shared brick pool, while any CUDA renderer holds it.
std::optional<BudgetSnapshot> cuda_device_budget();

}  // namespace vx::render
