#include "core/log.hpp"

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
  bool plain = !value.empty();
  for (char c : value) {
    if (c == ' ' || c == '"' || c == '=' || c == '\\' || c == '\n') plain = false;
  }
  if (plain) return std::string(value);
  std::string out = "\"";
  for (char c : value) {
    if (c == '"' || c == '\\') out += '\\';
    out += (c == '\n') ? ' ' : c;
  }
  out += '"';
  return out;
}

}  // namespace vx
