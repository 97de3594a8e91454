#include "jobs/queue.hpp"

#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "core/log.hpp"
#include "core/paths.hpp"

namespace vx::jobs {

namespace fs = std::filesystem;

namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

constexpr std::string_view kStopReason = "server stopped";

constexpr std::string_view kStates[] = {"queued", "running", "succeeded", "failed", "canceled"};

bool valid_id(const std::string& id) {
  if (id.empty() || id.size() > 64) return false;
  for (char c : id)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') return false;
  return true;
}

}  // namespace

std::string_view to_string(JobState s) {
  return kStates[int(s)];
}

json JobInfo::to_json() const {
  json j = {{"id", id},
            {"kind", kind},
            {"params", params},
            {"dataset", dataset},
            {"state", std::string(to_string(state))},
            {"done", done},
            {"total", total},
            {"rate", rate},
            {"eta_s", eta_s},
            {"error", error.empty() ? json(nullptr) : json(error)},
            {"files", files},
            {"created", created},
            {"started", started},
            {"finished", finished}};
  if (state == JobState::kQueued) j["queue_position"] = queue_position;
  if (!scheduler.is_null()) j["scheduler"] = scheduler;
  j["version"] = version;
  return j;
}

struct JobQueue::Job : JobContext {
  JobInfo info;
  std::string folder;
  std::atomic<bool> cancel{false};
  JobQueue* queue = nullptr;
  double last_save = 0;
  bool resume = false;  // running when the server last died: follow it again (Backend::resume)

  void progress(std::uint64_t done, std::uint64_t total) override {
    JobInfo snapshot;
    bool save_now;
    {
      std::lock_guard lock(queue->mutex_);
      info.done = done;
      info.total = total;
      ++info.version;
      const double t = now_s(), elapsed = std::max(1e-3, t - info.started);
      info.rate = double(done) / elapsed;
      info.eta_s = info.rate > 0 ? double(total - done) / info.rate : 0;
      save_now = t - last_save > 0.5 || done == total;
      if (save_now) last_save = t;
      snapshot = queue->info_of(*this);
    }
    if (save_now) queue->save(*this);
    queue->notify(snapshot);
  }
  const std::atomic<bool>& cancelled() const override { return cancel; }
  const std::string& dir() const override { return folder; }
  void scheduler(const json& state) override {
    JobInfo snapshot;
    {
      std::lock_guard lock(queue->mutex_);
      if (info.scheduler == state) return;
      info.scheduler = state;
      ++info.version;
      snapshot = queue->info_of(*this);
    }
    queue->save(*this);
    queue->notify(snapshot);
  }
};

std::string JobQueue::new_id() {
  std::random_device rd;
  std::ostringstream s;
  s << std::hex << rd() << rd();
  return s.str();
}

JobQueue::JobQueue(QueueOptions options, Kinds kinds)
    : options_(std::move(options)), kinds_(std::move(kinds)) {
  if (!options_.backend) options_.backend = make_local_backend();
  std::error_code ec;
  const fs::path root = fs::path(options_.data_dir) / "jobs";
  fs::create_directories(root, ec);
  // History: every job folder with a readable job.json. Jobs that were queued or running
  // when the server stopped did not finish: failed, with the reason.
  for (const auto& entry : fs::directory_iterator(root, ec)) {
    // A job folder is a real folder of jobs/: not a link that leads elsewhere.
    if (!resolve_inside(root, entry.path().filename().string()) || entry.is_symlink()) {
      VX_LOG(warn, "jobs.unreadable", "dir={} reason=\"a link, not a job folder\"",
             log_quote(entry.path().string()));
      continue;
    }
    std::ifstream in(entry.path() / "job.json");
    const json j = json::parse(in, nullptr, false);
    const std::string folder = entry.path().filename().string();
    auto job = std::make_shared<Job>();
    job->queue = this;
    job->folder = (entry.path() / "files").string();
    auto& i = job->info;
    try {
      if (j.is_discarded() || !j.is_object() || j.value("id", "") != folder || !valid_id(folder))
        throw std::runtime_error("not a job.json of this folder");
      i.id = folder;
      i.kind = j.value("kind", "");
      i.params = j.value("params", json::object());
      if (j.contains("dataset") && j["dataset"].is_object()) i.dataset = j["dataset"];
      const std::string st = j.value("state", "failed");
      i.state = JobState::kFailed;
      for (int k = 0; k < 5; ++k)
        if (kStates[k] == st) i.state = JobState(k);
      i.done = j.value("done", 0ull);
      i.total = j.value("total", 0ull);
      i.error = j.contains("error") && j["error"].is_string() ? j["error"].get<std::string>() : "";
      // Stored names are not trusted: only those that resolve inside files/ are kept.
      for (auto& f : j.value("files", std::vector<std::string>{})) {
        if (auto p = resolve_inside(job->folder, f);
            p && p->parent_path() == fs::weakly_canonical(job->folder))
          i.files.push_back(std::move(f));
        else
          VX_LOG(warn, "jobs.bad_file", "id={} file={}", log_quote(folder), log_quote(f));
      }
      i.created = j.value("created", 0.0);
      i.started = j.value("started", 0.0);
      i.finished = j.value("finished", 0.0);
      if (j.contains("scheduler") && j["scheduler"].is_object()) i.scheduler = j["scheduler"];
    } catch (const std::exception& e) {  // a damaged file is skipped, not fatal
      VX_LOG(warn, "jobs.unreadable", "dir={} reason={}", log_quote(entry.path().string()),
             log_quote(e.what()));
      continue;
    }
    if (i.state == JobState::kRunning && options_.backend->resumable(job->folder)) {
      job->resume = true;  // still running on the cluster, perhaps: a worker follows it
      pending_.push_front(i.id);
      VX_LOG(info, "jobs.resume", "id={} backend={}", log_quote(i.id), options_.backend->name());
    } else if (i.state == JobState::kQueued || i.state == JobState::kRunning) {
      i.state = JobState::kFailed;
      i.error = "the server stopped before the job finished";
      i.finished = now_s();
      save(*job);
    }
    jobs_[i.id] = std::move(job);
  }
  for (int k = 0; k < std::max(1, options_.concurrency); ++k)
    workers_.emplace_back([this] { worker(); });
}

