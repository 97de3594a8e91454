// Small text helpers shared by the command line and the parsers.
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

namespace vx {

// Levenshtein distance (ASCII case folded).
std::size_t edit_distance(std::string_view a, std::string_view b);

// The closest of `candidates` to `word`, or "" when none is within `max_edits` edits (for
// "did you mean" messages).
std::string closest_word(std::string_view word, const std::vector<std::string>& candidates,
                         std::size_t max_edits = 2);

// `s` without leading and trailing spaces, tabs, carriage returns and newlines.
std::string_view trim(std::string_view s);

}  // namespace vx
