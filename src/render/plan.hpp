// The render plan (DESIGN.md, "Seams: Render plan"): everything about a frame that does not
// depend on the backend that draws it, decided once by shared code. Per layer: the level
// (from the zoom, within the memory budget), the chunks (bricks) the view needs, pinned,
// with their value ranges, the coarser level that stands in while finer chunks arrive and
// whether the frame is refining, the colour table and look, and the mapping of the scene's
// world axes onto the source's axes. Backends (cpu/, cuda/, the MPI partition) execute a
// plan; none of them chooses levels or bricks itself.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "render/camera.hpp"
#include "render/fetch.hpp"
#include "render/partition.hpp"
#include "render/renderer.hpp"

namespace vx::render {

// ---- Axis mapping and colour tables --------------------------------------------------------

// The source axes (indices into VolumeInfo::axes) of each world axis, and the channel axis.
struct AxisMap {
  std::vector<int> world_to_source;
  int channel_axis = -1;
};

Result<AxisMap> map_axes(const data::VolumeInfo& info, const std::vector<std::string>& world);

constexpr int kLut = 4096;

// kLut entries of RGB in [0, 1], planar (all R, then all G, then all B): entry q is the
// colour of the normalized value q / (kLut - 1) after gamma. Index it with
// clamp((v - lo) * scale, 0, kLut - 1).
struct Lut {
  std::vector<float> rgb;
  const float* plane(int channel) const { return rgb.data() + std::size_t(channel) * kLut; }
  float lo = 0, scale = 1;
};
Result<Lut> make_lut(const Layer& layer);

// ---- 3D layers -----------------------------------------------------------------------------

using I3 = std::array<std::int64_t, 3>;

// One level of a layer's source seen through the three displayed axes (index 0..2 in the
// order of the camera's (z, y, x)). Voxel coordinates have voxel centres at integers.
struct Geom {
  int level = 0;
  std::array<int, 3> axis{};  // source axis of each displayed axis
  Vec3 scale{}, trans{};      // world = trans + scale * voxel
  I3 n{}, chunk{}, stride{};  // voxels, chunk extent, element stride inside a chunk
  data::Index fixed{};        // chunk index on the other axes and the channel axis
  std::int64_t base = 0;      // element offset of those inside a chunk
  data::DType dtype = data::DType::kUInt8;

