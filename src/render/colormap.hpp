// Colormaps as 256-entry RGB lookup tables: gray, the perceptual maps (viridis, magma,
// inferno, plasma, turbo), single-hue channel colours (red, green, blue, cyan, magenta,
// yellow) and any "#RRGGBB" ramp from black.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "core/error.hpp"

namespace vx::render {

struct Colormap {
  std::string name;
  std::array<std::array<std::uint8_t, 3>, 256> rgb{};
};

// The named maps, in the order --help and errors list them.
std::span<const std::string_view> colormap_names();
// A named map or "#RRGGBB"; an unknown name is an error listing the accepted ones.
Result<Colormap> colormap_by_name(std::string_view name);
// The colormap a channel of this colour gets by default: the single-hue name when the
// colour is one of them, else "#RRGGBB".
std::string colormap_for_color(const std::array<std::uint8_t, 3>& rgb);

}  // namespace vx::render
