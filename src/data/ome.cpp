// OME-NGFF metadata: multiscales (axes, datasets, coordinateTransformations) and omero.
#include <fmt/format.h>

#include <algorithm>

#include "data/formats.hpp"

namespace vx::data {

std::vector<Axis> default_axes(int ndim) {
  static const char* names[] = {"t", "c", "z", "y", "x"};
  std::vector<Axis> axes;
  for (int i = 5 - ndim; i < 5; ++i) {
    Axis a{names[i], AxisType::kSpace, ""};
    if (a.name == "t") a.type = AxisType::kTime;
    if (a.name == "c") a.type = AxisType::kChannel;
    axes.push_back(std::move(a));
  }
  return axes;
}

std::vector<Channel> default_channels(const std::vector<Axis>& axes,
                                      const std::vector<std::int64_t>& shape) {
  std::int64_t n = 1;
  for (std::size_t i = 0; i < axes.size(); ++i)
    if (axes[i].type == AxisType::kChannel) n = shape[i];
  std::vector<Channel> out;
  for (std::int64_t c = 0; c < n; ++c)
    out.push_back(Channel{fmt::format("channel {}", c), {}, {}, true});
  return out;
}

namespace {

const json* multiscale0(const json& attrs) {
  auto it = attrs.find("multiscales");
  if (it == attrs.end() || !it->is_array() || it->empty()) return nullptr;
  return &(*it)[0];
}

Result<std::array<std::uint8_t, 3>> parse_color(const std::string& hex, const Where& w) {
  if (hex.size() != 6 || hex.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos)
    return fail(ErrorCode::kFormat, "{}: \"{}\" is not an RRGGBB hex colour", w.str(), hex);
  std::array<std::uint8_t, 3> c{};
  for (int i = 0; i < 3; ++i)
    c[std::size_t(i)] = std::uint8_t(std::stoi(hex.substr(std::size_t(i) * 2, 2), nullptr, 16));
  return c;
}

// Reads [{"type":"scale","scale":[..]},{"type":"translation","translation":[..]}].
Status read_transforms(const json& list, const Where& w, std::size_t ndim,
                       std::vector<double>& scale, std::vector<double>& translation) {
  if (!list.is_array()) return fail(ErrorCode::kFormat, "{}: expected an array", w.str());
  for (std::size_t i = 0; i < list.size(); ++i) {
    const Where wi = w.at(i);
    VX_ASSIGN(auto t, require(list[i], "type", wi));
    VX_ASSIGN(auto type, as_string(*t, wi / "type"));
    if (type == "identity") continue;
    if (type != "scale" && type != "translation")
      return fail(ErrorCode::kUnsupported,
                  "{}: transformation '{}' is not supported (scale, translation)",
                  (wi / "type").str(), type);
    VX_ASSIGN(auto v, require(list[i], type, wi));
    VX_ASSIGN(auto values, as_number_array(*v, wi / type));
    if (values.size() != ndim)
      return fail(ErrorCode::kFormat, "{}: has {} values for {} axes", (wi / type).str(),
                  values.size(), ndim);
    for (std::size_t d = 0; d < ndim; ++d) {
      if (type == "scale") {
        if (!(values[d] > 0))
          return fail(ErrorCode::kFormat, "{}: scale must be positive, got {}", (wi / type).str(),
                      values[d]);
        scale[d] *= values[d];
        translation[d] *= values[d];
      } else {
        translation[d] += values[d];
      }
    }
  }
  return {};
}

}  // namespace

Status parse_ome(const json& attrs, const std::string& file, VolumeInfo& info,
                 std::vector<std::string>& dataset_paths) {
  const json* ms = multiscale0(attrs);
  const Where w{file, "multiscales[0]"};
  if (!ms) return fail(ErrorCode::kFormat, "{}: no 'multiscales' metadata", file);
  // v0.4 keeps the version in multiscales[0]; v0.5 in attributes.ome (passed in as attrs).
  if (auto v = ms->find("version"); v != ms->end() && v->is_string())
    info.format_version = *v;
  else if (auto t = attrs.find("version"); t != attrs.end() && t->is_string())
    info.format_version = *t;
  if (!info.format_version.empty() && info.format_version != "0.1" &&
      info.format_version != "0.2" && info.format_version != "0.3" &&
      info.format_version != "0.4" && info.format_version != "0.5")
    info.warnings.push_back({file, "multiscales[0].version",
                             fmt::format("version '{}' is not an OME-NGFF version voxcast knows "
                                         "(0.1 to 0.5); read as far as it matches them",
                                         info.format_version)});
  VX_ASSIGN(auto axes, optional_field(*ms, "axes", w));
  if (axes) {
    if (!axes->is_array())
      return fail(ErrorCode::kFormat, "{}: expected an array", (w / "axes").str());
    for (std::size_t i = 0; i < axes->size(); ++i) {
      const auto& a = (*axes)[i];
      Axis axis;
      if (a.is_string()) {  // v0.3: a list of names
        axis.name = a.get<std::string>();
      } else {
        VX_ASSIGN(auto n, require(a, "name", (w / "axes").at(i)));
        VX_ASSIGN(axis.name, as_string(*n, (w / "axes").at(i) / "name"));
        const Where wa = (w / "axes").at(i);
        if (auto t = a.find("type"); t != a.end() && !t->is_null()) {
          VX_ASSIGN(const std::string type, as_string(*t, wa / "type"));
          axis.type = checked_axis_type(type, wa / "type", info.warnings);
        } else {
          axis.type = axis.name == "t"   ? AxisType::kTime
                      : axis.name == "c" ? AxisType::kChannel
                                         : AxisType::kSpace;
        }
        if (auto u = a.find("unit"); u != a.end() && u->is_string())
          axis.unit = checked_axis_unit(*u, axis.type, wa / "unit", info.warnings);
        for (const auto& other : info.axes)
          if (other.name == axis.name)
            info.warnings.push_back({file, (wa / "name").field,
                                     fmt::format("axis name '{}' is used twice", axis.name)});
        info.axes.push_back(std::move(axis));
        continue;
      }
      axis.type = axis.name == "t"   ? AxisType::kTime
                  : axis.name == "c" ? AxisType::kChannel
                                     : AxisType::kSpace;
      info.axes.push_back(std::move(axis));
    }
  }
  VX_ASSIGN(auto ds, require(*ms, "datasets", w));
  if (!ds->is_array() || ds->empty())
    return fail(ErrorCode::kFormat, "{}: expected a non-empty array", (w / "datasets").str());
  for (std::size_t i = 0; i < ds->size(); ++i) {
    VX_ASSIGN(auto p, require((*ds)[i], "path", (w / "datasets").at(i)));
    VX_ASSIGN(auto path, as_string(*p, (w / "datasets").at(i) / "path"));
    if (path.empty() || path.find("..") != std::string::npos || path[0] == '/')
      return fail(ErrorCode::kFormat, "{}: \"{}\" is not a relative dataset path",
                  ((w / "datasets").at(i) / "path").str(), path);
    dataset_paths.push_back(path);
  }

  // omero: channel names, colours and windows.
  if (auto om = attrs.find("omero"); om != attrs.end() && om->is_object()) {
    if (auto chs = om->find("channels"); chs != om->end() && chs->is_array()) {
      const Where wc{file, "omero.channels"};
      for (std::size_t i = 0; i < chs->size(); ++i) {
        const auto& c = (*chs)[i];
        Channel ch{fmt::format("channel {}", i), {}, {}, true};
        if (!c.is_object())
          return fail(ErrorCode::kFormat, "{}: expected an object", wc.at(i).str());
        if (auto l = c.find("label"); l != c.end() && l->is_string()) ch.name = *l;
        if (auto col = c.find("color"); col != c.end() && !col->is_null()) {
          VX_ASSIGN(auto hex, as_string(*col, wc.at(i) / "color"));
          VX_ASSIGN(ch.color, parse_color(hex, wc.at(i) / "color"));
        }
        if (auto a = c.find("active"); a != c.end() && a->is_boolean()) ch.visible = *a;
        if (auto win = c.find("window"); win != c.end() && win->is_object()) {
          Window wd;
          const Where ww = wc.at(i) / "window";
          for (auto [key, dst] : {std::pair{"start", &wd.start},
                                  {"end", &wd.end},
                                  {"min", &wd.min},
                                  {"max", &wd.max}}) {
            VX_ASSIGN(auto f, optional_field(*win, key, ww));
            if (f) {
              VX_ASSIGN(*dst, as_number(*f, ww / key));
            }
          }
          if (wd.max == 0 && wd.min == 0) wd.max = wd.end, wd.min = wd.start;
          if (!(wd.start < wd.end))
            info.warnings.push_back(
                {file, ww.field,
                 fmt::format("start {:g} is not below end {:g}; the display range is estimated "
                             "from the data",
                             wd.start, wd.end)});
          else
            ch.window = wd;
        }
        info.channels.push_back(std::move(ch));
      }
    }
  }
  return {};
}

Status apply_ome_transforms(const json& attrs, const std::string& file, VolumeInfo& info) {
  const json* ms = multiscale0(attrs);
  const Where w{file, "multiscales[0]"};
  const std::size_t nd = info.axes.size();
  std::vector<double> gscale(nd, 1.0), gtrans(nd, 0.0);
  if (auto g = ms->find("coordinateTransformations"); g != ms->end())
    VX_TRY(read_transforms(*g, w / "coordinateTransformations", nd, gscale, gtrans));
  const auto& ds = (*ms)["datasets"];
  for (std::size_t i = 0; i < info.levels.size(); ++i) {
    auto& lv = info.levels[i];
    lv.scale.assign(nd, 1.0);
    lv.translation.assign(nd, 0.0);
    const Where wd = (w / "datasets").at(i);
    if (auto t = ds[i].find("coordinateTransformations"); t != ds[i].end())
      VX_TRY(read_transforms(*t, wd / "coordinateTransformations", nd, lv.scale, lv.translation));
    for (std::size_t d = 0; d < nd; ++d) {
      lv.translation[d] = lv.translation[d] * gscale[d] + gtrans[d];
      lv.scale[d] *= gscale[d];
    }
  }
  return {};
}

}  // namespace vx::data