  Vec3 to_voxel(const Vec3& w) const {
    return {(w[0] - trans[0]) / scale[0], (w[1] - trans[1]) / scale[1],
            (w[2] - trans[2]) / scale[2]};
  }
  Vec3 dir_to_voxel(const Vec3& d) const {
    return {d[0] / scale[0], d[1] / scale[1], d[2] / scale[2]};
  }
  Vec3 to_world(const Vec3& v) const {
    return {trans[0] + scale[0] * v[0], trans[1] + scale[1] * v[1], trans[2] + scale[2] * v[2]};
  }
};

enum class Mode { kMip, kMinip, kAttenuatedMip, kAverage, kTranslucent, kIso };
Mode mode_of(Rendering r);

// A layer's look: what any backend needs to know to shade it.
struct LayerLook {
  Mode mode = Mode::kMip;
  bool linear = true;
  Lut lut;
  float lo = 0, hi = 1;  // contrast limits
  float iso = 0;         // iso threshold, data units
  float attenuation = 0;
  float opacity = 1;
  Blending blending = Blending::kTranslucent;
};
Result<LayerLook> make_look(const Layer& layer);

// Whether a brick whose values lie in `range` can change what `look` shows (mip, attenuated
// mip and translucent skip bricks at or below the low contrast limit, iso those below the
// threshold; minip and average draw every brick).
bool brick_empty(const LayerLook& look, const std::array<float, 2>& range);

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

struct PlannedBrick {
  I3 pos{};             // brick position in the chunk grid of the displayed axes
  data::Index index{};  // the chunk's index in the source
  data::ChunkPin pin;   // empty: not in memory (drawn without)
  std::array<float, 2> range{0, 0};
  bool empty = true;  // cannot change the result (or not in memory)
};

// Sort-last parallel rendering (RenderOptions::compositor): this part draws only the samples
// whose voxel position (floor, on each displayed axis) lies in [lo, hi) (infinite at the
// volume's faces, so that edge samples have one owner), and its partial intermediate image
// is composited with the other parts' before the warp. Iso also evaluates samples up to
// kIsoMargin voxels around the box (never drawn), for the crossing's previous sample.
struct SortLast {
  static constexpr double kIsoMargin = 2;
  Compositor* compositor = nullptr;
  Vec3 lo{}, hi{};  // voxels
  KdPartition partition;
  Grid3 chunk{};  // voxels per brick on each axis, for the parts' order
  // Set by the backend that draws the plan: the compositing failed (a part died, a timeout).
  mutable Status status;
};

struct VolumePlan {
  Geom g;
  Vec3 box_lo{}, box_hi{};           // the visible part of the volume, voxel coordinates
  I3 blo{}, bdim{};                  // the dense box of bricks around the visible ones
  std::vector<PlannedBrick> bricks;  // the visible bricks
  LayerLook look;
  // Rays per axis relative to one per screen pixel (0.5: interactive frames).
  double density = 1;
  bool refining = false;
  std::vector<std::string> failed;  // chunks that could not be read (drawn without)
  std::uint64_t bricks_in = 0;      // bricks in memory
  std::uint64_t bricks_drawn = 0;   // of which not skipped as empty
  // Sort-last: this part's share; `bricks` then holds only the bricks it reads.
  std::optional<SortLast> sort_last;
};

// ---- 2D layers -----------------------------------------------------------------------------

// One displayed axis of a 2D layer: screen pixel p samples voxel
// u = (center + (p + 0.5 - pixels / 2) / zoom - trans) / scale (voxel centres at integers).
struct SliceAxis {
  int pixels = 0;
  double center = 0, zoom = 1, trans = 0, scale = 1;
  std::int64_t n = 1;            // voxels
  std::int64_t chunk = 1;        // chunk extent
  std::int64_t stride = 1;       // element stride inside a chunk
  std::int64_t first_chunk = 0;  // first chunk of the box along this axis
  double voxel(int p) const { return (center + (p + 0.5 - pixels / 2.0) / zoom - trans) / scale; }
};

struct SlicePlan {
  int level = 0;
  data::DType dtype = data::DType::kUInt8;
  std::vector<data::ChunkPin> pins;  // grid gy x gx over the visible box; empty: missing
  int gx = 0, gy = 0;
  std::int64_t base = 0;  // element offset of the slice (and channel) inside a chunk
  SliceAxis y, x;
  bool linear = true;
  Lut lut;
  float alpha = 1;
  Blending blend = Blending::kTranslucent;
  bool complete = true;                 // every chunk of the view is pinned
  std::size_t pending = 0;              // chunks asked for, on their way
  std::vector<std::string> failed;      // chunks that could not be read
  std::unique_ptr<SlicePlan> fallback;  // coarser, complete: drawn where chunks are missing
};

// ---- The frame -----------------------------------------------------------------------------

struct LayerPlan {
  int level = -1;                    // -1: hidden, or shows nothing
  std::optional<SlicePlan> slice;    // 2D: null when the slice misses the data
  std::optional<VolumePlan> volume;  // 3D: null when nothing of it is on screen
};

struct RenderPlan {
  int width = 0, height = 0;
  std::array<double, 3> background{};
  PixelFormat format = PixelFormat::kRgba8;
  bool volume = false;            // dims.ndisplay == 3
  bool interactive = false;       // a reduced-cost 3D frame for a moving camera
  std::vector<LayerPlan> layers;  // one per scene layer, in order
  const std::atomic<bool>* cancel = nullptr;
};

// Plans a frame: every visible layer's level, chunks (fetched per options: waiting, or
// requested with a coarser stand-in), brick ranges (through `stats`) and look. Errors: a
// layer whose source lacks a world axis, an unknown colormap, an odd size for 4:2:0 video.
Result<RenderPlan> make_plan(const Scene& scene, const RenderInputs& inputs,
                             const RenderOptions& options, BrickStats& stats);

// The parts of the frame a plan decides (levels, refining, failed chunks, brick counts).
// `drawn[i]`: whether the backend could draw 3D layer i (a degenerate view draws nothing
// and then counts no bricks); empty: all.
void describe_frame(const RenderPlan& plan, Frame& frame, const std::vector<bool>& drawn = {});

// Plans one 3D layer (visible); nullopt when it shows nothing (the slice of the
// non-displayed axes misses the data, or the volume is off screen).
Result<std::optional<VolumePlan>> plan_volume_layer(const Scene& scene, const RenderInputs& in,
                                                    const Layer& layer,
                                                    const RenderOptions& options,
                                                    BrickStats& stats);

// Sort-last balance: the weight of each brick of `fine` (z-major over its whole grid): 1
// where the coarsest level (`coarse`) shows data above `floor`, 0.05 elsewhere; empty
// (all equal) when the coarsest level is not small or cannot be read.
std::vector<double> brick_weights(const RenderInputs& in, const RenderOptions& opt,
                                  data::SourceId id, const Geom& fine, const Geom& coarse,
                                  float floor);
// Sort-last: this part's samples (its box of a k-d split of the level's bricks, balanced by
// `weights`: per brick of the level, z-major, empty for all ones) and the bricks it reads
// for them, which it keeps of `bricks` (the view's).
SortLast make_sort_last(Compositor& compositor, const Projection& proj, const Geom& g, bool iso,
                        std::span<const double> weights, std::vector<I3>& bricks);

// The level of a 2D layer, and its plan at a level (nullopt when the slice misses the data).
Result<int> slice_level(const Scene& scene, const RenderInputs& in, const Layer& layer);
Result<std::optional<SlicePlan>> plan_slice_layer(const Scene& scene, const RenderInputs& in,
                                                  const Layer& layer, int level, Fetch fetch,
                                                  const RenderOptions& options);

}  // namespace vx::render
