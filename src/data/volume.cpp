#include <sys/vfs.h>

#include <algorithm>
#include <cstring>
#include <thread>

#include "data/data.hpp"

namespace vx::data {

std::size_t dtype_size(DType t) {
  switch (t) {
    case DType::kUInt8:
    case DType::kInt8:
      return 1;
    case DType::kUInt16:
    case DType::kInt16:
      return 2;
    case DType::kUInt32:
    case DType::kInt32:
    case DType::kFloat32:
      return 4;
    case DType::kFloat64:
      return 8;
  }
  return 1;
}

std::string_view dtype_name(DType t) {
  switch (t) {
    case DType::kUInt8:
      return "uint8";
    case DType::kInt8:
      return "int8";
    case DType::kUInt16:
      return "uint16";
    case DType::kInt16:
      return "int16";
    case DType::kUInt32:
      return "uint32";
    case DType::kInt32:
      return "int32";
    case DType::kFloat32:
      return "float32";
    case DType::kFloat64:
      return "float64";
  }
  return "?";
}

Result<DType> parse_dtype_name(std::string_view name) {
  for (auto t : {DType::kUInt8, DType::kInt8, DType::kUInt16, DType::kInt16, DType::kUInt32,
                 DType::kInt32, DType::kFloat32, DType::kFloat64}) {
    if (dtype_name(t) == name) return t;
  }
  return fail(ErrorCode::kUnsupported,
              "data type '{}' is not supported (uint8, int8, uint16, int16, uint32, int32, "
              "float32, float64)",
              name);
}

std::string_view axis_type_name(AxisType t) {
  switch (t) {
    case AxisType::kSpace:
      return "space";
    case AxisType::kTime:
      return "time";
    case AxisType::kChannel:
      return "channel";
    case AxisType::kOther:
      return "other";
  }
  return "other";
}

unsigned VolumeSource::io_concurrency() const {
  return io_concurrency_for_path("");
}

unsigned io_concurrency_for_path(const std::string& path) {
  const unsigned local = 2 * std::max(1u, std::thread::hardware_concurrency());
  struct statfs fs {};
  if (path.empty() || ::statfs(path.c_str(), &fs) != 0) return local;
  switch (static_cast<std::uint64_t>(fs.f_type)) {
    case 0x6969:      // NFS
    case 0x0BD00BD0:  // Lustre
    case 0x47504653:  // GPFS
    case 0x19830326:  // BeeGFS
    case 0x00C36400:  // CephFS
    case 0xFF534D42:  // CIFS
    case 0xFE534D42:  // SMB2
    case 0x65735546:  // FUSE (s3fs, gcsfuse, sshfs, ...)
      return 16 * local;
    default:
      return local;
  }
}

std::string color_hex(const std::array<std::uint8_t, 3>& rgb) {
  static const char* digits = "0123456789ABCDEF";
  std::string s;
  for (auto v : rgb) {
    s += digits[v >> 4];
    s += digits[v & 15];
  }
  return s;
}

std::string MetadataWarning::str() const {
  return field.empty() ? file + ": " + message : file + ": field '" + field + "': " + message;
}

std::vector<std::int64_t> Level::grid() const {
  std::vector<std::int64_t> g(shape.size());
  for (std::size_t i = 0; i < shape.size(); ++i)
    g[i] = (shape[i] + chunks[i] - 1) / chunks[i];
  return g;
}

std::int64_t Level::chunk_count() const {
  std::int64_t n = 1;
  for (auto g : grid())
    n *= g;
  return n;
}

std::int64_t Level::chunk_voxels() const {
  std::int64_t n = 1;
  for (auto c : chunks)
    n *= c;
  return n;
}

int VolumeInfo::axis_index(std::string_view name) const {
  for (std::size_t i = 0; i < axes.size(); ++i)
    if (axes[i].name == name) return static_cast<int>(i);
  return -1;
}

std::size_t VolumeInfo::chunk_bytes(int level) const {
  return static_cast<std::size_t>(levels.at(std::size_t(level)).chunk_voxels()) * dtype_size(dtype);
}

namespace {
template <class T>
void fill_typed(std::span<std::byte> out, double value) {
  T v;
  if constexpr (std::is_integral_v<T>) {
    const double lo = double(std::numeric_limits<T>::min());
    const double hi = double(std::numeric_limits<T>::max());
    v = static_cast<T>(std::clamp(value, lo, hi));
  } else {
    v = static_cast<T>(value);
  }
  auto* p = reinterpret_cast<T*>(out.data());
  std::fill(p, p + out.size() / sizeof(T), v);
}
}  // namespace

void fill_with(std::span<std::byte> out, DType dtype, double value) {
  if (value == 0.0 && !std::signbit(value)) {
    std::memset(out.data(), 0, out.size());
    return;
  }
  switch (dtype) {
    case DType::kUInt8:
      return fill_typed<std::uint8_t>(out, value);
    case DType::kInt8:
      return fill_typed<std::int8_t>(out, value);
    case DType::kUInt16:
      return fill_typed<std::uint16_t>(out, value);
    case DType::kInt16:
      return fill_typed<std::int16_t>(out, value);
    case DType::kUInt32:
      return fill_typed<std::uint32_t>(out, value);
    case DType::kInt32:
      return fill_typed<std::int32_t>(out, value);
    case DType::kFloat32:
      return fill_typed<float>(out, value);
    case DType::kFloat64:
      return fill_typed<double>(out, value);
  }
}

}  // namespace vx::data
