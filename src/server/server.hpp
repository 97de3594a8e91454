// `voxcast serve`: HTTP and WebSocket on one port (Boost.Beast), as docs/protocol.md says:
// the web client and the REST routes, /ws/state (JSON) and /ws/pixels (binary frames).
// Beast and Asio stay in the .cpp files.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "data/chunk_cache.hpp"
#include "render/renderer.hpp"

namespace vx::pipeline {
class Manager;
}

namespace vx::server {

class WireService;

struct ServerOptions {
  std::string host = "127.0.0.1";
  unsigned short port = 8080;  // 0: any free port (the URL says which)
  // Required on every request when set. serve() generates one when the host is not
  // loopback and none is given.
  std::string token;
  int max_clients = 32;
  std::size_t max_message_bytes = 64 * 1024;
  int max_messages_per_s = 240;
  int max_width = 3840, max_height = 2160;
  int max_layers = 16;                    // visible layers in one scene
  double max_scene_cost = 128;            // stream::scene_cost() of one scene
  std::string web_dir;                    // the browser client's files
  std::string data_dir = "voxcast-data";  // job results (jobs/ID/...), kept across restarts
  int job_concurrency = 1;
  std::string jobs_backend = "local";  // local, slurm or slurm:PARTITION (jobs::make_backend)
  int max_jobs = 16;                   // queued + running; more get HTTP 429
  unsigned threads = 0;                // network threads; 0: 2
  // The pipelines (GET /api/v1/pipelines, load, unload); none when null. Its budget is the
  // cache's (GET /api/v1/resources).
  pipeline::Manager* pipelines = nullptr;
  // The renderer backend (resolved: "cpu" or "cuda") and why a better one is not used.
  std::string renderer = "cpu";
  std::string renderer_fallback;
  // Frames split over MPI ranks (stream::Engine::split_frame); none when empty.
  render::SplitFrame split_frame;
  // The wire fast path (--wire), for its counters in /api/v1/health; none when null.
  const WireService* wire = nullptr;
  // Screenshot and region answers held in memory at once, from their request until their
  // client has read them; requests beyond it get 429 (--http-max-inflight-mb).
  std::uint64_t http_max_inflight_bytes = 1ull << 30;
};

// Serves `datasets` (already opened in `cache`) until SIGINT or SIGTERM, then closes every
// connection and returns. `on_ready` gets the URL to open once the port listens.
Status serve(const ServerOptions& options, data::ChunkCache& cache,
             const std::vector<data::SourceId>& datasets,
             const std::function<void(const std::string& url)>& on_ready);

// A fresh random token (24 of [a-z0-9]), for a server bound beyond loopback without one.
std::string random_token();

// True for 127.0.0.0/8, ::1 and "localhost".
bool is_loopback(const std::string& host);

}  // namespace vx::server
