#include "stream/view_tools.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <optional>

#include "render/camera.hpp"
#include "render/histogram.hpp"

namespace vx::stream {
namespace {

using data::DType;

// The source axis of each world axis (by name) and the channel axis, or nullopt when the
// source lacks one of the world's axes.
struct Axes {
  std::vector<int> world_to_source;
  int channel = -1;
};
std::optional<Axes> map_axes(const data::VolumeInfo& info, const std::vector<std::string>& world) {
  Axes m;
  for (std::size_t d = 0; d < info.axes.size(); ++d)
    if (info.axes[d].type == data::AxisType::kChannel) m.channel = int(d);
  for (const auto& name : world) {
    const int a = info.axis_index(name);
    if (a < 0) return std::nullopt;
    m.world_to_source.push_back(a);
  }
  return m;
}

double value_at(std::span<const std::byte> b, DType t, std::size_t i) {
  auto get = [&]<class T>() {
    T v;
    std::memcpy(&v, b.data() + i * sizeof(T), sizeof(T));
    return double(v);
  };
  switch (t) {
    case DType::kUInt8:
      return get.operator()<std::uint8_t>();
    case DType::kInt8:
      return get.operator()<std::int8_t>();
    case DType::kUInt16:
      return get.operator()<std::uint16_t>();
    case DType::kInt16:
      return get.operator()<std::int16_t>();
    case DType::kUInt32:
      return get.operator()<std::uint32_t>();
    case DType::kInt32:
      return get.operator()<std::int32_t>();
    case DType::kFloat32:
      return get.operator()<float>();
    case DType::kFloat64:
      break;
  }
  return get.operator()<double>();
}

// Offset of voxel `idx` (level coordinates) inside its chunk, in elements (C order over the
// full chunk shape).
std::size_t offset_in_chunk(const data::Level& lv, const data::Index& idx) {
  std::int64_t off = 0;
  for (int d = 0; d < lv.ndim(); ++d) {
    const auto sd = std::size_t(d);
    off = off * lv.chunks[sd] + idx[sd] % lv.chunks[sd];
  }
  return std::size_t(off);
}

Status finite_list(const json& j, std::string_view field, std::size_t n, std::vector<double>& out) {
  if (!j.is_array() || j.size() != n)
    return fail(ErrorCode::kInvalidArgument, "field '{}': expected {} numbers, got {}", field, n,
                j.dump().substr(0, 200));
  out.clear();
  for (const auto& e : j) {
    if (!e.is_number() || !std::isfinite(e.get<double>()))
      return fail(ErrorCode::kInvalidArgument, "field '{}': {} is not a finite number", field,
                  e.dump().substr(0, 64));
    out.push_back(e.get<double>());
  }
  return {};
}

// The world point a probe asks for.
Result<std::vector<double>> probe_point(const render::Scene& s,
                                        const std::vector<std::string>& axes, const json& req) {
  const auto n = axes.size();
  const bool has_pixel = req.contains("pixel"), has_world = req.contains("world");
  if (has_pixel == has_world)
    return fail(ErrorCode::kInvalidArgument,
                "field 'pixel': a probe needs exactly one of 'pixel' ([x, y] canvas pixels) or "
                "'world' ({} coordinates)",
                n);
  std::vector<double> w;
  if (has_world) {
    VX_TRY(finite_list(req["world"], "world", n, w));
    return w;
  }
  std::vector<double> px;
  VX_TRY(finite_list(req["pixel"], "pixel", 2, px));
  w = s.dims.point;
  w.resize(n, 0.0);
  const auto& order = s.dims.order;
  if (order.size() != n || n < 2) return w;
  const double W = s.canvas.width, H = s.canvas.height;
  if (s.dims.ndisplay == 3 && n >= 3) {
    render::Projection proj(s.camera, s.canvas.width, s.canvas.height);
    render::Vec3 o, d;
    proj.ray(px[0], px[1], o, d);
    render::Vec3 p = o;
    if (proj.perspective()) {
      // Where the ray crosses the plane through the camera's centre, facing the viewer.
      const auto& v = proj.basis().view;
      const auto& c = proj.center();
      const double dv = d[0] * v[0] + d[1] * v[1] + d[2] * v[2];
      const double t =
          dv != 0 ? ((c[0] - o[0]) * v[0] + (c[1] - o[1]) * v[1] + (c[2] - o[2]) * v[2]) / dv : 0;
      for (std::size_t i = 0; i < 3; ++i)
        p[i] = o[i] + t * d[i];
    }
    for (std::size_t i = 0; i < 3; ++i)
      w[std::size_t(order[n - 3 + i])] = p[i];
  } else {
    w[std::size_t(order[n - 2])] = s.camera.center[1] + (px[1] - H / 2) / s.camera.zoom;
    w[std::size_t(order[n - 1])] = s.camera.center[2] + (px[0] - W / 2) / s.camera.zoom;
  }
  return w;
}

json probe_layer(const render::Scene& s, const render::RenderInputs& in, std::size_t li,
                 const std::vector<double>& w, const std::vector<std::string>& world) {
  const auto& layer = s.layers[li];
  json out = {{"layer", li},      {"name", layer.name}, {"status", "outside"},
              {"voxel", nullptr}, {"level", nullptr},   {"value", nullptr}};
  if (layer.source < 0 || std::size_t(layer.source) >= in.data.sources.size()) return out;
  const auto& info = in.data.sources[std::size_t(layer.source)];
  const auto axes = map_axes(info, world);
  if (!axes) return out;
  // Level-0 voxel: the nearest centre, as nearest-neighbour slicing takes it.
  const auto& l0 = info.levels[0];
  json voxel = json::array();
  for (std::size_t k = 0; k < world.size(); ++k) {
    const auto a = std::size_t(axes->world_to_source[k]);
    const double v = (w[k] - l0.translation[a]) / l0.scale[a];
    if (!(v >= -0.5 && v < double(l0.shape[a]) - 0.5)) return out;  // NaN and huge too
    voxel.push_back(std::int64_t(std::floor(v + 0.5)));
  }
  out["voxel"] = std::move(voxel);
  out["status"] = "loading";
  const auto id = in.sources.at(std::size_t(layer.source));
  for (int L = 0; L < int(info.levels.size()); ++L) {
    const auto& lv = info.levels[std::size_t(L)];
    data::Index idx{}, chunk{};
    for (std::size_t k = 0; k < world.size(); ++k) {
      const auto a = std::size_t(axes->world_to_source[k]);
      const double v = std::floor((w[k] - lv.translation[a]) / lv.scale[a] + 0.5);
      idx[a] = std::int64_t(std::clamp(v, 0.0, double(lv.shape[a] - 1)));
    }
    if (axes->channel >= 0) {
      const auto a = std::size_t(axes->channel);
      idx[a] = std::clamp<std::int64_t>(layer.channel, 0, lv.shape[a] - 1);
    }
    for (int d = 0; d < lv.ndim(); ++d)
      chunk[std::size_t(d)] = idx[std::size_t(d)] / lv.chunks[std::size_t(d)];
    auto pin = in.cache->try_get(id, L, chunk);
    if (!pin) continue;
    const double value = value_at(pin->bytes(), info.dtype, offset_in_chunk(lv, idx));
    out["status"] = "ok";
    out["level"] = L;
    const bool integral = info.dtype != DType::kFloat32 && info.dtype != DType::kFloat64;
    out["value"] = integral               ? json(std::int64_t(value))
                   : std::isfinite(value) ? json(value)
                                          : json(nullptr);
    break;
  }
  return out;
}

// The box of one layer's source at `level` that is on screen: inclusive [lo, hi] per source
// axis (the layer's `channel` on the channel axis), or nullopt when the view misses the data.
struct Box {
  std::vector<std::int64_t> lo, hi;
  std::vector<bool> displayed;
};
std::optional<Box> view_box(const render::Scene& s, const data::VolumeInfo& info, const Axes& axes,
                            int level, int channel) {
  const auto& lv = info.levels[std::size_t(level)];
  const auto nd = std::size_t(lv.ndim());
  const auto n = axes.world_to_source.size();
  Box b{std::vector<std::int64_t>(nd, 0), std::vector<std::int64_t>(nd, 0),
        std::vector<bool>(nd, false)};
  const auto nshow = std::size_t(s.dims.ndisplay);
  if (s.dims.order.size() != n || n < nshow) return std::nullopt;
  if (axes.channel >= 0) {
    const auto c = std::size_t(axes.channel);
    if (channel < 0 || channel >= lv.shape[c]) return std::nullopt;
    b.lo[c] = b.hi[c] = channel;
  }
  for (std::size_t k = 0; k < n; ++k) {
    const auto a = std::size_t(axes.world_to_source[k]);
    const double t = lv.translation[a], sc = lv.scale[a];
    const auto pos =
        std::find(s.dims.order.end() - std::ptrdiff_t(nshow), s.dims.order.end(), int(k));
    const auto last = double(lv.shape[a] - 1);
    if (pos != s.dims.order.end()) {
      b.displayed[a] = true;
      if (nshow == 3) {
        b.hi[a] = lv.shape[a] - 1;  // 3D: the whole volume on the displayed axes
        continue;
      }
      const bool is_y = std::size_t(pos - s.dims.order.begin()) == n - 2;
      const double pixels = is_y ? s.canvas.height : s.canvas.width;
      const double c = s.camera.center[is_y ? 1 : 2];
      const double u0 = (c - pixels / 2 / s.camera.zoom - t) / sc;
      const double u1 = (c + pixels / 2 / s.camera.zoom - t) / sc;
      // Voxel i covers [i - 0.5, i + 0.5): those that overlap [u0, u1] (one at least).
      const double lo = std::floor(std::min(u0, u1) + 0.5),
                   hi = std::ceil(std::max(u0, u1) + 0.5) - 1;
      if (!(hi >= 0 && lo <= last && hi >= lo)) return std::nullopt;
      b.lo[a] = std::int64_t(std::max(0.0, lo));
      b.hi[a] = std::int64_t(std::min(last, hi));
    } else {
      const double v = std::floor((s.dims.point[k] - t) / sc + 0.5);
      if (!(v >= 0 && v <= last)) return std::nullopt;
      b.lo[a] = b.hi[a] = std::int64_t(v);
    }
  }
  return b;
}

struct LayerBox {
  int level = 0;
  Box box;
  std::vector<data::Index> chunks;
  std::vector<std::optional<data::ChunkPin>> pins;
  std::size_t cached = 0;
};

// The chunks of `box` at `level`, and the pins of those in memory.
LayerBox look_up(const render::RenderInputs& in, data::SourceId id, const data::Level& lv,
                 int level, Box box) {
  LayerBox lb{level, std::move(box), {}, {}, 0};
  const int nd = lv.ndim();
  data::Index c{}, lo{}, hi{};
  for (int d = 0; d < nd; ++d) {
    const auto sd = std::size_t(d);
    lo[sd] = c[sd] = lb.box.lo[sd] / lv.chunks[sd];
    hi[sd] = lb.box.hi[sd] / lv.chunks[sd];
  }
  for (;;) {
    lb.chunks.push_back(c);
    lb.pins.push_back(in.cache->try_get(id, level, c));
    if (lb.pins.back()) ++lb.cached;
    int d = nd - 1;
    for (; d >= 0; --d) {
      if (++c[std::size_t(d)] <= hi[std::size_t(d)]) break;
      c[std::size_t(d)] = lo[std::size_t(d)];
    }
    if (d < 0) break;
  }
  return lb;
}

std::size_t chunk_count(const data::Level& lv, const Box& b) {
  std::size_t n = 1;
  for (int d = 0; d < lv.ndim(); ++d) {
    const auto sd = std::size_t(d);
    n *= std::size_t(b.hi[sd] / lv.chunks[sd] - b.lo[sd] / lv.chunks[sd] + 1);
    if (n > (std::size_t(1) << 40)) break;
  }
  return n;
}

// The sampled values of the cached chunks of `lb`: every `stride`-th voxel on the displayed
// axes, from the box's corner.
std::vector<double> sample(const data::VolumeInfo& info, const LayerBox& lb, std::size_t budget) {
  const auto& lv = info.levels[std::size_t(lb.level)];
  const int nd = lv.ndim();
  double voxels = 1;
  int shown = 0;
  for (int d = 0; d < nd; ++d)
    if (lb.box.displayed[std::size_t(d)]) {
      voxels *= double(lb.box.hi[std::size_t(d)] - lb.box.lo[std::size_t(d)] + 1);
      ++shown;
    }
  const auto stride = std::int64_t(
      std::max(1.0, std::ceil(std::pow(voxels / double(budget), 1.0 / std::max(1, shown)))));
  std::vector<double> values;
  for (std::size_t k = 0; k < lb.chunks.size(); ++k) {
    if (!lb.pins[k]) continue;
    const auto bytes = lb.pins[k]->bytes();
    data::Index a{}, b{}, p{}, st{};
    bool misses = false;  // the box's sample grid has no point in this chunk
    for (int d = 0; d < nd && !misses; ++d) {
      const auto sd = std::size_t(d);
      st[sd] = lb.box.displayed[sd] ? stride : 1;
      const auto c0 = lb.chunks[k][sd] * lv.chunks[sd];
      const auto from = std::max(c0, lb.box.lo[sd]);
      // The first sample position at or after `from` on the grid lo, lo + st, ...
      a[sd] = lb.box.lo[sd] + (from - lb.box.lo[sd] + st[sd] - 1) / st[sd] * st[sd];
      b[sd] = std::min(c0 + lv.chunks[sd] - 1, lb.box.hi[sd]);
      misses = a[sd] > b[sd];
      p[sd] = a[sd];
    }
    while (!misses) {
      const double v = value_at(bytes, info.dtype, offset_in_chunk(lv, p));
      if (!std::isnan(v)) values.push_back(v);
      int d = nd - 1;
      for (; d >= 0; --d) {
        const auto sd = std::size_t(d);
        if ((p[sd] += st[sd]) <= b[sd]) break;
        p[sd] = a[sd];
      }
      if (d < 0) break;
    }
  }
  return values;
}

}  // namespace

Result<json> probe(const render::Scene& scene, const render::RenderInputs& in,
                   const json& request) {
  const auto world = in.data.axis_names();
  VX_ASSIGN(auto w, probe_point(scene, world, request));
  const bool finite = std::all_of(w.begin(), w.end(), [](double v) { return std::isfinite(v); });
  json layers = json::array();
  for (std::size_t i = 0; i < scene.layers.size(); ++i)
    if (scene.layers[i].visible) layers.push_back(probe_layer(scene, in, i, w, world));
  return json{{"world", finite ? json(w) : json(nullptr)}, {"layers", std::move(layers)}};
}

Result<json> histogram(const render::Scene& scene, const render::RenderInputs& in,
                       std::span<const int> drawn, const json& request) {
  int bins = 64;
  if (const auto it = request.find("bins"); it != request.end()) {
    if (!it->is_number_integer() || it->get<std::int64_t>() < 1 ||
        it->get<std::int64_t>() > kMaxHistogramBins)
      return fail(ErrorCode::kInvalidArgument, "field 'bins': {} is not an integer in 1..{}",
                  it->dump().substr(0, 64), kMaxHistogramBins);
    bins = it->get<int>();
  }
  std::vector<double> q{0.5, 99.5};
  if (const auto it = request.find("percentiles"); it != request.end()) {
    VX_TRY(finite_list(*it, "percentiles", 2, q));
    if (!(q[0] >= 0 && q[1] <= 100 && q[0] < q[1]))
      return fail(ErrorCode::kInvalidArgument,
                  "field 'percentiles': [{}, {}] must be a low and a high in 0..100, low < high",
                  q[0], q[1]);
  }
  std::vector<std::size_t> which;
  if (const auto it = request.find("layers"); it != request.end() && !it->is_null()) {
    // A scene has at most a few dozen layers; a longer list is a mistake or an attack.
    constexpr std::size_t kMaxListed = 1024;
    if (!it->is_array())
      return fail(ErrorCode::kInvalidArgument, "field 'layers': expected a list of layer indices");
    if (it->size() > kMaxListed)
      return fail(ErrorCode::kInvalidArgument,
                  "field 'layers': {} entries, over the {} a list may have", it->size(),
                  kMaxListed);
    for (const auto& e : *it) {
      if (!e.is_number_integer() || e.get<std::int64_t>() < 0 ||
          e.get<std::int64_t>() >= std::int64_t(scene.layers.size()))
        return fail(ErrorCode::kInvalidArgument, "field 'layers': {} is not a layer (0..{})",
                    e.dump().substr(0, 64), std::int64_t(scene.layers.size()) - 1);
      // Each layer once, whatever the list repeats (the sample budget is per request).
      if (std::find(which.begin(), which.end(), e.get<std::size_t>()) == which.end())
        which.push_back(e.get<std::size_t>());
    }
  } else {
    for (std::size_t i = 0; i < scene.layers.size(); ++i)
      which.push_back(i);
  }
  const auto world = in.data.axis_names();
  // The samples of one request stay bounded whatever the number of layers (it is answered
  // on the connection's thread).
  const std::size_t budget =
      std::max(kHistogramMinSamples, kHistogramSamples / std::max<std::size_t>(1, which.size()));
  json out = json::array();
  for (const auto li : which) {
    const auto& layer = scene.layers[li];
    json entry = {{"layer", li},           {"status", "empty"},       {"level", nullptr},
                  {"range", nullptr},      {"counts", json::array()}, {"samples", 0},
                  {"percentiles", nullptr}};
    const auto& info = in.data.sources.at(std::size_t(layer.source));
    const auto axes = map_axes(info, world);
    const auto n = world.size();
    if (!axes || scene.dims.order.size() != n || n < std::size_t(scene.dims.ndisplay)) {
      out.push_back(std::move(entry));
      continue;
    }
    const int levels = int(info.levels.size());
    int level = li < drawn.size() ? drawn[li] : -1;
    if (level < 0 || level >= levels) {
      std::vector<int> shown;
      for (auto it = scene.dims.order.end() - scene.dims.ndisplay; it != scene.dims.order.end();
           ++it)
        shown.push_back(axes->world_to_source[std::size_t(*it)]);
      level = render::choose_level(info, shown, 1.0 / scene.camera.zoom);
    }
    // Never look at more than kHistogramChunks chunks: a coarser level stands in.
    std::optional<Box> box;
    for (; level < levels; ++level) {
      box = view_box(scene, info, *axes, level, layer.channel);
      if (!box || chunk_count(info.levels[std::size_t(level)], *box) <= kHistogramChunks ||
          level == levels - 1)
        break;
    }
    if (!box) {
      out.push_back(std::move(entry));
      continue;
    }
    // The level drawn when all of its chunks are in memory, else the finest coarser one that
    // is; failing that, whatever part is in memory (status "partial"), or nothing ("loading").
    const auto id = in.sources.at(std::size_t(layer.source));
    std::optional<LayerBox> use, partial;
    for (int L = level; L < levels && !use; ++L) {
      auto b = L == level ? box : view_box(scene, info, *axes, L, layer.channel);
      if (!b || chunk_count(info.levels[std::size_t(L)], *b) > kHistogramChunks) continue;
      auto lb = look_up(in, id, info.levels[std::size_t(L)], L, std::move(*b));
      if (lb.cached == lb.chunks.size())
        use = std::move(lb);
      else if (lb.cached > 0 && !partial)
        partial = std::move(lb);
    }
    const bool complete = use.has_value();
    if (!use) use = std::move(partial);
    if (!use) {
      entry["status"] = "loading";
      entry["level"] = level;
      out.push_back(std::move(entry));
      continue;
    }
    auto values = sample(info, *use, budget);
    const auto h = render::make_histogram(values, bins);
    entry["status"] = complete ? "ok" : "partial";
    entry["level"] = use->level;
    entry["samples"] = h.samples;
    entry["counts"] = h.counts;
    if (h.samples > 0) {
      entry["range"] = {h.lo, h.hi};
      const double lo = render::percentile(values, q[0]);
      const double hi = render::percentile(values, q[1]);
      entry["percentiles"] = {lo, hi};
    }
    out.push_back(std::move(entry));
  }
  return out;
}

}  // namespace vx::stream
