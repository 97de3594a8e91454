#include "view_sources.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <optional>

namespace vx::app {

ViewSources::ViewSources(Budget& budget) : manager_(pipeline::builtin_registry(), budget) {}

// One resolution of a view: the layers being resolved (for cycles) and those done.
struct ViewSources::Walk {
  ViewSources& self;
  render::RenderInputs& in;
  const json& layers;
  std::vector<std::optional<int>> done;
  std::vector<int> stack;  // layers whose source is being resolved, outermost first

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
    const auto& l = layers[std::size_t(i)];
    const json spec = l.is_object() && l.contains("source") ? l["source"] : json(0);
    stack.push_back(i);
    auto r = source(spec, field, 0);
    stack.pop_back();
    if (r) done[std::size_t(i)] = *r;
    return r;
  }

  Result<int> source(const json& spec, const std::string& field, int depth) {
    const int count = int(in.sources.size());
    if (spec.is_number_integer()) {
      const auto i = spec.get<std::int64_t>();
      if (i < 0 || i >= count)
        return fail(ErrorCode::kInvalidArgument, "field '{}': source {} is not one of 0..{}", field,
                    i, count - 1);
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
          n.get<std::int64_t>() >= std::int64_t(layers.size()))
        return fail(ErrorCode::kInvalidArgument,
                    "field '{}': {{\"layer\": N}} names a layer of this view, 0..{} (got {})",
                    field, layers.size() - 1, spec.dump());
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
    return index;
  }
};

Status ViewSources::resolve(json& view, render::RenderInputs& inputs) {
  if (!view.is_object() || !view.contains("layers") || !view["layers"].is_array()) return {};
  const json layers = view["layers"];
  Walk walk{*this, inputs, layers, std::vector<std::optional<int>>(layers.size()), {}};
  for (std::size_t i = 0; i < layers.size(); ++i) {
    const auto& l = layers[i];
    if (!l.is_object() || !l.contains("source") || !l["source"].is_object()) continue;
    VX_ASSIGN(const int index, walk.layer(int(i)));
    view["layers"][i]["source"] = index;
  }
  return {};
}

}  // namespace vx::app
