// Job kinds: one interface for every kind of batch render (orbit, movie, ...). A kind has a
// name, a parameter schema (JSON Schema, for clients that build forms), a validation that
// runs at submission with errors naming the field ("field 'params.size': ..."), and a run
// that reports progress and honours cancel. The queue, the HTTP routes, the CLI and the
// clients only ever see this interface (DESIGN.md, "Seams": job kinds).
#pragma once

#include <atomic>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "render/renderer.hpp"

namespace vx::pipeline {
class Manager;
}

namespace vx::jobs {

using json = nlohmann::json;

// What a running job sees.
class JobContext {
 public:
  virtual ~JobContext() = default;
  virtual void progress(std::uint64_t done, std::uint64_t total) = 0;
  virtual const std::atomic<bool>& cancelled() const = 0;
  virtual const std::string& dir() const = 0;  // where to write results
  // What the scheduler a backend hands the job to says of it (Slurm: {"name": "slurm",
  // "job": "123", "state": "PENDING", "reason": "Resources"}), shown with the job: a job
  // the queue runs may still be waiting on the cluster. Optional.
  virtual void scheduler(const json& /*state*/) {}
};

// A small declarative description of one parameter: it validates and emits JSON Schema.
// (Local to src/jobs until a shared parameter-spec helper in src/core replaces it.)
struct Param {
  enum class Type { kInteger, kNumber, kString, kObject, kNumberPair };
  std::string name;
  Type type = Type::kInteger;
  std::string description;
  json fallback = nullptr;  // the default (documentation only: kinds read their defaults)
  double min = -std::numeric_limits<double>::infinity();
  double max = std::numeric_limits<double>::infinity();
  std::vector<std::string> choices;  // strings: the accepted values
  bool required = false;
};

// `nodes`: how many cluster nodes a job is spread over (srun under --jobs-backend slurm; the
// local backend refuses more than one). Every kind that can run on a cluster lists it.
inline constexpr int kMaxJobNodes = 256;
Param nodes_param();

// JSON Schema (draft 2020-12) of an object with these properties and no others.
json params_schema(const std::vector<Param>& spec);
// Checks that `params` is an object of known fields, each of its type and range: an error
// naming the field ("field 'params.size': expected an integer in 16..1024") otherwise.
Status check_params(const json& params, const std::vector<Param>& spec);

// What a kind renders from, as its host (the server, the CLI) provides it.
struct Dataset {
  render::RenderInputs inputs;
  render::Scene defaults;  // the dataset's default scene, contrast estimated
  json brief = nullptr;    // {"id", "name", "location"}: recorded with the job
  // The pipelines that derived layers of the job's scenes name (their sources are made in
  // inputs.cache); null: scenes with derived layers are refused.
  pipeline::Manager* pipelines = nullptr;
};
// The dataset of index `i`, or an error naming the field 'params.dataset'.
using DatasetLookup = std::function<Result<Dataset>(int i)>;

class JobKind {
 public:
  virtual ~JobKind() = default;
  virtual std::string name() const = 0;
  virtual std::string description() const = 0;
  // The parameters, as a list (for check_params) and as JSON Schema.
  virtual const std::vector<Param>& params() const = 0;
  json schema() const { return params_schema(params()); }
  // Runs at submission: the parameters are well-formed and what they name exists. Errors
  // name the field. Returns what the job is of (Dataset::brief), or null.
  virtual Result<json> validate(const json& params) const = 0;
  // Renders into ctx.dir(); returns the files written (relative to it). Progress through
  // ctx.progress(), stops with kCancelled soon after ctx.cancelled() turns true, and leaves
  // no half-written file under a result's name.
  virtual Result<std::vector<std::string>> run(const json& params, JobContext& ctx) const = 0;
};

using Kinds = std::map<std::string, std::shared_ptr<const JobKind>>;

// {"kinds": [{"name", "description", "schema"}]} for GET /api/v1/jobs/kinds.
json describe_kinds(const Kinds& kinds);

// Runs a job of `kind` here and now (the CLI): validates, then runs into `dir` (created).
// `on_progress` is called from render threads.
Result<std::vector<std::string>> run_local(
    const JobKind& kind, const json& params, const std::string& dir,
    std::function<void(std::uint64_t done, std::uint64_t total)> on_progress,
    const std::atomic<bool>* cancel = nullptr);

// The built-in kinds. `component_js` is web/voxcast-orbit.js, inlined into an orbit's
// index.html (empty: the page says it is missing).
// `compositor`: sort-last over MPI (OrbitOptions::compositor), for `mpirun voxcast orbit`.
std::shared_ptr<const JobKind> make_orbit_kind(DatasetLookup datasets, std::string component_js,
                                               render::Compositor* compositor = nullptr);
// `compositor`: sort-last over MPI (MovieOptions::compositor), for `mpirun voxcast movie`.
std::shared_ptr<const JobKind> make_movie_kind(DatasetLookup datasets,
                                               render::Compositor* compositor = nullptr);
// `compositor`: orbits and movies split over MPI ranks (voxcast job under srun or mpirun).
Kinds builtin_kinds(DatasetLookup datasets, std::string component_js,
                    render::Compositor* compositor = nullptr);

}  // namespace vx::jobs
