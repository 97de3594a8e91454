// voxcast data layer, public interface: volume sources (OME-Zarr v2/v3, NumPy, TIFF,
// NIfTI, synthetic), described by VolumeInfo and read chunk by chunk.
//
// Sources decode synchronously and are thread-safe; the ChunkCache (chunk_cache.hpp) makes
// reads asynchronous, prioritized, de-duplicated and bounded by a byte budget. No consumer
// ever needs a whole resolution level in memory.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"

namespace vx::data {

// OME-NGFF allows up to 5 axes (t, c, z, y, x subsets).
inline constexpr int kMaxDims = 5;
// Chunk grid coordinates (or voxel coordinates), first `ndim` entries used.
using Index = std::array<std::int64_t, kMaxDims>;

enum class DType : std::uint8_t {
  kUInt8,
  kInt8,
  kUInt16,
  kInt16,
  kUInt32,
  kInt32,
  kFloat32,
  kFloat64
};
std::size_t dtype_size(DType t);
std::string_view dtype_name(DType t);  // numpy names: "uint16", "float32"
Result<DType> parse_dtype_name(std::string_view name);

enum class AxisType : std::uint8_t { kSpace, kTime, kChannel, kOther };
std::string_view axis_type_name(AxisType t);

struct Axis {
  std::string name;  // "z"
  AxisType type = AxisType::kSpace;
  std::string unit;  // "micrometer", may be empty
};

struct Level {
  std::string path;                  // dataset path inside the container ("0"), or ""
  std::vector<std::int64_t> shape;   // voxels per axis
  std::vector<std::int64_t> chunks;  // the unit of reads (inner chunk when sharded)
  std::vector<double> scale;         // physical size of one voxel per axis
  std::vector<double> translation;   // physical position of voxel 0 per axis
  std::string codec;                 // human-readable codec chain, e.g. "blosc(lz4,shuffle)"

  int ndim() const { return static_cast<int>(shape.size()); }
  std::vector<std::int64_t> grid() const;  // chunks per axis (ceil(shape / chunks))
  std::int64_t chunk_count() const;
  std::int64_t chunk_voxels() const;
};

struct Window {
  double start = 0, end = 0, min = 0, max = 0;
};

// "FF00FF", as OME "omero" writes colours.
std::string color_hex(const std::array<std::uint8_t, 3>& rgb);

struct Channel {
  std::string name;
  std::optional<std::array<std::uint8_t, 3>> color;  // RGB
  std::optional<Window> window;                      // display window (OME "omero")
  bool visible = true;
};

// A problem in the metadata that did not stop the data from opening (each reported once):
// the file, the field (a JSON path such as "multiscales[0].axes[1].type", or a TIFF tag such
// as "ImageDescription: spacing") and what is wrong.
struct MetadataWarning {
  std::string file, field, message;
  std::string str() const;  // "FILE: field 'FIELD': MESSAGE"
  bool operator==(const MetadataWarning&) const = default;
};

struct VolumeInfo {
  std::string location;        // the path or synthetic: spec it was opened from
  std::string format;          // "ome-zarr", "zarr", "npy", "tiff", "nifti", "synthetic"
  std::string format_version;  // "0.4", "0.5", "" when not applicable
  int zarr_format = 0;         // 2 or 3 for Zarr stores, else 0
  std::vector<Axis> axes;
  DType dtype = DType::kUInt8;
  double fill_value = 0;
  std::vector<Level> levels;              // finest first
  std::vector<Channel> channels;          // one per index of the channel axis (or one)
  std::vector<MetadataWarning> warnings;  // problems that did not stop opening

  int ndim() const { return static_cast<int>(axes.size()); }
  // Index of the first axis named `name`, or -1.
  int axis_index(std::string_view name) const;
  // Bytes of one decoded chunk of `level` (full chunk shape).
  std::size_t chunk_bytes(int level) const;
};

struct ReadResult {
  bool missing = false;          // no stored chunk: the consumer sees the fill value
  std::uint64_t bytes_read = 0;  // bytes taken from storage (compressed)
};

class VolumeSource {
 public:
  virtual ~VolumeSource() = default;
  virtual const VolumeInfo& info() const = 0;

  // Reads chunk `index` (chunk-grid coordinates) of `level` and decodes it into `out`,
  // which holds exactly info().chunk_bytes(level) bytes: C order over the full chunk
  // shape, native byte order, info().dtype; the part of an edge chunk beyond the array is
  // set to the fill value. A chunk absent from storage returns missing=true and leaves
  // `out` untouched. Thread-safe. Errors name the file and the reason.
  virtual Result<ReadResult> read_chunk(int level, const Index& index,
                                        std::span<std::byte> out) const = 0;

  // How many reads should be in flight at once to hide this source's storage latency. Local
  // disks and the page cache want about 2 per core (more threads only contend); network file
  // systems and object stores want many. The chunk cache sizes its I/O pool from this.
  virtual unsigned io_concurrency() const;
};

// 2 x cores, or 16 x that on a network file system (NFS, Lustre, GPFS, BeeGFS, CephFS,
// CIFS/SMB, FUSE), judged by statfs() of `path`.
unsigned io_concurrency_for_path(const std::string& path);

struct OpenOptions {
  // Simulated storage latency for benchmarks: every chunk read of a file-backed source waits
  // this long first (reads overlap, like network storage). synthetic: has its own latency_ms.
  double latency_ms = 0;
};

// Opens a path (format detected from content and name) or "synthetic:NAME[?k=v&...]".
Result<std::shared_ptr<VolumeSource>> open_volume(std::string_view spec,
                                                  const OpenOptions& options = {});

// Fills `out` (count elements of `dtype`) with `value` converted to that dtype.
void fill_with(std::span<std::byte> out, DType dtype, double value);

}  // namespace vx::data
