// Errors are values at boundaries: tl::expected<T, Error> with a code and a message
// that names the file, field or peer (DESIGN.md convention 4).
#pragma once

#include <fmt/format.h>

#include <string>
#include <string_view>
#include <tl/expected.hpp>

namespace vx {

enum class ErrorCode {
  kInvalidArgument,  // the caller passed something wrong (CLI flag, option, box)
  kNotFound,         // a file or dataset does not exist
  kIo,               // the OS refused a read or write
  kFormat,           // metadata is malformed: wrong type, missing field, bad shape
  kUnsupported,      // well-formed but not supported (codec, dtype, layout)
  kCorrupt,          // chunk bytes are truncated, fail a checksum, or decode wrongly
  kCancelled,        // the request was cancelled before it completed
  kOutOfMemory,      // a budget could not be met
  kBusy,             // at capacity now (a queue is full); retry later
  kConflict,         // the name is taken by something else (a job id with other parameters)
  kInternal,         // a bug; reported, not crashed on
};

std::string_view to_string(ErrorCode code);

struct Error {
  ErrorCode code = ErrorCode::kInternal;
  std::string message;

  // "format: /data/x.zarr/.zarray: field 'shape': expected an array of integers"
  std::string what() const;
};

template <class T>
using Result = tl::expected<T, Error>;
using Status = tl::expected<void, Error>;

inline tl::unexpected<Error> make_error(ErrorCode code, std::string message) {
  return tl::unexpected<Error>(Error{code, std::move(message)});
}

template <class... Args>
tl::unexpected<Error> fail(ErrorCode code, fmt::format_string<Args...> f, Args&&... args) {
  return make_error(code, fmt::format(f, std::forward<Args>(args)...));
}

// Prefixes the message with a context ("reading chunk 3.0.1") and keeps the code.
inline Error with_context(Error e, std::string_view context) {
  e.message = fmt::format("{}: {}", context, e.message);
  return e;
}

}  // namespace vx

// Propagates an error out of a function returning Result/Status.
#define VX_TRY(expr)                                                    \
  do {                                                                  \
    auto&& vx_try_result_ = (expr);                                     \
    if (!vx_try_result_) return tl::unexpected(vx_try_result_.error()); \
  } while (0)

#define VX_CONCAT_INNER_(a, b) a##b
#define VX_CONCAT_(a, b) VX_CONCAT_INNER_(a, b)
#define VX_ASSIGN_IMPL_(tmp, lhs, expr)         \
  auto tmp = (expr);                            \
  if (!tmp) return tl::unexpected(tmp.error()); \
  lhs = std::move(*tmp)
// VX_ASSIGN(auto x, compute()); declares x from a Result or returns its error.
#define VX_ASSIGN(lhs, expr) VX_ASSIGN_IMPL_(VX_CONCAT_(vx_assign_, __COUNTER__), lhs, expr)
