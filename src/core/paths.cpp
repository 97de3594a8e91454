#include "core/paths.hpp"

#include <algorithm>
#include <system_error>

namespace vx {

namespace fs = std::filesystem;

namespace {

// Whether `p` is `root` or below it, comparing whole components.
bool within(const fs::path& root, const fs::path& p) {
  auto r = root.begin(), q = p.begin();
  for (; r != root.end(); ++r, ++q) {
    if (r->empty()) continue;  // a trailing separator of the root
    if (q == p.end() || *r != *q) return false;
  }
  return true;
}

}  // namespace

Result<fs::path> resolve_inside(const fs::path& root, std::string_view relative) {
  if (relative.empty()) return fail(ErrorCode::kInvalidArgument, "empty path");
  if (relative.find('\0') != std::string_view::npos)
    return fail(ErrorCode::kInvalidArgument, "path with a NUL byte");
  const std::string rel(relative);
  if (rel.find('\\') != std::string::npos)
    return fail(ErrorCode::kInvalidArgument, "path '{}' has a backslash", rel);
  const fs::path r(rel);
  if (r.is_absolute() || r.has_root_name() || r.has_root_directory())
    return fail(ErrorCode::kInvalidArgument, "path '{}' is absolute", rel);
  const fs::path normal = r.lexically_normal();
  if (!normal.empty() && *normal.begin() == "..")
    return fail(ErrorCode::kInvalidArgument, "path '{}' leaves its folder", rel);
  std::error_code ec;
  const fs::path base = fs::weakly_canonical(fs::absolute(root, ec), ec);
  if (ec) return fail(ErrorCode::kIo, "{}: {}", root.string(), ec.message());
  const fs::path full = fs::weakly_canonical(base / normal, ec);
  if (ec) return fail(ErrorCode::kIo, "{}: {}", (base / normal).string(), ec.message());
  if (!within(base, full))
    return fail(ErrorCode::kInvalidArgument, "path '{}' resolves outside its folder", rel);
  if (full == base)
    return fail(ErrorCode::kInvalidArgument, "path '{}' names the folder itself", rel);
  return full;
}

bool constant_time_equal(std::string_view a, std::string_view b) {
  // Every byte of `b` is read whatever `a` holds; the lengths are not secret.
  unsigned diff = a.size() == b.size() ? 0u : 1u;
  const std::size_t n = b.size();
  for (std::size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    diff |= x ^ static_cast<unsigned char>(b[i]);
  }
  // volatile: keeps the compiler from turning the loop into an early exit.
  volatile unsigned result = diff;
  return result == 0;
}

}  // namespace vx
