#include "data/tiff_meta.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <map>

#include "core/text.hpp"
#include "data/units.hpp"

namespace vx::data {
namespace {

std::optional<double> to_double(std::string_view s) {
  s = trim(s);
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  double v = 0;
  const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || ptr != s.data() + s.size() || s.empty()) return std::nullopt;
  return v;
}

// Printable, bounded: a value from a file quoted in a message.
std::string shown(std::string_view v) {
  std::string out;
  for (char ch : v.substr(0, 40))
    out += (static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f) ? '?' : ch;
  if (v.size() > 40) out += "...";
  return out;
}

struct Collector {
  TiffCalibration& c;
  const std::string& file;
  std::string prefix;
  void warn(std::string_view field, std::string message) {
    c.warnings.push_back({file, prefix + std::string(field), std::move(message)});
  }
  // A voxel size: finite and positive, else 1 with a warning.
  double size(std::string_view field, std::optional<double> v, std::string_view text) {
    if (!v) {
      warn(field, fmt::format("'{}' is not a number; the size 1 is used", shown(text)));
      return 1;
    }
    if (!std::isfinite(*v) || !(*v > 0)) {
      warn(field, fmt::format("{} is not a positive voxel size; the size 1 is used", *v));
      return 1;
    }
    return *v;
  }
  // A length unit's NGFF name; unknown spellings warn and leave the axis without a unit.
  std::string unit(std::string_view field, std::string_view text) {
    if (auto u = ngff_length_unit(text)) return *u;
    warn(field, fmt::format("unit '{}' is not a length unit voxcast knows (such as µm, nm, mm, "
                            "micron, or an OME-NGFF name); the axis has no unit",
                            shown(text)));
    return "";
  }
};

}  // namespace

TiffCalibration parse_imagej_description(std::string_view description, const TiffResolution& res,
                                         const std::string& file) {
  TiffCalibration c;
  c.kind = "imagej";
  Collector col{c, file, "ImageDescription: "};
  std::map<std::string, std::string, std::less<>> kv;
  while (!description.empty()) {
    const auto nl = description.find('\n');
    const auto line = description.substr(0, nl);
    description = nl == std::string_view::npos ? std::string_view() : description.substr(nl + 1);
    const auto eq = line.find('=');
    if (eq == std::string_view::npos) continue;
    kv.emplace(std::string(trim(line.substr(0, eq))), std::string(trim(line.substr(eq + 1))));
  }
  auto get = [&](std::string_view k) -> const std::string* {
    auto it = kv.find(k);
    return it == kv.end() ? nullptr : &it->second;
  };
  // Hyperstack layout (pages in c, z, t order, c fastest); sizes that are not positive
  // integers are ignored with a warning.
  for (auto [key, dst] :
       {std::pair{"channels", &c.channels}, {"slices", &c.slices}, {"frames", &c.frames}}) {
    const auto* v = get(key);
    if (!v) continue;
    const auto n = to_double(*v);
    if (n && *n >= 1 && *n <= 1e9 && *n == std::floor(*n))
      *dst = std::int64_t(*n);
    else
      col.warn(key, fmt::format("'{}' is not a positive whole number; ignored", shown(*v)));
  }
  if (const auto* f = get("finterval")) {
    const auto v = to_double(*f);
    if (v && std::isfinite(*v) && *v > 0)
      c.frame_interval = *v;
    else
      col.warn("finterval", fmt::format("'{}' is not a positive number; ignored", shown(*f)));
  }
  // The unit: ImageJ's "unit" (x, y and z) with optional "yunit"/"zunit"; without one, the
  // ResolutionUnit tag's, as ImageJ reads it.
  std::string xy_unit;
  bool calibrated = true;
  if (const auto* u = get("unit")) {
    xy_unit = col.unit("unit", *u);
    if (auto plain = ngff_length_unit(*u); plain && plain->empty()) calibrated = false;  // pixel
  } else {
    xy_unit = res.unit == 3 ? "centimeter" : res.unit == 2 ? "inch" : "";
  }
  if (!calibrated) return c;
  c.unit = {xy_unit, xy_unit, xy_unit};
  if (const auto* u = get("yunit")) c.unit[1] = col.unit("yunit", *u);
  if (const auto* u = get("zunit")) c.unit[0] = col.unit("zunit", *u);
  if (res.x != 0) c.scale[2] = 1.0 / col.size("XResolution", res.x, fmt::format("{}", res.x));
  if (res.y != 0)
    c.scale[1] = 1.0 / col.size("YResolution", res.y, fmt::format("{}", res.y));
  else if (res.x != 0)
    c.scale[1] = c.scale[2];
  if (const auto* s = get("spacing")) c.scale[0] = col.size("spacing", to_double(*s), *s);
  const auto* lo = get("min");
  const auto* hi = get("max");
  if (lo && hi) {
    const auto a = to_double(*lo), b = to_double(*hi);
    if (a && b && std::isfinite(*a) && std::isfinite(*b) && *b > *a)
      c.display_range = std::array<double, 2>{*a, *b};
    else
      col.warn("min/max", fmt::format("display range '{}'..'{}' is not an increasing pair of "
                                      "numbers; the range is estimated from the data",
                                      shown(*lo), shown(*hi)));
  }
  return c;
}

