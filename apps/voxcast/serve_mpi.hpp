// `mpirun -np N voxcast serve DATA`: rank 0 runs the server and encodes; every rank draws its
// part of each 3D frame of each session, and the frame a client sees is the composite
// (docs/cluster.md, "MPI"). The other ranks follow rank 0: they open the same datasets,
// wait for frames, and leave when rank 0 stops.
#pragma once

#include <atomic>
#include <mutex>
#include <vector>

#include "cluster/cluster.hpp"
#include "data/chunk_cache.hpp"
#include "render/renderer.hpp"

namespace vx::app {

// Rank 0's side: render::SplitFrame for the server's sessions. Frames go to the ranks one at
// a time (each is a collective); a frame that the ranks fail is an error for its session,
// and after an MPI error every later frame is drawn by rank 0 alone, as the log says.
class FrameLeader {
 public:
  explicit FrameLeader(cluster::World& world) : world_(world) {}
  ~FrameLeader() { stop(); }
  FrameLeader(const FrameLeader&) = delete;
  FrameLeader& operator=(const FrameLeader&) = delete;

  Result<render::Frame> render(render::Renderer& renderer, int dataset, const render::Scene& scene,
                               const render::RenderInputs& in, render::RenderOptions opt);
  // Tells the other ranks to leave (once; no frame may come after).
  void stop();
  render::SplitFrame as_split_frame();

 private:
  cluster::World& world_;
  std::mutex mutex_;  // one frame at a time over MPI
  bool broken_ = false, stopped_ = false;
  std::uint64_t frames_ = 0;
};

// A rank other than 0: draws its part of every frame rank 0 sends until rank 0 stops.
// `datasets` are the server's, opened in the same order. Returns the exit code.
int follow_frames(cluster::World& world, data::ChunkCache& cache,
                  const std::vector<data::SourceId>& datasets);

}  // namespace vx::app
