#include "stream/view_sources.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <optional>

#include "pipeline/interpolate.hpp"

namespace vx::stream {

using json = nlohmann::json;

ViewSources::ViewSources(Budget& budget)
    : owned_(std::make_unique<pipeline::Manager>(pipeline::builtin_registry(), budget)),
      manager_(*owned_) {}

ViewSources::ViewSources(pipeline::Manager& manager) : manager_(manager) {}

ViewSources::~ViewSources() = default;

// One resolution of a view: the layers being resolved (for cycles) and those done.
struct ViewSources::Walk {
  ViewSources& self;
  render::RenderInputs& in;
  const json& layers;
  std::span<const int> current;  // sources of the layers the view leaves as they are
  std::vector<std::optional<int>> done;
  std::vector<int> stack;  // layers whose source is being resolved, outermost first

  std::size_t count() const { return std::max(layers.size(), current.size()); }

  Result<int> layer(int i) {
    if (done[std::size_t(i)]) return *done[std::size_t(i)];
    const auto field = fmt::format("layers[{}].source", i);
    if (auto it = std::find(stack.begin(), stack.end(), i); it != stack.end()) {
      std::string path;
      for (; it != stack.end(); ++it)
        path += fmt::format("layers[{}] -> ", *it);
      return fail(ErrorCode::kInvalidArgument,
                  "field '{}': a cycle of derived sources: {}layers[{}] (a layer's source "
                  "cannot depend on itself)",
                  field, path, i);
    }
    const auto at = std::size_t(i);
    const json* l = at < layers.size() ? &layers[at] : nullptr;
    const json spec = l && l->is_object() && l->contains("source") ? (*l)["source"]
                      : at < current.size()                        ? json(current[at])
                                                                   : json(0);
    stack.push_back(i);
    auto r = source(spec, field, 0);
    stack.pop_back();
    if (r) done[at] = *r;
    return r;
  }

  Result<int> source(const json& spec, const std::string& field, int depth) {
    const int sources = int(in.sources.size());
    if (spec.is_number_integer()) {
      const auto i = spec.get<std::int64_t>();
      if (i < 0 || i >= sources)
        return fail(ErrorCode::kInvalidArgument, "field '{}': source {} is not one of 0..{}", field,
                    i, sources - 1);
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
                    "field '{}': {{\"layer\": N}} names a layer of this view, 0..{} (got {})",
                    field, std::int64_t(count()) - 1, spec.dump());
      return layer(n.get<int>());
    }
    VX_ASSIGN(auto checked,
              pipeline::check_derived_spec(self.manager_.registry(), spec, field, depth));
    const std::string& name = checked.descriptor->name;
    VX_ASSIGN(const int input, source(checked.input, field + ".input", depth + 1));
    const auto params = &checked.params;
    const auto key = fmt::format("{}|{}|{}", input, name, params->dump());
    if (auto it = self.by_spec_.find(key); it != self.by_spec_.end()) return it->second;
    auto made = pipeline::DerivedSource::create(self.manager_, *in.cache,
                                                in.sources[std::size_t(input)], name, *params);
    if (!made) return tl::unexpected(with_context(made.error(), fmt::format("field '{}'", field)));
    in.sources.push_back(in.cache->add_source(*made));
    in.data.sources.push_back((*made)->info());
    const int index = int(in.sources.size()) - 1;
    self.by_spec_.emplace(key, index);
    self.specs_.emplace(index, json{{"pipeline", name}, {"input", input}, {"params", *params}});
    return index;
  }
};

Status ViewSources::resolve(json& view, render::RenderInputs& inputs,
                            std::span<const int> current) {
  if (!view.is_object() || !view.contains("layers") || !view["layers"].is_array()) return {};
  const json layers = view["layers"];
  Walk walk{*this, inputs, layers, current, {}, {}};
  walk.done.resize(walk.count());
  for (std::size_t i = 0; i < layers.size(); ++i) {
    const auto& l = layers[i];
    if (!l.is_object() || !l.contains("source") || !l["source"].is_object()) continue;
    VX_ASSIGN(const int index, walk.layer(int(i)));
    view["layers"][i]["source"] = index;
  }
  return {};
}

Result<json> ViewSources::resolve_keyframe(const json& doc, const render::Scene& prev, bool full,
                                           render::RenderInputs& inputs) {
  json out = doc;
  std::vector<int> current;
  for (const auto& l : prev.layers)
    current.push_back(l.source);
  if (!full && out.is_object() && out.contains("layers") && out["layers"].is_array()) {
    auto& layers = out["layers"];
    for (std::size_t i = 0; i < layers.size() && i < prev.layers.size(); ++i) {
      auto& l = layers[i];
      const json was = spec(prev.layers[i].source);
      if (!l.is_object() || !l.contains("source") || !l["source"].is_object() || !was.is_object())
        continue;
      l["source"] = pipeline::merge_derived_spec(was, l["source"]);
    }
  }
  VX_TRY(resolve(out, inputs, current));
  return out;
}

json ViewSources::spec(int index) const {
  auto it = specs_.find(index);
  if (it == specs_.end()) return index;
  json s = it->second;
  s["input"] = spec(s["input"].get<int>());
  return s;
}

Result<int> ViewSources::blend(int a, int b, double u, render::RenderInputs& inputs) {
  const json mid = pipeline::interpolate_source(manager_.registry(), spec(a), spec(b), u);
  const json no_layers = json::array();  // specifications from spec() name no layers
  Walk walk{*this, inputs, no_layers, {}, {}, {}};
  return walk.source(mid, "source", 0);
}

}  // namespace vx::stream
