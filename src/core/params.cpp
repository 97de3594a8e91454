#include "core/params.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <stdexcept>

namespace vx {

ParamSpec& ParamSchema::add(ParamSpec spec) {
  params_.push_back(std::move(spec));
  return params_.back();
}

ParamSpec& ParamSchema::number(std::string name, double def) {
  return add({.name = std::move(name), .type = ParamType::kNumber, .default_value = def});
}
ParamSpec& ParamSchema::integer(std::string name, std::int64_t def) {
  return add({.name = std::move(name), .type = ParamType::kInteger, .default_value = def});
}
ParamSpec& ParamSchema::boolean(std::string name, bool def) {
  return add({.name = std::move(name), .type = ParamType::kBoolean, .default_value = def});
}
ParamSpec& ParamSchema::choice(std::string name, std::string def,
                               std::vector<std::string> choices) {
  ParamSpec s{.name = std::move(name), .type = ParamType::kChoice, .default_value = def};
  s.choices = std::move(choices);
  return add(std::move(s));
}
ParamSpec& ParamSchema::string(std::string name, std::string def) {
  return add({.name = std::move(name), .type = ParamType::kString, .default_value = def});
}

const ParamSpec* ParamSchema::find(std::string_view name) const {
  for (const auto& p : params_)
    if (p.name == name) return &p;
  return nullptr;
}

namespace {

json scalar_schema(const ParamSpec& p) {
  json s;
  switch (p.type) {
    case ParamType::kNumber:
      s["type"] = "number";
      break;
    case ParamType::kInteger:
      s["type"] = "integer";
      break;
    case ParamType::kBoolean:
      s["type"] = "boolean";
      break;
    case ParamType::kChoice:
      s["type"] = "string";
      s["enum"] = p.choices;
      break;
    case ParamType::kString:
      s["type"] = "string";
      break;
  }
  if (p.minimum) s["minimum"] = *p.minimum;
  if (p.maximum) s["maximum"] = *p.maximum;
  return s;
}

std::string type_words(const ParamSpec& p) {
  switch (p.type) {
    case ParamType::kNumber:
      return "a number";
    case ParamType::kInteger:
      return "an integer";
    case ParamType::kBoolean:
      return "true or false";
    case ParamType::kChoice: {
      std::string s = "one of ";
      for (std::size_t i = 0; i < p.choices.size(); ++i)
        s += (i ? ", '" : "'") + p.choices[i] + "'";
      return s;
    }
    case ParamType::kString:
      return "a string";
  }
  return "?";
}

Result<json> check_scalar(const ParamSpec& p, const json& v, const std::string& field) {
  auto wrong = [&] {
    return fail(ErrorCode::kInvalidArgument, "{}: expected {}{} (got {})", field, type_words(p),
                p.per_axis ? " or an array with one per spatial axis" : "", v.dump());
  };
  json out;
  switch (p.type) {
    case ParamType::kNumber:
      if (!v.is_number()) return wrong();
      out = v.get<double>();
      if (!std::isfinite(out.get<double>())) return wrong();
      break;
    case ParamType::kInteger:
      if (v.is_number_integer() || v.is_number_unsigned()) {
        out = v.get<std::int64_t>();
      } else if (v.is_number_float() && std::nearbyint(v.get<double>()) == v.get<double>() &&
                 std::abs(v.get<double>()) < 9e15) {
        out = std::int64_t(v.get<double>());
      } else {
        return wrong();
      }
      break;
    case ParamType::kBoolean:
      if (!v.is_boolean()) return wrong();
      out = v;
      break;
    case ParamType::kChoice:
      if (!v.is_string()) return wrong();
      if (std::find(p.choices.begin(), p.choices.end(), v.get<std::string>()) == p.choices.end())
        return wrong();
      out = v;
      break;
    case ParamType::kString:
      if (!v.is_string()) return wrong();
      out = v;
      break;
  }
  if (out.is_number()) {
    const double d = out.get<double>();
    if (p.minimum && d < *p.minimum)
      return fail(ErrorCode::kInvalidArgument, "{}: must be >= {} (got {})", field, *p.minimum,
                  v.dump());
    if (p.maximum && d > *p.maximum)
      return fail(ErrorCode::kInvalidArgument, "{}: must be <= {} (got {})", field, *p.maximum,
                  v.dump());
  }
  return out;
}

}  // namespace

json ParamSchema::to_json_schema() const {
  json props = json::object();
  json required = json::array();
  for (const auto& p : params_) {
    json s = scalar_schema(p);
    if (p.per_axis) {
      json arr{{"type", "array"}, {"items", s}, {"minItems", 1}, {"maxItems", 3}};
      s = json{{"oneOf", json::array({s, arr})}};
    }
    s["default"] = p.default_value;
    if (!p.description.empty()) s["description"] = p.description;
    if (!p.unit.empty()) s["x-unit"] = p.unit;
    if (p.step > 0) s["x-step"] = p.step;
    s["x-live"] = p.live;
    props[p.name] = std::move(s);
  }
  return json{{"$schema", "https://json-schema.org/draft/2020-12/schema"},
              {"type", "object"},
              {"properties", std::move(props)},
              {"additionalProperties", false}};
}

Result<json> ParamSchema::validate(const json& in, std::string_view where) const {
  if (!in.is_null() && !in.is_object())
    return fail(ErrorCode::kInvalidArgument, "{}: expected an object of parameters (got {})", where,
                in.dump());
  json out = json::object();
  if (in.is_object()) {
    for (const auto& [key, value] : in.items()) {
      if (!find(key)) {
        std::string known;
        for (const auto& p : params_)
          known += (known.empty() ? "" : ", ") + p.name;
        return fail(ErrorCode::kInvalidArgument, "{}.{}: unknown parameter (known: {})", where, key,
                    known.empty() ? "none" : known);
      }
    }
  }
  for (const auto& p : params_) {
    const std::string field = fmt::format("{}.{}", where, p.name);
    const json* v = nullptr;
    if (in.is_object()) {
      auto it = in.find(p.name);
      if (it != in.end() && !it->is_null()) v = &*it;
    }
    if (!v) {
      out[p.name] = p.default_value;
      continue;
    }
    if (p.per_axis && v->is_array()) {
      if (v->empty() || v->size() > 3)
        return fail(ErrorCode::kInvalidArgument, "{}: expected 1 to 3 values (got {})", field,
                    v->size());
      json arr = json::array();
      for (std::size_t i = 0; i < v->size(); ++i) {
        VX_ASSIGN(json x, check_scalar(p, (*v)[i], fmt::format("{}[{}]", field, i)));
        arr.push_back(std::move(x));
      }
      out[p.name] = std::move(arr);
    } else {
      VX_ASSIGN(json x, check_scalar(p, *v, field));
      out[p.name] = std::move(x);
    }
  }
  return out;
}

Result<json> ParamSchema::parse_cli(std::string_view text, std::string_view where) const {
  json in = json::object();
  std::size_t pos = 0;
  while (pos < text.size()) {
    auto end = text.find(',', pos);
    if (end == std::string_view::npos) end = text.size();
    const auto item = text.substr(pos, end - pos);
    pos = end + 1;
    if (item.empty()) continue;
    const auto eq = item.find('=');
    if (eq == std::string_view::npos)
      return fail(ErrorCode::kInvalidArgument, "{}: '{}' is not NAME=VALUE", where, item);
    const std::string key(item.substr(0, eq));
    const std::string value(item.substr(eq + 1));
    const auto* spec = find(key);
    if (!spec) {
      in[key] = value;  // validate() names it as unknown
      continue;
    }
    auto scalar = [&](const std::string& s) -> json {
      if (spec->type == ParamType::kNumber || spec->type == ParamType::kInteger) {
        try {
          std::size_t used = 0;
          const double d = std::stod(s, &used);
          if (used == s.size()) return d;
        } catch (const std::exception&) {
        }
        return s;  // validate() says what it expected
      }
      if (spec->type == ParamType::kBoolean) {
        if (s == "true" || s == "1") return true;
        if (s == "false" || s == "0") return false;
      }
      return s;
    };
    if (spec->per_axis && value.find('/') != std::string::npos) {
      json arr = json::array();
      std::size_t p = 0;
      while (p <= value.size()) {
        auto e = value.find('/', p);
        if (e == std::string::npos) e = value.size();
        arr.push_back(scalar(value.substr(p, e - p)));
        p = e + 1;
      }
      in[key] = std::move(arr);
    } else {
      in[key] = scalar(value);
    }
  }
  return validate(in, where);
}

namespace {

Result<ParamSpec> spec_from_json(const std::string& name, const json& prop,
                                 const std::string& field) {
  auto bad = [&](std::string_view what) {
    return fail(ErrorCode::kFormat, "{}: {} (got {})", field, what, prop.dump());
  };
  if (!prop.is_object()) return bad("expected an object");
  ParamSpec p;
  p.name = name;
  const json* scalar = &prop;
  if (auto one = prop.find("oneOf"); one != prop.end()) {
    if (!one->is_array() || one->size() != 2 || !(*one)[1].is_object() ||
        (*one)[1].value("type", "") != "array" || !(*one)[1].contains("items") ||
        (*one)[1]["items"] != (*one)[0])
      return bad("'oneOf' must be [SCALAR, {\"type\": \"array\", \"items\": SCALAR}] (per axis)");
    p.per_axis = true;
    scalar = &(*one)[0];
    if (!scalar->is_object()) return bad("'oneOf'[0] must be an object");
  }
  const auto type = scalar->value("type", json()).is_string() ? (*scalar)["type"].get<std::string>()
                                                              : std::string();
  if (type == "number") {
    p.type = ParamType::kNumber;
  } else if (type == "integer") {
    p.type = ParamType::kInteger;
  } else if (type == "boolean") {
    p.type = ParamType::kBoolean;
  } else if (type == "string") {
    p.type = scalar->contains("enum") ? ParamType::kChoice : ParamType::kString;
  } else {
    return bad("'type' must be number, integer, boolean or string");
  }
  if (p.per_axis && p.type != ParamType::kNumber && p.type != ParamType::kInteger)
    return bad("only numbers and integers can be per axis");
  if (p.type == ParamType::kChoice) {
    const auto& e = (*scalar)["enum"];
    if (!e.is_array() || e.empty()) return bad("'enum' must be a non-empty array of strings");
    for (const auto& c : e) {
      if (!c.is_string()) return bad("'enum' must be a non-empty array of strings");
      p.choices.push_back(c.get<std::string>());
    }
  }
  for (const char* k : {"minimum", "maximum"}) {
    if (auto it = scalar->find(k); it != scalar->end()) {
      if (!it->is_number() || !std::isfinite(it->get<double>()))
        return bad(fmt::format("'{}' must be a finite number", k));
      (std::string_view(k) == "minimum" ? p.minimum : p.maximum) = it->get<double>();
    }
  }
  if (p.minimum && p.maximum && *p.minimum > *p.maximum) return bad("'minimum' > 'maximum'");
  if (auto it = prop.find("description"); it != prop.end()) {
    if (!it->is_string()) return bad("'description' must be a string");
    p.description = it->get<std::string>();
  }
  if (auto it = prop.find("x-unit"); it != prop.end()) {
    if (!it->is_string()) return bad("'x-unit' must be a string");
    p.unit = it->get<std::string>();
  }
  if (auto it = prop.find("x-step"); it != prop.end()) {
    if (!it->is_number() || it->get<double>() < 0) return bad("'x-step' must be a number >= 0");
    p.step = it->get<double>();
  }
  if (auto it = prop.find("x-live"); it != prop.end()) {
    if (!it->is_boolean()) return bad("'x-live' must be true or false");
    p.live = it->get<bool>();
  }
  auto def = prop.find("default");
  if (def == prop.end()) return bad("a 'default' is required");
  // The default must pass the parameter's own checks.
  const ParamSpec probe = p;
  if (p.per_axis && def->is_array()) {
    if (def->empty() || def->size() > 3) return bad("'default' must have 1 to 3 values");
    json arr = json::array();
    for (std::size_t i = 0; i < def->size(); ++i) {
      VX_ASSIGN(json x, check_scalar(probe, (*def)[i], field + ".default"));
      arr.push_back(std::move(x));
    }
    p.default_value = std::move(arr);
  } else {
    VX_ASSIGN(p.default_value, check_scalar(probe, *def, field + ".default"));
  }
  return p;
}

bool valid_param_name(const std::string& n) {
  if (n.empty() || n.size() > 64 || n[0] == '_' || std::isdigit(static_cast<unsigned char>(n[0])))
    return false;
  return std::all_of(n.begin(), n.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
  });
}

}  // namespace

Result<ParamSchema> ParamSchema::from_json_schema(const json& schema, std::string_view where) {
  if (!schema.is_object())
    return fail(ErrorCode::kFormat, "{}: a JSON Schema must be an object (got {})", where,
                schema.dump().substr(0, 200));
  if (auto t = schema.find("type"); t != schema.end() && *t != "object")
    return fail(ErrorCode::kFormat, "{}.type: must be \"object\" (got {})", where, t->dump());
  auto props = schema.find("properties");
  if (props == schema.end() || !props->is_object())
    return fail(ErrorCode::kFormat, "{}.properties: required, an object of parameters", where);
  if (props->size() > 64)
    return fail(ErrorCode::kFormat, "{}.properties: at most 64 parameters (got {})", where,
                props->size());
  ParamSchema out;
  for (const auto& [name, prop] : props->items()) {
    const auto field = fmt::format("{}.properties.{}", where, name);
    if (!valid_param_name(name))
      return fail(ErrorCode::kFormat,
                  "{}: a parameter name is letters, digits and '_', not starting with a digit "
                  "or '_', at most 64 characters",
                  field);
    VX_ASSIGN(auto spec, spec_from_json(name, prop, field));
    out.add(std::move(spec));
  }
  return out;
}

}  // namespace vx
