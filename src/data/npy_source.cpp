// NumPy .npy files, memory-mapped.
#include <fmt/format.h>

#include <cctype>
#include <cstring>

#include "data/file_io.hpp"
#include "data/mapped_array.hpp"

namespace vx::data {
namespace {

// Finds 'key': in a Python dict literal and returns the text after the colon.
std::string_view value_after(std::string_view dict, std::string_view key) {
  for (char q : {'\'', '"'}) {
    const std::string k = std::string(1, q) + std::string(key) + std::string(1, q);
    auto p = dict.find(k);
    if (p == std::string_view::npos) continue;
    p = dict.find(':', p + k.size());
    if (p == std::string_view::npos) return {};
    auto v = dict.substr(p + 1);
    while (!v.empty() && std::isspace(static_cast<unsigned char>(v.front())))
      v.remove_prefix(1);
    return v;
  }
  return {};
}

}  // namespace

Result<NpyHeader> parse_npy_header(std::span<const std::byte> bytes, const std::string& file) {
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  if (bytes.size() < 10 || std::memcmp(p, "\x93NUMPY", 6) != 0)
    return fail(ErrorCode::kFormat, "{}: not a .npy file (bad magic)", file);
  const int major = p[6];
  std::uint64_t hlen = 0, pre = 0;
  if (major == 1) {
    hlen = p[8] | (p[9] << 8);
    pre = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) return fail(ErrorCode::kCorrupt, "{}: truncated .npy header", file);
    hlen = std::uint64_t(p[8]) | (std::uint64_t(p[9]) << 8) | (std::uint64_t(p[10]) << 16) |
           (std::uint64_t(p[11]) << 24);
    pre = 12;
  } else {
    return fail(ErrorCode::kUnsupported, "{}: .npy format version {} is not supported", file,
                major);
  }
  if (pre + hlen > bytes.size())
    return fail(ErrorCode::kCorrupt, "{}: .npy header of {} bytes is truncated", file, hlen);
  const std::string_view dict(reinterpret_cast<const char*>(p + pre), hlen);
  NpyHeader h;
  h.header_bytes = pre + hlen;
  auto& L = h.layout;
  L.offset = h.header_bytes;

  auto descr = value_after(dict, "descr");
  if (descr.size() < 2 || (descr[0] != '\'' && descr[0] != '"'))
    return fail(ErrorCode::kFormat, "{}: header field 'descr' is missing or not a string", file);
  const auto end = descr.find(descr[0], 1);
  if (end == std::string_view::npos)
    return fail(ErrorCode::kFormat, "{}: header field 'descr' is not terminated", file);
  const std::string typestr(descr.substr(1, end - 1));
  if (typestr.size() < 3 || std::string("<>|=").find(typestr[0]) == std::string::npos)
    return fail(ErrorCode::kUnsupported,
                "{}: header field 'descr': '{}' is not a simple numeric type", file, typestr);
  const char kind = typestr[1];
  const std::string size = typestr.substr(2);
  std::string name = kind == 'u' ? "uint" : kind == 'i' ? "int" : kind == 'f' ? "float" : "";
  if (name.empty() || size.size() > 1 || !std::isdigit(static_cast<unsigned char>(size[0])))
    return fail(ErrorCode::kUnsupported, "{}: header field 'descr': type '{}' is not supported",
                file, typestr);
  auto dt = parse_dtype_name(name + std::to_string((size[0] - '0') * 8));
  if (!dt)
    return fail(ErrorCode::kUnsupported, "{}: header field 'descr': {}", file, dt.error().message);
  L.dtype = *dt;
  L.big_endian = typestr[0] == '>';

  const auto fo = value_after(dict, "fortran_order");
  bool fortran = false;
  if (fo.starts_with("True"))
    fortran = true;
  else if (!fo.starts_with("False"))
    return fail(ErrorCode::kFormat, "{}: header field 'fortran_order' is missing or not True/False",
                file);

