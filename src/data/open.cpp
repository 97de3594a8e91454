// open_volume(): detects the format from content first, then from the name.
#include <sys/stat.h>

#include <chrono>
#include <cstring>
#include <thread>

#include "core/log.hpp"
#include "data/file_io.hpp"
#include "data/formats.hpp"

namespace vx::data {

namespace {

// Wraps a source so that each chunk read first waits, as on network storage (benchmarks).
class LatencySource final : public VolumeSource {
 public:
  LatencySource(std::shared_ptr<VolumeSource> inner, double ms)
      : inner_(std::move(inner)), wait_(std::int64_t(ms * 1000)) {}
  const VolumeInfo& info() const override { return inner_->info(); }
  Result<ReadResult> read_chunk(int level, const Index& index,
                                std::span<std::byte> out) const override {
    std::this_thread::sleep_for(wait_);
    return inner_->read_chunk(level, index, out);
  }
  // Like a network file system: many reads in flight hide the wait.
  unsigned io_concurrency() const override {
    return std::max(inner_->io_concurrency(), 16 * io_concurrency_for_path(""));
  }

 private:
  std::shared_ptr<VolumeSource> inner_;
  std::chrono::microseconds wait_;
};

Result<std::shared_ptr<VolumeSource>> open_path(std::string_view spec);

}  // namespace

Result<std::shared_ptr<VolumeSource>> open_volume(std::string_view spec,
                                                  const OpenOptions& options) {
  if (options.latency_ms < 0 || options.latency_ms > 10000)
    return fail(ErrorCode::kInvalidArgument, "latency {} ms is outside 0..10000",
                options.latency_ms);
  if (spec.starts_with("synthetic:")) return open_synthetic(spec);
  VX_ASSIGN(auto src, open_path(spec));
  // Each metadata problem once, when the dataset is opened (voxcast info also lists them).
  for (const auto& w : src->info().warnings)
    VX_LOG(warn, "data.metadata", "file={} field={} message={}", log_quote(w.file),
           log_quote(w.field), log_quote(w.message));
  if (options.latency_ms > 0)
    return std::shared_ptr<VolumeSource>(std::make_shared<LatencySource>(src, options.latency_ms));
  return src;
}

namespace {

Result<std::shared_ptr<VolumeSource>> open_path(std::string_view spec) {
  const std::string path(spec);
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    return fail(ErrorCode::kNotFound, "{}: no such file or directory", path);
  if (S_ISDIR(st.st_mode)) return open_zarr(path);

  std::byte head[352] = {};
  {
    VX_ASSIGN(auto file, File::open(path));
    VX_ASSIGN(auto size, file.size(path));
    const auto n = std::min<std::uint64_t>(size, sizeof head);
    VX_TRY(file.pread_exact(std::span(head, std::size_t(n)), 0, path));
  }
  const auto* h = reinterpret_cast<const unsigned char*>(head);
  auto ends_with = [&](std::string_view s) { return path.size() >= s.size() && path.ends_with(s); };
  if (std::memcmp(h, "\x93NUMPY", 6) == 0) return open_npy(path);
  if (std::memcmp(h, "II*\0", 4) == 0 || std::memcmp(h, "MM\0*", 4) == 0 ||
      std::memcmp(h, "II+\0", 4) == 0 || std::memcmp(h, "MM\0+", 4) == 0)
    return open_tiff(path);
  if (std::memcmp(h, "\x89PNG\r\n\x1a\n", 8) == 0) return open_png(path);
  if (std::memcmp(h + 344, "n+1\0", 4) == 0 || std::memcmp(h + 344, "ni1\0", 4) == 0 ||
      (h[0] == 0x1f && h[1] == 0x8b && ends_with(".nii.gz")))
    return open_nifti(path);
  // Content did not tell: the name says what the file claims to be, for a precise error.
  if (ends_with(".npy")) return open_npy(path);
  if (ends_with(".tif") || ends_with(".tiff")) return open_tiff(path);
  if (ends_with(".nii") || ends_with(".nii.gz")) return open_nifti(path);
  if (ends_with(".png")) return open_png(path);
  if (ends_with("zarr.json") || ends_with(".zarray") || ends_with(".zattrs"))
    return fail(ErrorCode::kInvalidArgument,
                "{}: pass the Zarr store's directory, not its metadata file", path);
  return fail(ErrorCode::kFormat,
              "{}: not a recognized dataset (OME-Zarr directory, .npy, TIFF, NIfTI, PNG, or "
              "synthetic:NAME)",
              path);
}

}  // namespace
}  // namespace vx::data
