#include "mpi_run.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <filesystem>

#include "commands.hpp"

namespace vx::app {

Result<std::unique_ptr<cluster::World>> world_if_launched() {
  if (!cluster::launched_by_mpi()) return std::unique_ptr<cluster::World>();
  return cluster::World::init();
}

int run_partial_rank(cluster::World& world, const jobs::JobKind& kind, const jobs::json& params) {
  const auto scratch = std::filesystem::temp_directory_path() /
                       fmt::format("voxcast-rank{}-{}", world.rank(), ::getpid());
  auto files = jobs::run_local(kind, params, scratch.string(), nullptr);
  std::error_code ec;
  std::filesystem::remove_all(scratch, ec);
  const auto st = agree_on(&world, files);
  return st ? 0 : report(st.error().what());
}

Status agree_on(cluster::World* world, const Result<std::vector<std::string>>& files) {
  const Status local = files ? Status{} : Status(tl::unexpected(files.error()));
  return world ? world->agree(local) : local;
}

}  // namespace vx::app
