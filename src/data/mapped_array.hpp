// Headers of single-file array formats and a source over a memory-mapped (or inflated)
// strided array (private to src/data). Used by .npy and NIfTI.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <vector>

#include "data/codecs.hpp"
#include "data/formats.hpp"

namespace vx::data {

struct ArrayLayout {
  std::vector<std::int64_t> shape;    // C-order shape as exposed
  std::vector<std::int64_t> strides;  // bytes per step along each exposed axis
  std::uint64_t offset = 0;           // byte offset of element 0
  DType dtype = DType::kUInt8;
  bool big_endian = false;
  std::uint64_t bytes_needed() const;  // offset + extent, to check against the file size
};

struct NpyHeader {
  ArrayLayout layout;
  std::uint64_t header_bytes = 0;
};
// Parses the .npy header at the start of `bytes` (needs the first header_bytes).
Result<NpyHeader> parse_npy_header(std::span<const std::byte> bytes, const std::string& file);
// A v1.0 header for a little-endian C-order array.
std::string make_npy_header(DType dtype, std::span<const std::int64_t> shape);

struct NiftiHeader {
  ArrayLayout layout;
  std::vector<Axis> axes;
  std::vector<double> scale;
  double slope = 1, intercept = 0;
  std::string description;
};
Result<NiftiHeader> parse_nifti_header(std::span<const std::byte> bytes, const std::string& file);

// Chunk shape for arrays without one of their own: 1 on c/t, 32 on z, 256 on y/x.
std::vector<std::int64_t> default_chunks(const std::vector<Axis>& axes,
                                         const std::vector<std::int64_t>& shape);

// A source over `data` laid out as `layout`; `owner` keeps the bytes alive.
SourcePtr make_mapped_source(VolumeInfo info, ArrayLayout layout, std::shared_ptr<const void> owner,
                             std::span<const std::byte> data);

}  // namespace vx::data
