// Rendering a Scene into pixels. Backends sit behind the Renderer interface (cpu/ now, cuda/
// later); consumers get a Frame of RGBA8 pixels and know whether it is final.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/image.hpp"
#include "data/chunk_cache.hpp"
#include "data/fetch_set.hpp"
#include "render/partition.hpp"
#include "render/scene.hpp"

namespace vx::render {

// The pixel format lives in src/core (core/image.hpp), where encoders see it too. I420 and
// NV12 are written by the renderer's own row pass, not converted afterwards.
using PixelFormat = vx::PixelFormat;

struct RenderOptions {
  PixelFormat format = PixelFormat::kRgba8;
  // true: wait for every chunk the view needs (final quality). false: never wait; draw what
  // is cached, fall back to the finest coarser level that is cached for the rest, request
  // the missing chunks (on-screen priority) and mark the frame refining.
  bool wait = true;
  // Progressive mode: the consumer's fetch set. Missing chunks are asked for through it,
  // ranked coarse level first, then nearest the centre of the screen first; it cancels what
  // a later frame no longer needs and remembers chunks that failed (drawn without).
  data::FetchSet* fetch = nullptr;
  // Progressive mode without a fetch set: called (on an I/O thread, must not block) each
  // time a requested chunk arrives, so the caller can render again.
  std::function<void()> on_chunk;
  // Checked between rows and slabs: once true, render() stops early with kCancelled.
  const std::atomic<bool>* cancel = nullptr;
  // The camera is moving: a reduced-cost frame (3D: one level coarser and half the rays per
  // axis, upscaled). 2D frames are cheap at full quality and ignore it.
  bool interactive = false;
  // Sort-last parallel rendering (src/cluster): 3D layers draw only this part's bricks of a
  // k-d split of the level over compositor->size() parts, and the partial images of all
  // parts are composited; part 0 gets the frame, the others an empty one. Every part must
  // render the same scene with wait = true, in step (each 3D layer is a collective call).
  Compositor* compositor = nullptr;
};

struct Frame {
  int width = 0;
  int height = 0;
  PixelFormat format = PixelFormat::kRgba8;
  // kRgba8: width * height * 4, top row first. kI420: the Y plane, then U, then V (each
  // (width/2) * (height/2)). kNV12: the Y plane, then interleaved UV.
  std::vector<std::uint8_t> pixels;
  std::vector<int> levels;  // the resolution level drawn for each layer
  bool refining = false;    // drawn from coarser data than the view asks for; more coming
  // Chunks the view needs that could not be read: the frame is drawn without them (from a
  // coarser level where one is in memory). One message per chunk, naming it and why.
  std::vector<std::string> failed;
  bool interactive = false;  // a reduced-cost frame for a moving camera, not the final one
  std::uint64_t bricks = 0;  // 3D: chunks the view touches, and those not skipped as empty
  std::uint64_t bricks_drawn = 0;

  // The pixels as an image view (host memory, packed; owned by this frame).
  ImageView image() { return host_image(format, width, height, pixels.data()); }
};

// The data behind a scene: the cache and the ids of the scene's sources in it.
struct RenderInputs {
  data::ChunkCache* cache = nullptr;
  std::vector<data::SourceId> sources;  // index = Layer::source
  SceneData data;
  // Whatever keeps sources registered in the cache while a copy of these inputs renders
  // (a server's derived sources: stream::DerivedCatalog handles); empty for datasets.
  std::vector<std::shared_ptr<const void>> keep;
};

class Renderer {
 public:
  virtual ~Renderer() = default;
  virtual const char* name() const = 0;
  // Renders at final quality: waits for every chunk the view needs.
  virtual Result<Frame> render(const Scene& scene, const RenderInputs& inputs,
                               const RenderOptions& options = {}) = 0;
  // Hands a frame the caller is done with back, so the next render writes into its memory
  // instead of faulting in fresh pages (a 1080p RGBA frame is 8 MiB). Optional.
  virtual void recycle(Frame&& frame) = 0;
};

// BT.709 limited-range Y'CbCr of an RGB colour in [0, 1] (the one the renderer writes).
void rgb_to_ycbcr709(float r, float g, float b, float& y, float& cb, float& cr);

// The CPU backend (always available): 2D slices and 3D views.
std::unique_ptr<Renderer> make_cpu_renderer();

// A frame drawn by `renderer` for dataset `dataset` of a server, split elsewhere (over MPI
// ranks: apps/voxcast/serve_mpi.cpp); the server's sessions call it instead of render().
using SplitFrame = std::function<Result<Frame>(Renderer& renderer, int dataset, const Scene&,
                                               const RenderInputs&, RenderOptions)>;

// The finest level whose voxels are still no smaller than `world_per_pixel` on the displayed
// axes (so a pixel never skips voxels): level 0 when zoomed in past 1:1.
int choose_level(const data::VolumeInfo& info, const std::vector<int>& display_axes,
                 double world_per_pixel);

}  // namespace vx::render

namespace vx::render {

// Sets the contrast limits of every layer whose channel has no display window in its
// metadata to the 0.5th and 99.5th percentiles of that channel, estimated from the coarsest
// level (a few chunks, read through the cache). Call it on a default scene, before a view's
// patch is applied, so that explicit contrast_limits win. Chunks that cannot be read are
// left out of the estimate, each with a message in `warnings` (when given). `wait`: how long
// to wait for chunks (0: until they come); chunks still on their way are left out too.
Status estimate_contrast(Scene& scene, const RenderInputs& inputs,
                         std::vector<std::string>* warnings = nullptr,
                         std::chrono::milliseconds wait = std::chrono::milliseconds(0));

}  // namespace vx::render
