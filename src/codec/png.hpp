// PNG output (libpng) for `voxcast render` and golden images.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/error.hpp"

namespace vx::codec {

// Writes 8-bit RGBA pixels (width * height * 4, top row first) to `path`, atomically.
Status write_png(const std::string& path, int width, int height,
                 std::span<const std::uint8_t> rgba);

// The same PNG in memory (a screenshot answered over HTTP).
Result<std::vector<std::uint8_t>> encode_png(int width, int height,
                                             std::span<const std::uint8_t> rgba);

}  // namespace vx::codec
