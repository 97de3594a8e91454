// Images that cross subsystem boundaries (renderer -> encoder, DESIGN.md "Seams: Images"):
// the pixel format, a non-owning view that records format, size, pitch and whether the
// pixels live in host or device memory, and a pool of host buffers so that a frame reuses
// the memory of a spent one instead of faulting in fresh pages (a 1080p RGBA frame is 8 MiB).
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string_view>
#include <vector>

namespace vx {

// kRgba8 for images and the JPEG path; I420 and NV12 (BT.709, limited range, as H.264
// encoders take them): the Y plane, then U then V (I420) or interleaved UV (NV12), each
// chroma plane (width / 2) x (height / 2).
enum class PixelFormat { kRgba8, kI420, kNV12 };

std::string_view pixel_format_name(PixelFormat f);  // "rgba8", "i420", "nv12"

// Bytes of a tightly packed image (pitch = width for 4:2:0 luma, 4 * width for RGBA).
std::size_t image_bytes(PixelFormat f, int width, int height);

enum class MemoryKind { kHost, kDevice };

// A view of pixels someone else owns (the owner is named where a view is handed over).
// `pitch` is the bytes from one row of the first plane to the next; planes of 4:2:0 images
// follow the luma plane at pitch * height, with a chroma pitch of pitch (NV12) or pitch / 2
// (I420).
struct ImageView {
  PixelFormat format = PixelFormat::kRgba8;
  int width = 0, height = 0;
  std::size_t pitch = 0;
  MemoryKind memory = MemoryKind::kHost;
  std::uint8_t* data = nullptr;

  bool host() const { return memory == MemoryKind::kHost; }
  bool packed() const;  // pitch is the tight one of image_bytes()
  std::size_t bytes() const;
};

// A packed host view of `bytes` (which must hold image_bytes(format, width, height)).
ImageView host_image(PixelFormat format, int width, int height, std::uint8_t* bytes);

// Spare host buffers of spent frames, handed out again; keeps at most `max_spare` of them.
// Thread-safe. Buffers come back with their old contents (the renderer writes every byte).
class FramePool {
 public:
  explicit FramePool(std::size_t max_spare = 2) : max_spare_(max_spare) {}
  // A buffer of `bytes` bytes: a spare one resized, or a new one.
  std::vector<std::uint8_t> acquire(std::size_t bytes);
  void release(std::vector<std::uint8_t>&& buffer);
  std::size_t spare() const;

 private:
  const std::size_t max_spare_;
  mutable std::mutex mutex_;
  std::vector<std::vector<std::uint8_t>> spare_;
};

}  // namespace vx
