// Job backends: where the queue's jobs run. `local` runs a kind in this process (the
// server's render threads); `slurm` submits each job to a Slurm cluster with sbatch, follows
// it with squeue (sacct or scontrol at its end), reads its progress and results from the
// shared data directory and cancels it with scancel. The queue, the HTTP routes, the events
// and the clients are the same for both (DESIGN.md, "Seams": job kinds; docs/cluster.md).
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "jobs/kind.hpp"

namespace vx::jobs {

// One job as a backend runs it.
struct JobSpec {
  std::string id, kind;  // id: 1-64 of [A-Za-z0-9_-] (the queue checks)
  json params;           // validated by the kind
  json dataset;          // what validate() returned: {"id", "name", "location"} or null
};

class Backend {
 public:
  virtual ~Backend() = default;
  // "local", "slurm" or "slurm:PARTITION": what --jobs-backend was.
  virtual std::string name() const = 0;
  // At submission, after the kind's validate(): what this backend cannot run, as an error
  // naming the field (the local backend refuses `nodes` > 1).
  virtual Status admit(const JobKind& kind, const json& params) const = 0;
  // Runs the job to its end into ctx.dir() (DATA_DIR/jobs/ID/files): progress through
  // ctx.progress(), kCancelled soon after ctx.cancelled() turns true, any other error with
  // the reason. Called from the queue's worker threads, one job each.
  virtual Result<std::vector<std::string>> run(const JobKind& kind, const JobSpec& job,
                                               JobContext& ctx) const = 0;
  // A job that was running when the server last stopped without a goodbye (a crash, a
  // SIGKILL): whether it may still be running elsewhere and can be followed again (`files`:
  // its ctx.dir()). The local backend's jobs died with the server: never.
  virtual bool resumable(const std::string& /*files*/) const { return false; }
  // Follows such a job to its end, as run() would have.
  virtual Result<std::vector<std::string>> resume(const JobSpec& /*job*/,
                                                  JobContext& /*ctx*/) const {
    return fail(ErrorCode::kUnsupported, "this backend cannot follow a job again");
  }
};

// Today's behaviour: the kind runs here.
std::shared_ptr<const Backend> make_local_backend();

// The backend that --jobs-backend names: "local", "slurm" or "slurm:PARTITION". The Slurm
// commands are looked up on PATH now (kNotFound naming the missing one); jobs run
// `voxcast_bin job KIND ...` (the running binary when empty) on the cluster's nodes.
Result<std::shared_ptr<const Backend>> make_backend(const std::string& spec,
                                                    const std::string& voxcast_bin = "");

}  // namespace vx::jobs
