#include "core/error.hpp"

namespace vx {

std::string_view to_string(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument:
      return "invalid argument";
    case ErrorCode::kNotFound:
      return "not found";
    case ErrorCode::kIo:
      return "i/o error";
    case ErrorCode::kFormat:
      return "format error";
    case ErrorCode::kUnsupported:
      return "unsupported";
    case ErrorCode::kCorrupt:
      return "corrupt data";
    case ErrorCode::kCancelled:
      return "cancelled";
    case ErrorCode::kOutOfMemory:
      return "out of memory";
    case ErrorCode::kBusy:
      return "busy";
    case ErrorCode::kConflict:
      return "conflict";
    case ErrorCode::kInternal:
      return "internal error";
  }
  return "error";
}

std::string Error::what() const {
  return fmt::format("{}: {}", to_string(code), message);
}

}  // namespace vx
