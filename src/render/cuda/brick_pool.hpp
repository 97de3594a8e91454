// The device brick pool: chunks from the chunk cache, converted to float bricks of the
// displayed axes, resident in device memory under the "device" budget (core/resources.hpp),
// evicted least recently used (render/resident_set.hpp). One pool per process, shared by
// every CUDA renderer (every session); bricks a frame in flight uses are pinned until that
// frame is done.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>

#include "core/resources.hpp"
#include "render/cuda/device.hpp"
#include "render/plan.hpp"
#include "render/resident_set.hpp"

namespace vx::render::cuda {

// A chunk seen through a layer's displayed axes (and its channel/slice offset).
struct BrickKey {
  data::ChunkKey chunk;
  std::array<int, 3> axis{};
  std::int64_t base = 0;
  bool operator==(const BrickKey&) const = default;
};
struct BrickKeyHash {
  std::size_t operator()(const BrickKey& k) const {
    std::size_t h = data::ChunkKeyHash{}(k.chunk);
    for (const int a : k.axis)
      h = h * 31 + std::size_t(a);
    return h * 1000003u ^ std::size_t(k.base);
  }
};

class BrickPool {
 public:
  explicit BrickPool(std::uint64_t limit_bytes)
      : budget_("device", limit_bytes), set_(budget_, "cuda.bricks") {}

  // The device copy of a planned brick (uploaded on `stream` through `staging` when not
  // resident), pinned until release(). kOutOfMemory naming the budget when the bricks in use
  // leave no room.
  Result<const float*> acquire(const BrickKey& key, const PlannedBrick& brick, const Geom& g,
                               std::size_t chunk_bytes, DeviceBuffer& staging, cudaStream_t stream);
  void release(const BrickKey& key) { set_.release(key); }

  BudgetSnapshot snapshot() const { return budget_.snapshot(); }

 private:
  Budget budget_;  // before the set, which charges it
  ResidentSet<BrickKey, DeviceBuffer, BrickKeyHash> set_;
};

// The process's pool, created on first use with a limit of 80% of the device memory free
// then; shared by every CUDA renderer while any holds it.
Result<std::shared_ptr<BrickPool>> shared_brick_pool();
// Its budget while it exists (GET /api/v1/resources), else nothing.
std::optional<BudgetSnapshot> pool_budget();

}  // namespace vx::render::cuda
