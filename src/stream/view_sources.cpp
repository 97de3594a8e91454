#include "stream/view_sources.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <optional>

#include "pipeline/interpolate.hpp"
#include "stream/layer_sources.hpp"

namespace vx::stream {

using json = nlohmann::json;

ViewSources::ViewSources(Budget& budget)
    : owned_(std::make_unique<pipeline::Manager>(pipeline::builtin_registry(), budget)),
      manager_(*owned_) {}

ViewSources::ViewSources(pipeline::Manager& manager) : manager_(manager) {}

ViewSources::~ViewSources() {
  // With a manager of its own (a CLI run), the cache is declared after this and gone by now,
  // its sources with it. With a shared one (a server's jobs), the cache outlives this and
  // would keep every source each job and each validation made: remove them, one walk of the
  // cache for all (a movie may make one per frame).
  if (owned_) return;
  for (const auto& [cache, ids] : added_)
    cache->remove_sources(ids);
}

// A derived source of `inputs`, made (and added to them) when new.
Result<int> ViewSources::make(const std::string& name, int input, const json& params,
                              const std::string& field, render::RenderInputs& in) {
  const auto key = fmt::format("{}|{}|{}", input, name, params.dump());
  if (auto it = by_spec_.find(key); it != by_spec_.end()) return it->second;
  auto made = pipeline::DerivedSource::create(manager_, *in.cache, in.sources[std::size_t(input)],
                                              name, params);
  if (!made) return tl::unexpected(with_context(made.error(), fmt::format("field '{}'", field)));
  in.sources.push_back(in.cache->add_source(*made));
  added_[in.cache].push_back(in.sources.back());
  in.data.sources.push_back((*made)->info());
  const int index = int(in.sources.size()) - 1;
  by_spec_.emplace(key, index);
  specs_.emplace(index, json{{"pipeline", name}, {"input", input}, {"params", params}});
  return index;
}

LayerSources ViewSources::walker(const json& layers, std::span<const int> current,
                                 render::RenderInputs& inputs) {
  return LayerSources(
      manager_.registry(), layers, current, [&inputs] { return int(inputs.sources.size()); },
      [this, &inputs](const std::string& name, int input, const json& params,
                      const std::string& field) {
        return make(name, input, params, field, inputs);
      });
}

Status ViewSources::resolve(json& view, render::RenderInputs& inputs,
                            std::span<const int> current) {
  if (!view.is_object() || !view.contains("layers") || !view["layers"].is_array()) return {};
  const json layers = view["layers"];
  return walker(layers, current, inputs).resolve(view["layers"]);
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
  return walker(no_layers, {}, inputs).source(mid, "source");
}

}  // namespace vx::stream