Status JobQueue::check_data_dir(const std::string& data_dir) {
  const fs::path root = fs::path(data_dir) / "jobs";
  std::error_code ec;
  fs::create_directories(root, ec);
  if (ec || !fs::is_directory(root))
    return fail(ErrorCode::kIo, "--data-dir {}: cannot create {}: {}", data_dir, root.string(),
                ec ? ec.message() : "not a directory");
  // Writable: a file can be created (and removed) in it.
  const fs::path probe = root / (".write-test-" + new_id());
  {
    std::ofstream out(probe, std::ios::trunc);
    out << "x";
    if (!out.flush())
      return fail(ErrorCode::kIo, "--data-dir {}: {} is not writable", data_dir, root.string());
  }
  fs::remove(probe, ec);
  return {};
}

JobQueue::~JobQueue() {
  // A graceful stop: queued jobs never run and running ones are told to stop; both end
  // canceled with the error "server stopped" (docs/protocol.md, "Jobs").
  std::vector<std::shared_ptr<Job>> dropped;
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    for (auto& [id, j] : jobs_) {
      j->cancel = true;
      if (j->info.state == JobState::kQueued) {
        j->info.state = JobState::kCanceled;
        j->info.error = kStopReason;
        j->info.finished = now_s();
        ++j->info.version;
        dropped.push_back(j);
      }
    }
    pending_.clear();
  }
  cv_.notify_all();
  for (auto& w : workers_)
    w.join();
  for (const auto& j : dropped)
    save(*j);
}

JobInfo JobQueue::info_of(const Job& j) const {
  JobInfo i = j.info;
  if (i.state == JobState::kQueued) {
    int pos = 1;
    for (const auto& id : pending_) {
      if (id == i.id) break;
      ++pos;
    }
    i.queue_position = pos;
  }
  return i;
}

void JobQueue::save(const Job& j) const {
  // Writers (the worker, cancel(), progress from render threads) take turns, and each
  // writes the state as it is when its turn comes: the last write is the newest state.
  std::lock_guard saving(save_mutex_);
  JobInfo snapshot;
  {
    std::lock_guard lock(mutex_);
    snapshot = j.info;
  }
  const fs::path dir = fs::path(j.folder).parent_path();
  const fs::path tmp = dir / "job.json.tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << snapshot.to_json().dump(1);
  }
  std::error_code ec;
  fs::rename(tmp, dir / "job.json", ec);  // atomic: a crash leaves the old or the new
}

void JobQueue::notify(const JobInfo& info) {
  std::vector<std::function<void(const JobInfo&)>> fns;
  {
    std::lock_guard lock(subs_mutex_);
    for (const auto& [t, fn] : subs_)
      fns.push_back(fn);
  }
  for (const auto& fn : fns)
    fn(info);
}

std::uint64_t JobQueue::subscribe(std::function<void(const JobInfo&)> fn) {
  std::lock_guard lock(subs_mutex_);
  subs_[next_sub_] = std::move(fn);
  return next_sub_++;
}

void JobQueue::unsubscribe(std::uint64_t token) {
  std::lock_guard lock(subs_mutex_);
  subs_.erase(token);
}

int JobQueue::retry_after_s() const {
  return 5;
}

