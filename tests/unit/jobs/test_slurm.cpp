// The Slurm backend's text (src/jobs/slurm.hpp): the generated batch script, run by a real
// /bin/sh against a stand-in voxcast that records its arguments, with hostile names; and the
// parsers of sbatch, squeue, sacct, scontrol and the job's own files, with malformed lines.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/process.hpp"
#include "jobs/backend.hpp"
#include "jobs/slurm.hpp"

namespace vx::jobs::slurm {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void spit(const fs::path& p, const std::string& text) {
  std::ofstream(p, std::ios::binary) << text;
}

// A folder whose own name is hostile: quotes, $, spaces, a newline, a glob.
fs::path hostile_dir(const std::string& tag) {
  auto dir = fs::temp_directory_path() /
             ("vx slurm '" + tag + "' $(touch PWNED) \"q\" *\n" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

TEST(SlurmText, ShellQuoteKeepsEveryByteAndRefusesNul) {
  EXPECT_EQ(*shell_quote("plain"), "'plain'");
  EXPECT_EQ(*shell_quote("it's"), "'it'\\''s'");
  EXPECT_EQ(*shell_quote(""), "''");
  const auto nul = shell_quote(std::string("a\0b", 3));
  ASSERT_FALSE(nul);
  EXPECT_NE(nul.error().message.find("NUL"), std::string::npos);
}

TEST(SlurmText, BatchScriptPassesHostileArgumentsVerbatimThroughSh) {
  const auto dir = hostile_dir("script");
  // The stand-in voxcast: each argument NUL-terminated into args.bin, progress written, exit 7.
  const auto fake = dir / "voxcast";
  spit(fake,
       "#!/bin/sh\n"
       "for a in \"$@\"; do printf '%s\\0' \"$a\"; done > args.bin\n"
       "echo '4 9' > progress\n"
       "echo 'voxcast: error: field '\\''params.view'\\'': bad' >&2\n"
       "exit 7\n");
  fs::permissions(fake, fs::perms::owner_all);
  const std::vector<std::string> datas = {
      "/data/it's a \"brain\" $(touch PWNED) `touch PWNED2` ; rm -rf x\n*.zarr", "-rf",
      "synthetic:cells?shape=48x64x64&chunk=32",
      "/data/\\n\\\\ %j %N ~root $HOME ${IFS} \xc3\xa9\xe2\x82\xac"};
  for (const auto& data : datas) {
    const auto script = batch_script({fake.string(), "orbit", data, 1, "job_1-x"});
    ASSERT_TRUE(script) << script.error().message;
    EXPECT_EQ(script->find("#SBATCH"), std::string::npos) << "no value in a directive";
    EXPECT_EQ(script->find("srun"), std::string::npos);
    spit(dir / std::string(kScript), *script);
    fs::remove(dir / "args.bin");
    const auto ran =
        process::run({{"/bin/sh", (dir / std::string(kScript)).string()}, {}, dir.string()}, 30s);
    ASSERT_TRUE(ran) << ran.error().message;
    EXPECT_TRUE(WIFEXITED(ran->status) && WEXITSTATUS(ran->status) == 7) << ran->err;
    const auto raw = slurp(dir / "args.bin");
    std::vector<std::string> args;
    for (std::size_t pos = 0, end; (end = raw.find('\0', pos)) != std::string::npos; pos = end + 1)
      args.push_back(raw.substr(pos, end - pos));
    const std::vector<std::string> want = {"job",   "--params",        "params.json", "-o",
                                           "files", "--progress-file", "progress",    "-q",
                                           "--",    "orbit",           data};
    EXPECT_EQ(args, want);
    EXPECT_EQ(parse_exit_status(slurp(dir / std::string(kExitStatus))), 7);
    EXPECT_FALSE(fs::exists(dir / "PWNED") || fs::exists("PWNED") || fs::exists(dir / "PWNED2"));
  }
  fs::remove_all(dir);
}

TEST(SlurmText, BatchScriptRunsSrunForSeveralNodesAndRefusesBadSpecs) {
  const auto script = batch_script({"/opt/vx/bin/voxcast", "movie", "/d/x.zarr", 4, "m1"});
  ASSERT_TRUE(script);
  EXPECT_NE(script->find("srun --nodes=4 --ntasks=4 --ntasks-per-node=1 --kill-on-bad-exit=1 "
                         "'/opt/vx/bin/voxcast' job"),
            std::string::npos)
      << *script;
  const auto syntax = process::run({{"/bin/sh", "-n", "-c", *script}, {}, ""}, 30s);
  ASSERT_TRUE(syntax && syntax->ok()) << *script;
  EXPECT_FALSE(batch_script({"relative/voxcast", "orbit", "d", 1, "a"}));
  EXPECT_FALSE(batch_script({"/v", "orbit;rm", "d", 1, "a"}));
  EXPECT_FALSE(batch_script({"/v", "orbit", "d", 1, "a\nb"}));
  EXPECT_FALSE(batch_script({"/v", "orbit", "d", 0, "a"}));
  EXPECT_FALSE(batch_script({"/v", "orbit", std::string("d\0e", 3), 1, "a"}));
}

TEST(SlurmText, Partitions) {
  for (const char* ok : {"debug", "gpu-a100", "a,b", "long_2.x"})
    EXPECT_TRUE(valid_partition(ok)) << ok;
  for (const char* bad : {"", "a b", "a;rm", "$(x)", "a'b", "p\n"})
    EXPECT_FALSE(valid_partition(bad)) << bad;
  EXPECT_FALSE(valid_partition(std::string(65, 'p')));
}

TEST(SlurmText, SbatchId) {
  EXPECT_EQ(*parse_sbatch_id("123\n"), "123");
  EXPECT_EQ(*parse_sbatch_id("123;cluster\n"), "123");
  EXPECT_EQ(*parse_sbatch_id("sbatch: warning: something\n45\n"), "45");
  for (const char* bad :
       {"", "\n", "Submitted batch job 12", "12abc", "-1", ";x", "123456789012345678901234"}) {
    const auto id = parse_sbatch_id(bad);
    ASSERT_FALSE(id) << bad;
    EXPECT_EQ(id.error().code, ErrorCode::kFormat);
    EXPECT_NE(id.error().message.find("not a job id"), std::string::npos);
  }
}

TEST(SlurmText, Squeue) {
  auto st = parse_squeue("7|RUNNING|None\n12|PENDING|Priority\n", "12");
  ASSERT_TRUE(st && *st);
  EXPECT_EQ((*st)->state, "PENDING");
  EXPECT_EQ((*st)->reason, "Priority");
  EXPECT_FALSE((*st)->exit_code);
  st = parse_squeue("", "12");
  ASSERT_TRUE(st);
  EXPECT_FALSE(*st) << "an ended job squeue forgot";
  st = parse_squeue("12|PENDING|ReqNodeNotAvail, UnavailableNodes:n[1-2]|odd\r\n", "12");
  ASSERT_TRUE(st && *st);
  EXPECT_EQ((*st)->reason, "ReqNodeNotAvail, UnavailableNodes:n[1-2]|odd");
  // Invalid UTF-8 and control characters come out printable (JSON needs valid UTF-8).
  st = parse_squeue("12|FAILED|bad\xff\xfe\x01reason\n", "12");
  ASSERT_TRUE(st && *st);
  EXPECT_NO_THROW((void)nlohmann::json((*st)->reason).dump());
  for (const char* bad : {"garbage", "12|running|None", "12||None", "x12|RUNNING|None",
                          "12 RUNNING None", "|RUNNING|x", "12|RUN NING|x"}) {
    const auto r = parse_squeue(std::string(bad) + "\n", "12");
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().code, ErrorCode::kFormat);
    EXPECT_NE(r.error().message.find("squeue: malformed line"), std::string::npos);
    EXPECT_NE(r.error().message.find("JOBID|STATE|REASON"), std::string::npos);
  }
}

TEST(SlurmText, Sacct) {
  auto st = parse_sacct("12|CANCELLED by 1000|0:15|None\n12.batch|CANCELLED|0:15|\n", "12");
  ASSERT_TRUE(st && *st);
  EXPECT_EQ((*st)->state, "CANCELLED");
  EXPECT_EQ((*st)->detail, "by 1000");
  EXPECT_EQ((*st)->exit_code, 0);
  EXPECT_EQ((*st)->signal, 15);
  st = parse_sacct("13|FAILED|3:0|NonZeroExitCode\n", "12");
  ASSERT_TRUE(st);
  EXPECT_FALSE(*st);
  for (const char* bad : {"12|COMPLETED|x:y|None", "12|COMPLETED", "12|completed|0:0|None",
                          "12|COMPLETED|0|None", "|COMPLETED|0:0|None", "12|COMPLETED|:0|x"}) {
    const auto r = parse_sacct(std::string(bad) + "\n", "12");
    ASSERT_FALSE(r) << bad;
    EXPECT_NE(r.error().message.find("sacct: malformed line"), std::string::npos);
  }
}

TEST(SlurmText, Scontrol) {
  const std::string line =
      "JobId=5 JobName=voxcast-orbit-a UserId=root(0) GroupId=root(0) JobState=FAILED "
      "Reason=NonZeroExitCode Dependency=(null) ExitCode=3:0 RunTime=00:00:01 "
      "Command=/x/job.sbatch WorkDir=/data/x JobState=COMPLETED Reason=None ExitCode=0:0\n";
  auto st = parse_scontrol(line, "5");
  ASSERT_TRUE(st && *st);
  EXPECT_EQ((*st)->state, "FAILED") << "the first JobState counts, not one in a path";
  EXPECT_EQ((*st)->reason, "NonZeroExitCode");
  EXPECT_EQ((*st)->exit_code, 3);
  st = parse_scontrol(line, "6");
  ASSERT_TRUE(st);
  EXPECT_FALSE(*st);
  for (const char* bad :
       {"slurm_load_jobs error: Invalid job id specified", "JobId=5 JobState=done",
        "JobId=5 Reason=None", "JobId=x JobState=FAILED", "JobId=5 JobState=FAILED ExitCode=3"}) {
    const auto r = parse_scontrol(bad, "5");
    ASSERT_FALSE(r) << bad;
    EXPECT_NE(r.error().message.find("scontrol show job -o: malformed line"), std::string::npos);
  }
}

TEST(SlurmText, ProgressAndExitStatusFiles) {
  EXPECT_EQ(parse_progress("3 10\n"), (std::pair<std::uint64_t, std::uint64_t>{3, 10}));
  EXPECT_EQ(parse_progress("10 10"), (std::pair<std::uint64_t, std::uint64_t>{10, 10}));
  for (const char* bad :
       {"", "3", "11 10", "-1 5", "3 10 x", "3  10", "a b", "3\n10", "99999999999999999999999 1"})
    EXPECT_FALSE(parse_progress(bad)) << bad;
  EXPECT_EQ(parse_exit_status("0\n"), 0);
  EXPECT_EQ(parse_exit_status("137"), 137);
  for (const char* bad : {"", "x", "256", "-1", "1 2"})
    EXPECT_FALSE(parse_exit_status(bad)) << bad;
}

TEST(SlurmText, ProgressFileIsReplacedWholeAndOnlyRankZeroWrites) {
  const auto dir = hostile_dir("progress");
  const auto path = (dir / "progress").string();
  {
    ::unsetenv("SLURM_PROCID");
    ProgressFile p(path);
    p.update(0, 5);
    p.update(1, 5);  // within 100 ms of the last: skipped
    EXPECT_EQ(slurp(path), "0 5\n");
    p.update(5, 5);  // the end is always written
    EXPECT_EQ(parse_progress(slurp(path)), (std::pair<std::uint64_t, std::uint64_t>{5, 5}));
  }
  fs::remove(path);
  ::setenv("SLURM_PROCID", "2", 1);
  ProgressFile(path).update(5, 5);
  ::unsetenv("SLURM_PROCID");
  EXPECT_FALSE(fs::exists(path)) << "rank 2 wrote the progress file";
  fs::remove_all(dir);
}

TEST(SlurmText, LogReason) {
  EXPECT_EQ(log_reason("event=job.start\nvoxcast: error: field 'params.view': bad\nmore log\n"),
            "field 'params.view': bad");
  EXPECT_EQ(log_reason("slurmstepd: error: *** JOB 5 ON vm CANCELLED ***\n\n"),
            "slurmstepd: error: *** JOB 5 ON vm CANCELLED ***");
  EXPECT_EQ(log_reason(""), "");
  const auto noisy =
      log_reason("voxcast: error: \x01\x1b[31mred\xff\xc0 " + std::string(2000, 'x'));
  EXPECT_LE(noisy.size(), 403u);
  EXPECT_EQ(noisy.find('\x1b'), std::string::npos);
  EXPECT_NO_THROW((void)nlohmann::json(noisy).dump());
  // Cut between characters, not inside one.
  std::string euros;
  for (int i = 0; i < 300; ++i)
    euros += "\xe2\x82\xac";
  EXPECT_NO_THROW((void)nlohmann::json(log_reason(euros)).dump());
  EXPECT_EQ(one_line("sbatch: error: invalid partition specified: nope\n"
                     "sbatch: error: Batch job submission failed: Invalid partition name\n"),
            "sbatch: error: invalid partition specified: nope; sbatch: error: Batch job "
            "submission failed: Invalid partition name");
}

TEST(SlurmText, OutcomeSaysWhy) {
  const auto err = [](const JobStatus& s, bool cancel = false, std::optional<int> exit = {},
                      std::string log = "") {
    auto st = outcome(s, "42", cancel, exit, log);
    return st ? std::string("ok") : st.error().message;
  };
  EXPECT_EQ(err({"COMPLETED", "", "None", 0, 0}, false, 0), "ok");
  EXPECT_EQ(err({"COMPLETED", "", "None", {}, {}}), "ok") << "no exit file yet (NFS): Slurm says 0";
  EXPECT_NE(err({"COMPLETED", "", "", {}, {}}, false, 1).find("exit status 1"), std::string::npos);
  auto st = outcome({"CANCELLED", "by 0", "None", 0, 15}, "42", true, {}, "");
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, ErrorCode::kCancelled);
  const auto other = err({"CANCELLED", "by 1000", "None", 0, 15});
  EXPECT_NE(other.find("cancelled outside voxcast"), std::string::npos) << other;
  EXPECT_NE(other.find("by 1000"), std::string::npos) << other;
  const auto failed = err({"FAILED", "", "NonZeroExitCode", 1, 0}, false, 1,
                          "log\nvoxcast: error: data.zarr: no such file or directory\n");
  EXPECT_EQ(failed, "Slurm job 42 failed (exit status 1): data.zarr: no such file or directory");
  EXPECT_NE(err({"TIMEOUT", "", "TimeLimit", 0, 0}).find("time limit"), std::string::npos);
  EXPECT_NE(err({"NODE_FAIL", "", "None", 0, 0}).find("node of Slurm job 42 failed"),
            std::string::npos);
  EXPECT_NE(err({"OUT_OF_MEMORY", "", "", 0, 0}).find("ran out of memory"), std::string::npos);
  EXPECT_NE(err({"PREEMPTED", "", "", 0, 0}).find("PREEMPTED"), std::string::npos);
  EXPECT_NE(err({"SPECIAL_EXIT", "", "x", 0, 0}).find("ended SPECIAL_EXIT, x"), std::string::npos);
  EXPECT_TRUE(never_starts("PartitionNodeLimit") && never_starts("BadConstraints"));
  EXPECT_FALSE(never_starts("Priority") || never_starts("Resources") || never_starts("None") ||
               never_starts(""));
  EXPECT_TRUE(terminal("NODE_FAIL") && terminal("COMPLETED") && !terminal("COMPLETING") &&
              !terminal("PENDING") && !terminal("RUNNING"));
}

TEST(SlurmBackend, ChoiceAndAdmission) {
  EXPECT_EQ((*make_backend("local"))->name(), "local");
  for (const char* bad : {"", "nope", "slurm:", "slurm:a b", "slurm:$(x)", "SLURM"}) {
    const auto b = make_backend(bad);
    ASSERT_FALSE(b) << bad;
    EXPECT_NE(b.error().message.find("--jobs-backend"), std::string::npos);
  }
  const auto local = *make_backend("local");
  const auto kind = make_orbit_kind([](int) -> Result<Dataset> { return Dataset{}; }, "");
  EXPECT_TRUE(local->admit(*kind, {{"nodes", 1}}));
  const auto two = local->admit(*kind, {{"nodes", 2}});
  ASSERT_FALSE(two);
  EXPECT_NE(two.error().message.find("field 'params.nodes'"), std::string::npos);
  // The Slurm commands are looked up when the backend is made: a clear error without them.
  const std::string path = std::getenv("PATH") ? std::getenv("PATH") : "";
  const auto empty = hostile_dir("path");
  ::setenv("PATH", empty.c_str(), 1);
  const auto none = make_backend("slurm:debug");
  ::setenv("PATH", path.c_str(), 1);
  fs::remove_all(empty);
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().code, ErrorCode::kNotFound);
  EXPECT_NE(none.error().message.find("sbatch"), std::string::npos) << none.error().message;
}

}  // namespace
}  // namespace vx::jobs::slurm
