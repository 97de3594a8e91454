// The round trip of one chunk through a Python pipeline worker (voxcast.pipeline): the
// server side of process() - request header, the block with its halo over wire, the
// function, the result back - timed per call, as a derived source calls it.
//
//   voxcast_bench_pipeline_worker MANIFEST PIPELINE [chunk=64] [halo=2] [calls=200]
//
// Prints one JSON line: {"calls", "median_us", "p10_us", "p90_us", "mean_us"}.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <numeric>
#include <random>

#include "pipeline/kernels.hpp"
#include "pipeline/workers.hpp"

using namespace vx;

int main(int argc, char** argv) {
  if (argc < 3) {
    fmt::print(stderr, "usage: {} MANIFEST PIPELINE [chunk] [halo] [calls]\n", argv[0]);
    return 2;
  }
  const std::int64_t chunk = argc > 3 ? std::atoll(argv[3]) : 64;
  const std::int64_t halo = argc > 4 ? std::atoll(argv[4]) : 2;
  const int calls = argc > 5 ? std::atoi(argv[5]) : 200;
  Budget budget("host", 8ull << 30);
  auto registry = pipeline::builtin_registry();
  auto workers = pipeline::add_workers(registry, argv[1], &budget);
  if (!workers) {
    fmt::print(stderr, "{}\n", workers.error().what());
    return 1;
  }
  pipeline::Manager manager(std::move(registry), budget);
  auto lease = manager.use(argv[2]);
  if (!lease) {
    fmt::print(stderr, "{}\n", lease.error().what());
    return 1;
  }
  const pipeline::Ext3 in_shape{chunk + 2 * halo, chunk + 2 * halo, chunk + 2 * halo};
  pipeline::Block in(in_shape), out(pipeline::Ext3{chunk, chunk, chunk});
  std::mt19937 rng(15);
  std::uniform_real_distribution<float> dist(0, 4000);
  for (std::int64_t i = 0; i < in.view().voxels(); ++i)
    in.data[std::size_t(i)] = dist(rng);
  pipeline::LevelContext lc;
  lc.input_dtype = data::DType::kUInt16;
  const json params = json::object();
  std::vector<double> us;
  for (int i = 0; i < calls + 5; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    auto st = (*lease)->process(params, lc, in.view(), out.view());
    const auto t1 = std::chrono::steady_clock::now();
    if (!st) {
      fmt::print(stderr, "{}\n", st.error().what());
      return 1;
    }
    if (i >= 5) us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
  }
  std::sort(us.begin(), us.end());
  auto at = [&](double q) { return us[std::size_t(q * double(us.size() - 1))]; };
  fmt::print(
      "{{\"calls\": {}, \"median_us\": {:.1f}, \"p10_us\": {:.1f}, \"p90_us\": {:.1f}, "
      "\"mean_us\": {:.1f}}}\n",
      us.size(), at(0.5), at(0.1), at(0.9),
      std::accumulate(us.begin(), us.end(), 0.0) / double(us.size()));
  return 0;
}
