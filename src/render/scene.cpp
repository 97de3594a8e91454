#include "render/scene.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <set>

#include "data/json_util.hpp"
#include "render/colormap.hpp"

namespace vx::render {
namespace {

constexpr std::array<std::pair<Blending, std::string_view>, 4> kBlendings{
    {{Blending::kTranslucent, "translucent"},
     {Blending::kAdditive, "additive"},
     {Blending::kOpaque, "opaque"},
     {Blending::kMinimum, "minimum"}}};
constexpr std::array<std::pair<Rendering, std::string_view>, 6> kRenderings{
    {{Rendering::kMip, "mip"},
     {Rendering::kMinip, "minip"},
     {Rendering::kAttenuatedMip, "attenuated_mip"},
     {Rendering::kAverage, "average"},
     {Rendering::kTranslucent, "translucent"},
     {Rendering::kIso, "iso"}}};
constexpr std::array<std::pair<Interpolation, std::string_view>, 2> kInterpolations{
    {{Interpolation::kNearest, "nearest"}, {Interpolation::kLinear, "linear"}}};

template <class E, std::size_t N>
std::string_view name_of(const std::array<std::pair<E, std::string_view>, N>& table, E e) {
  for (const auto& [v, n] : table)
    if (v == e) return n;
  return "?";
}

// Strict reader of one JSON object: every key must be known, every value of the right type.
class Fields {
 public:
  Fields(const json& j, std::string path, std::initializer_list<std::string_view> known)
      : j_(j), path_(std::move(path)), known_(known) {}

  Status check() const {
    if (!j_.is_object())
      return fail(ErrorCode::kInvalidArgument, "field '{}': expected an object", path_);
    for (const auto& [key, _] : j_.items())
      if (std::find(known_.begin(), known_.end(), key) == known_.end())
        return fail(ErrorCode::kInvalidArgument, "field '{}': unknown (known: {})", sub(key),
                    fmt::join(known_, ", "));
    return {};
  }
  std::string sub(std::string_view key) const {
    return path_.empty() ? std::string(key) : path_ + "." + std::string(key);
  }
  const json* get(std::string_view key) const {
    auto it = j_.find(key);
    return it == j_.end() || it->is_null() ? nullptr : &*it;
  }

  Status number(std::string_view key, double& out, double lo, double hi,
                bool lo_open = false) const {
    const json* v = get(key);
    if (!v) return {};
    if (!v->is_number() || !std::isfinite(v->get<double>()))
      return fail(ErrorCode::kInvalidArgument, "field '{}': expected a number, got {}", sub(key),
                  v->dump());
    const double d = v->get<double>();
    if (d > hi || d < lo || (lo_open && d == lo))
      return fail(ErrorCode::kInvalidArgument, "field '{}': {} is outside {}{}, {}]", sub(key), d,
                  lo_open ? "(" : "[", lo, hi);
    out = d;
    return {};
  }
  Status integer(std::string_view key, int& out, int lo, int hi) const {
    const json* v = get(key);
    if (!v) return {};
    if (!v->is_number_integer())
      return fail(ErrorCode::kInvalidArgument, "field '{}': expected an integer, got {}", sub(key),
                  v->dump());
    const auto i = v->get<std::int64_t>();
    if (i < lo || i > hi)
      return fail(ErrorCode::kInvalidArgument, "field '{}': {} is outside [{}, {}]", sub(key), i,
                  lo, hi);
    out = int(i);
    return {};
  }
  Status boolean(std::string_view key, bool& out) const {
    const json* v = get(key);
    if (!v) return {};
    if (!v->is_boolean())
      return fail(ErrorCode::kInvalidArgument, "field '{}': expected true or false, got {}",
                  sub(key), v->dump());
    out = v->get<bool>();
    return {};
  }
  Status string(std::string_view key, std::string& out) const {
    const json* v = get(key);
    if (!v) return {};
    if (!v->is_string())
      return fail(ErrorCode::kInvalidArgument, "field '{}': expected a string, got {}", sub(key),
                  v->dump());
    out = v->get<std::string>();
    return {};
  }
  template <class E, std::size_t N>
  Status choice(std::string_view key, E& out,
                const std::array<std::pair<E, std::string_view>, N>& table) const {
    const json* v = get(key);
    if (!v) return {};
    std::vector<std::string_view> names;
    for (const auto& [e, n] : table) {
      names.push_back(n);
      if (v->is_string() && v->get<std::string>() == n) {
        out = e;
        return {};
      }
    }
    return fail(ErrorCode::kInvalidArgument, "field '{}': {} is not one of {}", sub(key), v->dump(),
                fmt::join(names, ", "));
  }
  template <std::size_t N>
  Status numbers(std::string_view key, std::array<double, N>& out, double lo, double hi) const {
    std::vector<double> v;
    VX_TRY(number_list(key, v, N, N, lo, hi));
    if (!v.empty()) std::copy(v.begin(), v.end(), out.begin());
    return {};
  }
  Status number_list(std::string_view key, std::vector<double>& out, std::size_t min_n,
                     std::size_t max_n, double lo = -1e300, double hi = 1e300) const {
    const json* v = get(key);
    if (!v) return {};
    if (!v->is_array() || v->size() < min_n || v->size() > max_n)
      return fail(ErrorCode::kInvalidArgument, "field '{}': expected {} numbers, got {}", sub(key),
                  min_n == max_n ? std::to_string(min_n) : fmt::format("{} to {}", min_n, max_n),
                  v->dump());
    out.clear();
    for (const auto& e : *v) {
      if (!e.is_number() || !std::isfinite(e.get<double>()) || e.get<double>() < lo ||
          e.get<double>() > hi)
        return fail(ErrorCode::kInvalidArgument, "field '{}': {} is not a number in [{}, {}]",
                    sub(key), e.dump(), lo, hi);
      out.push_back(e.get<double>());
    }
    return {};
  }

