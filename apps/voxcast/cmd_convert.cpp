#include <fmt/format.h>

#include "commands.hpp"
#include "core/log.hpp"
#include "core/memory.hpp"
#include "core/progress.hpp"
#include "data/convert.hpp"
#include "mpi_run.hpp"
#include "pipeline/pipeline.hpp"
#include "pipeline/workers.hpp"

namespace vx::app {

Runner add_convert(CLI::App& app, const GlobalOptions& g) {
  auto* cmd = app.add_subcommand(
      "convert",
      "Write a multiscale OME-Zarr pyramid (2x mean downsampling over spatial axes) from any "
      "readable\n"
      "dataset, streaming chunk by chunk: inputs larger than RAM work, memory stays within "
      "--cache-mb\n"
      "plus a few chunks per thread. Zarr v2 gives OME-Zarr 0.4, Zarr v3 gives OME-Zarr 0.5.");
  struct Opts {
    std::string in, out, codec = "zstd";
    data::ConvertOptions c;
    std::vector<std::string> pipelines;
    std::string workers;  // --pipelines FILE: Python pipeline workers
    bool quiet = false;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("IN", o->in, "Input dataset path or synthetic:NAME[?k=v&...]")->required();
  cmd->add_option("OUT", o->out, "Output directory, e.g. brain.ome.zarr")->required();
  cmd->add_option("--zarr-version", o->c.zarr_version, "2 (OME-Zarr 0.4) or 3 (OME-Zarr 0.5)")
      ->capture_default_str()
      ->check(CLI::IsMember({2, 3}));
  cmd->add_option("--chunk", o->c.chunk, "Chunk edge along spatial axes (1 along c and t)")
      ->capture_default_str()
      ->check(CLI::Range(8, 4096));
  cmd->add_option("--codec", o->codec, "zstd, lz4 (blosc-lz4 with byte shuffle) or none")
      ->capture_default_str()
      ->check(CLI::IsMember({"zstd", "lz4", "none"}));
  cmd->add_option("--levels", o->c.levels,
                  "Number of levels (default: until one chunk holds a level)")
      ->check(CLI::Range(1, 30));
  cmd->add_option("--shard", o->c.shard,
                  "Zarr v3 only: group N^3 chunks (N along each spatial axis) into one shard file, "
                  "index at the end with a crc32c (0: no sharding)")
      ->capture_default_str()
      ->check(CLI::Range(0, 64));
  cmd->add_flag("--overwrite", o->c.overwrite, "Replace an existing Zarr store at OUT");
  cmd->add_option("--pipeline", o->pipelines,
                  "Process before writing: NAME[:k=v,...] (voxcast pipelines lists them; "
                  "per-axis values as a/b/c); repeat to chain")
      ->take_all();
  cmd->add_option("--pipelines", o->workers,
                  "A manifest of Python pipeline workers whose pipelines --pipeline may name "
                  "(as voxcast serve --pipelines)")
      ->check(CLI::ExistingFile);
  cmd->add_flag("-q,--quiet", o->quiet, "No progress bar");
  cmd->footer(
      "Example: voxcast convert stack.tif stack.ome.zarr --zarr-version 3 --shard 4 --codec lz4");
  return [o, &g]() {
    // Under mpirun: each rank writes its share of every level's chunks (docs/cluster.md).
    auto launched = world_if_launched();
    if (!launched) return report(launched.error().what());
    const std::unique_ptr<cluster::World> world = std::move(*launched);
    if (world) {
      o->c.part = world->rank();
      o->c.parts = world->size();
      o->c.agree = [&world](const Status& st) { return world->agree(st); };
      if (world->rank() != 0) o->quiet = true;
    }
    o->c.codec = o->codec == "lz4"    ? data::OutputCodec::kLz4
                 : o->codec == "none" ? data::OutputCodec::kNone
                                      : data::OutputCodec::kZstd;
    o->c.cache_bytes = g.cache_bytes();
    o->c.io_threads = g.io_threads;
    o->c.progress = !o->quiet;
    // Pipelines run chunk by chunk through the convert's cache, under its budget.
    Budget budget("host", o->c.cache_bytes);
    std::shared_ptr<pipeline::Workers> workers;  // outlives the manager
    std::unique_ptr<pipeline::Manager> manager;
    std::vector<std::shared_ptr<pipeline::DerivedSource>> derived;
    if (!o->pipelines.empty()) {
      auto registry = pipeline::builtin_registry();
      if (!o->workers.empty()) {
        auto w = pipeline::add_workers(registry, o->workers, &budget);
        if (!w) return report(w.error().what());
        workers = std::move(*w);
      }
      std::vector<json> steps;
      for (const auto& text : o->pipelines) {
        auto step = pipeline::parse_pipeline_arg(registry, text);
        if (!step) return usage_error(step.error().message);
        steps.push_back(std::move(*step));
      }
      manager = std::make_unique<pipeline::Manager>(std::move(registry), budget);
      o->c.budget = &budget;
      o->c.transform = [&, steps](data::ChunkCache& cache,
                                  std::uint32_t id) -> Result<std::uint32_t> {
        for (const auto& step : steps) {
          VX_ASSIGN(auto d,
                    pipeline::DerivedSource::create(
                        *manager, cache, id, step["pipeline"].get<std::string>(), step["params"]));
          VX_LOG(info, "convert.pipeline", "pipeline={} params={}", d->pipeline_name(),
                 log_quote(d->params().dump()));
          id = cache.add_source(d);
          derived.push_back(std::move(d));
        }
        return id;
      };
    }
    VX_LOG(info, "convert.start", "input={} output={} zarr_version={} chunk={} codec={} cache={}",
           log_quote(o->in), log_quote(o->out), o->c.zarr_version, o->c.chunk, o->codec,
           log_quote(format_bytes(double(o->c.cache_bytes))));
    auto stats = data::convert_to_ome_zarr(o->in, o->out, o->c);
    o->c.transform = nullptr;
    o->c.agree = nullptr;
    if (!stats) return report(stats.error().what());
    if (world)
      VX_LOG(info, "convert.part", "rank={} ranks={} chunks_written={}", world->rank(),
             world->size(), stats->chunks_written);
    if (world && world->rank() != 0) return 0;
    VX_LOG(info, "convert.done",
           "levels={} chunks_written={} chunks_empty={} decoded={} written={} seconds={:.2f} "
           "rate={} peak_rss={}",
           stats->levels, stats->chunks_written, stats->chunks_empty,
           log_quote(format_bytes(double(stats->bytes_decoded))),
           log_quote(format_bytes(double(stats->bytes_written))), stats->seconds,
           log_quote(format_bytes(double(stats->bytes_decoded) / std::max(stats->seconds, 1e-9)) +
                     "/s"),
           log_quote(format_bytes(double(peak_rss_bytes()))));
    return 0;
  };
}

}  // namespace vx::app
