// The World without MPI (VOXCAST_MPI=OFF or OpenMPI not found).
#include "cluster/cluster.hpp"

namespace vx::cluster {

struct World::Impl {};

bool built_with_mpi() {
  return false;
}

World::World(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
World::~World() = default;

Result<std::unique_ptr<World>> World::init(Options) {
  return fail(ErrorCode::kUnsupported,
              "this voxcast was built without MPI (configure with -DVOXCAST_MPI=ON and "
              "Debian's libopenmpi-dev)");
}
int World::rank() const {
  return 0;
}
int World::size() const {
  return 1;
}
Status World::composite(render::PartialOp, std::vector<float>&, std::span<const int>) {
  return {};
}
Status World::broadcast(std::string&) {
  return {};
}
Status World::broadcast(std::string&, std::chrono::milliseconds) {
  return {};
}
Status World::agree(const Status& local) {
  return local;
}
Counters World::counters() const {
  return {};
}

}  // namespace vx::cluster
