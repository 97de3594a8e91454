#include <fmt/format.h>

#include <filesystem>

#include "commands.hpp"
#include "jobs/slurm.hpp"
#include "local_job.hpp"
#include "mpi_run.hpp"
#include "pipeline/pipeline.hpp"

namespace vx::app {

Runner add_job(CLI::App& app, const GlobalOptions& g) {
  auto* cmd = app.add_subcommand(
      "job",
      "Run a job of any kind here, as the server would (GET /api/v1/job-kinds lists the kinds\n"
      "and their parameters): orbit, movie. PARAMS is the job's params object, a JSON file or\n"
      "inline JSON; the results go into DIR.");
  struct Opts {
    std::string kind, data, params = "{}", out, progress_file;
    bool quiet = false, schema = false;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("KIND", o->kind, "orbit or movie")->required();
  cmd->add_option("DATA", o->data, "Dataset path or synthetic:NAME[?k=v&...]");
  cmd->add_option("--params", o->params, "The params: a JSON file, or JSON text")
      ->capture_default_str();
  cmd->add_option("-o,--output", o->out, "Directory for the results");
  cmd->add_flag("--schema", o->schema, "Print the kind's params as JSON Schema and exit");
  cmd->add_flag("-q,--quiet", o->quiet, "No progress bar");
  cmd->add_option("--progress-file", o->progress_file,
                  "Write \"DONE TOTAL\" into this file as the job goes (replaced atomically, at "
                  "most every 0.1 s; rank 0 only): how `voxcast serve --jobs-backend slurm` "
                  "follows a job on a cluster node. No progress bar then");
  cmd->footer(
      "Example: voxcast job movie brain.ome.zarr --params '{\"timeline\": {\"keyframes\": "
      "[{\"time\": 0}, {\"time\": 2}]}, \"width\": 640, \"height\": 360}' -o out/");
  return [o, &g]() {
    // Under mpirun or srun (Slurm jobs with nodes > 1): orbits split every view, and movies
    // every frame, over the ranks (sort-last); rank 0 writes the files.
    auto launched = world_if_launched();
    if (!launched) return report(launched.error().what());
    const std::unique_ptr<cluster::World> world = std::move(*launched);
    // Derived layers (pipelines) in a movie's keyframes charge the cache's budget; declared
    // before the dataset, whose cache must go first.
    Budget budget("host", g.cache_bytes());
    pipeline::Manager pipelines(pipeline::builtin_registry(), budget);
    std::optional<LocalDataset> local;
    const auto lookup = [&local](int i) -> Result<jobs::Dataset> {
      if (!local)
        return fail(ErrorCode::kInvalidArgument, "field 'params.dataset': {} (there is none)", i);
      return local->lookup()(i);
    };
    const auto kinds = jobs::builtin_kinds(lookup, orbit_component_js(), world.get());
    const auto it = kinds.find(o->kind);
    if (it == kinds.end()) {
      std::string names;
      for (const auto& [name, k] : kinds)
        names += (names.empty() ? "" : ", ") + name;
      return usage_error(fmt::format("KIND '{}': not one of {}", o->kind, names));
    }
    if (o->schema) {
      fmt::print("{}\n", it->second->schema().dump(2));
      return 0;
    }
    if (o->data.empty() || o->out.empty())
      return usage_error("DATA and -o DIR are required (or --schema)");
    jobs::json params = jobs::json::parse(o->params, nullptr, false);
    if (params.is_discarded()) {  // not JSON text: a file
      auto j = render::read_scene_file(o->params);
      if (!j) return report(j.error().what());
      params = std::move(*j);
    }
    auto opened = open_local_dataset(o->data, g, 0, 0, &budget);
    if (!opened) return report(opened.error().what());
    local = std::move(*opened);
    local->dataset.pipelines = &pipelines;
    Result<std::vector<std::string>> files = fail(ErrorCode::kInternal, "not run");
    if (world && world->rank() != 0)  // partial pictures
      return run_partial_rank(*world, *it->second, params);
    if (o->progress_file.empty()) {
      files = run_with_progress(*it->second, params, o->out, o->kind, "units", o->quiet);
    } else {
      jobs::slurm::ProgressFile progress(o->progress_file);
      files = jobs::run_local(
          *it->second, params, o->out,
          [&](std::uint64_t done, std::uint64_t total) { progress.update(done, total); });
    }
    if (world)
      if (auto st = agree_on(world.get(), files); !st) return report(st.error().what());
    if (!files) return job_error(files.error(), {});
    for (const auto& f : *files)
      fmt::print("{}\n", (std::filesystem::path(o->out) / f).string());
    return 0;
  };
}

}  // namespace vx::app