namespace {

// Decodes the five XML entities and numeric character references (as UTF-8).
std::string xml_unescape(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '&') {
      out += s[i];
      continue;
    }
    const auto semi = s.find(';', i);
    if (semi == std::string_view::npos || semi - i > 10) {
      out += s[i];
      continue;
    }
    const auto ent = s.substr(i + 1, semi - i - 1);
    std::uint32_t cp = 0;
    if (ent == "lt")
      cp = '<';
    else if (ent == "gt")
      cp = '>';
    else if (ent == "amp")
      cp = '&';
    else if (ent == "quot")
      cp = '"';
    else if (ent == "apos")
      cp = '\'';
    else if (ent.size() > 1 && ent[0] == '#') {
      const bool hex = ent[1] == 'x' || ent[1] == 'X';
      const auto digits = ent.substr(hex ? 2 : 1);
      if (std::from_chars(digits.data(), digits.data() + digits.size(), cp, hex ? 16 : 10).ptr !=
          digits.data() + digits.size())
        cp = 0;
    }
    if (cp == 0 || cp > 0x10FFFF) {
      out += s[i];
      continue;
    }
    if (cp < 0x80) {
      out += char(cp);
    } else if (cp < 0x800) {
      out += char(0xC0 | (cp >> 6));
      out += char(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += char(0xE0 | (cp >> 12));
      out += char(0x80 | ((cp >> 6) & 0x3F));
      out += char(0x80 | (cp & 0x3F));
    } else {
      out += char(0xF0 | (cp >> 18));
      out += char(0x80 | ((cp >> 12) & 0x3F));
      out += char(0x80 | ((cp >> 6) & 0x3F));
      out += char(0x80 | (cp & 0x3F));
    }
    i = semi;
  }
  return out;
}

bool is_name_char(char ch) {
  return std::isalnum(static_cast<unsigned char>(ch)) || ch == '_' || ch == ':' || ch == '-' ||
         ch == '.';
}

