// Layers whose source is a pipeline applied to another source (docs/pipelines.md):
//   "source": {"pipeline": "gaussian", "input": 0, "params": {"sigma": 2}}
// A session's sources are its dataset (0) and the derived sources its scene names (1...);
// the scene model itself only sees indices. A patch that changes a derived layer's params
// merges into its current specification (JSON Merge Patch) and names a new source; the
// chunks of the old one stay cached, and views fall back to coarser levels of the new one
// (refining) until its chunks are computed.
#include <fmt/format.h>

#include <cmath>
#include <optional>

#include "core/log.hpp"
#include "pipeline/interpolate.hpp"
#include "pipeline/pipeline.hpp"
#include "render/renderer.hpp"
#include "stream/layer_sources.hpp"
#include "stream/session.hpp"

namespace vx::stream {

namespace {
constexpr std::size_t kMaxDerived = 64;  // derived sources one session may name
// The longest a new derived layer's display window may wait for its coarsest level.
constexpr std::chrono::milliseconds kContrastWait{5000};
// A preview moves a derived layer's parameters in this many steps per segment: each step is
// a derived source computed anew, and a session may name kMaxDerived.
constexpr double kPreviewSteps = 8;
}  // namespace

render::RenderInputs Session::inputs_locked() const {
  render::RenderInputs in{engine_.cache,
                          {engine_.ids[std::size_t(dataset_)]},
                          render::SceneData{{engine_.datasets[std::size_t(dataset_)]}}};
  const bool flat = scene_.dims.ndisplay == 2;
  for (const auto& d : derived_) {
    const auto& variant = flat ? d.thin : d.thick;
    in.sources.push_back(variant->id);
    in.data.sources.push_back(variant->source->info());
    in.keep.push_back(variant);
  }
  return in;
}

Result<DerivedCatalog::Handle> DerivedCatalog::get(const std::string& key, data::ChunkCache& cache,
                                                   Handle input, const Make& make) {
  const auto live = [&]() -> Handle {
    auto it = by_key_.find(key);
    return it == by_key_.end() ? nullptr : it->second.lock();
  };
  {
    std::lock_guard lock(mutex_);
    if (auto h = live()) return h;
  }
  // Made outside the lock: a pipeline's prepare() may read a whole level or start a worker,
  // and the last holder of any other entry (a render thread ending a frame) takes the lock
  // to let go of it.
  VX_ASSIGN(auto source, make());
  auto* entry = new Entry{source, cache.add_source(source), std::move(input)};
  // The last holder removes the source from the cache and the entry from the catalog (unless
  // a new entry took its key meanwhile); then the entry's input handle goes, and with it,
  // maybe, the chain below.
  Handle handle(entry, [self = weak_from_this(), cache = &cache, key](const Entry* e) {
    cache->remove_source(e->id);
    if (auto catalog = self.lock()) {
      std::lock_guard l(catalog->mutex_);
      if (auto it = catalog->by_key_.find(key);
          it != catalog->by_key_.end() && it->second.expired())
        catalog->by_key_.erase(it);
    }
    VX_LOG(debug, "stream.derived_source_removed", "id={}", e->id);
    delete e;
  });
  {
    std::lock_guard lock(mutex_);
    // Another session made it meanwhile: use that one; ours lets go once the lock is released
    // (`handle` outlives this block).
    if (auto h = live()) return h;
    by_key_[key] = handle;
  }
  VX_LOG(info, "stream.derived_source", "id={} key={}", entry->id, log_quote(key));
  return handle;
}

std::size_t DerivedCatalog::size() const {
  std::lock_guard lock(mutex_);
  return by_key_.size();
}

json Session::source_json(int index) const {
  if (index <= 0 || index > int(derived_.size())) return index;
  json spec = derived_[std::size_t(index - 1)].spec;
  spec["input"] = source_json(spec["input"].get<int>());
  return spec;
}

json Session::scene_json_locked() const {
  json j = render::to_json(scene_);
  for (std::size_t i = 0; i < scene_.layers.size(); ++i)
    if (scene_.layers[i].source > 0)
      j["layers"][i]["source"] = source_json(scene_.layers[i].source);
  return j;
}

LayerSources Session::layer_sources(const json& layers, std::span<const int> current) {
  ++derived_epoch_;  // the sources this resolution names are not reused under it
  return LayerSources(
      engine_.pipelines->registry(), layers, current, [this] { return 1 + int(derived_.size()); },
      [this](const std::string& name, int input, const json& params, const std::string& field) {
        return make_derived(name, input, params, field);
      },
      [this](int index) {  // a slot named by number is in use for this update too
        if (index > 0 && index <= int(derived_.size()))
          derived_[std::size_t(index - 1)].epoch = derived_epoch_;
      });
}

Result<int> Session::make_derived(const std::string& name, int input, const json& params,
                                  const std::string& field) {
  const json canonical{{"pipeline", name}, {"input", input}, {"params", params}};
  for (std::size_t i = 0; i < derived_.size(); ++i)
    if (derived_[i].spec == canonical) {
      derived_[i].epoch = derived_epoch_;
      return int(i + 1);
    }
  // Every parameter change names a new source: a knob turned for a while reuses the slots
  // of sources the scene no longer shows (their chunks stay cached, shared by key).
  std::size_t slot = derived_.size();
  if (derived_.size() >= kMaxDerived) {
    const auto free = reusable_derived_slot_locked(input);
    if (!free)
      return fail(ErrorCode::kUnsupported,
                  "field '{}': a session may name {} derived sources, and its layers (or the "
                  "timeline playing) use all of them",
                  field, kMaxDerived);
    slot = *free;
  }
  // Two variants of one source: chunks as the input's (3D views), and one plane deep (2D
  // views of 3D data: a slice computes its plane and the halo, not the input chunks' depth;
  // a parameter change reaches the final frame 3 to 5 times sooner, docs/benchmarks.md).
  // inputs_locked() gives a scene the one that fits its ndisplay. Making a source computes
  // nothing: a variant no view shows costs nothing.
  const auto made = [&](bool thin) -> Result<DerivedCatalog::Handle> {
    const DerivedCatalog::Handle* in = input == 0 ? nullptr
                                       : thin     ? &derived_[std::size_t(input - 1)].thin
                                                  : &derived_[std::size_t(input - 1)].thick;
    const auto input_id = in ? (*in)->id : engine_.ids[std::size_t(dataset_)];
    const std::string key =
        fmt::format("{}|{}|{}{}", input_id, name, params.dump(), thin ? "|z1" : "");
    return engine_.derived->get(
        key, *engine_.cache, in ? *in : nullptr,
        [&]() -> Result<std::shared_ptr<const data::VolumeSource>> {
          auto src = pipeline::DerivedSource::create(*engine_.pipelines, *engine_.cache, input_id,
                                                     name, params, thin ? 1 : 0);
          if (!src)
            return tl::unexpected(with_context(src.error(), fmt::format("field '{}'", field)));
          return std::shared_ptr<const data::VolumeSource>(std::move(*src));
        });
  };
  VX_ASSIGN(auto thick, made(false));
  const auto& lv0 = thick->source->info().levels[0];
  const bool deep =
      lv0.chunks.size() >= 3 && lv0.chunks[lv0.chunks.size() - 3] > 1 &&
      thick->source->info().axes[lv0.chunks.size() - 3].type == data::AxisType::kSpace;
  DerivedCatalog::Handle thin = thick;
  if (deep) {
    VX_ASSIGN(thin, made(true));
  }
  LayerSource made_source{canonical, std::move(thick), std::move(thin), derived_epoch_};
  if (slot == derived_.size()) {
    derived_.push_back(std::move(made_source));
  } else {
    derived_[slot] = std::move(made_source);
    VX_LOG(debug, "session.derived_slot_reused", "slot={} spec={}", slot + 1,
           log_quote(canonical.dump()));
  }
  return int(slot + 1);
}

std::optional<std::size_t> Session::reusable_derived_slot_locked(int input) {
  if (playback_) return std::nullopt;  // the timeline's keyframes name sources by index
  std::vector<bool> used(derived_.size() + 1, false);
  const auto mark = [&](auto&& self, int s) -> void {
    if (s <= 0 || s > int(derived_.size()) || used[std::size_t(s)]) return;
    used[std::size_t(s)] = true;
    const auto& spec = derived_[std::size_t(s - 1)].spec;
    if (spec.is_object() && spec.contains("input")) self(self, spec["input"].get<int>());
  };
  mark(mark, input);  // the new source's own input (and its chain)
  for (const auto& layer : scene_.layers)
    mark(mark, layer.source);
  for (std::size_t i = 0; i < derived_.size(); ++i)
    if (derived_[i].epoch == derived_epoch_) mark(mark, int(i + 1));
  std::optional<std::size_t> best;
  for (std::size_t i = 0; i < derived_.size(); ++i)
    if (!used[i + 1] && (!best || derived_[i].epoch < derived_[*best].epoch)) best = i;
  if (!best) return std::nullopt;
  // Sources made from the reused one name it as their input: they must never match a
  // specification again (they are unused too, or the reused one would be).
  for (auto& d : derived_)
    if (d.spec.is_object() && d.spec.value("input", 0) == int(*best + 1)) d.spec = nullptr;
  return best;
}

int Session::blend_source(int a, int b, double u) {
  const double q = std::round(u * kPreviewSteps) / kPreviewSteps;
  const int near = q >= 0.5 ? b : a;
  if (!engine_.pipelines || q <= 0 || q >= 1) return q <= 0 ? a : q >= 1 ? b : near;
  const json mid = pipeline::interpolate_source(engine_.pipelines->registry(), source_json(a),
                                                source_json(b), q);
  const json no_layers = json::array();  // specifications from source_json name no layers
  auto r = layer_sources(no_layers, {}).source(mid, "timeline");
  if (!r) {  // say the session's cap of derived sources: switch at the midpoint instead
    if (playback_ && !playback_->blend_failed)
      VX_LOG(warn, "session.preview_blend", "message={}", log_quote(r.error().message));
    if (playback_) playback_->blend_failed = true;
    return near;
  }
  return *r;
}

void Session::display_new_derived_layers_locked(const json& patch, render::Scene& next) const {
  if (!patch.is_object() || !patch.contains("layers") || !patch["layers"].is_array()) return;
  const auto& layers = patch["layers"];
  for (std::size_t i = scene_.layers.size(); i < next.layers.size() && i < layers.size(); ++i) {
    auto& layer = next.layers[i];
    if (layer.source <= 0 || !layers[i].is_object() || layers[i].contains("contrast_limits"))
      continue;
    // A processed layer added without a display window gets one from its own data, as a
    // dataset's layers do (percentiles of the coarsest level, computed): a gaussian keeps
    // its input's range, a threshold gives labels, a model anything. The Layer default
    // (0..1) would show most data saturated.
    // This runs while the update is applied, on the connection's thread: a pipeline that is
    // slow (a model) or stuck must not hold the session, and every other on that thread, for
    // long. Past kContrastWait the layer keeps the window it has, and says why.
    render::Scene one = next;
    one.layers = {layer};
    std::vector<std::string> warnings;
    if (auto st = render::estimate_contrast(one, inputs_locked(), &warnings, kContrastWait); !st) {
      VX_LOG(warn, "session.derived_contrast", "layer={} error={}", i,
             log_quote(st.error().message));
      continue;
    }
    for (const auto& w : warnings)
      VX_LOG(warn, "session.derived_contrast", "layer={} warning={}", i, log_quote(w));
    layer.contrast_limits = one.layers[0].contrast_limits;
    if (!layers[i].contains("iso_threshold"))
      layer.iso_threshold = 0.5 * (layer.contrast_limits[0] + layer.contrast_limits[1]);
  }
}

Result<json> Session::resolve_patch(const json& patch, const render::Scene& against) {
  if (!patch.is_object() || !patch.contains("layers") || !patch["layers"].is_array()) return patch;
  json out = patch;
  auto& layers = out["layers"];
  std::optional<std::size_t> first;  // the first layer whose source is an object
  for (std::size_t i = 0; i < layers.size(); ++i) {
    auto& l = layers[i];
    if (!l.is_object() || !l.contains("source") || !l["source"].is_object()) continue;
    if (!first) first = i;
    // A patch of a derived layer's source (say only its params) merges into what it is.
    if (i < against.layers.size() && against.layers[i].source > 0 && !l["source"].contains("layer"))
      l["source"] =
          pipeline::merge_derived_spec(source_json(against.layers[i].source), l["source"]);
  }
  if (!first) return out;
  if (!engine_.pipelines || !engine_.cache)
    return fail(ErrorCode::kUnsupported, "field 'layers[{}].source': this server has no pipelines",
                *first);
  // Layers the patch leaves as they are keep their sources ({"layer": N} may name them).
  std::vector<int> current;
  for (const auto& l : against.layers)
    current.push_back(l.source);
  const json merged = layers;
  VX_TRY(layer_sources(merged, current).resolve(layers));
  return out;
}

}  // namespace vx::stream
