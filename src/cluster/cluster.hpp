// Past one machine: the MPI side of sort-last parallel rendering. A World is this process's
// place in an MPI job (mpirun/srun): its rank, and the compositor that combines the partial
// images of all ranks (binary-swap over MPI point-to-point; there is no packaged IceT, so
// the algorithm IceT uses is written here). Every wait is bounded: MPI errors are returned
// (MPI_ERRORS_RETURN), never fatal, and a peer that sends nothing within the timeout is an
// error that names it. A World that saw an error aborts the whole job on destruction
// (MPI_Abort) instead of finalizing, so no rank is left waiting; mpirun also reports a rank
// that dies (signal, crash) and stops the others within seconds.
//
// Without MPI (VOXCAST_MPI=OFF or no OpenMPI found) the same header builds; World::init
// then fails with a message saying so. No MPI type appears here.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "render/partition.hpp"

namespace vx::cluster {

// Whether this build has MPI.
bool built_with_mpi();
// Whether an MPI launcher started this process as one of two or more (mpirun's
// OMPI_COMM_WORLD_SIZE, PMI_SIZE of srun --mpi=pmi2, PMIX_RANK with SLURM_NTASKS > 1 of
// srun --mpi=pmix).
bool launched_by_mpi();

struct Options {
  // The longest wait for a peer's data: covers the slowest rank's render of a frame, so it
  // is generous; a rank that dies is reported by mpirun within seconds, not by this.
  std::chrono::milliseconds timeout{120'000};
};

struct Counters {
  std::uint64_t bytes_sent = 0;  // by this rank, compositing and gathering
  double composite_seconds = 0;  // spent in composite(), waits included
  std::uint64_t composites = 0;
};

class World final : public render::Compositor {
 public:
  // MPI_Init_thread (serialized: any thread may talk MPI, one at a time; `serve` renders
  // on its pool's threads under a lock, everything else on the thread that called init()).
  static Result<std::unique_ptr<World>> init(Options options = {});
  ~World() override;
  World(const World&) = delete;
  World& operator=(const World&) = delete;

  int rank() const override;
  int size() const override;
  // Binary-swap in `order` (front to back): ranks beyond the largest power of two first
  // fold their image into their front neighbour's; then log2(P) exchanges of halves; then
  // rank 0 gathers the pieces.
  Status composite(render::PartialOp op, std::vector<float>& pixels,
                   std::span<const int> order) override;
  // Rank 0's bytes to every rank (e.g. a scene); bounded like every other wait, or by
  // `timeout` (a follower of `serve` waits as long as the server is idle).
  Status broadcast(std::string& bytes);
  Status broadcast(std::string& bytes, std::chrono::milliseconds timeout);
  // Whether every rank's `local` is ok; the first error otherwise (rank, message). Ranks
  // call it after work that can fail on some ranks only, so that all stop together.
  Status agree(const Status& local);
  Counters counters() const;

  struct Impl;

 private:
  explicit World(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace vx::cluster
