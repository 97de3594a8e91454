// Child processes: start a command (fork + exec, killed with its parent), run one to
// completion with its output captured, and say how one ended. Arguments go to execve as they
// are: no shell ever sees them. Pipeline workers and the Slurm job backend use these.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "core/error.hpp"

namespace vx::process {

struct Command {
  std::vector<std::string> argv;           // argv[0]: a path, or a name looked up on PATH
  std::map<std::string, std::string> env;  // added to this process's environment
  std::string cwd;                         // empty: this process's
};

// argv[0] as an executable path: kNotFound "command 'x' not found on PATH" (or "... is not an
// executable file").
Result<std::string> resolve_executable(const std::string& name);

// Starts the command: stdin from /dev/null, stdout to this process's stderr (a worker's prints
// and tracebacks land in the server's log), killed (SIGKILL) when the thread that started it
// ends.
Result<pid_t> spawn(const Command& cmd);

// How a command run to completion ended: its wait status and what it printed (each stream
// kept up to 16 MiB).
struct Completed {
  int status = 0;  // as waitpid() gives it
  std::string out, err;
  bool ok() const { return status == 0; }  // exited with code 0
};

// Runs the command with `extra` arguments to completion within `timeout` (then it is
// killed): an error only when it could not be started or did not finish in time.
Result<Completed> run(const Command& cmd, std::chrono::milliseconds timeout,
                      const std::vector<std::string>& extra = {});

// Like run(): its stdout, or an error with its exit status and the end of its stderr.
Result<std::string> run_capture(const Command& cmd, const std::vector<std::string>& extra,
                                std::chrono::milliseconds timeout);

// "exited with code 1", "killed by signal 9 (SIGKILL: the kernel's OOM killer or kill -9)".
std::string describe_exit(int wait_status);

}  // namespace vx::process
