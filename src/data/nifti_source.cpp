// NIfTI-1 (.nii memory-mapped; .nii.gz inflated once into memory).
#include <fmt/format.h>

#include <cmath>
#include <cstring>

#include "core/memory.hpp"
#include "data/file_io.hpp"
#include "data/mapped_array.hpp"

namespace vx::data {
namespace {

template <class T>
T get(const unsigned char* p, std::size_t off, bool swap) {
  T v;
  std::memcpy(&v, p + off, sizeof(T));
  if (swap) {
    auto* b = reinterpret_cast<unsigned char*>(&v);
    std::reverse(b, b + sizeof(T));
  }
  return v;
}

const char* unit_name(int code) {
  switch (code & 0x07) {
    case 1:
      return "meter";
    case 2:
      return "millimeter";
    case 3:
      return "micrometer";
    default:
      return "";
  }
}

// xyzt_units bits 3..5: NIFTI_UNITS_SEC 8, _MSEC 16, _USEC 24 (Hz, ppm, rad/s: no time unit).
const char* time_unit_name(int code) {
  switch (code & 0x38) {
    case 8:
      return "second";
    case 16:
      return "millisecond";
    case 24:
      return "microsecond";
    default:
      return "";
  }
}

}  // namespace

Result<NiftiHeader> parse_nifti_header(std::span<const std::byte> bytes, const std::string& file) {
  if (bytes.size() < 348)
    return fail(ErrorCode::kCorrupt, "{}: {} bytes cannot hold a NIfTI-1 header (348)", file,
                bytes.size());
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  bool swap = false;
  if (get<std::int32_t>(p, 0, false) != 348) {
    if (get<std::int32_t>(p, 0, true) != 348)
      return fail(ErrorCode::kFormat, "{}: field 'sizeof_hdr' is not 348: not a NIfTI-1 file",
                  file);
    swap = true;
  }
  if (std::memcmp(p + 344, "n+1\0", 4) != 0 && std::memcmp(p + 344, "ni1\0", 4) != 0)
    return fail(ErrorCode::kFormat, "{}: field 'magic' is not \"n+1\" or \"ni1\"", file);
  if (std::memcmp(p + 344, "ni1\0", 4) == 0)
    return fail(ErrorCode::kUnsupported, "{}: a two-file NIfTI pair (.hdr/.img); use a single .nii",
                file);
  NiftiHeader h;
  const int ndim = get<std::int16_t>(p, 40, swap);
  if (ndim < 1 || ndim > 5)
    return fail(ErrorCode::kUnsupported, "{}: field 'dim[0]' is {}, supported are 1 to 5", file,
                ndim);
  std::int64_t dim[6] = {1, 1, 1, 1, 1, 1};
  double pix[6] = {1, 1, 1, 1, 1, 1};
  for (int i = 1; i <= ndim; ++i) {
    dim[i] = get<std::int16_t>(p, 40 + 2 * std::size_t(i), swap);
    if (dim[i] < 1)
      return fail(ErrorCode::kFormat, "{}: field 'dim[{}]' is {}, must be positive", file, i,
                  dim[i]);
    const double px = get<float>(p, 76 + 4 * std::size_t(i), swap);
    pix[i] = px > 0 && std::isfinite(px) ? px : 1.0;
  }
  const int datatype = get<std::int16_t>(p, 70, swap);
  DType dt;
  switch (datatype) {
    case 2:
      dt = DType::kUInt8;
      break;
    case 4:
      dt = DType::kInt16;
      break;
    case 8:
      dt = DType::kInt32;
      break;
    case 16:
      dt = DType::kFloat32;
      break;
    case 64:
      dt = DType::kFloat64;
      break;
    case 256:
      dt = DType::kInt8;
      break;
    case 512:
      dt = DType::kUInt16;
      break;
    case 768:
      dt = DType::kUInt32;
      break;
    default:
      return fail(ErrorCode::kUnsupported, "{}: field 'datatype' {} is not supported", file,
                  datatype);
  }
  const float vox_offset = get<float>(p, 108, swap);
  if (!(vox_offset >= 348.0f) || vox_offset > 1e12f)
    return fail(ErrorCode::kFormat, "{}: field 'vox_offset' is {}, must be at least 348", file,
                vox_offset);
  h.slope = get<float>(p, 112, swap);
  h.intercept = get<float>(p, 116, swap);
  const int units = p[123];
  char descrip[81] = {};
  std::memcpy(descrip, p + 148, 80);
  h.description = descrip;

  // NIfTI stores x fastest: in C order the axes are (c?, t?, z, y, x) reversed from dim[1..].
  static const char* names[] = {"", "x", "y", "z", "t", "c"};
  const int nd = ndim;
  auto& L = h.layout;
  L.dtype = dt;
  L.big_endian = swap;  // our hosts are little-endian
  L.offset = std::uint64_t(vox_offset);
  std::int64_t stride = std::int64_t(dtype_size(dt));
  std::vector<std::int64_t> strides_rev;
  for (int i = 1; i <= nd; ++i) {
    strides_rev.push_back(stride);
    stride *= dim[i];
  }
  for (int i = nd; i >= 1; --i) {
    L.shape.push_back(dim[i]);
    L.strides.push_back(strides_rev[std::size_t(i - 1)]);
    Axis a{names[i],
           i <= 3   ? AxisType::kSpace
           : i == 4 ? AxisType::kTime
                    : AxisType::kChannel,
           i <= 3 ? unit_name(units) : (i == 4 ? time_unit_name(units) : "")};
    h.axes.push_back(std::move(a));
    h.scale.push_back(i <= 4 ? pix[i] : 1.0);
  }
  return h;
}

Result<SourcePtr> open_nifti(const std::string& path) {
  std::shared_ptr<const void> owner;
  std::span<const std::byte> bytes;
  VX_ASSIGN(auto map, Mapping::map_file(path));
  const auto raw = map.bytes();
  std::string codec = "raw, memory-mapped";
  if (raw.size() >= 2 && raw[0] == std::byte{0x1f} && raw[1] == std::byte{0x8b}) {
    // gzip cannot be read at random offsets: inflate once. Use .nii for very large data.
    // Bounded by the memory budget of the machine: a quarter of RAM.
    VX_ASSIGN(auto inflated,
              zlib_decode_any(raw, true, std::size_t(available_ram_bytes() / 4), path));
    auto buf = std::make_shared<Bytes>(std::move(inflated));
    bytes = *buf;
    owner = buf;
    codec = "gzip, inflated in memory";
  } else {
    auto m = std::make_shared<Mapping>(std::move(map));
    bytes = m->bytes();
    owner = m;
  }
  VX_ASSIGN(auto h, parse_nifti_header(bytes, path));
  if (h.layout.bytes_needed() > bytes.size())
    return fail(ErrorCode::kCorrupt,
                "{}: has {} bytes of data but its header needs {} (truncated?)", path, bytes.size(),
                h.layout.bytes_needed());
  VolumeInfo info;
  info.location = path;
  info.format = "nifti";
  info.dtype = h.layout.dtype;
  info.axes = h.axes;
  Level lv;
  lv.shape = h.layout.shape;
  lv.chunks = default_chunks(info.axes, lv.shape);
  lv.scale = h.scale;
  lv.translation.assign(lv.shape.size(), 0.0);
  lv.codec = codec + (h.layout.big_endian ? ", big-endian" : "");
  if (h.slope != 0 && (h.slope != 1 || h.intercept != 0))
    lv.codec +=
        fmt::format(" (scl_slope={} scl_inter={} not applied: raw values)", h.slope, h.intercept);
  info.levels.push_back(std::move(lv));
  info.channels = default_channels(info.axes, info.levels[0].shape);
  return make_mapped_source(std::move(info), std::move(h.layout), owner, bytes);
}

}  // namespace vx::data
