// Rendering a Scene into pixels. Backends sit behind the Renderer interface (cpu/ now, cuda/
// later); consumers get a Frame of RGBA8 pixels and know whether it is final.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "core/error.hpp"
#include "data/chunk_cache.hpp"
#include "render/scene.hpp"

namespace vx::render {

struct Frame {
  int width = 0;
  int height = 0;
  std::vector<std::uint8_t> rgba;  // width * height * 4, row-major, top row first
  std::vector<int> levels;         // the resolution level drawn for each layer
  bool refining = false;           // drawn from coarser data than the view asks for
};

// The data behind a scene: the cache and the ids of the scene's sources in it.
struct RenderInputs {
  data::ChunkCache* cache = nullptr;
  std::vector<data::SourceId> sources;  // index = Layer::source
  SceneData data;
};

class Renderer {
 public:
  virtual ~Renderer() = default;
  virtual const char* name() const = 0;
  // Renders at final quality: waits for every chunk the view needs.
  virtual Result<Frame> render(const Scene& scene, const RenderInputs& inputs) = 0;
};

// The CPU backend (always available): 2D slices now; 3D views follow.
std::unique_ptr<Renderer> make_cpu_renderer();

// The finest level whose voxels are still no smaller than `world_per_pixel` on the displayed
// axes (so a pixel never skips voxels): level 0 when zoomed in past 1:1.
int choose_level(const data::VolumeInfo& info, const std::vector<int>& display_axes,
                 double world_per_pixel);

}  // namespace vx::render
