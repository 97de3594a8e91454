// Subcommands of the voxcast program. Each registers itself on the CLI11 app and runs
// after parsing; they return the process exit code (0 ok, 1 runtime error).
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "data/data.hpp"

namespace vx::app {

struct GlobalOptions {
  std::string log_level = "info";
  std::int64_t cache_mb = 0;  // 0: a quarter of RAM
  unsigned io_threads = 0;    // 0: the cache's default
  double latency_ms = 0;      // simulated storage latency of file-backed sources
  std::uint64_t cache_bytes() const;
  data::OpenOptions open_options() const { return {latency_ms}; }
};

using Runner = std::function<int()>;

Runner add_info(CLI::App& app, const GlobalOptions& g);
Runner add_convert(CLI::App& app, const GlobalOptions& g);
Runner add_export(CLI::App& app, const GlobalOptions& g);
Runner add_demo(CLI::App& app, const GlobalOptions& g);
Runner add_render(CLI::App& app, const GlobalOptions& g);
Runner add_serve(CLI::App& app, const GlobalOptions& g);
Runner add_orbit(CLI::App& app, const GlobalOptions& g);
Runner add_pipelines(CLI::App& app, const GlobalOptions& g);
Runner add_movie(CLI::App& app, const GlobalOptions& g);
Runner add_job(CLI::App& app, const GlobalOptions& g);

// `serve` and `demo` share these.
struct ServeOptions {
  std::string host = "127.0.0.1";
  unsigned short port = 8080;
  std::string token;
  int max_clients = 32;
  std::string web_dir = VOXCAST_WEB_DIR;
  std::string data_dir;     // empty: vx::default_data_dir() of the datasets
  int job_concurrency = 0;  // 0: 1 on the local backend, max_jobs on slurm
  int max_jobs = 16;
  std::string jobs_backend = "local";  // --jobs-backend: local, slurm or slurm:PARTITION
  int wire_port = -1;                  // -1: no wire fast path
  std::string wire_tls;                // UCX_TLS for it
  std::uint64_t wire_max_inflight_mb = 2048;
  std::uint64_t http_max_inflight_mb = 1024;
  int max_layers = 16;
  double max_scene_cost = 128;
  int unload_idle_s = 300;     // pipelines unused this long are unloaded; 0: never
  std::string pipelines_file;  // --pipelines: Python pipeline workers (docs/pipelines.md)

  std::string renderer = "auto";  // --renderer: auto, cpu or cuda
};
void add_serve_options(CLI::App& cmd, ServeOptions& o);
int serve_datasets(const std::vector<std::string>& specs, const ServeOptions& o,
                   const GlobalOptions& g);

}  // namespace vx::app
namespace vx::data {
struct VolumeInfo;
}
namespace vx::app {
void print_info(const data::VolumeInfo& info);
std::string info_json(const data::VolumeInfo& info);

// Prints "voxcast: error: <message>" on stderr and returns 1.
int report(const std::string& message);
// A usage error (an option or its value, a view that asks for what cannot be): prints
// "voxcast: error: <message>" on stderr and returns 2, as CLI11's own parse errors do.
int usage_error(const std::string& message);

}  // namespace vx::app
