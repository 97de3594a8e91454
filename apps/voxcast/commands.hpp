// Subcommands of the voxcast program. Each registers itself on the CLI11 app and runs
// after parsing; they return the process exit code (0 ok, 1 runtime error).
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <functional>
#include <string>

namespace vx::app {

struct GlobalOptions {
  std::string log_level = "info";
  std::int64_t cache_mb = 0;  // 0: a quarter of RAM
  unsigned io_threads = 0;    // 0: the cache's default
  std::uint64_t cache_bytes() const;
};

using Runner = std::function<int()>;

Runner add_info(CLI::App& app, const GlobalOptions& g);
Runner add_convert(CLI::App& app, const GlobalOptions& g);
Runner add_export(CLI::App& app, const GlobalOptions& g);
Runner add_demo(CLI::App& app, const GlobalOptions& g);
Runner add_render(CLI::App& app, const GlobalOptions& g);

}  // namespace vx::app
namespace vx::data {
struct VolumeInfo;
}
namespace vx::app {
void print_info(const data::VolumeInfo& info);
std::string info_json(const data::VolumeInfo& info);

// Prints "voxcast: error: <message>" on stderr and returns 1.
int report(const std::string& message);

}  // namespace vx::app
