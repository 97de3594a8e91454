#include "render/cpu/common.hpp"

#include <cmath>

#include "render/colormap.hpp"

namespace vx::render::cpu {

Result<AxisMap> map_axes(const data::VolumeInfo& info, const std::vector<std::string>& world) {
  AxisMap m;
  for (std::size_t d = 0; d < info.axes.size(); ++d)
    if (info.axes[d].type == data::AxisType::kChannel) m.channel_axis = int(d);
  for (const auto& name : world) {
    const int a = info.axis_index(name);
    if (a < 0)
      return fail(ErrorCode::kInvalidArgument, "{}: has no axis '{}' of the scene's world",
                  info.location, name);
    m.world_to_source.push_back(a);
  }
  return m;
}

Result<Lut> make_lut(const Layer& layer) {
  VX_ASSIGN(auto cmap, colormap_by_name(layer.colormap));
  Lut lut;
  lut.rgb.resize(std::size_t(kLut) * 3);
  for (int q = 0; q < kLut; ++q) {
    const double t = double(q) / (kLut - 1);
    const double v = layer.gamma == 1 ? t : std::pow(t, layer.gamma);
    const auto& c = cmap.rgb[std::size_t(std::lround(v * 255))];
    for (int k = 0; k < 3; ++k)
      lut.rgb[std::size_t(k) * kLut + std::size_t(q)] = float(c[std::size_t(k)]) / 255.f;
  }
  lut.lo = float(layer.contrast_limits[0]);
  lut.scale = float(kLut - 1) / float(layer.contrast_limits[1] - layer.contrast_limits[0]);
  return lut;
}

}  // namespace vx::render::cpu
