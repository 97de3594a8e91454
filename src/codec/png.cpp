#include "codec/png.hpp"

#include <png.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

#include "core/libpng_errors.hpp"

namespace vx::codec {
namespace {

using libpng::on_error;
using libpng::on_warning;
using PngError = libpng::Error;

void append_bytes(png_structp png, png_bytep data, png_size_t n) {
  auto* out = static_cast<std::vector<std::uint8_t>*>(png_get_io_ptr(png));
  out->insert(out->end(), data, data + n);
}
void flush_nothing(png_structp) {}
}  // namespace

Result<std::vector<std::uint8_t>> encode_png(int width, int height,
                                             std::span<const std::uint8_t> rgba) {
  if (width <= 0 || height <= 0 || rgba.size() != std::size_t(width) * std::size_t(height) * 4)
    return fail(ErrorCode::kInvalidArgument, "PNG: {}x{} RGBA needs {} bytes, got {}", width,
                height, std::size_t(width) * std::size_t(height) * 4, rgba.size());
  std::vector<std::uint8_t> out;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, on_error, on_warning);
  png_infop info = png ? png_create_info_struct(png) : nullptr;
  std::string error;
  try {
    if (!png || !info) throw PngError{"cannot allocate the PNG writer"};
    png_set_write_fn(png, &out, append_bytes, flush_nothing);
    png_set_compression_level(png, 6);
    png_set_IHDR(png, info, png_uint_32(width), png_uint_32(height), 8, PNG_COLOR_TYPE_RGBA,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < height; ++y)
      png_write_row(png,
                    const_cast<png_bytep>(rgba.data() + std::size_t(y) * std::size_t(width) * 4));
    png_write_end(png, nullptr);
  } catch (const PngError& e) {
    error = e.message;
  }
  png_destroy_write_struct(&png, &info);
  if (!error.empty()) return fail(ErrorCode::kInternal, "encoding PNG: {}", error);
  return out;
}

// Encodes in memory, then writes `path` through a temporary file renamed into place, so
// that a reader never sees half a PNG.
Status write_png(const std::string& path, int width, int height,
                 std::span<const std::uint8_t> rgba) {
  auto bytes = encode_png(width, height, rgba);
  if (!bytes) return tl::unexpected(with_context(bytes.error(), path));
  const std::string tmp = path + ".part";
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) return fail(ErrorCode::kIo, "{}: cannot create: {}", tmp, std::strerror(errno));
  const bool written = std::fwrite(bytes->data(), 1, bytes->size(), f) == bytes->size();
  const int saved = errno;
  const bool closed = std::fclose(f) == 0;
  if (!written || !closed) {
    std::remove(tmp.c_str());
    return fail(ErrorCode::kIo, "{}: writing PNG: {}", path,
                std::strerror(written ? errno : saved));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0)
    return fail(ErrorCode::kIo, "{}: rename: {}", path, std::strerror(errno));
  return {};
}

}  // namespace vx::codec
