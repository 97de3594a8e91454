// 3D views on the CPU: one layer of a scene with dims.ndisplay == 3, rendered by object-order
// slice compositing (shear-warp). Rays are grouped by the volume axis most aligned with the
// view (the principal axis); the volume is walked slice by slice along it, front to back,
// and each slice is resampled into an intermediate image on the plane of the first slice.
// With an orthographic camera that resampling is a pure translation per slice, so its
// bilinear weights are constant across the slice and the inner loops are contiguous and
// vectorized; a perspective camera adds a per-slice scale. The intermediate image is then
// warped onto the screen while the row pass composites the layers.
//
// Empty-space skipping: every brick (cache chunk) gets its min and max once; slice rows that
// cross only bricks that cannot change the result (below the contrast floor for mip,
// attenuated_mip and translucent, below the threshold for iso) are skipped, and rays that
// are opaque (translucent) or have hit the surface (iso) stop.
#pragma once

#include <memory>
#include <mutex>
#include <optional>
#include <unordered_map>

#include "render/cpu/common.hpp"
#include "render/renderer.hpp"

namespace vx::render::cpu {

// Per-chunk value range, computed the first time a chunk is drawn in 3D (a chunk's content
// never changes under its key). Thread-safe; forgets everything past a million entries.
class BrickStats {
 public:
  std::array<float, 2> get(data::SourceId id, int level, const data::Index& index,
                           const data::ChunkPin& pin, data::DType dtype);

 private:
  std::mutex mutex_;
  std::unordered_map<data::ChunkKey, std::array<float, 2>, data::ChunkKeyHash> map_;
};

struct VolumeLayer {
  std::unique_ptr<RowDrawer> drawer;
  int level = 0;
  bool refining = false;
  std::vector<std::string> failed;  // chunks that could not be read (drawn without)
  std::uint64_t bricks = 0;         // chunks the view touches
  std::uint64_t bricks_drawn = 0;   // of which not skipped as empty
};

// Renders `layer` (visible) of a 3D scene; nullopt when it shows nothing (the slice of the
// non-displayed axes misses the data, or the volume is off screen).
Result<std::optional<VolumeLayer>> render_volume_layer(const Scene& scene, const RenderInputs& in,
                                                       const Layer& layer,
                                                       const RenderOptions& options,
                                                       BrickStats& stats);

}  // namespace vx::render::cpu
