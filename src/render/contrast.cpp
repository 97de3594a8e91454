// Contrast limits from the data, napari-style: robust percentiles of the coarsest level.
#include <algorithm>
#include <cmath>

#include "render/renderer.hpp"

namespace vx::render {
namespace {

template <class T>
void append_values(std::span<const std::byte> bytes, std::vector<double>& out) {
  const auto* v = reinterpret_cast<const T*>(bytes.data());
  for (std::size_t i = 0; i < bytes.size() / sizeof(T); ++i)
    if (!std::isnan(double(v[i]))) out.push_back(double(v[i]));
}

void append_any(data::DType t, std::span<const std::byte> b, std::vector<double>& out) {
  using data::DType;
  switch (t) {
    case DType::kUInt8:
      return append_values<std::uint8_t>(b, out);
    case DType::kInt8:
      return append_values<std::int8_t>(b, out);
    case DType::kUInt16:
      return append_values<std::uint16_t>(b, out);
    case DType::kInt16:
      return append_values<std::int16_t>(b, out);
    case DType::kUInt32:
      return append_values<std::uint32_t>(b, out);
    case DType::kInt32:
      return append_values<std::int32_t>(b, out);
    case DType::kFloat32:
      return append_values<float>(b, out);
    case DType::kFloat64:
      return append_values<double>(b, out);
  }
}

}  // namespace

Status estimate_contrast(Scene& scene, const RenderInputs& in) {
  for (auto& layer : scene.layers) {
    const auto& info = in.data.sources.at(std::size_t(layer.source));
    const bool has_window = layer.channel < int(info.channels.size()) &&
                            info.channels[std::size_t(layer.channel)].window.has_value();
    if (has_window) continue;
    const int level = int(info.levels.size()) - 1;
    const auto& lv = info.levels[std::size_t(level)];
    // The whole coarsest level of this channel: its box, through the cache.
    std::vector<std::int64_t> start(lv.shape.size(), 0), count = lv.shape;
    for (std::size_t d = 0; d < info.axes.size(); ++d)
      if (info.axes[d].type == data::AxisType::kChannel) {
        start[d] = layer.channel;
        count[d] = 1;
      }
    std::size_t n = 1;
    for (auto c : count)
      n *= std::size_t(c);
    constexpr std::size_t kMaxVoxels = std::size_t(1) << 24;  // 16 Mi: the coarsest level is small
    if (n == 0 || n > kMaxVoxels) continue;
    std::vector<std::byte> raw(n * data::dtype_size(info.dtype));
    VX_TRY(data::read_region(*in.cache, in.sources.at(std::size_t(layer.source)), level, start,
                             count, raw));
    std::vector<double> values;
    values.reserve(n);
    append_any(info.dtype, raw, values);
    if (values.empty()) continue;
    auto at = [&](double q) {
      auto it = values.begin() + std::ptrdiff_t(q * double(values.size() - 1));
      std::nth_element(values.begin(), it, values.end());
      return *it;
    };
    double lo = at(0.005), hi = at(0.995);
    if (!(hi > lo)) hi = lo + 1;  // a constant image still gets a valid range
    if (layer.iso_threshold == 0.5 * (layer.contrast_limits[0] + layer.contrast_limits[1]))
      layer.iso_threshold = 0.5 * (lo + hi);  // still the default: follows the contrast
    layer.contrast_limits = {lo, hi};
    layer.iso_threshold = 0.5 * (lo + hi);
  }
  return {};
}

}  // namespace vx::render
