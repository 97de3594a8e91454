#include <fmt/format.h>

#include "commands.hpp"
#include "pipeline/pipeline.hpp"
#include "pipeline/workers.hpp"

namespace vx::app {

Runner add_pipelines(CLI::App& app, const GlobalOptions&) {
  auto* cmd = app.add_subcommand(
      "pipelines",
      "List the processing pipelines (voxcast convert --pipeline, derived layers in views)\n"
      "with their parameters; --json prints each one's JSON Schema.");
  auto json_out = std::make_shared<bool>(false);
  cmd->add_flag("--json", *json_out, "Print [{name, version, description, schema}] as JSON");
  auto manifest = std::make_shared<std::string>();
  cmd->add_option("--pipelines", *manifest,
                  "Also list the Python pipelines of this worker manifest (as voxcast serve "
                  "--pipelines)")
      ->check(CLI::ExistingFile);
  cmd->footer("Example: voxcast convert in.ome.zarr out.ome.zarr --pipeline gaussian:sigma=2");
  return [json_out, manifest]() {
    auto registry = pipeline::builtin_registry();
    std::shared_ptr<pipeline::Workers> workers;
    if (!manifest->empty()) {
      auto w = pipeline::add_workers(registry, *manifest);
      if (!w) return report(w.error().what());
      workers = std::move(*w);
    }
    if (*json_out) {
      json out = json::array();
      for (const auto* d : registry.list())
        out.push_back({{"name", d->name},
                       {"version", d->version},
                       {"description", d->description},
                       {"schema", d->schema.to_json_schema()}});
      for (std::size_t i = 0; i < out.size(); ++i)  // a worker's malformed description
        if (const auto* d = registry.find(out[i]["name"].get<std::string>()); !d->error.empty())
          out[i]["error"] = d->error;
      fmt::print("{}\n", out.dump(2));
      return 0;
    }
    for (const auto* d : registry.list()) {
      fmt::print("{} {}: {}\n", d->name, d->version, d->description);
      if (!d->error.empty()) fmt::print("  error: {}\n", d->error);
      for (const auto& p : d->schema.params()) {
        std::string range;
        if (p.minimum && p.maximum)
          range = fmt::format(" [{}, {}]", *p.minimum, *p.maximum);
        else if (p.minimum)
          range = fmt::format(" >= {}", *p.minimum);
        if (!p.choices.empty()) {
          range = " {";
          for (std::size_t i = 0; i < p.choices.size(); ++i)
            range += (i ? "|" : "") + p.choices[i];
          range += "}";
        }
        fmt::print("  {} = {}{}{}{}\n", p.name, p.default_value.dump(), range,
                   p.unit.empty() ? "" : fmt::format(" ({})", p.unit),
                   p.per_axis ? ", per axis (a/b/c)" : "");
      }
    }
    return 0;
  };
}

}  // namespace vx::app
