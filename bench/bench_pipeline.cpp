// A pipeline over a whole volume, chunk by chunk through voxcast's chunk cache (every chunk of
// level 0 requested at once, computed on the cache's compute threads), as a view or `voxcast
// convert --pipeline` would. Prints one JSON line with the time of each repeat.
//
//   voxcast_bench_pipeline DATA.npy gaussian:sigma=2 [repeats] [chunk]
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstring>

#include "data/chunk_cache.hpp"
#include "pipeline/pipeline.hpp"

using namespace vx;

namespace {

// Level 0 of a source, held in memory and served in chunks of `chunk`^n (a decoded store).
class MemSource final : public data::VolumeSource {
 public:
  MemSource(data::VolumeInfo info, std::vector<std::byte> bytes, std::int64_t chunk)
      : info_(std::move(info)), bytes_(std::move(bytes)) {
    info_.levels.resize(1);
    for (auto& c : info_.levels[0].chunks)
      c = chunk;
  }
  const data::VolumeInfo& info() const override { return info_; }
  Result<data::ReadResult> read_chunk(int, const data::Index& idx,
                                      std::span<std::byte> out) const override {
    const auto& lv = info_.levels[0];
    const auto item = data::dtype_size(info_.dtype);
    const auto& s = lv.shape;
    const auto& c = lv.chunks;  // 3-D
    std::memset(out.data(), 0, out.size());
    for (std::int64_t z = 0; z < c[0] && idx[0] * c[0] + z < s[0]; ++z)
      for (std::int64_t y = 0; y < c[1] && idx[1] * c[1] + y < s[1]; ++y) {
        const auto gz = idx[0] * c[0] + z, gy = idx[1] * c[1] + y, gx = idx[2] * c[2];
        const auto n = std::min(c[2], s[2] - gx);
        std::memcpy(out.data() + std::size_t((z * c[1] + y) * c[2]) * item,
                    bytes_.data() + std::size_t((gz * s[1] + gy) * s[2] + gx) * item,
                    std::size_t(n) * item);
      }
    return data::ReadResult{false, 0};
  }

 private:
  data::VolumeInfo info_;
  std::vector<std::byte> bytes_;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    fmt::print(stderr, "usage: voxcast_bench_pipeline DATA.npy NAME:k=v [repeats] [chunk]\n");
    return 2;
  }
  const int repeats = argc > 3 ? std::atoi(argv[3]) : 3;
  const std::int64_t chunk = argc > 4 ? std::atoll(argv[4]) : 64;
  auto src = data::open_volume(argv[1]);
  if (!src) {
    fmt::print(stderr, "{}\n", src.error().what());
    return 1;
  }
  const auto info = (*src)->info();
  if (info.ndim() != 3) {
    fmt::print(stderr, "3-D data only\n");
    return 1;
  }
  Budget budget("host", 8ull << 30);
  data::CacheOptions opts{0, 0, 16};
  opts.budget = &budget;
  std::vector<std::byte> all;
  {
    data::ChunkCache reader(opts);
    const auto id = reader.add_source(*src);
    std::int64_t n = 1;
    for (auto s : info.levels[0].shape)
      n *= s;
    all.resize(std::size_t(n) * data::dtype_size(info.dtype));
    std::vector<std::int64_t> start(3, 0);
    if (auto ok = data::read_region(reader, id, 0, start, info.levels[0].shape, all); !ok) {
      fmt::print(stderr, "{}\n", ok.error().what());
      return 1;
    }
  }
  auto mem = std::make_shared<MemSource>(info, std::move(all), chunk);
  pipeline::Manager manager(pipeline::builtin_registry(), budget);
  auto step = pipeline::parse_pipeline_arg(manager.registry(), argv[2]);
  if (!step) {
    fmt::print(stderr, "{}\n", step.error().what());
    return 2;
  }
  std::vector<double> seconds;
  for (int r = 0; r < repeats; ++r) {
    data::ChunkCache cache(opts);  // cold every time: the input is read, the output computed
    const auto in = cache.add_source(mem);
    auto d = pipeline::DerivedSource::create(
        manager, cache, in, (*step)["pipeline"].get<std::string>(), (*step)["params"]);
    if (!d) {
      fmt::print(stderr, "{}\n", d.error().what());
      return 1;
    }
    const auto id = cache.add_source(*d);
    std::vector<data::Index> indices;
    const auto grid = d->get()->info().levels[0].grid();
    for (std::int64_t z = 0; z < grid[0]; ++z)
      for (std::int64_t y = 0; y < grid[1]; ++y)
        for (std::int64_t x = 0; x < grid[2]; ++x)
          indices.push_back({z, y, x});
    const auto t0 = std::chrono::steady_clock::now();
    auto pins = data::get_chunks(cache, id, 0, indices);
    const auto t1 = std::chrono::steady_clock::now();
    if (!pins) {
      fmt::print(stderr, "{}\n", pins.error().what());
      return 1;
    }
    seconds.push_back(std::chrono::duration<double>(t1 - t0).count());
  }
  auto sorted = seconds;
  std::sort(sorted.begin(), sorted.end());
  fmt::print(
      "{{\"pipeline\": \"{}\", \"chunk\": {}, \"seconds\": [{:.4f}], \"median_s\": {:.4f}}}\n",
      argv[2], chunk, fmt::join(seconds, ", "), sorted[sorted.size() / 2]);
  return 0;
}