 private:
  const json& j_;
  std::string path_;
  std::vector<std::string_view> known_;
};

json layer_json(const Layer& l) {
  return {{"name", l.name},
          {"source", l.source},
          {"channel", l.channel},
          {"visible", l.visible},
          {"opacity", l.opacity},
          {"colormap", l.colormap},
          {"contrast_limits", l.contrast_limits},
          {"gamma", l.gamma},
          {"blending", to_string(l.blending)},
          {"rendering", to_string(l.rendering)},
          {"iso_threshold", l.iso_threshold},
          {"attenuation", l.attenuation},
          {"interpolation", to_string(l.interpolation)}};
}

Result<Layer> parse_layer(const json& j, const std::string& path, Layer l, const SceneData& data) {
  Fields f(j, path,
           {"name", "source", "channel", "visible", "opacity", "colormap", "contrast_limits",
            "gamma", "blending", "rendering", "iso_threshold", "attenuation", "interpolation"});
  VX_TRY(f.check());
  VX_TRY(f.string("name", l.name));
  VX_TRY(f.integer("source", l.source, 0, std::max(0, int(data.sources.size()) - 1)));
  VX_TRY(f.integer("channel", l.channel, 0, std::max(0, data.channels(l.source) - 1)));
  VX_TRY(f.boolean("visible", l.visible));
  VX_TRY(f.number("opacity", l.opacity, 0, 1));
  VX_TRY(f.string("colormap", l.colormap));
  if (auto cm = colormap_by_name(l.colormap); !cm)
    return fail(ErrorCode::kInvalidArgument, "field '{}': {}", f.sub("colormap"),
                cm.error().message);
  VX_TRY(f.numbers("contrast_limits", l.contrast_limits, -1e300, 1e300));
  if (!(l.contrast_limits[0] < l.contrast_limits[1]))
    return fail(ErrorCode::kInvalidArgument,
                "field '{}': the low limit {} must be below the high limit {}",
                f.sub("contrast_limits"), l.contrast_limits[0], l.contrast_limits[1]);
  VX_TRY(f.number("gamma", l.gamma, 0, 100, true));
  VX_TRY(f.choice("blending", l.blending, kBlendings));
  VX_TRY(f.choice("rendering", l.rendering, kRenderings));
  VX_TRY(f.number("iso_threshold", l.iso_threshold, -1e300, 1e300));
  VX_TRY(f.number("attenuation", l.attenuation, 0, 1e6));
  VX_TRY(f.choice("interpolation", l.interpolation, kInterpolations));
  return l;
}

Result<Scene> parse_scene(const json& j, const Scene& defaults, const SceneData& data) {
  Scene s = defaults;
  Fields top(j, "", {"canvas", "camera", "dims", "layers"});
  VX_TRY(top.check());
  if (const json* c = top.get("canvas")) {
    Fields f(*c, "canvas", {"width", "height", "background"});
    VX_TRY(f.check());
    VX_TRY(f.integer("width", s.canvas.width, 16, 8192));
    VX_TRY(f.integer("height", s.canvas.height, 16, 8192));
    VX_TRY(f.numbers("background", s.canvas.background, 0, 1));
  }
  if (const json* c = top.get("camera")) {
    Fields f(*c, "camera", {"center", "zoom", "angles", "perspective"});
    VX_TRY(f.check());
    std::vector<double> center;
    VX_TRY(f.number_list("center", center, 2, 3));
    if (center.size() == 2) s.camera.center = {0, center[0], center[1]};
    if (center.size() == 3) s.camera.center = {center[0], center[1], center[2]};
    VX_TRY(f.number("zoom", s.camera.zoom, 0, 1e12, true));
    VX_TRY(f.numbers("angles", s.camera.angles, -1e6, 1e6));
    VX_TRY(f.number("perspective", s.camera.perspective, 0, 179));
  }
  const int ndim = int(data.axis_names().size());
  if (const json* d = top.get("dims")) {
    Fields f(*d, "dims", {"ndisplay", "order", "point"});
    VX_TRY(f.check());
    VX_TRY(f.integer("ndisplay", s.dims.ndisplay, 2, 3));
    if (const json* o = f.get("order")) {
      std::vector<double> order;
      VX_TRY(f.number_list("order", order, std::size_t(ndim), std::size_t(ndim), 0, ndim - 1));
      std::set<int> seen;
      s.dims.order.clear();
      for (double v : order) {
        if (v != std::floor(v) || !seen.insert(int(v)).second)
          return fail(ErrorCode::kInvalidArgument,
                      "field 'dims.order': {} is not a permutation of 0..{}", o->dump(), ndim - 1);
        s.dims.order.push_back(int(v));
      }
    }
    VX_TRY(f.number_list("point", s.dims.point, std::size_t(ndim), std::size_t(ndim)));
  }
  if (s.dims.ndisplay > ndim)
    return fail(ErrorCode::kInvalidArgument,
                "field 'dims.ndisplay': {} but the data has {} spatial axes", s.dims.ndisplay,
                ndim);
  if (const json* ls = top.get("layers")) {
    if (!ls->is_array())
      return fail(ErrorCode::kInvalidArgument,
                  "field 'layers': expected an array of layer objects");
    std::vector<Layer> layers;
    for (std::size_t i = 0; i < ls->size(); ++i) {
      const Layer base = i < defaults.layers.size() ? defaults.layers[i] : Layer{};
      VX_ASSIGN(auto l, parse_layer((*ls)[i], fmt::format("layers[{}]", i), base, data));
      layers.push_back(std::move(l));
    }
    s.layers = std::move(layers);
  }
  return s;
}

}  // namespace

std::string_view to_string(Blending b) {
  return name_of(kBlendings, b);
}
std::string_view to_string(Rendering r) {
  return name_of(kRenderings, r);
}
std::string_view to_string(Interpolation i) {
  return name_of(kInterpolations, i);
}

std::vector<std::string> SceneData::axis_names() const {
  std::vector<std::string> names;
  if (sources.empty()) return names;
  for (const auto& a : sources[0].axes)
    if (a.type != data::AxisType::kChannel) names.push_back(a.name);
  return names;
}

std::vector<std::array<double, 2>> SceneData::world_extent() const {
  std::vector<std::array<double, 2>> out;
  if (sources.empty()) return out;
  const auto& info = sources[0];
  const auto& lv = info.levels[0];
  for (std::size_t d = 0; d < info.axes.size(); ++d)
    if (info.axes[d].type != data::AxisType::kChannel)
      out.push_back({lv.translation[d], lv.translation[d] + lv.scale[d] * double(lv.shape[d] - 1)});
  return out;
}

Status check_slices_in_range(const Scene& scene, const SceneData& data) {
  if (data.sources.empty()) return {};
  const auto& info = data.sources[0];
  const auto& lv = info.levels[0];
  const auto names = data.axis_names();
  const auto extent = data.world_extent();
  std::vector<double> scale;
  std::vector<std::int64_t> shape;
  for (std::size_t d = 0; d < info.axes.size(); ++d)
    if (info.axes[d].type != data::AxisType::kChannel) {
      scale.push_back(lv.scale[d]);
      shape.push_back(lv.shape[d]);
    }
  const auto n = scene.dims.order.size();
  const auto shown = std::size_t(std::clamp(scene.dims.ndisplay, 0, int(n)));
  for (std::size_t i = 0; i + shown < n; ++i) {
    const auto k = std::size_t(scene.dims.order[i]);
    if (k >= extent.size() || k >= scene.dims.point.size()) continue;
    const double p = scene.dims.point[k], half = 0.5 * scale[k];
    if (!(p >= extent[k][0] - half && p <= extent[k][1] + half)) {
      const double index = (p - extent[k][0]) / scale[k];
      return fail(ErrorCode::kInvalidArgument,
                  "field 'dims.point[{}]': {:g} on axis '{}' is slice {:g}, outside the data "
                  "(slices 0..{}, world {:g}..{:g})",
                  k, p, names[k], std::round(index), shape[k] - 1, extent[k][0], extent[k][1]);
    }
  }
  return {};
}

int SceneData::channels(int source) const {
  if (source < 0 || source >= int(sources.size())) return 0;
  const auto& info = sources[std::size_t(source)];
  const int c = info.axis_index("c") >= 0 ? info.axis_index("c") : -1;
  for (std::size_t d = 0; d < info.axes.size(); ++d)
    if (info.axes[d].type == data::AxisType::kChannel) return int(info.levels[0].shape[d]);
  return c >= 0 ? int(info.levels[0].shape[std::size_t(c)]) : 1;
}

std::string default_channel_colormap(int channel, int channels) {
  // napari's curated sets for additive blending (napari.utils.colormaps: MAGENTA_GREEN and
  // CYMRGB), used as add_image(..., channel_axis=...) does: one channel gray, two magenta
  // and green, more cycle through cyan, yellow, magenta, red, green, blue.
  static constexpr std::array<const char*, 2> kMagentaGreen = {"magenta", "green"};
  static constexpr std::array<const char*, 6> kCymrgb = {"cyan", "yellow", "magenta",
                                                         "red",  "green",  "blue"};
  if (channels <= 1 || channel < 0) return "gray";
  if (channels == 2) return kMagentaGreen[std::size_t(channel % 2)];
  return kCymrgb[std::size_t(channel % 6)];
}

Scene default_scene(const SceneData& data, int width, int height) {
  Scene s;
  s.canvas.width = width;
  s.canvas.height = height;
  const auto extent = data.world_extent();
  const int n = int(extent.size());
  s.dims.order.resize(std::size_t(n));
  for (int i = 0; i < n; ++i)
    s.dims.order[std::size_t(i)] = i;
  s.dims.ndisplay = 2;
  for (const auto& e : extent)
    s.dims.point.push_back(0.5 * (e[0] + e[1]));
  // Frame the displayed (last two, or three) axes, with a 5% margin as napari leaves.
  const int d0 = std::max(0, n - 3);
  for (int i = d0; i < n; ++i)
    s.camera.center[std::size_t(3 - (n - i))] =
        0.5 * (extent[std::size_t(i)][0] + extent[std::size_t(i)][1]);
  if (n >= 2) {
    const double h = std::max(1e-9, extent[std::size_t(n - 2)][1] - extent[std::size_t(n - 2)][0]);
    const double w = std::max(1e-9, extent[std::size_t(n - 1)][1] - extent[std::size_t(n - 1)][0]);
    s.camera.zoom = 0.95 * std::min(double(width) / w, double(height) / h);
  }
  int total = 0;
  for (int src = 0; src < int(data.sources.size()); ++src)
    total += data.channels(src);
  for (int src = 0; src < int(data.sources.size()); ++src) {
    const auto& info = data.sources[std::size_t(src)];
    for (int c = 0; c < data.channels(src); ++c) {
      Layer l;
      l.source = src;
      l.channel = c;
      const data::Channel* meta =
          c < int(info.channels.size()) ? &info.channels[std::size_t(c)] : nullptr;
      l.name = meta ? meta->name : fmt::format("channel {}", c);
      l.visible = meta ? meta->visible : true;
      l.colormap = meta && meta->color ? colormap_for_color(*meta->color)
                                       : default_channel_colormap(c, data.channels(src));
      if (meta && meta->window && meta->window->start < meta->window->end) {
        l.contrast_limits = {meta->window->start, meta->window->end};
      } else {
        switch (info.dtype) {
          case data::DType::kUInt8:
            l.contrast_limits = {0, 255};
            break;
          case data::DType::kInt8:
            l.contrast_limits = {-128, 127};
            break;
          case data::DType::kUInt16:
            l.contrast_limits = {0, 65535};
            break;
          case data::DType::kInt16:
            l.contrast_limits = {-32768, 32767};
            break;
          default:
            l.contrast_limits = {0, 1};
            break;
        }
      }
      l.blending = total > 1 ? Blending::kAdditive : Blending::kTranslucent;
      // Halfway up the contrast limits (napari takes the middle of the contrast range).
      l.iso_threshold = 0.5 * (l.contrast_limits[0] + l.contrast_limits[1]);
      s.layers.push_back(std::move(l));
    }
  }
  return s;
}

json to_json(const Scene& s) {
  json layers = json::array();
  for (const auto& l : s.layers)
    layers.push_back(layer_json(l));
  return {
      {"canvas",
       {{"width", s.canvas.width},
        {"height", s.canvas.height},
        {"background", s.canvas.background}}},
      {"camera",
       {{"center", s.camera.center},
        {"zoom", s.camera.zoom},
        {"angles", s.camera.angles},
        {"perspective", s.camera.perspective}}},
      {"dims", {{"ndisplay", s.dims.ndisplay}, {"order", s.dims.order}, {"point", s.dims.point}}},
      {"layers", layers}};
}

Result<json> read_scene_file(const std::string& path) {
  return data::read_json_file(path);
}

Result<Scene> apply_patch(const Scene& base, const json& patch, const SceneData& data) {
  if (!patch.is_object())
    return fail(ErrorCode::kInvalidArgument, "a scene patch must be a JSON object, got {}",
                patch.type_name());
  const Scene defaults = default_scene(data, base.canvas.width, base.canvas.height);
  json merged = to_json(base);
  json rest = patch;
  if (auto it = rest.find("layers"); it != rest.end()) {
    const json lp = *it;
    rest.erase("layers");
    if (lp.is_null()) {
      merged["layers"] = to_json(defaults)["layers"];
    } else if (!lp.is_array()) {
      return fail(ErrorCode::kInvalidArgument,
                  "field 'layers': expected an array of layer objects, got {}", lp.type_name());
    } else {
      // Element i merges into layer i; layers past the patch stay as they are; an element
      // past the last layer adds one (fields from the defaults); null removes that layer.
      json layers = merged["layers"];
      std::vector<bool> remove(std::max(layers.size(), lp.size()), false);
      for (std::size_t i = 0; i < lp.size(); ++i) {
        if (lp[i].is_null()) {
          remove[i] = true;
          continue;
        }
        if (!lp[i].is_object())
          return fail(ErrorCode::kInvalidArgument,
                      "field 'layers[{}]': expected an object or null, got {}", i,
                      lp[i].type_name());
        while (layers.size() <= i)
          layers.push_back(layers.size() < defaults.layers.size()
                               ? layer_json(defaults.layers[layers.size()])
                               : layer_json(Layer{}));
        layers[i].merge_patch(lp[i]);
      }
      json kept = json::array();
      for (std::size_t i = 0; i < layers.size(); ++i)
        if (!remove[i]) kept.push_back(std::move(layers[i]));
      layers = std::move(kept);
      merged["layers"] = std::move(layers);
    }
  }
  merged.merge_patch(rest);
  // Fields a patch deleted (null) fall back to the data's defaults.
  return parse_scene(merged, defaults, data);
}

}  // namespace vx::render
