#include "data/json_util.hpp"

#include <cmath>
#include <limits>

#include "core/json_text.hpp"
#include "data/file_io.hpp"

namespace vx::data {

Result<json> parse_json(std::string_view text, const std::string& file) {
  if (const int depth = json_depth(text); depth > kMaxJsonDepth)
    return fail(ErrorCode::kFormat, "{}: JSON nested deeper than {} levels", file, kMaxJsonDepth);
  try {
    return json::parse(text.begin(), text.end());
  } catch (const json::exception& e) {  // parse_error, and out_of_range for huge numbers
    return fail(ErrorCode::kFormat, "{}: not valid JSON ({})", file, e.what());
  }
}

Result<json> read_json_file(const std::string& path) {
  VX_ASSIGN(auto bytes, read_file(path));
  return parse_json(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()),
                    path);
}

const char* json_type(const json& j) {
  return j.type_name();
}

Result<const json*> require(const json& obj, std::string_view key, const Where& w) {
  if (!obj.is_object())
    return fail(ErrorCode::kFormat, "{}: expected an object, got {}", w.str(), json_type(obj));
  auto it = obj.find(key);
  if (it == obj.end())
    return fail(ErrorCode::kFormat, "{}: required field is missing", (w / key).str());
  return &*it;
}

Result<const json*> optional_field(const json& obj, std::string_view key, const Where& w) {
  if (!obj.is_object())
    return fail(ErrorCode::kFormat, "{}: expected an object, got {}", w.str(), json_type(obj));
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

Result<std::int64_t> as_int(const json& j, const Where& w) {
  if (j.is_number_integer()) return j.get<std::int64_t>();
  if (j.is_number_float()) {
    const double d = j.get<double>();
    if (std::floor(d) == d && std::abs(d) < 9.0e15) return static_cast<std::int64_t>(d);
  }
  return fail(ErrorCode::kFormat, "{}: expected an integer, got {} {}", w.str(), json_type(j),
              j.dump().substr(0, 40));
}

Result<double> as_number(const json& j, const Where& w) {
  if (j.is_number()) return j.get<double>();
  return fail(ErrorCode::kFormat, "{}: expected a number, got {} {}", w.str(), json_type(j),
              j.dump().substr(0, 40));
}

Result<std::string> as_string(const json& j, const Where& w) {
  if (j.is_string()) return j.get<std::string>();
  return fail(ErrorCode::kFormat, "{}: expected a string, got {} {}", w.str(), json_type(j),
              j.dump().substr(0, 40));
}

Result<std::vector<std::int64_t>> as_int_array(const json& j, const Where& w) {
  if (!j.is_array())
    return fail(ErrorCode::kFormat, "{}: expected an array of integers, got {} {}", w.str(),
                json_type(j), j.dump().substr(0, 40));
  std::vector<std::int64_t> out;
  for (std::size_t i = 0; i < j.size(); ++i) {
    VX_ASSIGN(auto v, as_int(j[i], w.at(i)));
    out.push_back(v);
  }
  return out;
}

Result<std::vector<double>> as_number_array(const json& j, const Where& w) {
  if (!j.is_array())
    return fail(ErrorCode::kFormat, "{}: expected an array of numbers, got {}", w.str(),
                json_type(j));
  std::vector<double> out;
  for (std::size_t i = 0; i < j.size(); ++i) {
    VX_ASSIGN(auto v, as_number(j[i], w.at(i)));
    out.push_back(v);
  }
  return out;
}

Result<double> as_fill_value(const json& j, const Where& w) {
  if (j.is_null()) return 0.0;
  if (j.is_boolean()) return j.get<bool>() ? 1.0 : 0.0;
  if (j.is_number()) return j.get<double>();
  if (j.is_string()) {
    const auto s = j.get<std::string>();
    if (s == "NaN") return std::numeric_limits<double>::quiet_NaN();
    if (s == "Infinity") return std::numeric_limits<double>::infinity();
    if (s == "-Infinity") return -std::numeric_limits<double>::infinity();
  }
  return fail(ErrorCode::kFormat, "{}: expected a number, null, \"NaN\" or \"Infinity\", got {}",
              w.str(), j.dump().substr(0, 40));
}

}  // namespace vx::data
