#include "data/info_json.hpp"

#include <cmath>

namespace vx::data {

using json = nlohmann::json;

json info_to_json(const VolumeInfo& info) {
  json axes = json::array(), levels = json::array(), channels = json::array();
  for (const auto& a : info.axes)
    axes.push_back(
        {{"name", a.name}, {"type", std::string(axis_type_name(a.type))}, {"unit", a.unit}});
  for (const auto& l : info.levels)
    levels.push_back({{"path", l.path},
                      {"shape", l.shape},
                      {"chunks", l.chunks},
                      {"scale", l.scale},
                      {"translation", l.translation},
                      {"codec", l.codec}});
  for (const auto& c : info.channels) {
    json j = {{"name", c.name}, {"color", nullptr}, {"window", nullptr}, {"visible", c.visible}};
    if (c.color) j["color"] = color_hex(*c.color);
    if (c.window)
      j["window"] = {{"start", c.window->start},
                     {"end", c.window->end},
                     {"min", c.window->min},
                     {"max", c.window->max}};
    channels.push_back(j);
  }
  json warnings = json::array();
  for (const auto& w : info.warnings)
    warnings.push_back({{"file", w.file}, {"field", w.field}, {"message", w.message}});
  json fill = info.fill_value;
  if (std::isnan(info.fill_value)) fill = "NaN";
  return {{"location", info.location},
          {"format", info.format},
          {"format_version", info.format_version},
          {"zarr_format", info.zarr_format},
          {"dtype", std::string(dtype_name(info.dtype))},
          {"fill_value", fill},
          {"axes", axes},
          {"levels", levels},
          {"channels", channels},
          {"warnings", warnings}};
}

}  // namespace vx::data
