// The "source" of each layer of a view or a patch, resolved to a source index: an index, a
// derived source {"pipeline", "input", "params"} whose input is resolved the same way (a
// chain), or {"layer": N}: whatever layer N of the same view shows. References that come back
// to where they started are a cycle: an error naming it, "layers[0] -> layers[1] -> layers[0]".
// Shared by view files and timelines (ViewSources) and live sessions (Session), which differ
// only in how a derived source is made (`Make`).
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "pipeline/pipeline.hpp"

namespace vx::stream {

class LayerSources {
 public:
  using json = nlohmann::json;
  // The index of the derived source `pipeline` on source `input` with checked `params`, made
  // when new; errors name `field`.
  using Make = std::function<Result<int>(const std::string& pipeline, int input, const json& params,
                                         const std::string& field)>;

  // `layers`: the view's (or patch's) layers; `current`: the sources of the layers of the
  // scene it applies to (for layers it leaves as they are); `sources`: how many sources exist
  // now (indices below it are valid).
  // `named`, when given, hears every source index a specification names as a plain integer.
  LayerSources(const pipeline::Registry& registry, const json& layers, std::span<const int> current,
               std::function<int()> sources, Make make, std::function<void(int)> named = {});

  // Replaces the source of each layer of `layers` that names one by an object (a derived
  // source or {"layer": N}) with its index.
  Status resolve(json& layers);
  // The source index of layer i.
  Result<int> layer(int i);
  // The index of one source specification (`depth`: how deep in a chain it is).
  Result<int> source(const json& spec, const std::string& field, int depth = 0);

 private:
  std::size_t count() const { return std::max(layers_.size(), current_.size()); }

  const pipeline::Registry& registry_;
  const json& layers_;
  std::span<const int> current_;
  std::function<int()> sources_;
  Make make_;
  std::function<void(int)> named_;
  std::vector<std::optional<int>> done_;
  std::vector<int> stack_;  // layers whose source is being resolved, outermost first
};

}  // namespace vx::stream
