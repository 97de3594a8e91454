// Child processes for pipeline workers: start a command (fork + exec, killed with its parent),
// run one to completion with its output captured (`--describe`), and say how one ended.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "core/error.hpp"

namespace vx::pipeline::detail {

struct Command {
  std::vector<std::string> argv;           // argv[0]: a path, or a name looked up on PATH
  std::map<std::string, std::string> env;  // added to the server's environment
  std::string cwd;                         // empty: the server's
};

// argv[0] as an executable path: kNotFound "command 'x' not found on PATH" (or "... is not an
// executable file").
Result<std::string> resolve_executable(const std::string& name);

// Starts the command: stdin from /dev/null, stdout to the server's stderr (a worker's prints
// and tracebacks land in the server's log), killed (SIGKILL) when the server dies.
Result<pid_t> spawn(const Command& cmd);

// Runs the command with `extra` arguments to completion, within `timeout`: its stdout, or an
// error with its exit status and the end of its stderr.
Result<std::string> run_capture(const Command& cmd, const std::vector<std::string>& extra,
                                std::chrono::milliseconds timeout);

// "exited with code 1", "killed by signal 9 (SIGKILL: the kernel's OOM killer or kill -9)".
std::string describe_exit(int wait_status);

}  // namespace vx::pipeline::detail
