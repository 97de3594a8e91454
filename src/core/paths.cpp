#include "core/paths.hpp"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
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

namespace {

std::string name_of(std::string loc, int parents) {
  if (loc.rfind("synthetic:", 0) == 0) return loc.substr(0, loc.find('?'));
  while (loc.size() > 1 && loc.back() == '/')
    loc.pop_back();
  fs::path p(loc);
  fs::path out = p.filename();
  for (int i = 0; i < parents && p.has_parent_path() && p.parent_path() != p; ++i) {
    p = p.parent_path();
    if (p.filename().empty()) break;
    out = p.filename() / out;
  }
  return out.empty() ? loc : out.string();
}

}  // namespace

std::vector<std::string> dataset_names(const std::vector<std::string>& locations) {
  std::vector<std::string> names(locations.size());
  std::vector<int> parents(locations.size(), 0);
  for (int round = 0; round < 3; ++round) {
    for (std::size_t i = 0; i < locations.size(); ++i)
      names[i] = name_of(locations[i], parents[i]);
    bool again = false;
    for (std::size_t i = 0; i < names.size(); ++i)
      for (std::size_t j = 0; j < names.size(); ++j)
        if (i != j && names[i] == names[j] && locations[i] != locations[j]) {
          ++parents[i];
          again = true;
          break;
        }
    if (!again) break;
  }
  for (std::size_t i = 0; i < names.size(); ++i) {
    int n = 1;
    for (std::size_t j = 0; j < i; ++j)
      if (names[j] == names[i] || names[j].rfind(names[i] + " #", 0) == 0) ++n;
    if (n > 1) names[i] += " #" + std::to_string(n);
  }
  return names;
}

fs::path default_data_dir(const std::vector<std::string>& locations) {
  std::uint64_t h = 1469598103934665603ull;  // FNV-1a
  for (const auto& loc : locations) {
    std::string key = loc;
    if (loc.rfind("synthetic:", 0) != 0) {
      std::error_code ec;
      auto abs = fs::weakly_canonical(fs::absolute(loc, ec), ec);
      if (!ec) key = abs.string();
    }
    for (unsigned char ch : key + '\n') {
      h ^= ch;
      h *= 1099511628211ull;
    }
  }
  std::string name;
  for (char ch : locations.empty() ? std::string("voxcast") : dataset_names(locations)[0]) {
    const bool ok =
        std::isalnum(static_cast<unsigned char>(ch)) || ch == '.' || ch == '_' || ch == '-';
    if (name.size() < 40) name += ok ? ch : '_';
  }
  char hex[13];
  std::snprintf(hex, sizeof hex, "%012llx", static_cast<unsigned long long>(h & 0xffffffffffffull));
  fs::path base;
  if (const char* x = std::getenv("XDG_STATE_HOME"); x && *x && fs::path(x).is_absolute())
    base = x;
  else if (const char* home = std::getenv("HOME"); home && *home)
    base = fs::path(home) / ".local" / "state";
  else
    base = ".voxcast-state";
  return base / "voxcast" / (name + "-" + hex);
}

}  // namespace vx
