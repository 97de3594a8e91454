#include "stream/layer_sources.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace vx::stream {

LayerSources::LayerSources(const pipeline::Registry& registry, const json& layers,
                           std::span<const int> current, std::function<int()> sources, Make make,
                           std::function<void(int)> named)
    : registry_(registry),
      layers_(layers),
      current_(current),
      sources_(std::move(sources)),
      make_(std::move(make)),
      named_(std::move(named)),
      done_(count()) {}

Status LayerSources::resolve(json& layers) {
  if (!layers.is_array()) return {};
  for (std::size_t i = 0; i < layers.size(); ++i) {
    const auto& l = layers[i];
    if (!l.is_object() || !l.contains("source") || !l["source"].is_object()) continue;
    VX_ASSIGN(const int index, layer(int(i)));
    layers[i]["source"] = index;
  }
  return {};
}

Result<int> LayerSources::layer(int i) {
  const auto at = std::size_t(i);
  if (done_[at]) return *done_[at];
  const auto field = fmt::format("layers[{}].source", i);
  if (auto it = std::find(stack_.begin(), stack_.end(), i); it != stack_.end()) {
    std::string path;
    for (; it != stack_.end(); ++it)
      path += fmt::format("layers[{}] -> ", *it);
    return fail(ErrorCode::kInvalidArgument,
                "field '{}': a cycle of derived sources: {}layers[{}] (a layer's source "
                "cannot depend on itself)",
                field, path, i);
  }
  const json* l = at < layers_.size() ? &layers_[at] : nullptr;
  const json spec = l && l->is_object() && l->contains("source") ? (*l)["source"]
                    : at < current_.size()                       ? json(current_[at])
                                                                 : json(0);
  stack_.push_back(i);
  auto r = source(spec, field, 0);
  stack_.pop_back();
  if (r) done_[at] = *r;
  return r;
}

Result<int> LayerSources::source(const json& spec, const std::string& field, int depth) {
  if (spec.is_number_integer()) {
    const int sources = sources_();
    const auto i = spec.get<std::int64_t>();
    if (i < 0 || i >= sources)
      return fail(ErrorCode::kInvalidArgument, "field '{}': source {} is not one of 0..{}", field,
                  i, sources - 1);
    if (named_) named_(int(i));
    return int(i);
  }
  if (!spec.is_object())
    return fail(ErrorCode::kInvalidArgument,
                "field '{}': expected a source index, {{\"layer\": N}} or {{\"pipeline\", "
                "\"input\", \"params\"}}",
                field);
  if (spec.contains("layer")) {
    const auto& n = spec["layer"];
    if (spec.size() != 1 || !n.is_number_integer() || n.get<std::int64_t>() < 0 ||
        n.get<std::int64_t>() >= std::int64_t(count()))
      return fail(ErrorCode::kInvalidArgument,
                  "field '{}': {{\"layer\": N}} names a layer of this view, 0..{} (got {})", field,
                  std::int64_t(count()) - 1, spec.dump());
    return layer(n.get<int>());
  }
  VX_ASSIGN(auto checked, pipeline::check_derived_spec(registry_, spec, field, depth));
  VX_ASSIGN(const int input, source(checked.input, field + ".input", depth + 1));
  return make_(checked.descriptor->name, input, checked.params, field);
}

}  // namespace vx::stream
