// Structured logging on spdlog: every line is an event name followed by key=value fields
// (logfmt), on stderr. Installed and torn down by a LoggingGuard.
#pragma once

#include <spdlog/spdlog.h>

#include <string>
#include <string_view>

namespace vx {

struct LogOptions {
  std::string level = "info";  // trace, debug, info, warn, error, off
};

// RAII: installs the "voxcast" logger on construction, flushes and drops it on destruction.
class LoggingGuard {
 public:
  explicit LoggingGuard(const LogOptions& options);
  ~LoggingGuard();
  LoggingGuard(const LoggingGuard&) = delete;
  LoggingGuard& operator=(const LoggingGuard&) = delete;
};

// Quotes a value for logfmt when it holds spaces, quotes, '=', backslashes or control
// characters, escaping those (\n, \x1b, ...): a value (a client's string) is always one
// value on one line. Use it for every string a client or a file supplies.
std::string log_quote(std::string_view value);

}  // namespace vx

// VX_LOG(info, "convert.level", "level={} chunks={}", 1, 42) -> event=convert.level level=1 ...
#define VX_LOG(lvl, event, ...) ::spdlog::lvl("event=" event " " __VA_ARGS__)