// The attributes of the first start tag named `name` (with or without a namespace prefix);
// nullopt when there is none or it is not well formed.
std::optional<std::map<std::string, std::string, std::less<>>> start_tag(std::string_view xml,
                                                                         std::string_view name) {
  for (std::size_t p = xml.find('<'); p != std::string_view::npos; p = xml.find('<', p + 1)) {
    std::size_t q = p + 1;
    while (q < xml.size() && is_name_char(xml[q]))
      ++q;
    auto tag = xml.substr(p + 1, q - p - 1);
    if (const auto colon = tag.rfind(':'); colon != std::string_view::npos)
      tag.remove_prefix(colon + 1);
    if (tag != name) continue;
    std::map<std::string, std::string, std::less<>> attrs;
    for (;;) {
      while (q < xml.size() && std::isspace(static_cast<unsigned char>(xml[q])))
        ++q;
      if (q >= xml.size()) return std::nullopt;
      if (xml[q] == '>' || xml[q] == '/') return attrs;
      const auto n0 = q;
      while (q < xml.size() && is_name_char(xml[q]))
        ++q;
      if (q == n0) return std::nullopt;
      const auto key = xml.substr(n0, q - n0);
      while (q < xml.size() && std::isspace(static_cast<unsigned char>(xml[q])))
        ++q;
      if (q >= xml.size() || xml[q] != '=') return std::nullopt;
      ++q;
      while (q < xml.size() && std::isspace(static_cast<unsigned char>(xml[q])))
        ++q;
      if (q >= xml.size() || (xml[q] != '"' && xml[q] != '\'')) return std::nullopt;
      const char quote = xml[q];
      const auto end = xml.find(quote, q + 1);
      if (end == std::string_view::npos) return std::nullopt;
      attrs.emplace(std::string(key), xml_unescape(xml.substr(q + 1, end - q - 1)));
      q = end + 1;
    }
  }
  return std::nullopt;
}

}  // namespace

TiffCalibration parse_ome_xml(std::string_view xml, const std::string& file) {
  TiffCalibration c;
  c.kind = "ome";
  Collector col{c, file, "OME-XML: "};
  const auto pixels = start_tag(xml, "Pixels");
  if (!pixels) {
    col.warn("Pixels", "no well-formed Pixels element; the data is uncalibrated");
    return c;
  }
  for (auto [key, dst] :
       {std::pair{"SizeC", &c.channels}, {"SizeZ", &c.slices}, {"SizeT", &c.frames}}) {
    auto it = pixels->find(key);
    if (it == pixels->end()) continue;
    const auto n = to_double(it->second);
    if (n && *n >= 1 && *n <= 1e9 && *n == std::floor(*n))
      *dst = std::int64_t(*n);
    else
      col.warn(std::string("Pixels.") + key,
               fmt::format("'{}' is not a positive whole number; ignored", shown(it->second)));
  }
  if (auto it = pixels->find("DimensionOrder"); it != pixels->end()) {
    // XYZCT, XYCZT, ...: the three page axes, fastest first.
    std::string o = it->second;
    for (auto& ch : o)
      ch = char(std::tolower(static_cast<unsigned char>(ch)));
    std::string rest = o.size() == 5 && o.starts_with("xy") ? o.substr(2) : "";
    std::string sorted = rest;
    std::sort(sorted.begin(), sorted.end());
    if (sorted == "ctz")
      c.order = rest;
    else
      col.warn(
          "Pixels.DimensionOrder",
          fmt::format("'{}' is not an OME dimension order (such as XYZCT)", shown(it->second)));
  }
  static constexpr std::array<const char*, 3> kAxes = {"Z", "Y", "X"};
  for (std::size_t d = 0; d < 3; ++d) {
    const std::string key = std::string("PhysicalSize") + kAxes[d];
    auto it = pixels->find(key);
    if (it == pixels->end()) continue;
    c.scale[d] = col.size("Pixels." + key, to_double(it->second), it->second);
    auto u = pixels->find(key + "Unit");
    // The OME schema's default unit of PhysicalSize* is the micrometre.
    c.unit[d] = u == pixels->end() ? "micrometer" : col.unit("Pixels." + key + "Unit", u->second);
  }
  return c;
}

TiffCalibration read_tiff_calibration(std::string_view description, const TiffResolution& res,
                                      const std::string& file) {
  const auto d = trim(description);
  if (d.starts_with("<?xml") || d.starts_with("<OME") || d.starts_with("<ome:OME"))
    return parse_ome_xml(d, file);
  if (d.starts_with("ImageJ=")) return parse_imagej_description(d, res, file);
  TiffCalibration c;
  if (res.unit == 3 && res.x > 0 && std::isfinite(res.x)) {
    c.kind = "resolution";
    const double y = res.y > 0 && std::isfinite(res.y) ? res.y : res.x;
    c.scale = {1, 1e4 / y, 1e4 / res.x};  // pixels per centimetre -> micrometres per pixel
    c.unit = {"", "micrometer", "micrometer"};
  }
  return c;
}

}  // namespace vx::data
