// What the commands that run under mpirun/srun share (docs/cluster.md, "MPI").
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "cluster/cluster.hpp"
#include "jobs/kind.hpp"

namespace vx::app {

// This process's World when an MPI launcher started it among several, else null.
Result<std::unique_ptr<cluster::World>> world_if_launched();

// A rank other than 0: runs `kind` into a scratch folder (its pictures are partial), removes
// it, and agrees with the other ranks on the outcome. Returns the exit code.
int run_partial_rank(cluster::World& world, const jobs::JobKind& kind, const jobs::json& params);

// Rank 0 (or no MPI): agrees with the other ranks on the job's outcome; the first error of any.
Status agree_on(cluster::World* world, const Result<std::vector<std::string>>& files);

}  // namespace vx::app
