#include <fmt/format.h>

#include "pipeline/pipeline.hpp"

namespace vx::pipeline {

namespace builtin {
// One per file under builtin/ (builtins.inc is generated from the file names).
#define VX_BUILTIN(name) void register_##name(Registry&);
#include "pipeline/builtins.inc"
#undef VX_BUILTIN
}  // namespace builtin

Status Registry::add(Descriptor d) {
  if (d.name.empty() || !d.make)
    return fail(ErrorCode::kInvalidArgument, "a pipeline needs a name and a factory");
  if (items_.count(d.name))
    return fail(ErrorCode::kConflict, "pipeline '{}' is registered twice", d.name);
  std::string name = d.name;
  items_.emplace(std::move(name), std::move(d));
  return {};
}

const Descriptor* Registry::find(std::string_view name) const {
  auto it = items_.find(name);
  return it == items_.end() ? nullptr : &it->second;
}

std::vector<const Descriptor*> Registry::list() const {
  std::vector<const Descriptor*> out;
  for (const auto& [name, d] : items_)
    out.push_back(&d);
  return out;
}

Registry builtin_registry() {
  Registry r;
#define VX_BUILTIN(name) builtin::register_##name(r);
#include "pipeline/builtins.inc"
#undef VX_BUILTIN
  return r;
}

Result<DerivedSpec> check_derived_spec(const Registry& registry, const json& spec,
                                       const std::string& field, int depth) {
  if (depth >= kMaxChain)
    return fail(ErrorCode::kInvalidArgument, "field '{}': chains are limited to {} pipelines",
                field, kMaxChain);
  for (const auto& [k, v] : spec.items())
    if (k != "pipeline" && k != "input" && k != "params")
      return fail(ErrorCode::kInvalidArgument,
                  "field '{}.{}': unknown (a derived source has pipeline, input, params)", field,
                  k);
  if (!spec.contains("pipeline") || !spec["pipeline"].is_string())
    return fail(ErrorCode::kInvalidArgument, "field '{}.pipeline': expected a pipeline name",
                field);
  const auto name = spec["pipeline"].get<std::string>();
  DerivedSpec out;
  out.descriptor = registry.find(name);
  if (!out.descriptor) {
    std::string known;
    for (const auto* d : registry.list())
      known += (known.empty() ? "" : ", ") + d->name;
    return fail(ErrorCode::kInvalidArgument,
                "field '{}.pipeline': unknown pipeline '{}' (known: {})", field, name, known);
  }
  auto params =
      out.descriptor->schema.validate(spec.value("params", json::object()), field + ".params");
  if (!params) {  // "layers[1].source.params.sigma: must be >= 0" -> "field '...': must ..."
    const auto& m = params.error().message;
    const auto colon = m.find(": ");
    if (colon == std::string::npos) return tl::unexpected(params.error());
    return fail(params.error().code, "field '{}': {}", m.substr(0, colon), m.substr(colon + 2));
  }
  out.params = std::move(*params);
  out.input = spec.value("input", json(0));
  return out;
}

json merge_derived_spec(const json& current, const json& patch) {
  if (!current.is_object() || !patch.is_object()) return patch;
  json p = patch;
  json input = p.contains("input") ? p["input"] : json();
  const bool names = input.is_number() || (input.is_object() && input.contains("layer"));
  if (names) p.erase("input");
  json merged = current;
  merged.merge_patch(p);
  if (names) merged["input"] = std::move(input);
  return merged;
}

Result<json> parse_pipeline_arg(const Registry& registry, std::string_view text) {
  const auto colon = text.find(':');
  const std::string name(text.substr(0, colon));
  const auto* d = registry.find(name);
  if (!d) {
    std::string known;
    for (const auto* x : registry.list())
      known += (known.empty() ? "" : ", ") + x->name;
    return fail(ErrorCode::kNotFound, "unknown pipeline '{}' (known: {})", name, known);
  }
  VX_ASSIGN(auto params,
            d->schema.parse_cli(colon == std::string_view::npos ? "" : text.substr(colon + 1),
                                fmt::format("{}.params", name)));
  return json{{"pipeline", name}, {"params", std::move(params)}};
}

}  // namespace vx::pipeline
