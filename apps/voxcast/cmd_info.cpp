#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "core/progress.hpp"
#include "data/data.hpp"
#include "data/info_json.hpp"

namespace vx::app {
namespace {

using json = nlohmann::json;
using namespace vx::data;

std::string join_dims(const std::vector<std::int64_t>& v) {
  return fmt::format("{}", fmt::join(v, " x "));
}
std::string join_num(const std::vector<double>& v) {
  return fmt::format("{:g}", fmt::join(v, ", "));
}

}  // namespace

void print_info(const VolumeInfo& info) {
  std::string fmt_name = info.format;
  if (!info.format_version.empty()) fmt_name += " " + info.format_version;
  if (info.zarr_format) fmt_name += fmt::format(" (Zarr v{})", info.zarr_format);
  std::vector<std::string> axes;
  for (const auto& a : info.axes)
    axes.push_back(fmt::format("{} ({}{}{})", a.name, axis_type_name(a.type),
                               a.unit.empty() ? "" : ", ", a.unit));
  double bytes = double(dtype_size(info.dtype));
  for (auto s : info.levels[0].shape)
    bytes *= double(s);
  fmt::print("{}\n", info.location);
  fmt::print("  format    {}\n", fmt_name);
  fmt::print("  dtype     {}    fill value {:g}\n", dtype_name(info.dtype), info.fill_value);
  fmt::print("  axes      {}\n", fmt::join(axes, ", "));
  fmt::print("  size      {} at level 0 ({})\n", format_bytes(bytes),
             join_dims(info.levels[0].shape));
  fmt::print("  channels\n");
  for (std::size_t i = 0; i < info.channels.size(); ++i) {
    const auto& c = info.channels[i];
    fmt::print("    {:<3} {:<20} colour {:<7} window {}{}\n", i, c.name,
               c.color ? "#" + color_hex(*c.color) : "-",
               c.window ? fmt::format("{:g}..{:g} (range {:g}..{:g})", c.window->start,
                                      c.window->end, c.window->min, c.window->max)
                        : "-",
               c.visible ? "" : "  (hidden)");
  }
  if (!info.warnings.empty()) {
    fmt::print("  warnings  (the metadata has problems; opened as far as possible)\n");
    for (const auto& w : info.warnings)
      fmt::print("    {}\n", w.str());
  }
  fmt::print("  levels\n");
  fmt::print("    {:<5} {:<6} {:<26} {:<18} {:<24} {}\n", "level", "path", "shape", "chunks",
             "scale", "codec");
  for (std::size_t i = 0; i < info.levels.size(); ++i) {
    const auto& l = info.levels[i];
    fmt::print("    {:<5} {:<6} {:<26} {:<18} {:<24} {}\n", i, l.path.empty() ? "-" : l.path,
               fmt::format("{}", fmt::join(l.shape, "x")),
               fmt::format("{}", fmt::join(l.chunks, "x")), join_num(l.scale), l.codec);
  }
}

std::string info_json(const VolumeInfo& info) {
  return info_to_json(info).dump(2);
}

Runner add_info(CLI::App& app, const GlobalOptions& g) {
  auto* cmd = app.add_subcommand("info",
                                 "Describe a dataset: format, axes and units, levels with shape, "
                                 "chunks, scale and codecs, dtype, channels");
  auto data = std::make_shared<std::string>();
  auto as_json = std::make_shared<bool>(false);
  cmd->add_option("DATA", *data, "Dataset path or synthetic:NAME[?k=v&...]")->required();
  auto strict = std::make_shared<bool>(false);
  cmd->add_flag("--json", *as_json, "Print one JSON object for machines");
  cmd->add_flag("--strict", *strict,
                "Validate: every metadata warning is an error (exit code 1), for checking data "
                "before sharing it");
  cmd->footer(
      "Example: voxcast info /scratch/brain.ome.zarr --json\n"
      "         voxcast info --strict /scratch/brain.ome.zarr   # exit 1 on any metadata problem");
  return [data, as_json, strict, &g]() {
    auto src = open_volume(*data, g.open_options());
    if (!src) return report(src.error().what());
    if (*strict && !(*src)->info().warnings.empty()) {
      for (const auto& w : (*src)->info().warnings)
        report("invalid metadata: " + w.str());
      return report(fmt::format("{}: {} metadata problem(s) (--strict)", *data,
                                (*src)->info().warnings.size()));
    }
    if (*as_json)
      fmt::print("{}\n", info_json((*src)->info()));
    else
      print_info((*src)->info());
    return 0;
  };
}

}  // namespace vx::app
