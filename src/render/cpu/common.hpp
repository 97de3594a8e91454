// Pieces the CPU renderer's 2D and 3D paths share: axis mapping, the per-layer lookup table
// (contrast, gamma and colormap folded into one table), dtype dispatch, and the interface a
// planned layer offers to the row pass that composites all layers into the frame.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "data/data.hpp"
#include "render/scene.hpp"

namespace vx::render::cpu {

constexpr int kLut = 4096;

// The source axes (indices into VolumeInfo::axes) of each world axis, and the channel axis.
struct AxisMap {
  std::vector<int> world_to_source;
  int channel_axis = -1;
};

Result<AxisMap> map_axes(const data::VolumeInfo& info, const std::vector<std::string>& world);

// kLut entries of RGB in [0, 1], planar (all R, then all G, then all B): entry q is the
// colour of the normalized value q / (kLut - 1) after gamma. Index it with
// clamp((v - lo) * scale, 0, kLut - 1).
struct Lut {
  std::vector<float> rgb;
  const float* plane(int channel) const { return rgb.data() + std::size_t(channel) * kLut; }
  float lo = 0, scale = 1;
};
Result<Lut> make_lut(const Layer& layer);

// One layer, planned and (for 3D) already rendered, composited into rows of the frame.
class RowDrawer {
 public:
  virtual ~RowDrawer() = default;
  // Composites the layer into row `py` of the frame: float R, G and B planes of `width`
  // (acc, acc + width, acc + 2 * width), with its blending.
  virtual void draw_row(int py, int width, float* acc) const = 0;
};

// Calls f.template operator()<T>() with T the C++ type of `t`.
template <class F>
decltype(auto) with_dtype(data::DType t, F&& f) {
  using data::DType;
  switch (t) {
    case DType::kUInt8:
      return f.template operator()<std::uint8_t>();
    case DType::kInt8:
      return f.template operator()<std::int8_t>();
    case DType::kUInt16:
      return f.template operator()<std::uint16_t>();
    case DType::kInt16:
      return f.template operator()<std::int16_t>();
    case DType::kUInt32:
      return f.template operator()<std::uint32_t>();
    case DType::kInt32:
      return f.template operator()<std::int32_t>();
    case DType::kFloat32:
      return f.template operator()<float>();
    case DType::kFloat64:
      break;
  }
  return f.template operator()<double>();
}

}  // namespace vx::render::cpu
