#include "core/image.hpp"

namespace vx {

std::string_view pixel_format_name(PixelFormat f) {
  switch (f) {
    case PixelFormat::kRgba8:
      return "rgba8";
    case PixelFormat::kI420:
      return "i420";
    case PixelFormat::kNV12:
      break;
  }
  return "nv12";
}

std::size_t image_bytes(PixelFormat f, int width, int height) {
  const auto luma = std::size_t(width) * std::size_t(height);
  return f == PixelFormat::kRgba8 ? 4 * luma : luma + luma / 2;
}

bool ImageView::packed() const {
  return pitch == (format == PixelFormat::kRgba8 ? 4 : 1) * std::size_t(width);
}

std::size_t ImageView::bytes() const {
  const auto rows = std::size_t(height);
  return format == PixelFormat::kRgba8 ? pitch * rows : pitch * rows + pitch * rows / 2;
}

ImageView host_image(PixelFormat format, int width, int height, std::uint8_t* bytes) {
  ImageView v;
  v.format = format;
  v.width = width;
  v.height = height;
  v.pitch = (format == PixelFormat::kRgba8 ? 4 : 1) * std::size_t(width);
  v.memory = MemoryKind::kHost;
  v.data = bytes;
  return v;
}

std::vector<std::uint8_t> FramePool::acquire(std::size_t bytes) {
  std::vector<std::uint8_t> out;
  {
    std::lock_guard lock(mutex_);
    if (!spare_.empty()) {
      out = std::move(spare_.back());
      spare_.pop_back();
    }
  }
  out.resize(bytes);
  return out;
}

void FramePool::release(std::vector<std::uint8_t>&& buffer) {
  if (buffer.capacity() == 0) return;
  std::lock_guard lock(mutex_);
  if (spare_.size() < max_spare_) spare_.push_back(std::move(buffer));
}

std::size_t FramePool::spare() const {
  std::lock_guard lock(mutex_);
  return spare_.size();
}

}  // namespace vx
