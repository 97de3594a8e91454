// A bounded render-job queue with a set concurrency, persistent results and live progress.
// One status enum, progress as done/total with rate and ETA, cancel at any time, idempotent
// submission under a client-chosen id. Each job has a folder under the data directory:
// DATA_DIR/jobs/ID/job.json (its status, rewritten on every change) and files/ (its
// results). A graceful stop (the destructor) cancels queued and running jobs with the error
// "server stopped"; jobs found queued or running at start were interrupted by a crash: they
// become failed.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core/error.hpp"
#include "jobs/backend.hpp"
#include "jobs/kind.hpp"

namespace vx::jobs {

using json = nlohmann::json;

enum class JobState { kQueued, kRunning, kSucceeded, kFailed, kCanceled };
std::string_view to_string(JobState s);

struct JobInfo {
  std::string id, kind;
  json params;
  // What the job is of, for people: {"id", "name", "location"} of its dataset (null when
  // the kind has none). Recorded at submission, so it stays right after a restart.
  json dataset;
  JobState state = JobState::kQueued;
  std::uint64_t done = 0, total = 0;
  double rate = 0;   // units per second while running
  double eta_s = 0;  // seconds left, estimated
  std::string error;
  std::vector<std::string> files;                 // results written so far
  double created = 0, started = 0, finished = 0;  // Unix seconds
  int queue_position = 0;                         // 1-based while queued
  json scheduler;             // JobContext::scheduler's last word (null: none, as for local jobs)
  std::uint64_t version = 0;  // grows with every change: an older snapshot is stale
  json to_json() const;
};

struct QueueOptions {
  std::string data_dir;
  int concurrency = 1;
  int max_pending = 16;                    // queued + running; more is refused as overloaded
  std::shared_ptr<const Backend> backend;  // where jobs run; null: here (make_local_backend)
};

class JobQueue {
 public:
  JobQueue(QueueOptions options, Kinds kinds);
  ~JobQueue();  // cancels queued and running jobs ("server stopped") and waits for them
  JobQueue(const JobQueue&) = delete;
  JobQueue& operator=(const JobQueue&) = delete;

  // kBusy: the queue is full (retry later). kInvalidArgument: unknown kind, bad id, or
  // parameters the kind's validate() refuses (the error names the field).
  // kConflict: `id` is taken by a job with other parameters. The same id and
  // parameters again returns the existing job (idempotent).
  Result<JobInfo> submit(const std::string& id, const std::string& kind, const json& params);
  const Kinds& kinds() const { return kinds_; }
  std::vector<JobInfo> list() const;
  std::optional<JobInfo> get(const std::string& id) const;
  Result<JobInfo> cancel(const std::string& id);
  // The folder of a job's result files.
  std::string files_dir(const std::string& id) const;
  // Seconds a refused client should wait before trying again.
  int retry_after_s() const;

  // Called (from worker threads) on every change of any job.
  std::uint64_t subscribe(std::function<void(const JobInfo&)> fn);
  void unsubscribe(std::uint64_t token);

  static std::string new_id();
  // Creates DATA_DIR/jobs when missing and checks that files can be written in it: an
  // error naming the directory otherwise (kIo).
  static Status check_data_dir(const std::string& data_dir);

 private:
  struct Job;
  void worker();
  void save(const Job& j) const;
  void notify(const JobInfo& info);
  JobInfo info_of(const Job& j) const;

  QueueOptions options_;
  Kinds kinds_;
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::map<std::string, std::shared_ptr<Job>> jobs_;
  std::deque<std::string> pending_;
  bool stopping_ = false;
  std::vector<std::thread> workers_;
  mutable std::mutex save_mutex_;  // one job.json write at a time, always the newest state
  std::mutex subs_mutex_;
  std::map<std::uint64_t, std::function<void(const JobInfo&)>> subs_;
  std::uint64_t next_sub_ = 1;
};

}  // namespace vx::jobs
