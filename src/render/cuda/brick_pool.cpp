#include "render/cuda/brick_pool.hpp"

#include <algorithm>

#include "core/log.hpp"
#include "render/cuda/launch.hpp"

namespace vx::render::cuda {

Result<const float*> BrickPool::acquire(const BrickKey& key, const PlannedBrick& brick,
                                        const Geom& g, std::size_t chunk_bytes,
                                        DeviceBuffer& staging, cudaStream_t stream) {
  const std::size_t bytes = std::size_t(g.chunk[0] * g.chunk[1] * g.chunk[2]) * sizeof(float);
  auto upload = [&]() -> Result<DeviceBuffer> {
    VX_ASSIGN(auto buffer, DeviceBuffer::allocate(bytes));
    // The chunk's bytes to the device, then gathered into floats of the displayed axes.
    const auto src = brick.pin.bytes();
    VX_TRY(staging.reserve(std::max(chunk_bytes, src.size())));
    VX_TRY(check(
        cudaMemcpyAsync(staging.get(), src.data(), src.size(), cudaMemcpyHostToDevice, stream),
        "cudaMemcpyAsync (brick)"));
    const long long stride[3] = {g.stride[0], g.stride[1], g.stride[2]};
    const int ext[3] = {int(g.chunk[0]), int(g.chunk[1]), int(g.chunk[2])};
    VX_TRY(check(launch_gather(staging.get(), int(g.dtype), g.base, stride, ext,
                               buffer.get<float>(), stream),
                 "gather kernel"));
    return buffer;
  };
  VX_ASSIGN(DeviceBuffer * b, set_.acquire(key, bytes, upload));
  return static_cast<const float*>(b->get<float>());
}

namespace {
std::mutex shared_mutex;
std::weak_ptr<BrickPool> shared;  // process-wide on purpose: one device, one pool
}  // namespace

std::optional<BudgetSnapshot> pool_budget() {
  std::lock_guard lock(shared_mutex);
  if (auto p = shared.lock()) return p->snapshot();
  return std::nullopt;
}

Result<std::shared_ptr<BrickPool>> shared_brick_pool() {
  std::lock_guard lock(shared_mutex);
  if (auto p = shared.lock()) return p;
  std::size_t free = 0, total = 0;
  VX_TRY(check(cudaMemGetInfo(&free, &total), "cudaMemGetInfo"));
  const auto limit = std::uint64_t(double(free) * 0.8);
  VX_LOG(info, "renderer.cuda_pool", "budget=device limit={} free={} total={}", format_bytes(limit),
         format_bytes(free), format_bytes(total));
  auto p = std::make_shared<BrickPool>(limit);
  shared = p;
  return p;
}

}  // namespace vx::render::cuda
