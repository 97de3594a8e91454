// The Slurm backend's text in and out (slurm.hpp): pure functions, no processes.
#include <fmt/format.h>

#include <algorithm>
#include <charconv>

#include "jobs/slurm.hpp"

namespace vx::jobs::slurm {

namespace {

// `s` made safe to show: valid UTF-8 kept, control characters as spaces, invalid bytes as
// '?', at most `max` bytes (cut between characters, "..." added). JSON needs valid UTF-8.
std::string printable(std::string_view s, std::size_t max = 400) {
  std::string out;
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    int len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 0;
    bool valid = len > 0 && i + std::size_t(len) <= s.size();
    for (int k = 1; valid && k < len; ++k)
      valid = (static_cast<unsigned char>(s[i + std::size_t(k)]) & 0xc0) == 0x80;
    if (valid && len == 2 && c < 0xc2) valid = false;  // overlong
    if (out.size() + std::size_t(std::max(len, 1)) > max) {
      out += "...";
      break;
    }
    if (!valid) {
      out += '?';
      ++i;
    } else if (len == 1) {
      out += (c < 0x20 || c == 0x7f) ? ' ' : char(c);
      ++i;
    } else {
      out.append(s.substr(i, std::size_t(len)));
      i += std::size_t(len);
    }
  }
  return out;
}

std::vector<std::string_view> lines_of(std::string_view text) {
  std::vector<std::string_view> lines;
  std::size_t pos = 0;
  while (pos < text.size()) {
    auto end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    auto line = text.substr(pos, end - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    lines.push_back(line);
    pos = end + 1;
  }
  return lines;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() &&
         (s.front() == ' ' || s.front() == '\t' || s.front() == '\r' || s.front() == '\n'))
    s.remove_prefix(1);
  while (!s.empty() &&
         (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n'))
    s.remove_suffix(1);
  return s;
}

bool all_of(std::string_view s, bool (*pred)(char)) {
  return !s.empty() && std::all_of(s.begin(), s.end(), pred);
}
bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
bool is_state_char(char c) {
  return (c >= 'A' && c <= 'Z') || c == '_';
}
bool is_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || c == '_' || c == '-';
}

template <class T>
std::optional<T> number(std::string_view s) {
  T v{};
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

// Splits at the first `n - 1` separators; the last part keeps any further ones.
std::vector<std::string_view> split(std::string_view s, char sep, std::size_t n) {
  std::vector<std::string_view> parts;
  while (parts.size() + 1 < n) {
    const auto at = s.find(sep);
    if (at == std::string_view::npos) break;
    parts.push_back(s.substr(0, at));
    s.remove_prefix(at + 1);
  }
  parts.push_back(s);
  return parts;
}

Error malformed(std::string_view tool, std::string_view line, std::string_view expected) {
  return Error{ErrorCode::kFormat, fmt::format("{}: malformed line '{}' (expected {})", tool,
                                               printable(line, 200), expected)};
}

// "3:0" -> exit code 3, signal 0.
bool parse_exit_pair(std::string_view s, JobStatus& st) {
  const auto parts = split(s, ':', 2);
  if (parts.size() != 2) return false;
  const auto code = number<int>(parts[0]), sig = number<int>(parts[1]);
  if (!code || !sig) return false;
  st.exit_code = *code;
  st.signal = *sig;
  return true;
}

}  // namespace

Result<std::string> shell_quote(std::string_view s) {
  if (s.find('\0') != std::string_view::npos)
    return fail(ErrorCode::kInvalidArgument, "'{}' holds a NUL byte", printable(s, 80));
  std::string out = "'";
  for (char c : s) {
    if (c == '\'')
      out += "'\\''";
    else
      out += c;
  }
  return out + "'";
}

Result<std::string> batch_script(const ScriptSpec& spec) {
  if (!all_of(spec.kind, is_name_char) || !all_of(spec.job_id, is_name_char))
    return fail(ErrorCode::kInvalidArgument, "job '{}' of kind '{}': not a job id and kind name",
                printable(spec.job_id, 80), printable(spec.kind, 80));
  if (spec.voxcast.empty() || spec.voxcast[0] != '/')
    return fail(ErrorCode::kInvalidArgument, "the voxcast binary '{}' is not an absolute path",
                printable(spec.voxcast, 200));
  if (spec.nodes < 1) return fail(ErrorCode::kInvalidArgument, "nodes {}: at least 1", spec.nodes);
  VX_ASSIGN(const auto bin, shell_quote(spec.voxcast));
  VX_ASSIGN(const auto data, shell_quote(spec.data));
  std::string run;
  if (spec.nodes > 1)
    run = fmt::format("srun --nodes={0} --ntasks={0} --ntasks-per-node=1 --kill-on-bad-exit=1 ",
                      spec.nodes);
  // Options first, then `--`: a dataset named "-x" stays a positional argument.
  run += fmt::format("{} job --params {} -o files --progress-file {} -q -- {} {}", bin, kParams,
                     kProgress, spec.kind, data);
  return fmt::format(
      "#!/bin/sh\n"
      "# voxcast job {id} ({kind}), generated by `voxcast serve --jobs-backend slurm`.\n"
      "# It runs in the job's folder (sbatch --chdir): results in files/, progress in {prog},\n"
      "# this log in {log}, the exit status in {exit} (docs/cluster.md).\n"
      "rm -f {exit} {exit}.tmp\n"
      "{run}\n"
      "status=$?\n"
      "echo \"$status\" > {exit}.tmp && mv -f {exit}.tmp {exit}\n"
      "exit \"$status\"\n",
      fmt::arg("id", spec.job_id), fmt::arg("kind", spec.kind), fmt::arg("prog", kProgress),
      fmt::arg("log", kLog), fmt::arg("exit", kExitStatus), fmt::arg("run", run));
}

bool valid_partition(std::string_view p) {
  return p.size() <= 64 &&
         all_of(p, [](char c) { return is_name_char(c) || c == '.' || c == ','; });
}

Result<std::string> parse_sbatch_id(std::string_view out) {
  std::string_view last;
  for (auto line : lines_of(out))
    if (!trim(line).empty()) last = trim(line);
  const auto id = split(last, ';', 2)[0];
  if (!all_of(id, is_digit) || id.size() > 20)
    return fail(ErrorCode::kFormat, "sbatch --parsable printed '{}', not a job id",
                printable(out, 200));
  return std::string(id);
}

bool terminal(std::string_view state) {
  static constexpr std::string_view kEnded[] = {
      "COMPLETED", "FAILED",    "CANCELLED", "TIMEOUT", "NODE_FAIL",   "OUT_OF_MEMORY",
      "PREEMPTED", "BOOT_FAIL", "DEADLINE",  "REVOKED", "SPECIAL_EXIT"};
  return std::find(std::begin(kEnded), std::end(kEnded), state) != std::end(kEnded);
}

bool never_starts(std::string_view reason) {
  static constexpr std::string_view kNever[] = {"PartitionNodeLimit",
                                                "PartitionTimeLimit",
                                                "BadConstraints",
                                                "InvalidAccount",
                                                "InvalidQOS",
                                                "PartitionConfig",
                                                "QOSMaxNodePerJobLimit",
                                                "QOSMaxWallDurationPerJobLimit"};
  return std::find(std::begin(kNever), std::end(kNever), reason) != std::end(kNever);
}

Result<std::optional<JobStatus>> parse_squeue(std::string_view out, std::string_view id) {
  std::optional<JobStatus> found;
  for (auto line : lines_of(out)) {
    if (trim(line).empty()) continue;
    const auto f = split(line, '|', 3);
    if (f.size() != 3 || !all_of(f[0], [](char c) { return is_digit(c) || c == '_'; }) ||
        !all_of(f[1], is_state_char))
      return tl::unexpected(malformed("squeue", line, "JOBID|STATE|REASON"));
    if (f[0] == id) found = JobStatus{std::string(f[1]), "", printable(f[2], 200), {}, {}};
  }
  return found;
}

Result<std::optional<JobStatus>> parse_sacct(std::string_view out, std::string_view id) {
  std::optional<JobStatus> found;
  for (auto line : lines_of(out)) {
    if (trim(line).empty()) continue;
    const auto f = split(line, '|', 4);
    const auto state = f.size() == 4 ? split(f[1], ' ', 2) : std::vector<std::string_view>{};
    JobStatus st;
    if (f.size() != 4 || f[0].empty() || !all_of(state[0], is_state_char) ||
        !parse_exit_pair(f[2], st))
      return tl::unexpected(malformed("sacct", line, "JOBID|STATE|EXITCODE|REASON"));
    if (f[0] != id) continue;  // a step (ID.batch) or another job
    st.state = state[0];
    st.detail = state.size() > 1 ? printable(state[1], 100) : "";
    st.reason = printable(f[3], 200);
    found = std::move(st);
  }
  return found;
}

Result<std::optional<JobStatus>> parse_scontrol(std::string_view out, std::string_view id) {
  for (auto line : lines_of(out)) {
    if (trim(line).empty()) continue;
    // The first of each key counts: values that may hold spaces (Command=, WorkDir=) come
    // after these.
    std::optional<std::string_view> job_id, state, reason, exit;
    for (auto token : split(trim(line), ' ', std::string_view::npos)) {
      const auto kv = split(token, '=', 2);
      if (kv.size() != 2) continue;
      auto take = [&](std::string_view key, std::optional<std::string_view>& into) {
        if (kv[0] == key && !into) into = kv[1];
      };
      take("JobId", job_id);
      take("JobState", state);
      take("Reason", reason);
      take("ExitCode", exit);
    }
    if (!job_id || !all_of(*job_id, is_digit))
      return tl::unexpected(malformed("scontrol show job -o", line, "JobId=N ... JobState=S"));
    if (*job_id != id) continue;
    JobStatus st;
    if (!state || !all_of(*state, is_state_char) || (exit && !parse_exit_pair(*exit, st)))
      return tl::unexpected(malformed("scontrol show job -o", line, "JobId=N ... JobState=S"));
    st.state = *state;
    st.reason = reason ? printable(*reason, 200) : "";
    return std::optional<JobStatus>(std::move(st));
  }
  return std::optional<JobStatus>();
}

std::optional<std::pair<std::uint64_t, std::uint64_t>> parse_progress(std::string_view text) {
  const auto f = split(trim(text), ' ', 2);
  if (f.size() != 2) return std::nullopt;
  const auto done = number<std::uint64_t>(f[0]), total = number<std::uint64_t>(f[1]);
  if (!done || !total || *done > *total) return std::nullopt;
  return std::pair{*done, *total};
}

std::optional<int> parse_exit_status(std::string_view text) {
  const auto v = number<int>(trim(text));
  if (!v || *v < 0 || *v > 255) return std::nullopt;
  return v;
}

std::string one_line(std::string_view text) {
  std::string joined;
  for (auto line : lines_of(text))
    if (!trim(line).empty()) joined += (joined.empty() ? "" : "; ") + std::string(trim(line));
  return printable(joined);
}

std::string log_reason(std::string_view log_tail) {
  constexpr std::string_view kMarker = "voxcast: error: ";
  std::string_view last_error, last_line;
  for (auto line : lines_of(log_tail)) {
    if (const auto at = line.find(kMarker); at != std::string_view::npos)
      last_error = line.substr(at + kMarker.size());
    if (!trim(line).empty()) last_line = trim(line);
  }
  return printable(trim(!last_error.empty() ? last_error : last_line));
}

vx::Status outcome(const JobStatus& s, std::string_view slurm_id, bool cancel_requested,
                   std::optional<int> exit_status, std::string_view log_tail) {
  const std::string why = s.reason.empty() || s.reason == "None" ? "" : ", " + s.reason;
  const auto job = fmt::format("Slurm job {}", slurm_id);
  const auto log = log_reason(log_tail);
  const auto with_log = [&] { return log.empty() ? std::string() : ": " + log; };
  if (s.state == "COMPLETED") {
    if (exit_status.value_or(0) == 0) return {};
    return fail(ErrorCode::kInternal, "{} failed (exit status {}){}", job, *exit_status,
                with_log());
  }
  if (s.state == "CANCELLED") {
    if (cancel_requested) return fail(ErrorCode::kCancelled, "canceled");
    return fail(ErrorCode::kInternal,
                "{} was cancelled outside voxcast (CANCELLED{}{}: scancel by its owner or an "
                "administrator)",
                job, s.detail.empty() ? "" : " " + s.detail, why);
  }
  if (s.state == "FAILED") {
    const auto code = exit_status ? exit_status : s.exit_code;
    return fail(ErrorCode::kInternal, "{} failed{}{}", job,
                code ? fmt::format(" (exit status {})", *code) : std::string(), with_log());
  }
  if (s.state == "TIMEOUT")
    return fail(ErrorCode::kInternal,
                "{} reached its time limit and Slurm stopped it (TIMEOUT): ask for more time "
                "(SBATCH_TIMELIMIT in the server's environment) or render less",
                job);
  if (s.state == "NODE_FAIL")
    return fail(ErrorCode::kInternal, "a node of {} failed and Slurm ended the job (NODE_FAIL{})",
                job, why);
  if (s.state == "OUT_OF_MEMORY")
    return fail(ErrorCode::kInternal,
                "{} ran out of memory and Slurm killed it (OUT_OF_MEMORY): ask for more "
                "(SBATCH_MEM_PER_NODE in the server's environment) or lower --cache-mb",
                job);
  if (s.state == "PREEMPTED")
    return fail(ErrorCode::kInternal, "{} was preempted by Slurm for other work (PREEMPTED)", job);
  if (s.state == "BOOT_FAIL")
    return fail(ErrorCode::kInternal, "a node of {} failed to boot (BOOT_FAIL)", job);
  if (s.state == "DEADLINE")
    return fail(ErrorCode::kInternal, "{} missed its deadline and Slurm ended it (DEADLINE)", job);
  return fail(ErrorCode::kInternal, "{} ended {}{}{}", job, printable(s.state, 40), why,
              with_log());
}

}  // namespace vx::jobs::slurm
