// voxcast pipelines, public interface: a pipeline processes chunks of a volume (with the halo
// it needs around each); a registry lists them (one file per built-in under builtin/, no
// if-chains); a manager loads them lazily, shares them between sessions and offloads idle
// ones under memory pressure; a derived source applies one to an input source, chunk by
// chunk, through the chunk cache (docs/pipelines.md).
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/params.hpp"
#include "core/resources.hpp"
#include "data/chunk_cache.hpp"
#include "data/data.hpp"

namespace vx::pipeline {

using json = nlohmann::json;
using Vec3 = std::array<double, 3>;        // per spatial axis: z, y, x
using Ext3 = std::array<std::int64_t, 3>;  // voxels per spatial axis: z, y, x

// A C-order float32 block of (z, y, x) voxels; 2D data has z = 1.
struct BlockView {
  float* data = nullptr;
  Ext3 shape{1, 1, 1};
  std::int64_t voxels() const { return shape[0] * shape[1] * shape[2]; }
  float& at(std::int64_t z, std::int64_t y, std::int64_t x) const {
    return data[(z * shape[1] + y) * shape[2] + x];
  }
};

// What a pipeline knows of the level it works on.
struct LevelContext {
  Vec3 voxel_size{1, 1, 1};  // physical size of one voxel of this level (z, y, x)
  Vec3 downsample{1, 1, 1};  // this level's voxel over level 0's, per axis (1 at level 0)
  int spatial_dims = 3;      // 2: the z axis is absent (shape and halo 1 and 0 there)
  data::DType input_dtype = data::DType::kFloat32;
};

class Pipeline {
 public:
  virtual ~Pipeline() = default;
  // Load-time state (FFT plans, weights): returns the bytes it holds, charged to the budget.
  virtual Result<std::uint64_t> load() { return std::uint64_t(0); }
  virtual void unload() {}
  // Whole-volume preparation before any chunk, e.g. Otsu's threshold on the coarsest level:
  // returns the parameters to process with (may add "_"-prefixed derived values). `read`
  // copies a level of the input (coarsest = levels - 1) as float32 (z, y, x).
  using LevelReader = std::function<Result<std::vector<float>>(int level, Ext3& shape)>;
  virtual Result<json> prepare(const json& params, data::DType input, int levels,
                               const LevelReader& read) const {
    (void)input;
    (void)levels;
    (void)read;
    return params;
  }
  virtual data::DType output_dtype(data::DType input, const json& params) const {
    (void)input;
    (void)params;
    return data::DType::kFloat32;
  }
  // The halo (voxels per spatial axis) each chunk needs around it at this level.
  virtual Ext3 halo(const json& params, const LevelContext& level) const = 0;
  // Scratch memory process() needs beyond its input and output, for the budget.
  virtual std::uint64_t scratch_bytes(const json& params, const Ext3& in_shape) const {
    (void)params;
    return std::uint64_t(in_shape[0] * in_shape[1] * in_shape[2]) * 2 * sizeof(float);
  }
  // in: the chunk with its halo (out.shape + 2 * halo); out: the chunk. Thread-safe: called
  // for many chunks at once. Values are converted to output_dtype() afterwards (rounded and
  // clamped for integer types).
  virtual Status process(const json& params, const LevelContext& level, const BlockView& in,
                         const BlockView& out) const = 0;
  // While loaded: empty when healthy, else why not (an external pipeline's worker died and
  // is restarting); the manager then lists the pipeline as `error` with this reason.
  virtual std::string health() const { return {}; }
  // Extra facts for listings (an external pipeline: its worker's pid, starts, deaths).
  virtual json details() const { return nullptr; }
};

struct Descriptor {
  std::string name, version, description;
  ParamSchema schema;
  std::function<std::unique_ptr<Pipeline>()> make;
  std::string error;  // non-empty: listed with status `error` from the start (a malformed
                      // description from a worker); loading fails with it
  std::function<json()> details;  // optional, for listings while not loaded
};

class Registry {
 public:
  // kConflict when the name is taken.
  Status add(Descriptor d);
  const Descriptor* find(std::string_view name) const;
  std::vector<const Descriptor*> list() const;  // by name

 private:
  std::map<std::string, Descriptor, std::less<>> items_;
};

// Every built-in pipeline: each file under src/pipeline/builtin/ registers one (the list is
// generated from the file names at configure time).
Registry builtin_registry();

// At most this many pipelines in one chain of derived sources (scenes and view files).
inline constexpr int kMaxChain = 8;

// A derived source as scenes and view files write it, {"pipeline": NAME, "input": INPUT,
// "params": {...}}, checked against `registry`: its keys, the pipeline's name and the
// parameters against its schema (defaults filled in). `input` is left to the caller, which
// knows what it may name (a source index, a nested spec, a view's {"layer": N}). `depth` is
// the spec's place in its chain. Errors name the field ("field 'layers[1].source.params.
// sigma': must be >= 0 (got -1)").
struct DerivedSpec {
  const Descriptor* descriptor = nullptr;
  json input;   // the spec's "input", 0 (the dataset) when absent
  json params;  // valid, defaults filled in
};
Result<DerivedSpec> check_derived_spec(const Registry& registry, const json& spec,
                                       const std::string& field, int depth);

// A patch of a derived source as scenes write it (`{"params": {"sigma": 3}}`) merged into the
// source a layer has (`current`, a specification with its input nested): JSON Merge Patch,
// except that an "input" naming a source (an index, a view's {"layer": N}) replaces the
// nested input rather than merging into it. A `current` that is not a specification (a
// source index) gives the patch itself.
json merge_derived_spec(const json& current, const json& patch);

enum class LoadStatus { kNotLoaded, kLoading, kLoaded, kError };
std::string_view to_string(LoadStatus s);

class Manager;

// A loaded pipeline in use: it is not offloaded while a lease on it lives.
class Lease {
 public:
  Lease() = default;
  ~Lease();
  Lease(Lease&&) noexcept = default;
  Lease& operator=(Lease&&) noexcept = default;
  const Pipeline& operator*() const { return *pipeline_; }
  const Pipeline* operator->() const { return pipeline_; }

