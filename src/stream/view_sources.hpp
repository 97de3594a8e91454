// Derived layers in view files and timelines (`voxcast render`, `voxcast orbit`, movie jobs):
// a layer whose "source" is {"pipeline": NAME, "input": INPUT, "params": {...}}
// (docs/pipelines.md, "In a view"), as a live session takes them. INPUT is 0 (the dataset), a
// nested derived source (a chain), or {"layer": N}: whatever layer N of the same view shows
// (a chain onto another layer). References that come back to where they started are a
// cycle: an error naming it, "layers[0] -> layers[1] -> layers[0]".
#pragma once

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <vector>

#include "core/resources.hpp"
#include "pipeline/pipeline.hpp"
#include "render/renderer.hpp"
#include "stream/layer_sources.hpp"

namespace vx::stream {

class ViewSources {
 public:
  // With a manager of the built-in pipelines of its own, charging `budget`, which the cache
  // of the inputs passed to resolve() must charge too (CacheOptions::budget). Declare this
  // before the cache: it must outlive none of it.
  explicit ViewSources(Budget& budget);
  // With a manager shared with others (a server's: its pipelines, Python ones included). The
  // caches of the inputs passed to resolve() must outlive this: the sources it adds are
  // removed from them when it goes (render nothing from them after that).
  explicit ViewSources(pipeline::Manager& manager);
  ~ViewSources();

  // Replaces the source of each derived layer of `view` (a scene patch) by a source index of
  // `inputs`, after adding the derived sources to it (sources and data.sources). `current`:
  // the sources of the scene the view patches, for layers that name none ({"layer": N} may
  // name them). Errors name the field (kInvalidArgument for a mistake in the view).
  Status resolve(nlohmann::json& view, render::RenderInputs& inputs,
                 std::span<const int> current = {});

  // A keyframe's "scene" or "patch" for render::parse_timeline (render::KeyframeHook): its
  // derived layers resolved; in a patch, a derived layer's "source" merges into the source
  // that layer has in `prev` (JSON Merge Patch), so a patch may change one parameter.
  Result<nlohmann::json> resolve_keyframe(const nlohmann::json& doc, const render::Scene& prev,
                                          bool full, render::RenderInputs& inputs);

  // The specification of source `index` with nested inputs and every parameter
  // ({"pipeline", "input", "params"}), or the index itself for a source not derived here.
  nlohmann::json spec(int index) const;

  // The source between sources a and b at eased fraction u (render::SourceBlend): the live
  // parameters of their pipelines interpolated (pipeline::interpolate_source), made when new.
  Result<int> blend(int a, int b, double u, render::RenderInputs& inputs);

 private:
  Result<int> make(const std::string& name, int input, const nlohmann::json& params,
                   const std::string& field, render::RenderInputs& in);
  LayerSources walker(const nlohmann::json& layers, std::span<const int> current,
                      render::RenderInputs& inputs);
  std::unique_ptr<pipeline::Manager> owned_;
  pipeline::Manager& manager_;
  std::map<std::string, int> by_spec_;   // canonical specification -> source index
  std::map<int, nlohmann::json> specs_;  // source index -> {"pipeline", "input": INDEX, "params"}
  // What make() added, per cache: removed with a shared manager.
  std::map<data::ChunkCache*, std::vector<data::SourceId>> added_;
};

}  // namespace vx::stream
