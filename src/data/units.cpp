#include "data/units.hpp"

#include <algorithm>
#include <array>
#include <cctype>

namespace vx::data {
namespace {

constexpr std::array<std::string_view, 26> kSpace = {
    "angstrom",  "attometer",  "centimeter", "decimeter",  "exameter",  "femtometer", "foot",
    "gigameter", "hectometer", "inch",       "kilometer",  "megameter", "meter",      "micrometer",
    "mile",      "millimeter", "nanometer",  "parsec",     "petameter", "picometer",  "terameter",
    "yard",      "yoctometer", "yottameter", "zeptometer", "zettameter"};
constexpr std::array<std::string_view, 23> kTime = {
    "attosecond",  "centisecond", "day",         "decisecond",  "exasecond",  "femtosecond",
    "gigasecond",  "hectosecond", "hour",        "kilosecond",  "megasecond", "microsecond",
    "millisecond", "minute",      "nanosecond",  "petasecond",  "picosecond", "second",
    "terasecond",  "yoctosecond", "yottasecond", "zeptosecond", "zettasecond"};

std::string lower_trimmed(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front())))
    s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back())))
    s.remove_suffix(1);
  std::string out(s);
  for (auto& ch : out)
    if (static_cast<unsigned char>(ch) < 0x80)
      ch = char(std::tolower(static_cast<unsigned char>(ch)));
  return out;
}

// "µ" as U+00B5 (UTF-8 C2 B5, Latin-1 B5), U+03BC (CE BC) or ImageJ's escape "\u00b5": "u".
std::string fold_micro(std::string s) {
  for (std::string_view mu : {"\\u00b5", "\xc2\xb5", "\xce\xbc", "\xb5"}) {
    for (auto p = s.find(mu); p != std::string::npos; p = s.find(mu))
      s.replace(p, mu.size(), "u");
  }
  return s;
}

}  // namespace

bool is_ngff_space_unit(std::string_view unit) {
  return std::find(kSpace.begin(), kSpace.end(), unit) != kSpace.end();
}

bool is_ngff_time_unit(std::string_view unit) {
  return std::find(kTime.begin(), kTime.end(), unit) != kTime.end();
}

std::optional<std::string> ngff_length_unit(std::string_view spelling) {
  const std::string s = fold_micro(lower_trimmed(spelling));
  if (is_ngff_space_unit(s)) return s;
  if (s == "pixel" || s == "pixels" || s == "px") return std::string();
  if (s == "um" || s == "micron" || s == "microns" || s == "micrometre" || s == "micrometers")
    return "micrometer";
  if (s == "nm" || s == "nanometre" || s == "nanometers") return "nanometer";
  if (s == "mm" || s == "millimetre" || s == "millimeters") return "millimeter";
  if (s == "cm" || s == "centimetre" || s == "centimeters") return "centimeter";
  if (s == "m" || s == "metre" || s == "meters") return "meter";
  if (s == "pm") return "picometer";
  if (s == "km") return "kilometer";
  if (s == "in" || s == "inches") return "inch";
  if (s == "a" || s == "\xc3\xa5" || s == "\xc3\x85" || s == "\xe2\x84\xab" || s == "\\u00c5" ||
      s == "\xc5" || s == "angstroms")
    return "angstrom";
  return std::nullopt;
}

std::optional<std::string> ngff_time_unit(std::string_view spelling) {
  const std::string s = fold_micro(lower_trimmed(spelling));
  if (is_ngff_time_unit(s)) return s;
  if (s == "s" || s == "sec" || s == "secs" || s == "seconds") return "second";
  if (s == "ms" || s == "msec" || s == "milliseconds") return "millisecond";
  if (s == "us" || s == "microseconds") return "microsecond";
  if (s == "ns" || s == "nanoseconds") return "nanosecond";
  if (s == "min" || s == "minutes") return "minute";
  if (s == "h" || s == "hr" || s == "hours") return "hour";
  if (s == "d" || s == "days") return "day";
  return std::nullopt;
}

}  // namespace vx::data
