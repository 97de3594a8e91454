// Contrast limits from the data, napari-style: robust percentiles of the coarsest level.
#include <algorithm>
#include <cmath>

#include <fmt/format.h>

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

Status estimate_contrast(Scene& scene, const RenderInputs& in, std::vector<std::string>* warnings,
                         std::chrono::milliseconds wait) {
  std::optional<std::chrono::steady_clock::time_point> deadline;
  if (wait.count() > 0) deadline = std::chrono::steady_clock::now() + wait;
  for (auto& layer : scene.layers) {
    const auto& info = in.data.sources.at(std::size_t(layer.source));
    const bool has_window = layer.channel < int(info.channels.size()) &&
                            info.channels[std::size_t(layer.channel)].window.has_value();
    if (has_window) continue;
    const int level = int(info.levels.size()) - 1;
    const auto& lv = info.levels[std::size_t(level)];
    const int nd = lv.ndim();
    // The whole coarsest level of this channel, chunk by chunk through the cache; chunks that
    // cannot be read are left out (with a warning), so one bad chunk does not stop a server.
    std::vector<std::int64_t> lo(std::size_t(nd), 0), hi = lv.grid();
    std::size_t n = 1;
    for (int d = 0; d < nd; ++d) {
      const auto sd = std::size_t(d);
      if (info.axes[sd].type == data::AxisType::kChannel) {
        lo[sd] = layer.channel / lv.chunks[sd];
        hi[sd] = lo[sd] + 1;
      } else {
        n *= std::size_t(lv.shape[sd]);
      }
    }
    // The coarsest level is usually small; a single-level source (a TIFF stack, a .npy) may
    // not be. Beyond kMaxVoxels, chunks spread evenly over the level are read instead.
    constexpr std::size_t kMaxVoxels = std::size_t(1) << 24;  // 16 Mi
    if (n == 0) continue;
    std::int64_t per_chunk = 1, total = 1;
    for (int d = 0; d < nd; ++d) {
      const auto sd = std::size_t(d);
      total *= hi[sd] - lo[sd];
      if (info.axes[sd].type != data::AxisType::kChannel) per_chunk *= lv.chunks[sd];
    }
    const std::int64_t wanted =
        n <= kMaxVoxels ? total
                        : std::clamp<std::int64_t>(std::int64_t(kMaxVoxels) / per_chunk, 1, total);
    std::vector<data::Index> indices;
    for (std::int64_t j = 0; j < wanted; ++j) {
      // Chunk number j of `wanted`, evenly spaced (the middle of each stretch) in C order.
      std::int64_t k =
          wanted == total ? j : std::int64_t((double(j) + 0.5) * double(total) / double(wanted));
      data::Index idx{};
      for (int d = nd - 1; d >= 0; --d) {
        const auto sd = std::size_t(d);
        const auto extent = hi[sd] - lo[sd];
        idx[sd] = lo[sd] + k % extent;
        k /= extent;
      }
      indices.push_back(idx);
    }
    const auto id = in.sources.at(std::size_t(layer.source));
    auto got =
        data::get_chunks_partial(*in.cache, id, level, indices, data::kPriorityVisible, deadline);
    for (const auto& [i, e] : got.failed)
      if (warnings)
        warnings->push_back(
            fmt::format("default contrast of layer '{}' estimated without a chunk of level {}: {}",
                        layer.name, level, e.message));
    std::vector<double> values;
    values.reserve(std::min(n, kMaxVoxels));
    const std::size_t item = data::dtype_size(info.dtype);
    for (std::size_t k = 0; k < indices.size(); ++k) {
      if (!got.pins[k]) continue;
      const auto bytes = got.pins[k].bytes();
      // The part of the chunk inside the array (and on the layer's channel), row by row.
      data::Index a{}, b{}, pos{};
      for (int d = 0; d < nd; ++d) {
        const auto sd = std::size_t(d);
        const auto c0 = indices[k][sd] * lv.chunks[sd];
        if (info.axes[sd].type == data::AxisType::kChannel) {
          a[sd] = layer.channel - c0;
          b[sd] = a[sd] + 1;
        } else {
          a[sd] = 0;
          b[sd] = std::min(lv.chunks[sd], lv.shape[sd] - c0);
        }
        pos[sd] = a[sd];
      }
      const auto last = std::size_t(nd - 1);
      for (;;) {
        std::int64_t off = 0;
        for (int d = 0; d < nd; ++d)
          off = off * lv.chunks[std::size_t(d)] +
                (std::size_t(d) == last ? a[last] : pos[std::size_t(d)]);
        append_any(info.dtype,
                   bytes.subspan(std::size_t(off) * item, std::size_t(b[last] - a[last]) * item),
                   values);
        int d = nd - 2;
        for (; d >= 0; --d) {
          if (++pos[std::size_t(d)] < b[std::size_t(d)]) break;
          pos[std::size_t(d)] = a[std::size_t(d)];
        }
        if (d < 0) break;
      }
    }
    if (values.empty()) {
      if (warnings && !got.failed.empty())
        warnings->push_back(fmt::format(
            "layer '{}': no chunk of level {} could be read; contrast limits stay at {}..{}",
            layer.name, level, layer.contrast_limits[0], layer.contrast_limits[1]));
      continue;
    }
    auto at = [&](double q) {
      auto it = values.begin() + std::ptrdiff_t(q * double(values.size() - 1));
      std::nth_element(values.begin(), it, values.end());
      return *it;
    };
    double lo_v = at(0.005), hi_v = at(0.995);
    if (!(hi_v > lo_v)) hi_v = lo_v + 1;  // a constant image still gets a valid range
    layer.contrast_limits = {lo_v, hi_v};
    layer.iso_threshold = 0.5 * (lo_v + hi_v);
  }
  return {};
}

}  // namespace vx::render
