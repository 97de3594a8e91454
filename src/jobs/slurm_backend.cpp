// The Slurm backend: one batch job per voxcast job (docs/cluster.md, "Slurm").
//
// run() writes params.json and job.sbatch into the job's folder, submits the script with
// sbatch (every value an argument of its own: no shell sees them), then follows the job
// until it ends: the progress file every 200 ms (cheap: a small file on the shared data
// directory), the controller (squeue) with a backoff from 0.5 s to 10 s, at once again when
// the job's exit status file appears or a cancel was sent. At the end sacct tells the final
// state; where accounting is off (no slurmdbd) scontrol does, and where Slurm has forgotten
// the job, the script's exit status file.
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "core/log.hpp"
#include "core/process.hpp"
#include "jobs/slurm.hpp"

namespace vx::jobs::slurm {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace {

constexpr auto kTick = 200ms;  // progress file and cancel checks
constexpr std::chrono::milliseconds kFirstPoll = 500ms,
                                    kMaxPoll = 10s;  // the controller, backing off
constexpr auto kCommandTimeout = 60s;                // one sbatch, squeue, sacct, scontrol, scancel
constexpr auto kCancelWait = 30s;                    // for Slurm to confirm a cancel
constexpr auto kLostAfter = 180s;                    // of failing queries: the job is given up

std::string read_file(const fs::path& p, std::size_t tail = 0) {
  std::ifstream in(p, std::ios::binary);
  if (!in) return "";
  if (tail) {
    in.seekg(0, std::ios::end);
    const auto size = static_cast<std::size_t>(std::max<std::streamoff>(0, in.tellg()));
    in.seekg(static_cast<std::streamoff>(size > tail ? size - tail : 0));
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Status write_file(const fs::path& p, const std::string& text) {
  const fs::path tmp = p.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << text;
    if (!out.flush()) return fail(ErrorCode::kIo, "{}: cannot write", tmp.string());
  }
  std::error_code ec;
  fs::rename(tmp, p, ec);
  if (ec) return fail(ErrorCode::kIo, "{}: cannot write: {}", p.string(), ec.message());
  return {};
}

// The dataset as `voxcast job` on a node opens it: paths absolute (the job runs elsewhere).
Result<std::string> dataset_spec(const json& dataset) {
  if (!dataset.is_object() || !dataset.contains("location") || !dataset["location"].is_string())
    return fail(ErrorCode::kInvalidArgument,
                "the slurm backend runs jobs of a dataset; this job names none");
  const auto loc = dataset["location"].get<std::string>();
  if (loc.starts_with("synthetic:")) return loc;
  std::error_code ec;
  const auto abs = fs::absolute(loc, ec);
  return ec ? loc : abs.string();
}

class SlurmBackend final : public Backend {
 public:
  SlurmBackend(std::string partition, std::map<std::string, std::string> tools, std::string bin)
      : partition_(std::move(partition)), tools_(std::move(tools)), bin_(std::move(bin)) {}

  std::string name() const override { return partition_.empty() ? "slurm" : "slurm:" + partition_; }

  // Any node count: more than the partition has is refused by sbatch or pends with a reason
  // that never lifts, and either way the job fails saying so.
  Status admit(const JobKind&, const json&) const override { return {}; }

  Result<std::vector<std::string>> run(const JobKind&, const JobSpec& job,
                                       JobContext& ctx) const override {
    std::error_code ec;
    const fs::path files = fs::absolute(ctx.dir(), ec);
    const fs::path dir = files.parent_path();
    fs::create_directories(files, ec);
    VX_ASSIGN(const auto data, dataset_spec(job.dataset));
    json params = job.params;
    if (params.contains("dataset")) params["dataset"] = 0;  // the job opens that one dataset
    const int nodes = params.value("nodes", 1);
    VX_ASSIGN(const auto script, batch_script({bin_, job.kind, data, nodes, job.id}));
    for (auto stale : {kProgress, kExitStatus, kLog})
      fs::remove(dir / stale, ec);
    VX_TRY(write_file(dir / kParams, params.dump(1)));
    VX_TRY(write_file(dir / kScript, script));
    if (ctx.cancelled()) return fail(ErrorCode::kCancelled, "canceled");

    std::vector<std::string> argv = {tool("sbatch"),
                                     "--parsable",
                                     "--job-name=voxcast-" + job.kind + "-" + job.id,
                                     "--chdir=" + dir.string(),
                                     "--output=" + std::string(kLog),
                                     "--no-requeue",
                                     fmt::format("--nodes={}", nodes)};
    if (!partition_.empty()) argv.push_back("--partition=" + partition_);
    argv.push_back((dir / kScript).string());
    VX_ASSIGN(const auto submitted, process::run({argv, {}, ""}, kCommandTimeout));
    if (!submitted.ok())
      return fail(ErrorCode::kInternal, "Slurm refused the job (sbatch {}): {}",
                  process::describe_exit(submitted.status),
                  one_line(submitted.err.empty() ? submitted.out : submitted.err));
    VX_ASSIGN(const auto id, parse_sbatch_id(submitted.out));
    (void)write_file(dir / kJobId, id + "\n");
    VX_LOG(info, "job.slurm.submitted", "id={} slurm_job={} partition={} nodes={}", job.id, id,
           partition_.empty() ? "default" : partition_, nodes);
    report(ctx, id, JobStatus{"SUBMITTED", "", "", {}, {}});
    return follow(id, dir, ctx);
  }

  // A Slurm job outlives the server that submitted it: one that was running when the server
  // was killed is followed again by the next server on the same data directory.
  bool resumable(const std::string& files) const override {
    std::error_code ec;
    const fs::path dir = fs::absolute(files, ec).parent_path();
    return !read_file(dir / kJobId).empty();
  }

  Result<std::vector<std::string>> resume(const JobSpec& job, JobContext& ctx) const override {
    std::error_code ec;
    const fs::path dir = fs::absolute(ctx.dir(), ec).parent_path();
    std::string id = read_file(dir / kJobId);
    while (!id.empty() && (id.back() == '\n' || id.back() == ' '))
      id.pop_back();
    if (id.empty() || id.find_first_not_of("0123456789_") != std::string::npos)
      return fail(ErrorCode::kInternal, "{}: no Slurm job id to follow", (dir / kJobId).string());
    VX_LOG(info, "job.slurm.resumed", "id={} slurm_job={}", job.id, id);
    return follow(id, dir, ctx);
  }

 private:
  std::string tool(const std::string& name) const { return tools_.at(name); }

  // What Slurm says of the job, shown with it (the queue calls it running from the moment
  // it is submitted; the cluster may keep it PENDING for a while, and says why).
  static void report(JobContext& ctx, const std::string& id, const JobStatus& st) {
    json j = {{"name", "slurm"}, {"job", id}, {"state", st.state}};
    if (!st.reason.empty() && st.reason != "None") j["reason"] = st.reason;
    ctx.scheduler(j);
  }

  // Runs a Slurm client command; its stdout, or an error with its stderr.
  Result<std::string> query(const std::vector<std::string>& args) const {
    std::vector<std::string> argv = {tool(args[0])};
    argv.insert(argv.end(), args.begin() + 1, args.end());
    VX_ASSIGN(const auto done, process::run({argv, {}, ""}, kCommandTimeout));
    if (!done.ok())
      return fail(ErrorCode::kIo, "{} {}: {}", args[0], process::describe_exit(done.status),
                  one_line(done.err));
    return done.out;
  }

  Result<std::optional<JobStatus>> squeue(const std::string& id) const {
    VX_ASSIGN(const auto out, query({"squeue", "-h", "-t", "all", "-j", id, "-o", "%i|%T|%r"}));
    return parse_squeue(out, id);
  }

  // The final state from sacct, else scontrol: nullopt when neither knows the job.
  std::optional<JobStatus> final_state(const std::string& id) const {
    if (auto out =
            query({"sacct", "-n", "-P", "-X", "-j", id, "-o", "JobID,State,ExitCode,Reason"})) {
      auto st = parse_sacct(*out, id);
      if (!st)
        VX_LOG(warn, "job.slurm.sacct", "slurm_job={} error={}", id, log_quote(st.error().message));
      if (st && *st && terminal((*st)->state)) return **st;
    }
    if (auto out = query({"scontrol", "show", "job", "-o", id})) {
      auto st = parse_scontrol(*out, id);
      if (!st)
        VX_LOG(warn, "job.slurm.scontrol", "slurm_job={} error={}", id,
               log_quote(st.error().message));
      if (st && *st && terminal((*st)->state)) return **st;
    }
    return std::nullopt;
  }

  Result<std::vector<std::string>> follow(const std::string& id, const fs::path& dir,
                                          JobContext& ctx) const {
    auto interval = std::chrono::duration_cast<Clock::duration>(kFirstPoll);
    auto next_poll = Clock::now() + interval;
    std::optional<Clock::time_point> cancel_sent, failing_since;
    std::optional<JobStatus> last;
    std::pair<std::uint64_t, std::uint64_t> shown{0, 0};
    bool saw_exit = false;
    for (;;) {
      std::this_thread::sleep_for(kTick);
      if (auto p = parse_progress(read_file(dir / kProgress)); p && *p != shown) {
        shown = *p;
        ctx.progress(p->first, p->second);
      }
      const auto now = Clock::now();
      if (ctx.cancelled() && !cancel_sent) {
        if (auto st = query({"scancel", id}); !st)
          VX_LOG(warn, "job.slurm.scancel", "slurm_job={} error={}", id,
                 log_quote(st.error().message));
        cancel_sent = now;
        next_poll = now;
      }
      if (cancel_sent && now - *cancel_sent > kCancelWait)
        return fail(ErrorCode::kCancelled, "canceled (Slurm job {} did not confirm within {} s)",
                    id, std::chrono::duration_cast<std::chrono::seconds>(kCancelWait).count());
      if (!saw_exit && fs::exists(dir / kExitStatus)) {
        saw_exit = true;  // ending: ask the controller now, and often
        next_poll = now;
        interval = kFirstPoll;
      }
      if (now < next_poll) continue;
      auto st = squeue(id);
      if (!st) {
        if (!failing_since) failing_since = now;
        VX_LOG(warn, "job.slurm.squeue", "slurm_job={} error={}", id,
               log_quote(st.error().message));
        if (now - *failing_since > kLostAfter) {
          (void)query({"scancel", id});
          return fail(ErrorCode::kInternal,
                      "lost track of Slurm job {} (squeue failing for {} s): {}", id,
                      std::chrono::duration_cast<std::chrono::seconds>(kLostAfter).count(),
                      st.error().message);
        }
      } else {
        failing_since.reset();
        if (*st && (!last || last->state != (*st)->state || last->reason != (*st)->reason))
          VX_LOG(info, "job.slurm.state", "slurm_job={} state={} reason={}", id, (*st)->state,
                 log_quote((*st)->reason));
        if (*st) {
          last = **st;
          report(ctx, id, **st);
        }
        if (*st && (*st)->state == "PENDING" && never_starts((*st)->reason)) {
          (void)query({"scancel", id});
          return fail(ErrorCode::kInternal,
                      "Slurm cannot run job {} as asked: it is pending with reason {} (more nodes "
                      "or time than the partition allows, or an unknown account or QOS); it was "
                      "cancelled",
                      id, (*st)->reason);
        }
        if (!*st || terminal((*st)->state))
          return finish(id, dir, *st, cancel_sent.has_value(), ctx);
      }
      interval = std::min<Clock::duration>(interval * 3 / 2, kMaxPoll);
      next_poll = now + interval;
    }
  }

  Result<std::vector<std::string>> finish(const std::string& id, const fs::path& dir,
                                          std::optional<JobStatus> seen, bool cancel_requested,
                                          JobContext& ctx) const {
    auto status = final_state(id);
    if (!status) status = seen;
    const auto exit = parse_exit_status(read_file(dir / kExitStatus));
    if (!status) {  // forgotten by squeue, no accounting: the script's own record
      if (!exit)
        return fail(ErrorCode::kInternal,
                    "Slurm no longer knows job {} (and sacct has no record of it), and it left no "
                    "exit status: it never ran or was killed",
                    id);
      status = JobStatus{*exit == 0 ? "COMPLETED" : "FAILED", "", "", exit, 0};
    }
    if (auto p = parse_progress(read_file(dir / kProgress))) ctx.progress(p->first, p->second);
    report(ctx, id, *status);
    VX_LOG(info, "job.slurm.ended", "slurm_job={} state={} reason={} exit={}", id, status->state,
           log_quote(status->reason), exit ? *exit : -1);
    VX_TRY(outcome(*status, id, cancel_requested, exit, read_file(dir / kLog, 16 << 10)));
    std::vector<std::string> files;
    std::error_code ec;
    for (const auto& f : fs::directory_iterator(dir / "files", ec))
      if (f.is_regular_file()) files.push_back(f.path().filename().string());
    std::sort(files.begin(), files.end());
    return files;
  }

  std::string partition_;
  std::map<std::string, std::string> tools_;  // sbatch, squeue, ... -> their paths
  std::string bin_;
};

}  // namespace

ProgressFile::ProgressFile(std::string path) : path_(std::move(path)), writer_(true) {
  for (const char* var : {"SLURM_PROCID", "OMPI_COMM_WORLD_RANK", "PMI_RANK"})
    if (const char* v = std::getenv(var); v && std::string_view(v) != "0") writer_ = false;
}

void ProgressFile::update(std::uint64_t done, std::uint64_t total) {
  if (!writer_) return;
  std::lock_guard lock(mutex_);
  const auto now = Clock::now();
  if (done != total && now - last_ < 100ms) return;
  last_ = now;
  (void)write_file(path_, fmt::format("{} {}\n", done, total));
}

Result<std::shared_ptr<const Backend>> make_slurm_backend(const std::string& partition,
                                                          const std::string& voxcast_bin) {
  std::map<std::string, std::string> tools;
  for (const char* name : {"sbatch", "squeue", "sacct", "scontrol", "scancel"}) {
    auto path = process::resolve_executable(name);
    if (!path)
      return fail(ErrorCode::kNotFound,
                  "--jobs-backend slurm: {} (the Slurm client commands must be on PATH: run the "
                  "server on a login or compute node of the cluster)",
                  path.error().message);
    tools[name] = *path;
  }
  std::string bin = voxcast_bin;
  if (bin.empty()) {
    std::error_code ec;
    bin = fs::read_symlink("/proc/self/exe", ec).string();
    if (ec)
      return fail(ErrorCode::kIo, "--jobs-backend slurm: cannot find this program: {}",
                  ec.message());
  }
  return std::shared_ptr<const Backend>(
      std::make_shared<SlurmBackend>(partition, std::move(tools), std::move(bin)));
}

}  // namespace vx::jobs::slurm