 private:
  friend class Manager;
  struct Slot;
  std::shared_ptr<Slot> slot_;
  const Pipeline* pipeline_ = nullptr;
};

// Loads pipelines on first use, shares one instance per name between sessions, charges
// their memory to a budget (rank kRankPipeline: idle ones are offloaded first, LRU) and
// unloads idle ones. Thread-safe.
class Manager {
 public:
  Manager(Registry registry, Budget& budget);
  ~Manager();
  Manager(const Manager&) = delete;
  Manager& operator=(const Manager&) = delete;

  const Registry& registry() const { return registry_; }
  Budget& budget() const { return budget_; }
  // The loaded pipeline, loading it first when needed. kNotFound for an unknown name (the
  // message lists the known ones); the load's error otherwise.
  Result<Lease> use(std::string_view name);
  Status load(std::string_view name);
  // kBusy while it is in use; unloading what is not loaded is fine.
  Status unload(std::string_view name);
  // Unloads pipelines unused for `idle`; returns how many.
  int unload_idle(std::chrono::milliseconds idle);
  LoadStatus status(std::string_view name) const;
  // [{name, version, description, schema, status, error?, memory_bytes, in_use}]
  json list() const;
  // The scratch-memory holder of a pipeline's computations, shared by its derived sources
  // (charged per chunk computed): one "scratch NAME" in the budget, however many parameter
  // values a server has seen.
  std::shared_ptr<Budget::Holder> scratch_holder(const std::string& name);

  // Status changes as they happen, for /ws/events: {"name", "status", "memory_bytes",
  // "reason", "error"?}; reason is "use" (loading, loaded, error), "request" (unload),
  // "offloaded" (the budget needed the memory) or "idle" (unload_idle). Listeners run on the
  // thread that made the change, with no lock held; they must not block. Unsubscribes when
  // the Subscription goes (before or after the manager).
  using Listener = std::function<void(const json& change)>;
  class Subscription {
   public:
    Subscription() = default;
    ~Subscription();
    Subscription(Subscription&&) noexcept = default;
    Subscription& operator=(Subscription&&) noexcept;
    struct Listeners;  // opaque

   private:
    friend class Manager;
    std::weak_ptr<Listeners> listeners_;
    std::uint64_t id_ = 0;
  };
  [[nodiscard]] Subscription subscribe(Listener listener);

 private:
  Lease::Slot* slot(std::string_view name) const;
  Registry registry_;
  Budget& budget_;
  std::map<std::string, std::shared_ptr<Lease::Slot>, std::less<>> slots_;
  std::shared_ptr<Subscription::Listeners> listeners_;
  std::mutex scratch_mutex_;
  std::map<std::string, std::shared_ptr<Budget::Holder>, std::less<>> scratch_;
};

// "gaussian:sigma=2,truncate=4" -> {"pipeline": "gaussian", "params": {...}} validated.
Result<json> parse_pipeline_arg(const Registry& registry, std::string_view text);

// A pipeline applied to an input source of a chunk cache: same levels, shapes, chunks and
// scales as the input; dtype from the pipeline. Its chunks are computed by the cache on
// request (data::ComputedSource) and cached under the derived source's own id, so each
// (pipeline, parameters) pair has its own keys.
class DerivedSource final : public data::ComputedSource {
 public:
  // Validates `params` (errors name "params.FIELD"), runs the pipeline's prepare(). The input
  // must have been added to `cache`. `z_chunk` > 0 makes chunks at most that deep along z
  // (3D data; the input's otherwise): a 2D view of a thin source computes the planes it
  // shows and their halo, not whole input chunks (docs/pipelines.md, "2D views").
  static Result<std::shared_ptr<DerivedSource>> create(Manager& manager, data::ChunkCache& cache,
                                                       data::SourceId input, std::string_view name,
                                                       const json& params,
                                                       std::int64_t z_chunk = 0);

  const data::VolumeInfo& info() const override { return info_; }
  Result<std::vector<data::ChunkKey>> inputs(int level, const data::Index& index) const override;
  Result<data::ReadResult> compute(int level, const data::Index& index,
                                   std::span<const data::ChunkPin> pins,
                                   std::span<std::byte> out) const override;
  data::ChunkCache& input_cache() const override { return cache_; }
  unsigned io_concurrency() const override { return 1; }

  const std::string& pipeline_name() const { return name_; }
  const json& params() const { return params_; }  // validated, defaults filled
  data::SourceId input() const { return input_; }
  // {"pipeline": NAME, "input": INPUT, "params": {...}}, for caching by specification.
  json spec(const json& input_spec) const;

 private:
  DerivedSource(Manager& m, data::ChunkCache& c) : manager_(m), cache_(c) {}
  Manager& manager_;
  data::ChunkCache& cache_;
  data::SourceId input_ = 0;
  data::VolumeInfo input_info_;  // the input's description, kept (its id may be removed)
  std::string name_;
  json params_;
  data::VolumeInfo info_;
  int first_spatial_ = 0, spatial_ = 0;  // spatial axes are the last `spatial_` ones
  std::vector<LevelContext> levels_;
  std::vector<Ext3> halos_;
  std::shared_ptr<Budget::Holder> scratch_;  // its pipeline's (Manager::scratch_holder)
};

}  // namespace vx::pipeline
