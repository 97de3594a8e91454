#include "core/log.hpp"

#include <fmt/format.h>
#include <spdlog/sinks/stdout_color_sinks.h>

namespace vx {

LoggingGuard::LoggingGuard(const LogOptions& options) {
  auto logger = spdlog::stderr_color_mt("voxcast");
  logger->set_pattern("ts=%Y-%m-%dT%H:%M:%S.%e level=%l %v");
  logger->set_level(spdlog::level::from_str(options.level));
  spdlog::set_default_logger(logger);
}

LoggingGuard::~LoggingGuard() {
  spdlog::default_logger()->flush();
  spdlog::drop("voxcast");
}

std::string log_quote(std::string_view value) {
  // Plain when it cannot be mistaken for more than one value: no spaces, quotes, '=',
  // backslashes or control characters (a newline would forge a log line).
  bool plain = !value.empty();
  for (char c : value) {
    const auto u = static_cast<unsigned char>(c);
    if (c == ' ' || c == '"' || c == '=' || c == '\\' || u < 0x20 || u == 0x7f) plain = false;
  }
  if (plain) return std::string(value);
  std::string out = "\"";
  for (char c : value) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (u < 0x20 || u == 0x7f) {
      out += fmt::format("\\x{:02x}", u);
    } else {
      out += c;
    }
  }
  out += '"';
  return out;
}

}  // namespace vx
