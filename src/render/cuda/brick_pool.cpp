#include "render/cuda/brick_pool.hpp"

#include "core/log.hpp"
#include "render/cuda/launch.hpp"

namespace vx::render::cuda {

BrickPool::BrickPool(std::uint64_t limit_bytes)
    : budget_("device", limit_bytes), holder_(budget_.add_holder("cuda.bricks", kRankCache)) {}

BrickPool::~BrickPool() {
  std::lock_guard lock(mutex_);
  holder_.release(holder_.bytes());
  map_.clear();
}

bool BrickPool::evict_one() {
  for (auto it = lru_.rbegin(); it != lru_.rend(); ++it) {
    auto e = map_.find(*it);
    if (e == map_.end() || e->second.pins > 0) continue;
    holder_.release(e->second.buffer.bytes());
    lru_.erase(e->second.lru);
    map_.erase(e);
    return true;
  }
  return false;
}

Result<const float*> BrickPool::acquire(const BrickKey& key, const PlannedBrick& brick,
                                        const Geom& g, std::size_t chunk_bytes,
                                        DeviceBuffer& staging, cudaStream_t stream) {
  std::lock_guard lock(mutex_);
  if (auto it = map_.find(key); it != map_.end()) {
    ++it->second.pins;
    lru_.splice(lru_.begin(), lru_, it->second.lru);
    holder_.touch();
    return static_cast<const float*>(it->second.buffer.get<float>());
  }
  const std::size_t voxels = std::size_t(g.chunk[0] * g.chunk[1] * g.chunk[2]);
  const std::size_t bytes = voxels * sizeof(float);
  for (;;) {
    auto st = holder_.charge(bytes);
    if (st) break;
    if (!evict_one()) return tl::unexpected(st.error());
  }
  auto buffer = DeviceBuffer::allocate(bytes);
  while (!buffer && buffer.error().code == ErrorCode::kOutOfMemory && evict_one())
    buffer = DeviceBuffer::allocate(bytes);
  if (!buffer) {
    holder_.release(bytes);
    return tl::unexpected(buffer.error());
  }
  // The chunk's bytes to the device, then gathered into floats of the displayed axes.
  const auto src = brick.pin.bytes();
  if (auto st = staging.reserve(std::max(chunk_bytes, src.size())); !st) {
    holder_.release(bytes);
    return tl::unexpected(st.error());
  }
  auto st =
      check(cudaMemcpyAsync(staging.get(), src.data(), src.size(), cudaMemcpyHostToDevice, stream),
            "cudaMemcpyAsync (brick)");
  const long long stride[3] = {g.stride[0], g.stride[1], g.stride[2]};
  const int ext[3] = {int(g.chunk[0]), int(g.chunk[1]), int(g.chunk[2])};
  if (st)
    st = check(launch_gather(staging.get(), int(g.dtype), g.base, stride, ext, buffer->get<float>(),
                             stream),
               "gather kernel");
  if (!st) {
    holder_.release(bytes);
    return tl::unexpected(st.error());
  }
  lru_.push_front(key);
  auto& e = map_[key];
  e.buffer = std::move(*buffer);
  e.pins = 1;
  e.lru = lru_.begin();
  return static_cast<const float*>(e.buffer.get<float>());
}

void BrickPool::release(const BrickKey& key) {
  std::lock_guard lock(mutex_);
  if (auto it = map_.find(key); it != map_.end() && it->second.pins > 0) --it->second.pins;
}

Result<std::shared_ptr<BrickPool>> shared_brick_pool() {
  static std::mutex mutex;
  static std::weak_ptr<BrickPool> shared;  // process-wide on purpose: one device, one pool
  std::lock_guard lock(mutex);
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
