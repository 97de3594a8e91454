// open_volume(): detects the format from content first, then from the name.
#include <sys/stat.h>

#include <cstring>

#include "data/file_io.hpp"
#include "data/formats.hpp"

namespace vx::data {

Result<std::shared_ptr<VolumeSource>> open_volume(std::string_view spec, const OpenOptions&) {
  if (spec.starts_with("synthetic:")) return open_synthetic(spec);
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
  if (std::memcmp(h + 344, "n+1\0", 4) == 0 || std::memcmp(h + 344, "ni1\0", 4) == 0 ||
      (h[0] == 0x1f && h[1] == 0x8b && ends_with(".nii.gz")))
    return open_nifti(path);
  // Content did not tell: the name says what the file claims to be, for a precise error.
  if (ends_with(".npy")) return open_npy(path);
  if (ends_with(".tif") || ends_with(".tiff")) return open_tiff(path);
  if (ends_with(".nii") || ends_with(".nii.gz")) return open_nifti(path);
  if (ends_with("zarr.json") || ends_with(".zarray") || ends_with(".zattrs"))
    return fail(ErrorCode::kInvalidArgument,
                "{}: pass the Zarr store's directory, not its metadata file", path);
  return fail(
      ErrorCode::kFormat,
      "{}: not a recognized dataset (OME-Zarr directory, .npy, TIFF, NIfTI, or synthetic:NAME)",
      path);
}

}  // namespace vx::data
