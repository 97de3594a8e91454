// voxcast: one binary for every user path (see DESIGN.md, "Contracts").
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cstdio>
#include <map>

#include "commands.hpp"
#include "core/log.hpp"
#include "core/memory.hpp"
#include "core/text.hpp"
#include "core/version.hpp"

namespace vx::app {

std::uint64_t GlobalOptions::cache_bytes() const {
  return cache_mb > 0 ? std::uint64_t(cache_mb) << 20 : default_cache_bytes();
}

int report(const std::string& message) {
  std::fprintf(stderr, "voxcast: error: %s\n", message.c_str());
  return 1;
}

int usage_error(const std::string& message) {
  std::fprintf(stderr, "voxcast: error: %s\n", message.c_str());
  return 2;
}

}  // namespace vx::app

int main(int argc, char** argv) {
  using namespace vx::app;
  CLI::App app{
      "voxcast: open terabyte image volumes where they live and stream views of them.\n"
      "DATA is a path (OME-Zarr v0.4/v0.5 directory, .npy, TIFF, PNG, NIfTI .nii/.nii.gz; the\n"
      "format is detected from content and name) or synthetic:cells[?shape=ZxYxX&chunk=N&...].",
      "voxcast"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("voxcast ") + vx::kVersion);
  app.footer(
      "Run 'voxcast COMMAND --help' for the options of a command.\n"
      "Example: voxcast info synthetic:cells");
  GlobalOptions g;
  app.add_option("--log-level", g.log_level, "trace, debug, info, warn, error or off")
      ->capture_default_str()
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}));
  app.add_option("--cache-mb", g.cache_mb, "Chunk cache budget in MiB (default: a quarter of RAM)")
      ->check(CLI::Range(std::int64_t(1), std::int64_t(1) << 30));
  app.add_option("--io-threads", g.io_threads,
                 "Concurrent chunk reads (default: 2 per core on local storage, 32 per core on "
                 "network file systems; decoding never uses more threads than cores)")
      ->check(CLI::Range(1u, 1024u));
  app.add_option("--latency-ms", g.latency_ms,
                 "Simulated storage latency for benchmarks: each chunk read of a file-backed "
                 "dataset waits this long first (synthetic: has ?latency_ms=)")
      ->check(CLI::Range(0.0, 10000.0));

  std::map<CLI::App*, Runner> runners;
  auto reg = [&](Runner (*add)(CLI::App&, const GlobalOptions&)) {
    const auto before = app.get_subcommands({}).size();
    Runner r = add(app, g);
    runners[app.get_subcommands({})[before]] = std::move(r);
  };
  reg(add_info);
  reg(add_convert);
  reg(add_export);
  reg(add_render);
  reg(add_serve);
  reg(add_orbit);
  reg(add_pipelines);
  reg(add_movie);
  reg(add_job);
  reg(add_demo);
  // Global options may also follow the subcommand.
  for (auto& [sub, _] : runners)
    sub->fallthrough();

  // A misspelt command: say which one was meant, before CLI11's generic message.
  {
    std::vector<std::string> names;
    for (auto* sub : app.get_subcommands({}))
      names.push_back(sub->get_name());
    for (int i = 1; i < argc; ++i) {
      const std::string arg = argv[i];
      if (arg == "--log-level" || arg == "--cache-mb" || arg == "--io-threads" ||
          arg == "--latency-ms") {
        ++i;  // its value
        continue;
      }
      if (arg.starts_with("-")) continue;
      if (std::find(names.begin(), names.end(), arg) != names.end()) break;
      const auto near = vx::closest_word(arg, names);
      return usage_error(
          near.empty() ? fmt::format("unknown command '{}' (commands: {}); run 'voxcast --help'",
                                     arg, fmt::join(names, ", "))
                       : fmt::format("unknown command '{}'; did you mean '{}'?", arg, near));
    }
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  vx::LoggingGuard logging(vx::LogOptions{g.log_level});
  for (auto& [sub, run] : runners)
    if (sub->parsed()) return run();
  return 2;
}
