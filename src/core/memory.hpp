// Host memory facts used to size budgets.
#pragma once

#include <cstddef>
#include <cstdint>

namespace vx {

// Physical RAM, or the cgroup (v2 memory.max / v1 limit_in_bytes) limit when lower.
std::uint64_t available_ram_bytes();

// The default chunk-cache budget: a quarter of available_ram_bytes(), at least 64 MiB.
std::uint64_t default_cache_bytes();

// Peak resident set size of this process so far (getrusage).
std::uint64_t peak_rss_bytes();

}  // namespace vx
