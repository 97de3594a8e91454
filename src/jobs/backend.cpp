// The local backend, and --jobs-backend parsed into a backend.
#include "jobs/backend.hpp"

#include "jobs/slurm.hpp"

namespace vx::jobs {

namespace {

class LocalBackend final : public Backend {
 public:
  std::string name() const override { return "local"; }
  Status admit(const JobKind&, const json& params) const override {
    if (const int nodes = params.value("nodes", 1); nodes > 1)
      return fail(ErrorCode::kInvalidArgument,
                  "field 'params.nodes': {} nodes need a cluster (voxcast serve --jobs-backend "
                  "slurm); this server runs jobs here, on one machine",
                  nodes);
    return {};
  }
  Result<std::vector<std::string>> run(const JobKind& kind, const JobSpec& job,
                                       JobContext& ctx) const override {
    return kind.run(job.params, ctx);
  }
};

}  // namespace

std::shared_ptr<const Backend> make_local_backend() {
  return std::make_shared<LocalBackend>();
}

Result<std::shared_ptr<const Backend>> make_backend(const std::string& spec,
                                                    const std::string& voxcast_bin) {
  if (spec == "local") return make_local_backend();
  if (spec == "slurm" || spec.starts_with("slurm:")) {
    const std::string partition = spec == "slurm" ? "" : spec.substr(6);
    if (spec != "slurm" && !slurm::valid_partition(partition))
      return fail(ErrorCode::kInvalidArgument,
                  "--jobs-backend {}: the partition is 1-64 letters, digits, '_', '-', '.' or ','",
                  spec);
    return slurm::make_slurm_backend(partition, voxcast_bin);
  }
  return fail(ErrorCode::kInvalidArgument,
              "--jobs-backend '{}': expected local, slurm or slurm:PARTITION", spec);
}

}  // namespace vx::jobs