  auto shape = value_after(dict, "shape");
  if (shape.empty() || shape[0] != '(')
    return fail(ErrorCode::kFormat, "{}: header field 'shape' is missing or not a tuple", file);
  const auto close = shape.find(')');
  if (close == std::string_view::npos)
    return fail(ErrorCode::kFormat, "{}: header field 'shape' is not terminated", file);
  std::string_view inner = shape.substr(1, close - 1);
  while (!inner.empty()) {
    while (!inner.empty() &&
           (std::isspace(static_cast<unsigned char>(inner.front())) || inner.front() == ','))
      inner.remove_prefix(1);
    if (inner.empty()) break;
    std::int64_t v = 0;
    std::size_t i = 0;
    while (i < inner.size() && std::isdigit(static_cast<unsigned char>(inner[i]))) {
      if (v > (std::int64_t(1) << 48))
        return fail(ErrorCode::kFormat, "{}: header field 'shape': dimension too large", file);
      v = v * 10 + (inner[i++] - '0');
    }
    if (i == 0)
      return fail(ErrorCode::kFormat, "{}: header field 'shape': '{}' is not a tuple of integers",
                  file, shape.substr(0, close + 1));
    L.shape.push_back(v);
    inner.remove_prefix(i);
  }
  if (L.shape.empty() || L.shape.size() > std::size_t(kMaxDims))
    return fail(ErrorCode::kUnsupported,
                "{}: header field 'shape': {} dimensions, supported are 1 to {}", file,
                L.shape.size(), kMaxDims);
  const std::int64_t item = std::int64_t(dtype_size(L.dtype));
  L.strides.resize(L.shape.size());
  std::int64_t s = item;
  const std::size_t n = L.shape.size();
  for (std::size_t k = 0; k < n; ++k) {
    const std::size_t d = fortran ? k : n - 1 - k;
    L.strides[d] = s;
    if (__builtin_mul_overflow(s, std::max<std::int64_t>(L.shape[d], 1), &s))
      return fail(ErrorCode::kFormat,
                  "{}: header field 'shape': the array's size in bytes overflows 64 bits", file);
  }
  return h;
}

std::string make_npy_header(DType dtype, std::span<const std::int64_t> shape) {
  const char* descr = "";
  switch (dtype) {
    case DType::kUInt8:
      descr = "|u1";
      break;
    case DType::kInt8:
      descr = "|i1";
      break;
    case DType::kUInt16:
      descr = "<u2";
      break;
    case DType::kInt16:
      descr = "<i2";
      break;
    case DType::kUInt32:
      descr = "<u4";
      break;
    case DType::kInt32:
      descr = "<i4";
      break;
    case DType::kFloat32:
      descr = "<f4";
      break;
    case DType::kFloat64:
      descr = "<f8";
      break;
  }
  // "(3,)" for 1-d, "(3, 4)" otherwise, as numpy writes it.
  std::string shp = fmt::format("{}", fmt::join(shape, ", "));
  if (shape.size() == 1) shp += ",";
  std::string dict =
      fmt::format("{{'descr': '{}', 'fortran_order': False, 'shape': ({}), }}", descr, shp);
  std::size_t total = 10 + dict.size() + 1;
  dict.append((64 - total % 64) % 64, ' ');
  dict += '\n';
  std::string h = "\x93NUMPY";
  h += char(1);
  h += char(0);
  h += char(dict.size() & 0xFF);
  h += char(dict.size() >> 8);
  return h + dict;
}

Result<SourcePtr> open_npy(const std::string& path) {
  VX_ASSIGN(auto map, Mapping::map_file(path));
  VX_ASSIGN(auto h, parse_npy_header(map.bytes(), path));
  if (h.layout.bytes_needed() > map.bytes().size())
    return fail(ErrorCode::kCorrupt, "{}: file has {} bytes but its shape needs {} (truncated?)",
                path, map.bytes().size(), h.layout.bytes_needed());
  VolumeInfo info;
  info.location = path;
  info.format = "npy";
  info.dtype = h.layout.dtype;
  info.axes = default_axes(int(h.layout.shape.size()));
  Level lv;
  lv.shape = h.layout.shape;
  lv.chunks = default_chunks(info.axes, lv.shape);
  lv.scale.assign(lv.shape.size(), 1.0);
  lv.translation.assign(lv.shape.size(), 0.0);
  lv.codec = h.layout.big_endian ? "raw(big-endian), memory-mapped" : "raw, memory-mapped";
  info.levels.push_back(std::move(lv));
  info.channels = default_channels(info.axes, info.levels[0].shape);
  auto owner = std::make_shared<Mapping>(std::move(map));
  const auto bytes = owner->bytes();
  return make_mapped_source(std::move(info), std::move(h.layout), owner, bytes);
}

}  // namespace vx::data
