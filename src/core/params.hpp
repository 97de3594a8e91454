// Parameter specs: one declarative description of a set of parameters that both validates
// JSON (filling defaults, errors naming the field) and emits JSON Schema (draft 2020-12) for
// clients to build their controls from. Used by pipelines; meant for scene fields, job kinds
// and the wire fast path too (DESIGN.md, "Seams: Parameter specs").
//
//   ParamSchema s;
//   s.number("sigma", 2.0).range(0, 50).unit("physical").step(0.1).per_axis();
//   s.choice("method", "otsu", {"otsu", "manual"});
//   auto p = s.validate(json{{"sigma", -1}}, "params");
//   // -> invalid_argument: "params.sigma: must be >= 0 (got -1)"
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/error.hpp"

namespace vx {

using json = nlohmann::json;

enum class ParamType { kNumber, kInteger, kBoolean, kChoice, kString };

struct ParamSpec {
  std::string name;
  ParamType type = ParamType::kNumber;
  json default_value;
  std::string description;
  std::optional<double> minimum, maximum;
  std::vector<std::string> choices;  // kChoice
  std::string unit;                  // "physical": the data's units (micrometer, ...)
  double step = 0;                   // UI hint: slider step
  bool live = true;                  // false: changing it reloads the pipeline
  bool per_axis = false;             // a number, or an array with one per spatial axis

  // Fluent setters, for ParamSchema's builders.
  ParamSpec& range(double lo, double hi) {
    minimum = lo;
    maximum = hi;
    return *this;
  }
  ParamSpec& min(double lo) {
    minimum = lo;
    return *this;
  }
  ParamSpec& describe(std::string text) {
    description = std::move(text);
    return *this;
  }
  ParamSpec& with_unit(std::string u) {
    unit = std::move(u);
    return *this;
  }
  ParamSpec& with_step(double s) {
    step = s;
    return *this;
  }
  ParamSpec& load_time() {
    live = false;
    return *this;
  }
  ParamSpec& axes() {
    per_axis = true;
    return *this;
  }
};

class ParamSchema {
 public:
  ParamSpec& number(std::string name, double def);
  ParamSpec& integer(std::string name, std::int64_t def);
  ParamSpec& boolean(std::string name, bool def);
  ParamSpec& choice(std::string name, std::string def, std::vector<std::string> choices);
  ParamSpec& string(std::string name, std::string def);

  const std::vector<ParamSpec>& params() const { return params_; }
  const ParamSpec* find(std::string_view name) const;

  // {"type": "object", "properties": {...}, "additionalProperties": false}; each property
  // carries its default, range, enum, unit ("x-unit"), step ("x-step") and live flag
  // ("x-live").
  json to_json_schema() const;

  // `in` (an object, or null for all defaults) checked against the specs: unknown fields,
  // wrong types and values out of range are kInvalidArgument errors naming `where.field`.
  // Returns every parameter, defaults filled; integers as integers, numbers as doubles.
  Result<json> validate(const json& in, std::string_view where = "params") const;

  // Parses "sigma=2,mode=otsu" (the CLI form) into JSON values by the specs' types, then
  // validates. Per-axis values are written "sigma=1/2/2".
  Result<json> parse_cli(std::string_view text, std::string_view where = "params") const;

  // The inverse of to_json_schema(), for schemas that come from elsewhere (a Python worker):
  // accepts exactly what to_json_schema() emits (types number, integer, boolean, string with
  // or without enum; the per-axis oneOf; minimum, maximum, default, description, x-unit,
  // x-step, x-live) and nothing else. kFormat errors name `where` and the field.
  static Result<ParamSchema> from_json_schema(const json& schema, std::string_view where);

 private:
  ParamSpec& add(ParamSpec spec);
  std::vector<ParamSpec> params_;
};

}  // namespace vx
