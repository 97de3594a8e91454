// Sort-last compositing under MPI: the time rank 0 waits for a composited 1920x1080 frame
// and the bytes each rank sends, for the partial-image formats of the 3D modes (MIP: one
// float per pixel; average and attenuated MIP: two; translucent and iso: premultiplied
// RGBA). Run it under mpirun:
//   mpirun -np 4 build/release/bench/voxcast_bench_composite [WIDTH HEIGHT ITERATIONS]
// Rank 0 prints one line per format: ranks, ms per frame (median), MB sent per rank (max).
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <random>

#include "cluster/cluster.hpp"

using namespace vx;

int main(int argc, char** argv) {
  const int W = argc > 1 ? std::atoi(argv[1]) : 1920, H = argc > 2 ? std::atoi(argv[2]) : 1080;
  const int iters = argc > 3 ? std::atoi(argv[3]) : 10;
  auto world = cluster::World::init();
  if (!world) {
    fmt::print(stderr, "bench_composite: {}\n", world.error().what());
    return 1;
  }
  auto& w = **world;
  std::vector<int> order(std::size_t(w.size()));
  for (int i = 0; i < w.size(); ++i)
    order[std::size_t(i)] = i;  // the cost does not depend on the order
  std::mt19937 rng(unsigned(w.rank()));
  std::uniform_real_distribution<float> U(0, 0.5f);
  for (auto op :
       {render::PartialOp::kMax, render::PartialOp::kAttenuated, render::PartialOp::kOver}) {
    const auto n = std::size_t(W) * std::size_t(H) * std::size_t(render::partial_channels(op));
    std::vector<float> base(n);
    for (auto& x : base)
      x = U(rng);
    std::vector<double> ms;
    std::uint64_t sent0 = w.counters().bytes_sent;
    for (int i = 0; i < iters + 1; ++i) {
      auto px = base;
      std::string sync;
      if (auto st = w.broadcast(sync); !st) return 1;  // start together
      const auto t0 = std::chrono::steady_clock::now();
      if (auto st = w.composite(op, px, order); !st) {
        fmt::print(stderr, "{}\n", st.error().what());
        return 1;
      }
      if (i > 0)  // the first one warms up the shared-memory transport
        ms.push_back(
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0)
                .count());
      else
        sent0 = w.counters().bytes_sent;
    }
    std::sort(ms.begin(), ms.end());
    const double sent_mb = double(w.counters().bytes_sent - sent0) / iters / 1e6;
    if (w.rank() == 0) {
      fmt::print(
          "ranks={} size={}x{} channels={} ms_median={:.1f} ms_min={:.1f} "
          "rank0_mb_sent={:.2f}\n",
          w.size(), W, H, render::partial_channels(op), ms[ms.size() / 2], ms.front(), sent_mb);
    } else if (w.rank() == 1) {
      fmt::print("  rank=1 mb_sent={:.2f}\n", sent_mb);
    }
  }
  return 0;
}
