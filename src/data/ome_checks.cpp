// OME-NGFF metadata that is wrong but usable: misspelt keys, axis types and units outside the
// spec, levels whose scales disagree. Each problem is one MetadataWarning naming the file and
// the JSON path; nothing here refuses to open data.
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>

#include "core/text.hpp"
#include "data/formats.hpp"
#include "data/units.hpp"

namespace vx::data {
namespace {

using Keys = std::vector<std::string>;

void warn(std::vector<MetadataWarning>& out, const Where& w, std::string message) {
  out.push_back({w.file, w.field, std::move(message)});
}

// Unknown keys of `obj`: a near miss of a known key that is absent is read as that key (a
// misspelt "coordinateTransformation" still applies); anything else is ignored. One warning
// each.
void repair_keys(json& obj, const Where& w, const Keys& known, std::vector<MetadataWarning>& out) {
  if (!obj.is_object()) return;
  std::vector<std::pair<std::string, std::string>> renames;
  for (const auto& [key, value] : obj.items()) {
    if (std::find(known.begin(), known.end(), key) != known.end()) continue;
    const auto near = closest_word(key, known, std::max<std::size_t>(2, key.size() / 6));
    if (!near.empty() && !obj.contains(near)) {
      warn(out, w / key, fmt::format("unknown key '{}', read as '{}' (a misspelling?)", key, near));
      renames.emplace_back(key, near);
    } else {
      warn(out, w / key,
           near.empty()
               ? fmt::format("unknown key '{}' is ignored (known: {})", key, fmt::join(known, ", "))
               : fmt::format("unknown key '{}' is ignored (did you mean '{}'?)", key, near));
    }
  }
  for (auto& [from, to] : renames) {
    obj[to] = std::move(obj[from]);
    obj.erase(from);
  }
}

void repair_transforms(json& list, const Where& w, std::vector<MetadataWarning>& out) {
  if (!list.is_array()) return;
  for (std::size_t i = 0; i < list.size(); ++i)
    repair_keys(list[i], w.at(i), {"type", "scale", "translation", "path"}, out);
}

}  // namespace

json repair_ome(const json& attrs, const std::string& file, std::vector<MetadataWarning>& out) {
  json fixed = attrs;
  auto ms = fixed.find("multiscales");
  if (ms == fixed.end() || !ms->is_array() || ms->empty()) return fixed;
  const Where w{file, "multiscales[0]"};
  json& m = (*ms)[0];
  if (!m.is_object()) return fixed;
  repair_keys(
      m, w,
      {"version", "name", "type", "metadata", "axes", "datasets", "coordinateTransformations"},
      out);
  if (auto t = m.find("coordinateTransformations"); t != m.end())
    repair_transforms(*t, w / "coordinateTransformations", out);
  if (auto axes = m.find("axes"); axes != m.end() && axes->is_array())
    for (std::size_t i = 0; i < axes->size(); ++i)
      repair_keys((*axes)[i], (w / "axes").at(i), {"name", "type", "unit"}, out);
  // Since 0.4 every dataset MUST have its transformations (0.1 to 0.3 had none).
  const bool v04 =
      m.contains("axes") && m["axes"].is_array() && !m["axes"].empty() && m["axes"][0].is_object();
  if (auto ds = m.find("datasets"); ds != m.end() && ds->is_array()) {
    for (std::size_t i = 0; i < ds->size(); ++i) {
      const Where wd = (w / "datasets").at(i);
      json& d = (*ds)[i];
      if (!d.is_object()) continue;
      repair_keys(d, wd, {"path", "coordinateTransformations"}, out);
      if (auto t = d.find("coordinateTransformations"); t != d.end())
        repair_transforms(*t, wd / "coordinateTransformations", out);
      else if (v04)
        warn(out, wd,
             "no 'coordinateTransformations' (required since OME-NGFF 0.4): this level is read "
             "with scale 1");
    }
  }
  return fixed;
}

AxisType checked_axis_type(const std::string& type, const Where& w,
                           std::vector<MetadataWarning>& out) {
  if (type == "space") return AxisType::kSpace;
  if (type == "time") return AxisType::kTime;
  if (type == "channel") return AxisType::kChannel;
  const auto near = closest_word(type, {"space", "time", "channel"});
  if (!near.empty()) {
    warn(
        out, w,
        fmt::format("axis type '{}' is not one of space, time, channel; read as '{}'", type, near));
    return near == "space"  ? AxisType::kSpace
           : near == "time" ? AxisType::kTime
                            : AxisType::kChannel;
  }
  warn(out, w,
       fmt::format("axis type '{}' is not one of the OME-NGFF types (space, time, channel); "
                   "the axis is neither drawn as space nor split into channels",
                   type));
  return AxisType::kOther;
}

std::string checked_axis_unit(const std::string& unit, AxisType type, const Where& w,
                              std::vector<MetadataWarning>& out) {
  if (unit.empty()) return unit;
  if (type == AxisType::kSpace || type == AxisType::kTime) {
    const bool space = type == AxisType::kSpace;
    if (space ? is_ngff_space_unit(unit) : is_ngff_time_unit(unit)) return unit;
    const auto as = space ? ngff_length_unit(unit) : ngff_time_unit(unit);
    if (as && !as->empty()) {
      warn(out, w,
           fmt::format("unit '{}' is not an OME-NGFF {} unit; read as '{}'", unit,
                       space ? "space" : "time", *as));
      return *as;
    }
    warn(out, w,
         fmt::format("unit '{}' is not an OME-NGFF {} unit (such as {})", unit,
                     space ? "space" : "time",
                     space ? "micrometer, nanometer, millimeter" : "second, millisecond"));
    return unit;
  }
  return unit;
}

void check_ome_levels(VolumeInfo& info, const std::string& file) {
  const Where w{file, "multiscales[0].datasets"};
  const auto& l0 = info.levels[0];
  for (std::size_t i = 1; i < info.levels.size(); ++i) {
    const auto& prev = info.levels[i - 1];
    const auto& lv = info.levels[i];
    const Where wi = w.at(i) / "coordinateTransformations";
    for (std::size_t d = 0; d < info.axes.size() && d < lv.scale.size(); ++d) {
      if (info.axes[d].type != AxisType::kSpace) continue;
      const auto& name = info.axes[d].name;
      if (lv.scale[d] < prev.scale[d]) {
        warn(info.warnings, wi,
             fmt::format("scale on axis '{}' is {:g}, smaller than level {}'s {:g}: levels must "
                         "go from the finest to the coarsest",
                         name, lv.scale[d], i - 1, prev.scale[d]));
        continue;
      }
      // The level covers the same physical extent as level 0, within one of its voxels.
      const double extent = double(lv.shape[d]) * lv.scale[d];
      const double extent0 = double(l0.shape[d]) * l0.scale[d];
      if (std::abs(extent - extent0) > lv.scale[d] * 1.001 + 1e-9 * extent0)
        warn(info.warnings, wi,
             fmt::format("scale on axis '{}' is {:g}, but {} voxels of it span {:g} where level "
                         "0 spans {:g} (expected a scale near {:g})",
                         name, lv.scale[d], lv.shape[d], extent, extent0,
                         extent0 / double(lv.shape[d])));
    }
  }
}

}  // namespace vx::data
