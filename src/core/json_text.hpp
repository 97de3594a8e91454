// Parsing JSON that comes from outside (network messages, bodies, metadata files) with a
// bound on nesting. nlohmann::json copies and destroys values recursively, so a 20,000-deep
// array (40 KB of "[") overflows a thread's stack; text nested deeper than the bound is
// refused like text that is not JSON.
#pragma once

#include <nlohmann/json.hpp>
#include <string_view>

namespace vx {

// Far beyond any scene, job, request or OME-Zarr document (about 8 levels), far below what
// exhausts a stack.
inline constexpr int kMaxJsonDepth = 64;

// The deepest nesting of arrays and objects in `text` (brackets inside strings do not count),
// scanning no further than one level past `limit`.
int json_depth(std::string_view text, int limit = kMaxJsonDepth);

// json::parse(text, nullptr, false), and a discarded value also when `text` nests deeper
// than kMaxJsonDepth.
nlohmann::json parse_untrusted_json(std::string_view text);

}  // namespace vx
