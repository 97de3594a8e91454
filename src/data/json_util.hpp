// Typed access to JSON metadata with errors that name the file and the field (private).
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"

namespace vx::data {

using json = nlohmann::json;

// Parses text; a syntax error names `file` and nlohmann's position.
Result<json> parse_json(std::string_view text, const std::string& file);
Result<json> read_json_file(const std::string& path);

// A field path for messages: ctx("a.zarray", "compressor") -> "a.zarray: field 'compressor'".
struct Where {
  std::string file;
  std::string field;
  std::string str() const { return field.empty() ? file : file + ": field '" + field + "'"; }
  Where operator/(std::string_view sub) const {
    return {file, field.empty() ? std::string(sub) : field + "." + std::string(sub)};
  }
  Where at(std::size_t i) const { return {file, field + "[" + std::to_string(i) + "]"}; }
};

const char* json_type(const json& j);
Result<const json*> require(const json& obj, std::string_view key, const Where& w);
// nullptr when absent (or null when allow_null).
Result<const json*> optional_field(const json& obj, std::string_view key, const Where& w);
Result<std::int64_t> as_int(const json& j, const Where& w);
Result<double> as_number(const json& j, const Where& w);
Result<std::string> as_string(const json& j, const Where& w);
Result<std::vector<std::int64_t>> as_int_array(const json& j, const Where& w);
Result<std::vector<double>> as_number_array(const json& j, const Where& w);
// Zarr fill values: numbers, null (0), "NaN", "Infinity", "-Infinity".
Result<double> as_fill_value(const json& j, const Where& w);

}  // namespace vx::data
