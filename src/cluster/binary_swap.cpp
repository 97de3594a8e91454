// Sort-last compositing by binary-swap (Ma et al. 1994; one of the algorithms IceT uses,
// written here over MPI point-to-point since Debian packages no IceT). Ranks are taken in
// visibility order; at every stage a rank holds the composite of a contiguous run of that
// order over a shrinking piece of the image, so the non-commutative "over" stays correct.
#include <fmt/format.h>

#include <csignal>
#include <cstdlib>
#include <string_view>
#include <thread>

#include "cluster/mpi_impl.hpp"
#include "core/log.hpp"

namespace vx::cluster {
namespace {

// For tests: VOXCAST_MPI_FAULT=die:R makes rank R kill itself as it starts compositing;
// hang:R makes it stop there (alive, silent) until it is killed.
void maybe_fault(int rank) {
  const char* f = std::getenv("VOXCAST_MPI_FAULT");
  if (!f) return;
  const std::string_view v(f);
  const bool die = v.starts_with("die:"), hang = v.starts_with("hang:");
  if ((!die && !hang) || std::atoi(f + (die ? 4 : 5)) != rank) return;
  VX_LOG(warn, "cluster.fault", "rank={} action={} (VOXCAST_MPI_FAULT)", rank,
         die ? "die" : "hang");
  if (die) std::raise(SIGKILL);
  for (;;)
    std::this_thread::sleep_for(std::chrono::seconds(1));
}

struct Range {
  std::size_t lo = 0, hi = 0;  // pixels
};

}  // namespace

Status World::composite(render::PartialOp op, std::vector<float>& pixels,
                        std::span<const int> order) {
  auto& I = *impl_;
  if (I.size == 1) return {};
  maybe_fault(I.rank);
  const auto t0 = std::chrono::steady_clock::now();
  const int N = I.size;
  if (int(order.size()) != N)
    return fail(ErrorCode::kInternal, "composite: an order of {} ranks for {}", order.size(), N);
  const auto K = std::size_t(render::partial_channels(op));
  if (pixels.size() % K != 0)
    return fail(ErrorCode::kInternal, "composite: {} floats is not a whole number of pixels",
                pixels.size());
  const std::size_t n = pixels.size() / K;
  std::vector<int> pos(std::size_t(N), -1);
  for (int i = 0; i < N; ++i) {
    const int r = order[std::size_t(i)];
    if (r < 0 || r >= N || pos[std::size_t(r)] >= 0)
      return fail(ErrorCode::kInternal, "composite: the order is not a permutation");
    pos[std::size_t(r)] = i;
  }
  const int me = pos[std::size_t(I.rank)];
  int P = 1;
  while (P * 2 <= N)
    P *= 2;
  const int extra = N - P;
  // Fold: positions 2i and 2i + 1 (i < extra) merge first (front 2i keeps the whole image),
  // which leaves P virtual ranks, still contiguous runs of the order.
  std::vector<float> tmp;
  auto virtual_of = [&](int p) { return p < 2 * extra ? (p % 2 ? -1 : p / 2) : p - extra; };
  auto position_of = [&](int v) { return v < extra ? 2 * v : v + extra; };
  if (me < 2 * extra) {
    const int peer = order[std::size_t(me % 2 ? me - 1 : me + 1)];
    if (me % 2) {
      VX_TRY(I.send(pixels.data(), pixels.size() * sizeof(float), peer, 1, "compositing (fold)"));
    } else {
      tmp.resize(pixels.size());
      VX_TRY(I.recv(tmp.data(), tmp.size() * sizeof(float), peer, 1, "compositing (fold)"));
      render::composite_partial(op, pixels.data(), tmp.data(), pixels.data(), n);
    }
  }
  const int v = virtual_of(me);
  // The piece each virtual rank ends with, halving [0, n) once per stage.
  auto piece = [&](int vr) {
    Range r{0, n};
    for (int bit = 1; bit < P; bit <<= 1) {
      const std::size_t mid = r.lo + (r.hi - r.lo) / 2;
      if (vr & bit)
        r.lo = mid;
      else
        r.hi = mid;
    }
    return r;
  };
  if (v >= 0) {
    Range r{0, n};
    for (int bit = 1; bit < P; bit <<= 1) {
      const int pv = v ^ bit;
      const int peer = order[std::size_t(position_of(pv))];
      const std::size_t mid = r.lo + (r.hi - r.lo) / 2;
      const Range keep = (v & bit) ? Range{mid, r.hi} : Range{r.lo, mid};
      const Range give = (v & bit) ? Range{r.lo, mid} : Range{mid, r.hi};
      tmp.resize((keep.hi - keep.lo) * K);
      VX_TRY(I.exchange(pixels.data() + give.lo * K, (give.hi - give.lo) * K, tmp.data(),
                        tmp.size(), peer, 2, "compositing (binary-swap)"));
      float* mine = pixels.data() + keep.lo * K;
      // The lower virtual rank holds the run nearer the eye.
      if (v < pv)
        render::composite_partial(op, mine, tmp.data(), mine, keep.hi - keep.lo);
      else
        render::composite_partial(op, tmp.data(), mine, mine, keep.hi - keep.lo);
      r = keep;
    }
  }
  // Rank 0 gathers the pieces (it may hold one itself).
  if (I.rank == 0) {
    std::vector<float> out(pixels.size());
    std::vector<MPI_Request> reqs;
    for (int vr = 0; vr < P; ++vr) {
      const int src = order[std::size_t(position_of(vr))];
      const Range r = piece(vr);
      if (src == 0) {
        std::copy(pixels.begin() + std::ptrdiff_t(r.lo * K),
                  pixels.begin() + std::ptrdiff_t(r.hi * K),
                  out.begin() + std::ptrdiff_t(r.lo * K));
        continue;
      }
      reqs.emplace_back();
      VX_TRY(I.check(MPI_Irecv(out.data() + r.lo * K, int((r.hi - r.lo) * K), MPI_FLOAT, src, 3,
                               I.comm.get(), &reqs.back()),
                     "compositing (gather)"));
    }
    VX_TRY(I.wait(reqs, "compositing (gather)", -1));
    pixels = std::move(out);
  } else if (v >= 0) {
    const Range r = piece(v);
    VX_TRY(I.send(pixels.data() + r.lo * K, (r.hi - r.lo) * K * sizeof(float), 0, 3,
                  "compositing (gather)"));
  }
  I.counters.composite_seconds +=
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ++I.counters.composites;
  return {};
}

}  // namespace vx::cluster
