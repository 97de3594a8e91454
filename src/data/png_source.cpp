// PNG images through libpng: a 2D image, decoded once into memory at open. Gray is one channel;
// gray+alpha, RGB and RGBA are channels (c, y, x): red, green and blue additive with the full
// range of the type as their window (so the picture is the image's own colours; gray gets the
// percentiles, as other data), and alpha a hidden channel. Palette images are expanded to RGB(A);
// bit depths under 8 to 8; 16-bit samples stay 16-bit (raw values, no gamma).
#include <fmt/format.h>
#include <png.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "core/libpng_errors.hpp"
#include "core/memory.hpp"
#include "data/mapped_array.hpp"

namespace vx::data {
namespace {

using libpng::on_error;
using libpng::on_warning;
using PngError = libpng::Error;

struct FileCloser {
  void operator()(std::FILE* f) const {
    if (f) std::fclose(f);
  }
};

}  // namespace

// Channel names, colours and windows of a colour image's samples (shared with TIFF).
std::vector<Channel> colour_channels(int samples, bool rgb, DType dtype) {
  const double top = dtype == DType::kUInt16 ? 65535 : dtype == DType::kUInt8 ? 255 : 1;
  std::vector<Channel> out;
  const bool alpha = samples == 2 || samples == 4;
  const int colours = alpha ? samples - 1 : samples;
  static const char* names[] = {"red", "green", "blue"};
  static const std::array<std::uint8_t, 3> rgbs[] = {{255, 0, 0}, {0, 255, 0}, {0, 0, 255}};
  for (int c = 0; c < colours; ++c) {
    Channel ch;
    if (rgb && colours == 3) {
      ch.name = names[c];
      ch.color = rgbs[c];
    } else {
      ch.name = colours == 1 ? "gray" : fmt::format("channel {}", c);
      if (colours == 1) ch.color = std::array<std::uint8_t, 3>{255, 255, 255};
    }
    if (rgb) ch.window = Window{0, top, 0, top};
    out.push_back(std::move(ch));
  }
  if (alpha)
    out.push_back(Channel{"alpha", std::array<std::uint8_t, 3>{255, 255, 255},
                          Window{0, top, 0, top}, false});
  return out;
}

Result<SourcePtr> open_png(const std::string& path) {
  std::unique_ptr<std::FILE, FileCloser> f(std::fopen(path.c_str(), "rb"));
  if (!f) return fail(ErrorCode::kIo, "{}: cannot open: {}", path, std::strerror(errno));
  return read_png(f.get(), path, available_ram_bytes() / 4);
}

Result<SourcePtr> read_png(std::FILE* file, const std::string& path, std::uint64_t max_bytes) {
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, nullptr, on_error, on_warning);
  png_infop pinfo = png ? png_create_info_struct(png) : nullptr;
  auto buf = std::make_shared<Bytes>();
  std::uint32_t width = 0, height = 0;
  int depth = 0, color = 0, samples = 0;
  std::string error;
  ErrorCode code = ErrorCode::kCorrupt;
  try {
    if (!png || !pinfo) throw PngError{"cannot allocate the PNG reader"};
    png_set_user_limits(png, 1u << 20, 1u << 20);  // libpng's own bound on each side
    png_init_io(png, file);
    png_read_info(png, pinfo);
    width = png_get_image_width(png, pinfo);
    height = png_get_image_height(png, pinfo);
    depth = png_get_bit_depth(png, pinfo);
    color = png_get_color_type(png, pinfo);
    if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (png_get_valid(png, pinfo, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, pinfo);
    depth = png_get_bit_depth(png, pinfo);
    samples = png_get_channels(png, pinfo);
    const std::size_t row = png_get_rowbytes(png, pinfo);
    const std::uint64_t total = std::uint64_t(row) * height;
    if (total > max_bytes) {
      code = ErrorCode::kUnsupported;
      throw PngError{
          fmt::format("{}x{} pixels need {} bytes, over the limit of {} (a quarter "
                      "of the RAM)",
                      width, height, total, max_bytes)};
    }
    buf->resize(std::size_t(total));
    std::vector<png_bytep> rows(height);
    for (std::uint32_t y = 0; y < height; ++y)
      rows[y] = reinterpret_cast<png_bytep>(buf->data() + std::size_t(y) * row);
    png_read_image(png, rows.data());
    png_read_end(png, nullptr);
  } catch (const PngError& e) {
    error = e.message;
  } catch (const std::bad_alloc&) {
    error = "out of memory";
  }
  png_destroy_read_struct(&png, &pinfo, nullptr);
  if (!error.empty()) return fail(code, "{}: reading PNG: {}", path, error);
  const DType dtype = depth == 16 ? DType::kUInt16 : DType::kUInt8;
  const std::int64_t item = depth == 16 ? 2 : 1;
  VolumeInfo info;
  info.location = path;
  info.format = "png";
  info.dtype = dtype;
  ArrayLayout layout;
  layout.dtype = dtype;
  layout.big_endian = depth == 16;  // PNG stores 16-bit samples big-endian
  const std::int64_t w = width, h = height, s = samples;
  if (samples == 1) {
    info.axes = default_axes(2);
    layout.shape = {h, w};
    layout.strides = {w * item, item};
  } else {
    info.axes = default_axes(3);  // z, y, x: the first becomes c
    info.axes[0] = Axis{"c", AxisType::kChannel, ""};
    layout.shape = {s, h, w};
    layout.strides = {item, w * s * item, s * item};
  }
  Level lv;
  lv.shape = layout.shape;
  lv.chunks = default_chunks(info.axes, lv.shape);
  lv.scale.assign(lv.shape.size(), 1.0);
  lv.translation.assign(lv.shape.size(), 0.0);
  lv.codec = fmt::format("png ({}-bit, {} sample{}), decoded in memory", depth, samples,
                         samples == 1 ? "" : "s");
  info.levels.push_back(std::move(lv));
  const bool rgb = (color & PNG_COLOR_MASK_COLOR) != 0;
  info.channels = colour_channels(samples, rgb, dtype);
  std::span<const std::byte> bytes(*buf);
  return make_mapped_source(std::move(info), std::move(layout), buf, bytes);
}

}  // namespace vx::data
