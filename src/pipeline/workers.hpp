// Pipelines written in Python, run out of process (docs/pipelines.md, "Pipelines in Python").
// A manifest (JSON) names worker commands; each worker describes its pipelines (`COMMAND
// --describe`), and they join a Registry like the built-ins. The worker process starts when
// one of its pipelines is loaded (first use), is charged to the budget (its memory estimate,
// shared among its pipelines), is restarted with backoff when it dies, and stops when its
// last pipeline is unloaded (idle, or offloaded when memory is short).
#pragma once

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "pipeline/pipeline.hpp"

namespace vx::pipeline {

struct WorkerSpec {
  std::string name;                                 // unique in the manifest
  std::vector<std::string> command;                 // argv; argv[0] a path or a name on PATH
  std::map<std::string, std::string> env;           // added to the server's environment
  std::string cwd;                                  // default: the manifest's folder
  std::uint64_t memory_bytes = 128ull << 20;        // the estimate charged to the budget
  std::chrono::milliseconds timeout{30'000};        // per request (a chunk, a halo)
  std::chrono::milliseconds start_timeout{60'000};  // from start to its hello (and --describe)
  std::string transports;                 // UCX_TLS for the worker connections (default all)
  std::uint64_t shm_bytes = 64ull << 20;  // shared memory for blocks and results (0: over wire)
};

// Reads the manifest: {"workers": [{"name", "command": [...], "env"?, "cwd"?, "memory_mb"?,
// "timeout_s"?, "start_timeout_s"?, "shm_mb"?}], "transports"?}. kFormat errors name the file and
// field.
Result<std::vector<WorkerSpec>> read_worker_manifest(const std::filesystem::path& file);

// The workers of a manifest, registered: keep it alive as long as the registry's pipelines
// (destroy it after the Manager).
class Workers {
 public:
  virtual ~Workers() = default;
  // Stops every worker process now (killing those with a request in flight, which may never
  // be answered) and fails the requests waiting on them, and every later one, at once with
  // "stopped with the server". For shutdown: the threads that compute with the workers (the
  // chunk cache's) can then be joined without waiting out a stuck worker's timeout.
  virtual void shutdown() = 0;
};

// Runs each worker's `--describe` and adds its pipelines to `registry`. A worker that cannot
// be described (missing command, crash, not JSON) fails the whole call with an error naming
// the manifest, the worker and the command; a pipeline whose description is malformed
// (schema, halo, dtype) is registered with that error as its status.
// With `budget` (the manager's), each running worker process is charged its memory_mb there
// (listed as "worker NAME" in GET /api/v1/resources) and stopped when memory is short and it
// has no request in flight; without, each pipeline's load() reports an equal share.
Result<std::shared_ptr<Workers>> add_workers(Registry& registry,
                                             const std::filesystem::path& manifest,
                                             Budget* budget = nullptr);

}  // namespace vx::pipeline
