#include "pipeline/interpolate.hpp"

#include <algorithm>
#include <cmath>

namespace vx::pipeline {

namespace {

bool numeric(const ParamSpec& p) {
  return p.live && (p.type == ParamType::kNumber || p.type == ParamType::kInteger);
}

// One number of a parameter at u: rounded for integers, kept within the spec's range.
json blend_number(const ParamSpec& p, double a, double b, double u) {
  double v = a + (b - a) * u;
  if (p.minimum) v = std::max(v, *p.minimum);
  if (p.maximum) v = std::min(v, *p.maximum);
  if (p.type == ParamType::kInteger) {
    auto n = std::llround(v);
    // Rounding may step past a bound that is not an integer: step back inside.
    if (p.minimum && double(n) < *p.minimum) n = std::llround(std::ceil(*p.minimum));
    if (p.maximum && double(n) > *p.maximum) n = std::llround(std::floor(*p.maximum));
    return json(std::int64_t(n));
  }
  return json(v);
}

bool all_numbers(const json& v) {
  return v.is_array() && !v.empty() &&
         std::all_of(v.begin(), v.end(), [](const json& x) { return x.is_number(); });
}

// A parameter's value at u, or null when it does not interpolate (it switches).
json blend_value(const ParamSpec& p, const json& a, const json& b, double u) {
  if (!numeric(p)) return nullptr;
  if (a.is_number() && b.is_number()) return blend_number(p, a.get<double>(), b.get<double>(), u);
  if (!p.per_axis) return nullptr;
  // Per axis: arrays of the same length element by element; a number stands for every axis.
  const bool va = all_numbers(a), vb = all_numbers(b);
  if (!(va || a.is_number()) || !(vb || b.is_number())) return nullptr;
  const std::size_t n = va ? a.size() : b.size();
  if (va && vb && a.size() != b.size()) return nullptr;
  json out = json::array();
  for (std::size_t i = 0; i < n; ++i) {
    const double x = va ? a[i].get<double>() : a.get<double>();
    const double y = vb ? b[i].get<double>() : b.get<double>();
    out.push_back(blend_number(p, x, y, u));
  }
  return out;
}

}  // namespace

json interpolate_params(const ParamSchema& schema, const json& a, const json& b, double u) {
  if (u <= 0) return a;
  if (u >= 1) return b;
  const bool late = u >= 0.5;
  json out = late ? b : a;  // every parameter that does not interpolate
  if (!a.is_object() || !b.is_object()) return out;
  for (const auto& p : schema.params()) {
    const auto ia = a.find(p.name), ib = b.find(p.name);
    if (ia == a.end() || ib == b.end()) continue;
    if (json v = blend_value(p, *ia, *ib, u); !v.is_null()) out[p.name] = std::move(v);
  }
  return out;
}

json interpolate_source(const Registry& registry, const json& a, const json& b, double u) {
  if (u <= 0) return a;
  if (u >= 1) return b;
  const json& near = u >= 0.5 ? b : a;
  if (!a.is_object() || !b.is_object() || !a.contains("pipeline") || !a["pipeline"].is_string() ||
      !b.contains("pipeline") || a["pipeline"] != b["pipeline"])
    return near;
  const auto* d = registry.find(a["pipeline"].get<std::string>());
  if (!d) return near;
  json out = near;
  out["params"] = interpolate_params(d->schema, a.value("params", json::object()),
                                     b.value("params", json::object()), u);
  out["input"] =
      interpolate_source(registry, a.value("input", json(0)), b.value("input", json(0)), u);
  return out;
}

}  // namespace vx::pipeline