Result<JobInfo> JobQueue::submit(const std::string& id, const std::string& kind,
                                 const json& params) {
  if (!valid_id(id))
    return fail(ErrorCode::kInvalidArgument, "job id '{}': 1 to 64 letters, digits, '-' or '_'",
                id);
  if (!kinds_.count(kind)) {
    std::string known;
    for (const auto& [k, r] : kinds_)
      known += (known.empty() ? "" : ", ") + k;
    return fail(ErrorCode::kInvalidArgument, "field 'kind': '{}' is not one of {}", kind, known);
  }
  // Checked before the id: a bad submission is refused whether or not the id exists.
  VX_ASSIGN(const json dataset, kinds_.at(kind)->validate(params));
  VX_TRY(options_.backend->admit(*kinds_.at(kind), params));
  std::shared_ptr<Job> job;
  JobInfo snapshot;
  {
    std::lock_guard lock(mutex_);
    if (auto it = jobs_.find(id); it != jobs_.end()) {
      const auto& old = it->second->info;
      if (old.kind == kind && old.params == params) return info_of(*it->second);
      return fail(ErrorCode::kConflict, "job '{}' exists with other parameters", id);
    }
    int active = 0;
    for (const auto& [k, j] : jobs_)
      active += j->info.state == JobState::kQueued || j->info.state == JobState::kRunning;
    if (active >= options_.max_pending)
      return fail(ErrorCode::kBusy,
                  "overloaded: {} jobs queued or running (the limit); retry in {} s", active,
                  retry_after_s());
    job = std::make_shared<Job>();
    job->queue = this;
    job->folder = (fs::path(options_.data_dir) / "jobs" / id / "files").string();
    job->info.id = id;
    job->info.kind = kind;
    job->info.params = params;
    job->info.dataset = dataset;
    job->info.created = now_s();
    std::error_code ec;
    fs::create_directories(job->folder, ec);
    if (ec) return fail(ErrorCode::kIo, "{}: cannot create: {}", job->folder, ec.message());
    jobs_[id] = job;
    pending_.push_back(id);
    snapshot = info_of(*job);  // queued: a worker may take it as soon as the lock is free
  }
  save(*job);
  notify(snapshot);  // before a waiting worker is woken, so "queued" is not overtaken
  cv_.notify_one();
  return snapshot;
}

std::vector<JobInfo> JobQueue::list() const {
  std::lock_guard lock(mutex_);
  std::vector<JobInfo> out;
  for (const auto& [id, j] : jobs_)
    out.push_back(info_of(*j));
  std::sort(out.begin(), out.end(),
            [](const auto& a, const auto& b) { return a.created > b.created; });
  return out;
}

std::optional<JobInfo> JobQueue::get(const std::string& id) const {
  std::lock_guard lock(mutex_);
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return std::nullopt;
  return info_of(*it->second);
}

Result<JobInfo> JobQueue::cancel(const std::string& id) {
  std::shared_ptr<Job> job;
  {
    std::lock_guard lock(mutex_);
    auto it = jobs_.find(id);
    if (it == jobs_.end()) return fail(ErrorCode::kNotFound, "no job '{}'", id);
    job = it->second;
    job->cancel = true;
    if (job->info.state == JobState::kQueued) {
      std::erase(pending_, id);
      job->info.state = JobState::kCanceled;
      job->info.finished = now_s();
      ++job->info.version;
    }
  }
  save(*job);
  auto info = get(id);
  notify(*info);
  return *info;  // a running job turns canceled when its runner returns (within one view)
}

std::string JobQueue::files_dir(const std::string& id) const {
  return (fs::path(options_.data_dir) / "jobs" / id / "files").string();
}

void JobQueue::worker() {
  for (;;) {
    std::shared_ptr<Job> job;
    {
      std::unique_lock lock(mutex_);
      cv_.wait(lock, [&] { return stopping_ || !pending_.empty(); });
      if (stopping_) return;
      job = jobs_[pending_.front()];
      pending_.pop_front();
      job->info.state = JobState::kRunning;
      if (!job->resume) job->info.started = now_s();
      ++job->info.version;
    }
    save(*job);
    notify(*get(job->info.id));
    Result<std::vector<std::string>> files = fail(ErrorCode::kInternal, "not run");
    try {
      auto it = kinds_.find(job->info.kind);
      if (it == kinds_.end())
        files = fail(ErrorCode::kInvalidArgument, "kind '{}' is not known here", job->info.kind);
      else if (job->resume)
        files = options_.backend->resume(
            {job->info.id, job->info.kind, job->info.params, job->info.dataset}, *job);
      else
        files = options_.backend->run(
            *it->second, {job->info.id, job->info.kind, job->info.params, job->info.dataset}, *job);
    } catch (const std::exception& e) {
      files = fail(ErrorCode::kInternal, "job crashed: {}", e.what());
    }
    {
      std::lock_guard lock(mutex_);
      auto& i = job->info;
      i.finished = now_s();
      ++i.version;
      std::error_code ec;
      i.files.clear();
      for (const auto& f : fs::directory_iterator(job->folder, ec))
        if (f.is_regular_file()) i.files.push_back(f.path().filename().string());
      std::sort(i.files.begin(), i.files.end());
      if (files) {
        i.state = JobState::kSucceeded;
      } else if (job->cancel || files.error().code == ErrorCode::kCancelled) {
        i.state = JobState::kCanceled;
        i.error = stopping_ ? std::string(kStopReason) : files.error().message;
      } else {
        i.state = JobState::kFailed;
        i.error = files.error().message;  // partial results stay in files/
      }
    }
    save(*job);
    const auto info = get(job->info.id);
    VX_LOG(info, "job.done", "id={} kind={} state={} error={}", info->id, log_quote(info->kind),
           to_string(info->state), log_quote(info->error));
    notify(*info);
  }
}

}  // namespace vx::jobs
