// libpng reports errors through longjmp by default; these handlers throw instead, for the
// PNG reader (src/data) and writer (src/codec), and the exception never leaves the function
// that installed them (Debian builds libpng with unwind tables, so it may cross its frames).
// Include it only from targets that link PNG::PNG.
#pragma once

#include <png.h>

#include <string>

namespace vx::libpng {

struct Error {
  std::string message;
};

[[noreturn]] inline void on_error(png_structp, png_const_charp msg) {
  throw Error{msg ? msg : "libpng error"};
}

inline void on_warning(png_structp, png_const_charp) {}

}  // namespace vx::libpng
