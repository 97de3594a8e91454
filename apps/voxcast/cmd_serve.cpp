#include <fmt/format.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <optional>
#include <thread>

#include "commands.hpp"
#include "core/log.hpp"
#include "core/paths.hpp"
#include "data/chunk_cache.hpp"
#include "data/data.hpp"
#include "mpi_run.hpp"
#include "pipeline/pipeline.hpp"
#include "pipeline/workers.hpp"
#include "render/select.hpp"
#include "serve_mpi.hpp"
#include "server/server.hpp"
#include "server/wire_service.hpp"

namespace vx::app {

void add_serve_options(CLI::App& cmd, ServeOptions& o) {
  cmd.add_option("--host", o.host, "Address to listen on; anything but loopback requires a token")
      ->capture_default_str();
  cmd.add_option("--port", o.port, "TCP port (0: any free one)")->capture_default_str();
  cmd.add_option("--token", o.token,
                 "Required on every request (?token=T or Authorization: Bearer T); generated "
                 "and printed when the host is not loopback and none is given");
  cmd.add_option("--max-clients", o.max_clients, "Client sessions at once")
      ->capture_default_str()
      ->check(CLI::Range(1, 10000));
  cmd.add_option("--web-dir", o.web_dir, "The browser client's files")->capture_default_str();
  cmd.add_option("--data-dir", o.data_dir,
                 "Where job results are kept (they survive restarts). Default: one folder per "
                 "set of datasets, $XDG_STATE_HOME/voxcast/NAME-HASH (~/.local/state/voxcast/... "
                 "without it); printed at start");
  cmd.add_option("--jobs", o.job_concurrency,
                 "Render jobs (orbits, movies) running at once; with --jobs-backend slurm, jobs "
                 "submitted to Slurm at once (default: 1 here; on slurm --max-jobs, at most 64)")
      ->check(CLI::Range(1, 64));
  cmd.add_option("--jobs-backend", o.jobs_backend,
                 "Where jobs run: local (this process), or slurm[:PARTITION]: each job is a "
                 "Slurm batch job (sbatch) running `voxcast job` on a compute node, writing into "
                 "--data-dir, which the nodes must share (docs/cluster.md)")
      ->capture_default_str();
  cmd.add_option("--wire", o.wire_port,
                 "Also serve raw sub-volumes and raw RGBA frames over UCX (voxcast.wire) on this "
                 "port, on --host (0: any free one). With a token (--token, or the one generated "
                 "beyond loopback) each connection's first request must carry it "
                 "(docs/protocol.md)")
      ->check(CLI::Range(0, 65535));
  cmd.add_option("--wire-tls", o.wire_tls,
                 "UCX transports for --wire (UCX_TLS syntax: tcp, shm, ...); default: "
                 "UCX_TLS or all");
  cmd.add_option("--wire-max-inflight-mb", o.wire_max_inflight_mb,
                 "Reply data the wire path holds for clients that have not received it yet; "
                 "requests beyond it get a busy error")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 20));
  cmd.add_option("--http-max-inflight-mb", o.http_max_inflight_mb,
                 "Screenshot and region answers (POST /api/v1/screenshot, /api/v1/region) held "
                 "in memory at once, from their request until their client has read them; "
                 "requests beyond it get 429")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 20));
  cmd.add_option("--renderer", o.renderer,
                 "Renderer backend: auto (CUDA where built with it and a GPU is here, else the "
                 "CPU; the reason is printed), cpu, or cuda (an error naming why where it is not "
                 "available). docs/gpu.md")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "cpu", "cuda"}));
  cmd.add_option("--max-jobs", o.max_jobs, "Jobs queued or running; more get HTTP 429")
      ->capture_default_str()
      ->check(CLI::Range(1, 10000));
  cmd.add_option("--max-layers", o.max_layers,
                 "Visible layers one client's scene may have; more are refused")
      ->capture_default_str()
      ->check(CLI::Range(1, 1024));
  cmd.add_option("--max-scene-cost", o.max_scene_cost,
                 "What one frame may cost: canvas megapixels x visible layers, a 3D layer "
                 "counting 8 (128 allows 7 3D layers at 1920x1080); more is refused")
      ->capture_default_str()
      ->check(CLI::Range(1.0, 1e6));
  cmd.add_option("--unload-idle", o.unload_idle_s,
                 "Seconds a loaded pipeline may go unused before it is unloaded and its memory "
                 "returned to the cache budget (0: keep loaded pipelines until memory is short)")
      ->capture_default_str()
      ->check(CLI::Range(0, 7 * 24 * 3600));
  cmd.add_option("--pipelines", o.pipelines_file,
                 "A JSON manifest of Python pipeline workers (voxcast.pipeline): their pipelines "
                 "join the built-ins; each worker starts on first use, is restarted when it dies "
                 "and stops when unloaded (docs/pipelines.md, 'Pipelines in Python')")
      ->check(CLI::ExistingFile);
}

