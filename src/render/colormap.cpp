#include "render/colormap.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace vx::render {
namespace {

#include "render/colormap_tables.inc"

constexpr std::string_view kNames[] = {"gray", "viridis", "magma", "inferno", "plasma",  "turbo",
                                       "red",  "green",   "blue",  "cyan",    "magenta", "yellow"};

struct Hue {
  std::string_view name;
  std::array<std::uint8_t, 3> rgb;
};
constexpr Hue kHues[] = {{"gray", {255, 255, 255}}, {"red", {255, 0, 0}},
                         {"green", {0, 255, 0}},    {"blue", {0, 0, 255}},
                         {"cyan", {0, 255, 255}},   {"magenta", {255, 0, 255}},
                         {"yellow", {255, 255, 0}}};

Colormap ramp(std::string name, const std::array<std::uint8_t, 3>& to) {
  Colormap c{std::move(name), {}};
  for (int i = 0; i < 256; ++i)
    for (int k = 0; k < 3; ++k)
      c.rgb[std::size_t(i)][std::size_t(k)] = std::uint8_t((to[std::size_t(k)] * i + 127) / 255);
  return c;
}

Colormap table(std::string name, const std::uint8_t (&t)[256][3]) {
  Colormap c{std::move(name), {}};
  for (std::size_t i = 0; i < 256; ++i)
    c.rgb[i] = {t[i][0], t[i][1], t[i][2]};
  return c;
}

}  // namespace

std::span<const std::string_view> colormap_names() {
  return kNames;
}

Result<Colormap> colormap_by_name(std::string_view name) {
  for (const auto& h : kHues)
    if (h.name == name) return ramp(std::string(name), h.rgb);
  if (name == "viridis") return table("viridis", kViridis);
  if (name == "magma") return table("magma", kMagma);
  if (name == "inferno") return table("inferno", kInferno);
  if (name == "plasma") return table("plasma", kPlasma);
  if (name == "turbo") return table("turbo", kTurbo);
  if (name.size() == 7 && name[0] == '#' &&
      name.find_first_not_of("0123456789abcdefABCDEF", 1) == std::string_view::npos) {
    std::array<std::uint8_t, 3> rgb{};
    for (int k = 0; k < 3; ++k)
      rgb[std::size_t(k)] =
          std::uint8_t(std::stoi(std::string(name.substr(1 + 2 * std::size_t(k), 2)), nullptr, 16));
    return ramp(std::string(name), rgb);
  }
  return fail(ErrorCode::kInvalidArgument, "'{}' is not a colormap ({}, or #RRGGBB)", name,
              fmt::join(kNames, ", "));
}

std::string colormap_for_color(const std::array<std::uint8_t, 3>& rgb) {
  for (const auto& h : kHues)
    if (h.rgb == rgb) return std::string(h.name);
  return fmt::format("#{:02X}{:02X}{:02X}", rgb[0], rgb[1], rgb[2]);
}

}  // namespace vx::render
