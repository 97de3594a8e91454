#include "codec/webp.hpp"

#include <webp/encode.h>

namespace vx::codec {

Result<std::vector<std::uint8_t>> encode_webp(std::span<const std::uint8_t> rgba, int width,
                                              int height, int quality) {
  if (width <= 0 || height <= 0 || width > WEBP_MAX_DIMENSION || height > WEBP_MAX_DIMENSION)
    return fail(ErrorCode::kInvalidArgument, "webp: {}x{} is outside 1..{}", width, height,
                WEBP_MAX_DIMENSION);
  if (rgba.size() < std::size_t(width) * std::size_t(height) * 4)
    return fail(ErrorCode::kInvalidArgument, "webp: {} bytes for {}x{} RGBA", rgba.size(), width,
                height);
  std::uint8_t* out = nullptr;
  const std::size_t size =
      quality >= 100 ? WebPEncodeLosslessRGBA(rgba.data(), width, height, width * 4, &out)
                     : WebPEncodeRGBA(rgba.data(), width, height, width * 4, float(quality), &out);
  if (size == 0 || !out) return fail(ErrorCode::kIo, "webp: encoding {}x{} failed", width, height);
  std::vector<std::uint8_t> bytes(out, out + size);
  WebPFree(out);
  return bytes;
}

}  // namespace vx::codec
