#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

#include "commands.hpp"
#include "core/log.hpp"
#include "core/progress.hpp"
#include "data/chunk_cache.hpp"
#include "jobs/kind.hpp"

namespace vx::app {

Runner add_job(CLI::App& app, const GlobalOptions& g) {
  auto* cmd = app.add_subcommand(
      "job",
      "Run a job of any kind here, as the server would (GET /api/v1/job-kinds lists the kinds\n"
      "and their parameters): orbit, movie. PARAMS is the job's params object, a JSON file or\n"
      "inline JSON; the results go into DIR.");
  struct Opts {
    std::string kind, data, params = "{}", out;
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
  cmd->footer(
      "Example: voxcast job movie brain.ome.zarr --params '{\"timeline\": {\"keyframes\": "
      "[{\"time\": 0}, {\"time\": 2}]}, \"width\": 640, \"height\": 360}' -o out/");
  return [o, &g]() {
    std::optional<jobs::Dataset> dataset;
    std::optional<data::ChunkCache> cache;
    const auto lookup = [&dataset](int i) -> Result<jobs::Dataset> {
      if (i != 0 || !dataset)
        return fail(ErrorCode::kInvalidArgument, "field 'params.dataset': {} (there is one: 0)", i);
      return *dataset;
    };
    std::string component;
    {
      std::ifstream js(std::string(VOXCAST_WEB_DIR) + "/voxcast-orbit.js");
      std::ostringstream ss;
      ss << js.rdbuf();
      component = ss.str();
    }
    const auto kinds = jobs::builtin_kinds(lookup, component);
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
    auto src = data::open_volume(o->data, g.open_options());
    if (!src) return report(src.error().what());
    render::SceneData sd{{(*src)->info()}};
    cache.emplace(data::CacheOptions{g.cache_bytes(), g.io_threads, 16});
    jobs::Dataset d;
    d.inputs = render::RenderInputs{&*cache, {cache->add_source(*src)}, sd};
    d.defaults = render::default_scene(sd);
    std::vector<std::string> warnings;
    if (auto st = render::estimate_contrast(d.defaults, d.inputs, &warnings); !st)
      return report(st.error().what());
    for (const auto& msg : warnings)
      VX_LOG(warn, "data.contrast", "message={}", log_quote(msg));
    d.brief = {{"id", 0}, {"location", o->data}};
    dataset = std::move(d);
    std::optional<ProgressBar> bar;
    std::uint64_t shown = 0;
    auto files =
        jobs::run_local(*it->second, params, o->out, [&](std::uint64_t done, std::uint64_t total) {
          if (!bar) bar.emplace(o->kind, total, "units", !o->quiet);
          bar->add(done - shown);
          shown = done;
        });
    bar.reset();
    if (!files)
      return files.error().code == ErrorCode::kInvalidArgument ? usage_error(files.error().message)
                                                               : report(files.error().what());
    for (const auto& f : *files)
      fmt::print("{}\n", (std::filesystem::path(o->out) / f).string());
    return 0;
  };
}

}  // namespace vx::app