namespace {

// Unloads pipelines that no session has used for `idle`, checking every `idle`/10 (at least
// a second) until it is destroyed. Their memory goes back to the budget before it is needed,
// rather than at the moment a charge would not fit.
class IdleUnloader {
 public:
  IdleUnloader(pipeline::Manager& manager, std::chrono::seconds idle) {
    if (idle.count() <= 0) return;
    const auto period = std::max<std::chrono::milliseconds>(std::chrono::seconds(1), idle / 10);
    thread_ = std::jthread([&manager, idle, period, this](std::stop_token stop) {
      std::unique_lock lock(mutex_);
      while (!cv_.wait_for(lock, stop, period, [] { return false; })) {
        if (stop.stop_requested()) break;
        if (int n = manager.unload_idle(idle); n > 0) {
          VX_LOG(info, "pipeline.idle_unload", "unloaded={} idle_s={}", n, idle.count());
        }
      }
    });
  }

 private:
  std::mutex mutex_;
  std::condition_variable_any cv_;
  std::jthread thread_;  // last: stopped and joined before the members above go
};

}  // namespace

int serve_datasets(const std::vector<std::string>& specs, const ServeOptions& o,
                   const GlobalOptions& g) {
  // Under mpirun: rank 0 serves; every rank draws its part of each 3D frame (serve_mpi.hpp).
  auto launched = world_if_launched();
  if (!launched) return report(launched.error().what());
  const std::unique_ptr<cluster::World> world = std::move(*launched);
  const bool follower = world && world->rank() != 0;
  auto renderer = render::make_renderer(o.renderer);
  if (!renderer)
    return report(fmt::format("--renderer {}: {}", o.renderer, renderer.error().message));
  if (!follower)
    fmt::print("voxcast: renderer {}{}{}\n", renderer->name,
               renderer->fallback.empty() ? "" : fmt::format(" ({})", renderer->fallback),
               world ? fmt::format(", 3D frames split over {} MPI ranks", world->size()) : "");
  // One host budget for cached chunks, derived results and pipelines (GET /api/v1/resources).
  // The manager outlives the cache: derived sources in it compute until it is gone.
  Budget budget("host", g.cache_bytes());
  auto registry = pipeline::builtin_registry();
  std::shared_ptr<pipeline::Workers> workers;  // outlives the manager (declared before it)
  if (!o.pipelines_file.empty()) {
    auto w = pipeline::add_workers(registry, o.pipelines_file, &budget);
    if (!w) return report(w.error().what());
    workers = std::move(*w);
  }
  pipeline::Manager pipelines(std::move(registry), budget);  // loads on first use
  IdleUnloader idle_unloader(pipelines, std::chrono::seconds(o.unload_idle_s));
  data::CacheOptions copts{g.cache_bytes(), g.io_threads, 16};
  copts.budget = &budget;
  data::ChunkCache cache(copts);
  // Destroyed first (declared after the cache): the workers stop before the cache joins
  // the threads that compute with them, so a stuck worker does not hold the shutdown for its
  // timeout_s.
  struct StopWorkersFirst {
    const std::shared_ptr<pipeline::Workers>& workers;
    ~StopWorkersFirst() {
      if (workers) workers->shutdown();
    }
  } stop_workers_first{workers};
  std::vector<data::SourceId> ids;
  for (const auto& spec : specs) {
    auto src = data::open_volume(spec, g.open_options());
    if (!src) return report(src.error().what());
    ids.push_back(cache.add_source(*src));
  }
  if (follower) return follow_frames(*world, cache, ids);
  std::optional<FrameLeader> leader;
  if (world) leader.emplace(*world);
  // One token for both paths: given, or generated when bound beyond loopback.
  std::string token = o.token;
  if (token.empty() && !server::is_loopback(o.host)) token = server::random_token();
  std::unique_ptr<server::WireService> wire;
  if (o.wire_port >= 0) {
    server::WireServiceOptions wo{o.host, static_cast<unsigned short>(o.wire_port), o.wire_tls,
                                  o.wire_max_inflight_mb << 20};
    wo.token = token;
    auto w = server::WireService::start(wo, cache, ids);
    if (!w) return report(w.error().what());
    wire = std::move(*w);
    fmt::print("voxcast: wire fast path on {}:{} (UCX transports {})\n", o.host, wire->port(),
               wire->transports());
    std::fflush(stdout);
  }
  server::ServerOptions so;
  so.host = o.host;
  so.port = o.port;
  so.token = token;
  so.max_clients = o.max_clients;
  so.web_dir = o.web_dir;
  so.data_dir = o.data_dir.empty() ? default_data_dir(specs).string() : o.data_dir;
  so.jobs_backend = o.jobs_backend;
  // On Slurm a "running" job is a thread following a batch job: as many as may be pending.
  so.job_concurrency = o.job_concurrency > 0                 ? o.job_concurrency
                       : o.jobs_backend.starts_with("slurm") ? std::min(o.max_jobs, 64)
                                                             : 1;
  so.max_jobs = o.max_jobs;
  so.max_layers = o.max_layers;
  so.max_scene_cost = o.max_scene_cost;
  so.pipelines = &pipelines;
  so.wire = wire.get();
  so.http_max_inflight_bytes = o.http_max_inflight_mb << 20;
  so.renderer = renderer->name;
  so.renderer_fallback = renderer->fallback;
  if (leader) so.split_frame = leader->as_split_frame();
  auto st = server::serve(so, cache, ids, [&](const std::string& url) {
    fmt::print("voxcast: job results in {}{}\n", so.data_dir,
               o.data_dir.empty() ? " (--data-dir to choose another)" : "");
    if (so.jobs_backend != "local")
      fmt::print("voxcast: jobs run on Slurm ({}); the compute nodes must see {}\n",
                 so.jobs_backend, so.data_dir);
    if (specs.size() > 1) {  // the page has a picker; each has its own link too
      const auto names = dataset_names(specs);
      const char* sep = url.find('?') == std::string::npos ? "?" : "&";
      for (std::size_t i = 0; i < specs.size(); ++i)
        fmt::print("voxcast:   [{}] {}  {}{}dataset={}\n", i, names[i], url, sep, i);
    }
    fmt::print("voxcast: serving {} dataset{} at {}\n", specs.size(), specs.size() == 1 ? "" : "s",
               url);
    fmt::print("voxcast: open it in a browser; Ctrl-C stops\n");
    std::fflush(stdout);
  });
  if (leader) leader->stop();  // the server and its sessions are gone: no frame comes after
  if (!st) return report(st.error().what());
  return 0;
}

Runner add_serve(CLI::App& app, const GlobalOptions& g) {
  auto* cmd = app.add_subcommand(
      "serve",
      "Serve datasets to browsers and Python clients: HTTP and WebSocket on one port\n"
      "(docs/protocol.md). Each client gets its own view, rendered on demand and streamed as\n"
      "H.264 (JPEG for clients without a video decoder). Bound to loopback by default; reach\n"
      "it through an SSH tunnel, or bind elsewhere with a token.");
  auto specs = std::make_shared<std::vector<std::string>>();
  auto o = std::make_shared<ServeOptions>();
  cmd->add_option("DATA", *specs, "Dataset paths or synthetic:NAME[?k=v&...]")->required();
  add_serve_options(*cmd, *o);
  cmd->footer(
      "Several datasets: the page has a picker, and ?dataset=N (or ?dataset=NAME) in its URL\n"
      "opens one. Job results go to a folder per set of datasets (printed; --data-dir).\n"
      "Example: voxcast serve /scratch/brain.ome.zarr --port 8080\n"
      "         then on a laptop: ssh -L 8080:localhost:8080 gpu-node, open http://localhost:8080");
  return [specs, o, &g]() { return serve_datasets(*specs, *o, g); };
}

}  // namespace vx::app
