// WebP images (libwebp): the orbit's sprite sheets.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/error.hpp"

namespace vx::codec {

// RGBA8 rows (width * 4 bytes each) to WebP: lossy at `quality` 0..99, lossless at 100.
Result<std::vector<std::uint8_t>> encode_webp(std::span<const std::uint8_t> rgba, int width,
                                              int height, int quality);

}  // namespace vx::codec
