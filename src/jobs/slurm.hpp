// The Slurm backend's text: the batch script it generates and what it reads back from
// sbatch, squeue, sacct, scontrol, the job's progress file and its log. Pure functions, so
// that hostile input (odd characters in names and paths, malformed lines) is tested without
// a cluster (tests/unit/jobs/test_slurm.cpp); the backend itself is slurm_backend.cpp.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"
#include "jobs/backend.hpp"

namespace vx::jobs::slurm {

// The files of a job in its folder (DATA_DIR/jobs/ID/), which is the batch job's working
// directory: the generated script and everything the job writes but its results (files/).
inline constexpr std::string_view kScript = "job.sbatch";
inline constexpr std::string_view kParams = "params.json";
inline constexpr std::string_view kProgress = "progress";       // "DONE TOTAL\n"
inline constexpr std::string_view kExitStatus = "exit_status";  // "N\n", written at the end
inline constexpr std::string_view kLog = "slurm.log";           // the job's stdout and stderr
inline constexpr std::string_view kJobId = "slurm_job_id";      // for people and scripts

// `s` in single quotes for sh: nothing in it is expanded. An error for a NUL byte (no
// command line can carry one).
Result<std::string> shell_quote(std::string_view s);

struct ScriptSpec {
  std::string voxcast;  // absolute path of the binary on the nodes
  std::string kind;     // "orbit", "movie"
  std::string data;     // the dataset, as `voxcast job` opens it (absolute path or synthetic:)
  int nodes = 1;        // > 1: srun runs one task per node (ranks of an MPI build)
  std::string job_id;   // voxcast's id, for the comment
};
// The batch script: runs `voxcast job KIND DATA --params params.json -o files
// --progress-file progress -q` in the job's folder (relative names: the folder's own path
// never enters the script), under srun when nodes > 1, and records the exit status. Every
// value is quoted; no #SBATCH line carries one (options go to sbatch as arguments).
Result<std::string> batch_script(const ScriptSpec& spec);

// Partition names as --jobs-backend slurm:PARTITION takes them: 1-64 of [A-Za-z0-9_.,-].
bool valid_partition(std::string_view p);

// `sbatch --parsable` prints "JOBID" or "JOBID;CLUSTER": the id, or kFormat quoting it.
Result<std::string> parse_sbatch_id(std::string_view out);

// Where a Slurm job stands, from squeue, sacct or scontrol.
struct JobStatus {
  std::string state;   // base state: "PENDING", "RUNNING", "COMPLETED", "CANCELLED", ...
  std::string detail;  // what follows the state in sacct ("by 1000"), else ""
  std::string reason;  // "None", "NonZeroExitCode", "PartitionDown", ...
  std::optional<int> exit_code, signal;  // from sacct or scontrol ("3:0"); squeue has none
};
// Ended for good (COMPLETED, FAILED, CANCELLED, TIMEOUT, NODE_FAIL, OUT_OF_MEMORY, ...).
bool terminal(std::string_view state);
// A pending job's reason that only an administrator could lift (the job asks for more than
// its partition allows, or for what does not exist: PartitionNodeLimit, PartitionTimeLimit,
// BadConstraints, InvalidAccount, InvalidQOS, ...): the job will never start as it is.
bool never_starts(std::string_view reason);

// squeue -h -t all -j ID -o "%i|%T|%r": the line of job `id`, nullopt when squeue does not
// list it (it forgets ended jobs after MinJobAge). kFormat for a malformed line.
Result<std::optional<JobStatus>> parse_squeue(std::string_view out, std::string_view id);
// sacct -n -P -X -j ID -o JobID,State,ExitCode,Reason (--parsable2): as parse_squeue.
Result<std::optional<JobStatus>> parse_sacct(std::string_view out, std::string_view id);
// scontrol show job -o ID: JobId=, JobState=, Reason=, ExitCode= of that one line.
Result<std::optional<JobStatus>> parse_scontrol(std::string_view out, std::string_view id);

// The progress file: "DONE TOTAL" (done <= total), or nullopt for anything else.
std::optional<std::pair<std::uint64_t, std::uint64_t>> parse_progress(std::string_view text);
// The exit status file: "N" (0..255), or nullopt.
std::optional<int> parse_exit_status(std::string_view text);

// Why the job failed, from the end of its log: the last "voxcast: error: ..." message, else
// its last non-empty line; at most 400 characters, control characters replaced; "" if none.
std::string log_reason(std::string_view log_tail);

// How the job ended, for the queue: success, kCancelled (when voxcast asked for it), or an
// error that says why ("Slurm job 12 reached its time limit (TIMEOUT)", "... failed: <the
// job's own error>"). `exit_status` is the script's record, `log_tail` the end of its log.
vx::Status outcome(const JobStatus& s, std::string_view slurm_id, bool cancel_requested,
                   std::optional<int> exit_status, std::string_view log_tail);

// `text` on one line for an error message: its non-empty lines joined by "; ", control
// characters replaced, invalid UTF-8 as '?', at most 400 bytes.
std::string one_line(std::string_view text);

// The job's side of the progress file: writes "DONE TOTAL" (a temporary file renamed over
// it, so a reader never sees half a line) at most every 100 ms and always at the end. Only
// rank 0 writes when the job runs as several tasks (SLURM_PROCID, OMPI_COMM_WORLD_RANK or
// PMI_RANK set and not 0). Thread-safe (progress comes from render threads).
class ProgressFile {
 public:
  explicit ProgressFile(std::string path);
  void update(std::uint64_t done, std::uint64_t total);

 private:
  std::string path_;
  bool writer_;
  std::mutex mutex_;
  std::chrono::steady_clock::time_point last_{};
};

// The Slurm backend (slurm_backend.cpp); `partition` empty: the cluster's default.
Result<std::shared_ptr<const Backend>> make_slurm_backend(const std::string& partition,
                                                          const std::string& voxcast_bin);

}  // namespace vx::jobs::slurm
