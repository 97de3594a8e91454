#include "core/process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>
#include <cerrno>
#include <cstdlib>
#include <cstring>

extern char** environ;

namespace vx::process {

namespace {

bool executable(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(p.c_str(), X_OK) == 0;
}

// Everything exec needs, built before fork (the child only calls async-signal-safe functions).
struct ExecPlan {
  std::string path;
  std::vector<std::string> args, envs;
  std::vector<char*> argv, envp;
  void finish() {
    for (auto& a : args)
      argv.push_back(a.data());
    argv.push_back(nullptr);
    for (auto& e : envs)
      envp.push_back(e.data());
    envp.push_back(nullptr);
  }
};

Result<ExecPlan> plan(const Command& cmd, const std::vector<std::string>& extra) {
  if (cmd.argv.empty() || cmd.argv[0].empty())
    return fail(ErrorCode::kInvalidArgument, "an empty command");
  ExecPlan p;
  VX_ASSIGN(p.path, resolve_executable(cmd.argv[0]));
  p.args = cmd.argv;
  p.args.insert(p.args.end(), extra.begin(), extra.end());
  for (char** e = environ; e && *e; ++e) {
    const std::string kv(*e);
    const auto key = kv.substr(0, kv.find('='));
    if (!cmd.env.count(key)) p.envs.push_back(kv);
  }
  for (const auto& [k, v] : cmd.env)
    p.envs.push_back(k + "=" + v);
  p.finish();
  return p;
}

// In the child, after fork: only async-signal-safe calls, then exec.
[[noreturn]] void exec_child(const ExecPlan& p, const std::string& cwd, int out_fd, int err_fd,
                             pid_t parent) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != parent) ::_exit(127);  // the parent died before prctl
  const int devnull = ::open("/dev/null", O_RDONLY);
  if (devnull >= 0) ::dup2(devnull, 0);
  ::dup2(out_fd, 1);
  if (err_fd != 2) ::dup2(err_fd, 2);
  ::close_range(3, ~0u, 0);  // the server's sockets (UCX, HTTP) stay with the server
  if (!cwd.empty() && ::chdir(cwd.c_str()) != 0) ::_exit(126);
  // Signals the server blocks (its threads) must not stay blocked in the worker.
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  ::execve(p.path.c_str(), const_cast<char* const*>(p.argv.data()),
           const_cast<char* const*>(p.envp.data()));
  ::_exit(127);
}

Result<pid_t> fork_exec(const ExecPlan& p, const std::string& cwd, int out_fd, int err_fd) {
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) return fail(ErrorCode::kIo, "fork: {}", std::strerror(errno));
  if (pid == 0) exec_child(p, cwd, out_fd, err_fd, parent);
  return pid;
}

}  // namespace

Result<std::string> resolve_executable(const std::string& name) {
  if (name.find('/') != std::string::npos) {
    if (executable(name)) return name;
    return fail(ErrorCode::kNotFound, "command '{}' is not an executable file", name);
  }
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "/usr/bin:/bin";
  std::size_t pos = 0;
  while (pos <= dirs.size()) {
    auto end = dirs.find(':', pos);
    if (end == std::string::npos) end = dirs.size();
    const auto dir = dirs.substr(pos, end - pos);
    const auto candidate = (dir.empty() ? std::string(".") : dir) + "/" + name;
    if (executable(candidate)) return candidate;
    pos = end + 1;
  }
  return fail(ErrorCode::kNotFound, "command '{}' not found on PATH", name);
}

Result<pid_t> spawn(const Command& cmd) {
  VX_ASSIGN(auto p, plan(cmd, {}));
  return fork_exec(p, cmd.cwd, 2, 2);
}

Result<Completed> run(const Command& cmd, std::chrono::milliseconds timeout,
                      const std::vector<std::string>& extra) {
  VX_ASSIGN(auto p, plan(cmd, extra));
  int out[2], err[2];
  if (::pipe2(out, O_CLOEXEC) != 0) return fail(ErrorCode::kIo, "pipe: {}", std::strerror(errno));
  if (::pipe2(err, O_CLOEXEC) != 0) {
    ::close(out[0]);
    ::close(out[1]);
    return fail(ErrorCode::kIo, "pipe: {}", std::strerror(errno));
  }
  auto child = fork_exec(p, cmd.cwd, out[1], err[1]);
  ::close(out[1]);
  ::close(err[1]);
  if (!child) {
    ::close(out[0]);
    ::close(err[0]);
    return tl::unexpected(child.error());
  }
  Completed done;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  bool timed_out = false;
  pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
  int open_fds = 2;
  char buf[65536];
  while (open_fds > 0) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    if (::poll(fds, 2, int(left.count())) < 0 && errno != EINTR) break;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      const auto n = ::read(fds[i].fd, buf, sizeof buf);
      if (n > 0) {
        auto& s = i == 0 ? done.out : done.err;
        if (s.size() < (16u << 20)) s.append(buf, std::size_t(n));
      } else if (n == 0 || errno != EINTR) {
        ::close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      }
    }
  }
  for (auto& f : fds)
    if (f.fd >= 0) ::close(f.fd);
  if (timed_out) ::kill(*child, SIGKILL);
  while (::waitpid(*child, &done.status, 0) < 0 && errno == EINTR) {
  }
  if (timed_out)
    return fail(ErrorCode::kInternal, "'{} {}' did not finish within {} ms", cmd.argv[0],
                fmt::join(extra, " "), timeout.count());
  return done;
}

Result<std::string> run_capture(const Command& cmd, const std::vector<std::string>& extra,
                                std::chrono::milliseconds timeout) {
  VX_ASSIGN(auto done, run(cmd, timeout, extra));
  const auto& se = done.err;
  const auto tail = se.size() > 2000 ? "..." + se.substr(se.size() - 2000) : se;
  if (!done.ok())
    return fail(ErrorCode::kInternal, "'{} {}' {}{}{}", cmd.argv[0], fmt::join(extra, " "),
                describe_exit(done.status), tail.empty() ? "" : ": ", tail);
  return done.out;
}

std::string describe_exit(int s) {
  if (WIFEXITED(s)) return fmt::format("exited with code {}", WEXITSTATUS(s));
  if (WIFSIGNALED(s)) {
    const int sig = WTERMSIG(s);
    const char* name = sigabbrev_np(sig);
    std::string why;
    if (sig == SIGKILL) why = ": the kernel's OOM killer, or kill -9";
    if (sig == SIGSEGV || sig == SIGBUS || sig == SIGABRT) why = ": it crashed";
    return fmt::format("killed by signal {} (SIG{}{})", sig, name ? name : "?", why);
  }
  return fmt::format("ended with wait status {}", s);
}

}  // namespace vx::process
