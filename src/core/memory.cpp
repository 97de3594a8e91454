#include "core/memory.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <string>

namespace vx {
namespace {

std::uint64_t read_limit(const char* path) {
  std::ifstream in(path);
  std::string text;
  if (!(in >> text) || text == "max") return 0;
  try {
    return std::stoull(text);
  } catch (...) {
    return 0;
  }
}

}  // namespace

std::uint64_t available_ram_bytes() {
  const auto pages = sysconf(_SC_PHYS_PAGES);
  const auto page = sysconf(_SC_PAGE_SIZE);
  std::uint64_t ram = (pages > 0 && page > 0) ? std::uint64_t(pages) * std::uint64_t(page)
                                              : (std::uint64_t(4) << 30);
  for (const char* p :
       {"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}) {
    const auto limit = read_limit(p);
    if (limit > 0) ram = std::min(ram, limit);
  }
  return ram;
}

std::uint64_t default_cache_bytes() {
  return std::max<std::uint64_t>(available_ram_bytes() / 4, std::uint64_t(64) << 20);
}

std::uint64_t peak_rss_bytes() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return std::uint64_t(usage.ru_maxrss) * 1024;
}

}  // namespace vx
