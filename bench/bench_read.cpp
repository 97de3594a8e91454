// Read-and-decode throughput of a dataset's level 0 through the ChunkCache (cold: a new
// cache; warm: the same cache again), and the codec's own single-core decode rate on the
// same chunks (stored bytes already in memory), for the "limit" of cores x that rate.
// Prints one JSON object; bench/read_vs_zarr.py runs it beside python3-zarr.
#include <fmt/format.h>

#include <chrono>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "data/chunk_cache.hpp"
#include "data/file_io.hpp"
#include "data/zarr_meta.hpp"

using namespace vx::data;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// Reads every chunk of level 0 with all requests in flight at once, as a renderer would.
double read_all(ChunkCache& cache, SourceId id, const Level& lv) {
  const auto grid = lv.grid();
  const auto n = lv.chunk_count();
  std::mutex m;
  std::condition_variable cv;
  std::int64_t pending = n;
  bool failed = false;
  const auto t = Clock::now();
  Index idx{};
  for (std::int64_t k = 0; k < n; ++k) {
    std::int64_t rem = k;
    for (int d = int(grid.size()) - 1; d >= 0; --d) {
      idx[d] = rem % grid[std::size_t(d)];
      rem /= grid[std::size_t(d)];
    }
    cache.request(id, 0, idx, kPriorityVisible, [&](vx::Result<ChunkPin> r) {
      std::lock_guard l(m);
      if (!r) {
        failed = true;
        fmt::print(stderr, "{}\n", r.error().what());
      }
      if (--pending == 0) cv.notify_all();
    });
  }
  std::unique_lock l(m);
  cv.wait(l, [&] { return pending == 0; });
  if (failed) std::exit(1);
  return seconds_since(t);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    fmt::print(
        stderr,
        "usage: voxcast_bench_read STORE.ome.zarr [cache-mb [io-threads]] [--chunks-only]\n");
    return 2;
  }
  const std::string path = argv[1];
  std::vector<std::string> pos;
  bool chunks_only = false;
  for (int i = 2; i < argc; ++i) {
    if (std::string(argv[i]) == "--chunks-only")
      chunks_only = true;  // for profiling
    else
      pos.push_back(argv[i]);
  }
  const std::uint64_t cache_mb = pos.size() > 0 ? std::stoull(pos[0]) : 256;
  const unsigned io_threads = pos.size() > 1 ? unsigned(std::stoul(pos[1])) : 0;
  auto src = open_volume(path);
  if (!src) {
    fmt::print(stderr, "{}\n", src.error().what());
    return 1;
  }
  const auto& info = (*src)->info();
  const auto& lv = info.levels[0];
  const double bytes = double(lv.chunk_count()) * double(info.chunk_bytes(0));

  // Chunks as the renderer takes them: pins, no copy. Cold with a budget of cache_mb.
  ChunkCache cache(CacheOptions{cache_mb << 20, io_threads, 16});
  const auto id = cache.add_source(*src);
  const double cold = read_all(cache, id, lv);
  const auto after_cold = cache.counters();
  const double warm = read_all(cache, id, lv);
  const auto after_warm = cache.counters();
  if (chunks_only) {
    for (int i = 0; i < 5; ++i) {
      ChunkCache again(CacheOptions{cache_mb << 20, io_threads, 16});
      read_all(again, again.add_source(*src), lv);
    }
    return 0;
  }

  // The whole level assembled into one array (what python3-zarr's arr[...] does): cold
  // through a cache of cache_mb (recycling buffers as a terabyte read would), warm through a
  // cache that holds the level, on its second pass.
  std::unique_ptr<std::byte[]> whole(new std::byte[std::size_t(bytes)]);
  std::memset(whole.get(), 0, std::size_t(bytes));  // fault the destination in first
  const std::vector<std::int64_t> origin(lv.shape.size(), 0);
  const std::span<std::byte> dst(whole.get(), std::size_t(bytes));
  ChunkCache small(CacheOptions{cache_mb << 20, io_threads, 16});
  const auto sid = small.add_source(*src);
  auto t_region = Clock::now();
  if (!read_region(small, sid, 0, origin, lv.shape, dst)) return 1;
  const double region_cold = seconds_since(t_region);
  ChunkCache big(CacheOptions{std::uint64_t(bytes * 1.1) + (64u << 20), io_threads, 16});
  const auto bid = big.add_source(*src);
  if (!read_region(big, bid, 0, origin, lv.shape, dst)) return 1;
  t_region = Clock::now();
  if (!read_region(big, bid, 0, origin, lv.shape, dst)) return 1;
  const double region_warm = seconds_since(t_region);

  // Codec limit: decode the stored chunks of level 0 on one thread, bytes in memory.
  const auto dir = (std::filesystem::path(path) / lv.path).string();
  const bool v3 = std::filesystem::exists(std::filesystem::path(dir) / "zarr.json");
  auto meta_json = read_json_file(dir + (v3 ? "/zarr.json" : "/.zarray"));
  auto meta = v3 ? parse_zarr_json_v3(*meta_json, dir) : parse_zarray_v2(*meta_json, dir);
  if (!meta || meta->sharding()) {
    fmt::print(stderr, "codec limit needs an unsharded Zarr array\n");
    return 1;
  }
  std::vector<Bytes> stored;
  const auto grid = lv.grid();
  for (std::int64_t k = 0; k < lv.chunk_count(); ++k) {
    std::vector<std::int64_t> idx(grid.size());
    std::int64_t rem = k;
    for (int d = int(grid.size()) - 1; d >= 0; --d) {
      idx[std::size_t(d)] = rem % grid[std::size_t(d)];
      rem /= grid[std::size_t(d)];
    }
    auto b = read_file_if_exists(dir + "/" + meta->chunk_key(idx));
    if (b && *b) stored.push_back(std::move(**b));
  }
  Bytes out(info.chunk_bytes(0));
  double decoded = 0;
  const auto t = Clock::now();
  for (const auto& s : stored) {
    if (!decode_chain(meta->codecs, s, out, meta->chunks, dtype_size(info.dtype), "bench"))
      return 1;
    decoded += double(out.size());
  }
  const double one_core = decoded / seconds_since(t);
  const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  nlohmann::json j = {{"store", path},
                      {"codec", lv.codec},
                      {"decoded_bytes", bytes},
                      {"chunks", lv.chunk_count()},
                      {"cold_s", cold},
                      {"warm_s", warm},
                      {"cache_mb", cache_mb},
                      {"io_threads", io_threads},
                      {"cold_mb_s", bytes / cold / 1e6},
                      {"warm_s_per_chunk", warm / double(lv.chunk_count())},
                      {"warm_hits", after_warm.hits - after_cold.hits},
                      {"evictions", after_cold.evictions},
                      {"region_cold_mb_s", bytes / region_cold / 1e6},
                      {"region_warm_mb_s", bytes / region_warm / 1e6},
                      {"bytes_read", after_cold.bytes_read},
                      {"codec_one_core_mb_s", one_core / 1e6},
                      {"cores", cores},
                      {"codec_limit_mb_s", one_core * cores / 1e6},
                      {"cold_fraction_of_limit", (bytes / cold) / (one_core * cores)}};
  fmt::print("{}\n", j.dump());
  return 0;
}
