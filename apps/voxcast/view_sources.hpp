// Derived layers in the view files of `voxcast render` and `voxcast orbit`: a layer whose
// "source" is {"pipeline": NAME, "input": INPUT, "params": {...}} (docs/pipelines.md, "In a
// view"), as a live session takes them. INPUT is 0 (the dataset), a nested derived source
// (a chain), or {"layer": N}: whatever layer N of the same view shows (a chain onto another
// layer). References that come back to where they started are a cycle: an error naming it,
// "layers[0] -> layers[1] -> layers[0]".
#pragma once

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/resources.hpp"
#include "pipeline/pipeline.hpp"
#include "render/renderer.hpp"

namespace vx::app {

class ViewSources {
 public:
  // Pipelines charge `budget`, which the cache of the inputs passed to resolve() must charge
  // too (CacheOptions::budget). Declare this before the cache: it must outlive none of it.
  explicit ViewSources(Budget& budget);

  // Replaces the source of each derived layer of `view` (a scene patch) by a source index of
  // `inputs`, after adding the derived sources to it (sources and data.sources). Errors name
  // the field (kInvalidArgument for a mistake in the view).
  Status resolve(nlohmann::json& view, render::RenderInputs& inputs);

 private:
  struct Walk;
  pipeline::Manager manager_;
  std::map<std::string, int> by_spec_;  // canonical specification -> source index
};

}  // namespace vx::app
