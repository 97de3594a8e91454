#include <cstdlib>
#include <string>

#include "cluster/cluster.hpp"

namespace vx::cluster {

bool launched_by_mpi() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MPI_LOCALNRANKS"}) {
    const char* v = std::getenv(name);
    if (v && std::atoi(v) > 1) return true;
  }
  // srun --mpi=pmix: a PMIx rank among several Slurm tasks.
  const char* tasks = std::getenv("SLURM_NTASKS");
  return std::getenv("PMIX_RANK") && tasks && std::atoi(tasks) > 1;
}

}  // namespace vx::cluster
