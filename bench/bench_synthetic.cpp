// Throughput of the synthetic:cells generator (issue 11: a synthetic chunk must cost no more
// than decoding a stored one, >= 1 GB/s of output per core) against the generator it
// replaced, kept below verbatim (namespace legacy) so that both run in the same process on
// the same chunks. Prints MB/s of output per level, one thread and all cores, and the ratio.
//   voxcast_bench_synthetic [--chunks N] [--old-chunks M] [--levels L] [--threads T]
//                           [--spec SPEC] [--stats]
// --stats prints tissue statistics of both generators instead (look comparison).
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstring>
#include <ctime>
#include <string>
#include <thread>
#include <vector>

#include "core/cpu_slots.hpp"
#include "data/formats.hpp"

// The generator before issue 11 (src/data/synthetic_source.cpp at 104c1ce), unchanged.
namespace vx::data::legacy {

namespace {

struct SynthParams {
  std::int64_t shape[3] = {4096, 8192, 8192};  // z, y, x
  std::int64_t chunk = 64;
  int channels = 2;
  DType dtype = DType::kUInt16;
  double latency_ms = 0;
  std::uint32_t seed = 1;
  int levels = 0;  // 0: until the largest dimension fits one chunk
};

constexpr double kCell = 24.0;  // cell spacing in level-0 voxels

inline std::uint32_t hash3(std::int64_t x, std::int64_t y, std::int64_t z, std::uint32_t seed) {
  std::uint64_t h = std::uint64_t(x) * 0x9E3779B97F4A7C15ull ^
                    std::uint64_t(y) * 0xC2B2AE3D27D4EB4Full ^
                    std::uint64_t(z) * 0x165667B19E3779F9ull ^ (std::uint64_t(seed) << 32);
  h ^= h >> 31;
  h *= 0xD6E8FEB86659FD93ull;
  h ^= h >> 32;
  return std::uint32_t(h);
}
inline double unit(std::uint32_t h) {
  return double(h) * (1.0 / 4294967296.0);
}

// Smooth value noise for low-frequency structure.
double value_noise(double x, double y, double z, std::uint32_t seed) {
  const double fx = std::floor(x), fy = std::floor(y), fz = std::floor(z);
  const auto ix = std::int64_t(fx), iy = std::int64_t(fy), iz = std::int64_t(fz);
  auto s = [](double t) { return t * t * (3 - 2 * t); };
  const double tx = s(x - fx), ty = s(y - fy), tz = s(z - fz);
  double acc = 0;
  for (int dz = 0; dz < 2; ++dz)
    for (int dy = 0; dy < 2; ++dy)
      for (int dx = 0; dx < 2; ++dx) {
        const double w = (dx ? tx : 1 - tx) * (dy ? ty : 1 - ty) * (dz ? tz : 1 - tz);
        acc += w * unit(hash3(ix + dx, iy + dy, iz + dz, seed));
      }
  return acc;
}

class SyntheticSource final : public VolumeSource {
 public:
  SyntheticSource(VolumeInfo info, SynthParams p) : info_(std::move(info)), p_(p) {}
  const VolumeInfo& info() const override { return info_; }
  // With a simulated latency it behaves like network storage, and wants as many reads.
  unsigned io_concurrency() const override {
    const unsigned local = io_concurrency_for_path("");
    return p_.latency_ms > 0 ? 16 * local : local;
  }

  Result<ReadResult> read_chunk(int level, const Index& index,
                                std::span<std::byte> out) const override {
    if (level < 0 || level >= int(info_.levels.size()))
      return fail(ErrorCode::kInvalidArgument, "{}: no level {}", info_.location, level);
    const auto& lv = info_.levels[std::size_t(level)];
    for (int d = 0; d < 4; ++d)
      if (index[d] < 0 || index[d] >= lv.grid()[std::size_t(d)])
        return fail(ErrorCode::kInvalidArgument, "{}: chunk index out of range on axis {}",
                    info_.location, info_.axes[std::size_t(d)].name);
    if (p_.latency_ms > 0)  // behaves like network storage: reads overlap, each waits
      std::this_thread::sleep_for(std::chrono::microseconds(std::int64_t(p_.latency_ms * 1000)));
    const auto slot = cpu_.acquire();  // the latency overlaps; the computing does not oversubscribe
    const int channel = int(index[0]);
    const double s = std::ldexp(1.0, level);  // level-0 voxels per voxel
    std::int64_t start[3], count[3], cs[3];
    for (int d = 0; d < 3; ++d) {
      cs[d] = lv.chunks[std::size_t(d) + 1];
      start[d] = index[d + 1] * cs[d];
      count[d] = std::min(cs[d], lv.shape[std::size_t(d) + 1] - start[d]);
    }
    // Feature points of the cells around the chunk, computed once per chunk.
    const double lo[3] = {start[0] * s, start[1] * s, start[2] * s};
    const double hi[3] = {(start[0] + count[0]) * s, (start[1] + count[1]) * s,
                          (start[2] + count[2]) * s};
    std::int64_t c0[3], cn[3];
    for (int d = 0; d < 3; ++d) {
      c0[d] = std::int64_t(std::floor(lo[d] / kCell)) - 1;
      cn[d] = std::int64_t(std::floor(hi[d] / kCell)) + 2 - c0[d];
    }
    const double blend = std::clamp((s - kCell / 4) / (kCell / 2), 0.0, 1.0);
    struct Cell {
      double p[3];
      double r, b;
    };
    std::vector<Cell> cells;
    if (blend < 1.0) {
      cells.resize(std::size_t(cn[0] * cn[1] * cn[2]));
      for (std::int64_t k = 0; k < cn[0]; ++k)
        for (std::int64_t j = 0; j < cn[1]; ++j)
          for (std::int64_t i = 0; i < cn[2]; ++i) {
            const auto gz = c0[0] + k, gy = c0[1] + j, gx = c0[2] + i;
            const auto h = hash3(gx, gy, gz, p_.seed + std::uint32_t(channel / 2) * 7919u);
            Cell& c = cells[std::size_t((k * cn[1] + j) * cn[2] + i)];
            c.p[0] = (double(gz) + 0.15 + 0.7 * unit(h)) * kCell;
            c.p[1] = (double(gy) + 0.15 + 0.7 * unit(h * 2654435761u + 1)) * kCell;
            c.p[2] = (double(gx) + 0.15 + 0.7 * unit(h * 40503u + 7)) * kCell;
            c.r = 4.0 + 3.5 * unit(h ^ 0xA5A5A5A5u);
            c.b = unit(h ^ 0x5bd1e995u) < 0.12 ? 0.0 : 0.45 + 0.55 * unit(h * 69069u + 3);
          }
    }
    const bool membrane = channel % 2 == 1;
    const double edge = std::max(1.0, 0.6 * s);
    const double thick = std::max(0.8, 0.5 * s);
    const double mem_gain = std::min(1.0, 1.6 / thick);
    const double mean_level = membrane ? 0.22 : 0.12;
    const double peak = membrane ? 2200.0 : 3400.0;
    const double noise_amp = 60.0 / std::sqrt(s * s * s);
    const double full[3] = {double(p_.shape[0]), double(p_.shape[1]), double(p_.shape[2])};

    const std::size_t plane = std::size_t(cs[1] * cs[2]);
    std::vector<float> row(static_cast<std::size_t>(count[2]));
    for (std::int64_t z = 0; z < cs[0]; ++z) {
      for (std::int64_t y = 0; y < cs[1]; ++y) {
        const std::size_t off = std::size_t(z) * plane + std::size_t(y * cs[2]);
        if (z >= count[0] || y >= count[1]) {
          fill_with(out.subspan(off * dtype_size(info_.dtype),
                                std::size_t(cs[2]) * dtype_size(info_.dtype)),
                    info_.dtype, 0);
          continue;
        }
        const double pz = (double(start[0] + z) + 0.5) * s, py = (double(start[1] + y) + 0.5) * s;
        for (std::int64_t x = 0; x < count[2]; ++x) {
          const double px = (double(start[2] + x) + 0.5) * s;
          // Tissue: a lobed ellipsoid with slowly varying brightness.
          const double u = (pz / full[0] - 0.5) / 0.46, v = (py / full[1] - 0.5) / 0.44,
                       w = (px / full[2] - 0.5) / 0.47;
          const double lobes =
              0.22 * value_noise(pz / full[0] * 4, py / full[1] * 4, px / full[2] * 4, p_.seed) +
              0.08 *
                  value_noise(pz / full[0] * 11, py / full[1] * 11, px / full[2] * 11, p_.seed + 1);
          const double radial = std::sqrt(u * u + v * v + w * w) + lobes - 0.15;
          const double mask = std::clamp((1.0 - radial) * 12.0, 0.0, 1.0);
          double signal = 0;
          if (mask > 0) {
            double detail = 0;
            if (blend < 1.0) {
              const auto ci = std::int64_t(std::floor(pz / kCell)) - c0[0];
              const auto cj = std::int64_t(std::floor(py / kCell)) - c0[1];
              const auto ck = std::int64_t(std::floor(px / kCell)) - c0[2];
              double d1 = 1e30, d2 = 1e30;
              const Cell* nearest = nullptr;
              for (std::int64_t a = ci - 1; a <= ci + 1; ++a)
                for (std::int64_t b = cj - 1; b <= cj + 1; ++b)
                  for (std::int64_t c = ck - 1; c <= ck + 1; ++c) {
                    const Cell& cell = cells[std::size_t((a * cn[1] + b) * cn[2] + c)];
                    const double dz = cell.p[0] - pz, dy = cell.p[1] - py, dx = cell.p[2] - px;
                    const double dd = dz * dz + dy * dy + dx * dx;
                    if (dd < d1) {
                      d2 = d1;
                      d1 = dd;
                      nearest = &cell;
                    } else if (dd < d2) {
                      d2 = dd;
                    }
                  }
              d1 = std::sqrt(d1);
              d2 = std::sqrt(d2);
              if (membrane) {
                const double g = (d2 - d1) / thick;
                detail = mem_gain * std::exp(-g * g);
              } else {
                detail = nearest->b * std::clamp((nearest->r - d1) / edge + 0.5, 0.0, 1.0);
                // Chromatin texture.
                detail *= 0.8 + 0.2 * unit(hash3(std::int64_t(pz / 2), std::int64_t(py / 2),
                                                 std::int64_t(px / 2), p_.seed + 11));
              }
            }
            const double region =
                0.6 + 0.4 * value_noise(pz / 300, py / 300, px / 300, p_.seed + 5);
            signal = mask * region * ((1 - blend) * detail + blend * mean_level);
          }
          const double noise =
              noise_amp *
              (unit(hash3(start[2] + x, start[1] + y, start[0] + z,
                          p_.seed * 31u + std::uint32_t(level) * 101u + std::uint32_t(channel))) -
               0.5);
          row[std::size_t(x)] = float(100.0 + 40.0 * mask + peak * signal + noise);
        }
        store_row(row, out, off, std::size_t(count[2]), std::size_t(cs[2]));
      }
    }
    return ReadResult{false, 0};
  }

 private:
  void store_row(const std::vector<float>& row, std::span<std::byte> out, std::size_t off,
                 std::size_t n, std::size_t width) const {
    auto put = [&](auto* dst, double lo, double hi) {
      for (std::size_t i = 0; i < n; ++i)
        dst[off + i] = static_cast<std::remove_reference_t<decltype(dst[0])>>(
            std::clamp(double(row[i]) + 0.5, lo, hi));
      for (std::size_t i = n; i < width; ++i)
        dst[off + i] = 0;
    };
    switch (info_.dtype) {
      case DType::kUInt8: {
        auto* d = reinterpret_cast<std::uint8_t*>(out.data());
        for (std::size_t i = 0; i < n; ++i)
          d[off + i] = std::uint8_t(std::clamp(row[i] / 16.0f, 0.0f, 255.0f));
        for (std::size_t i = n; i < width; ++i)
          d[off + i] = 0;
        break;
      }
      case DType::kUInt16:
        put(reinterpret_cast<std::uint16_t*>(out.data()), 0, 65535);
        break;
      case DType::kFloat32: {
        auto* d = reinterpret_cast<float*>(out.data());
        for (std::size_t i = 0; i < n; ++i)
          d[off + i] = row[i];
        for (std::size_t i = n; i < width; ++i)
          d[off + i] = 0;
        break;
      }
      default:
        break;
    }
  }

  VolumeInfo info_;
  SynthParams p_;
  mutable CpuSlots cpu_;
};

Result<std::int64_t> parse_int(std::string_view v, std::string_view key, std::string_view spec) {
  std::int64_t out = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  if (ec != std::errc() || p != v.data() + v.size())
    return fail(ErrorCode::kInvalidArgument, "{}: option '{}': '{}' is not an integer", spec, key,
                v);
  return out;
}

}  // namespace

Result<SourcePtr> open_synthetic(std::string_view spec) {
  const std::string_view body = spec.substr(std::string_view("synthetic:").size());
  const auto q = body.find('?');
  const std::string name(body.substr(0, q));
  if (name != "cells" && !name.empty())
    return fail(ErrorCode::kNotFound, "{}: unknown synthetic dataset '{}' (available: cells)", spec,
                name);
  SynthParams p;
  std::string_view opts = q == std::string_view::npos ? std::string_view{} : body.substr(q + 1);
  while (!opts.empty()) {
    const auto amp = opts.find('&');
    const auto kv = opts.substr(0, amp);
    opts = amp == std::string_view::npos ? std::string_view{} : opts.substr(amp + 1);
    if (kv.empty()) continue;
    const auto eq = kv.find('=');
    if (eq == std::string_view::npos)
      return fail(ErrorCode::kInvalidArgument, "{}: option '{}' has no value (k=v)", spec, kv);
    const auto key = kv.substr(0, eq), val = kv.substr(eq + 1);
    if (key == "shape") {
      std::vector<std::int64_t> dims;
      std::string_view rest = val;
      while (true) {
        const auto x = rest.find('x');
        VX_ASSIGN(auto d, parse_int(rest.substr(0, x), key, spec));
        dims.push_back(d);
        if (x == std::string_view::npos) break;
        rest = rest.substr(x + 1);
      }
      if (dims.size() != 3 || std::any_of(dims.begin(), dims.end(), [](auto d) {
            return d < 1 || d > (std::int64_t(1) << 40);
          }))
        return fail(ErrorCode::kInvalidArgument,
                    "{}: option 'shape': '{}' must be ZxYxX with positive sizes", spec, val);
      std::copy(dims.begin(), dims.end(), p.shape);
    } else if (key == "chunk") {
      VX_ASSIGN(p.chunk, parse_int(val, key, spec));
      if (p.chunk < 8 || p.chunk > 1024)
        return fail(ErrorCode::kInvalidArgument, "{}: option 'chunk': {} is outside 8..1024", spec,
                    p.chunk);
    } else if (key == "channels") {
      VX_ASSIGN(auto c, parse_int(val, key, spec));
      if (c < 1 || c > 16)
        return fail(ErrorCode::kInvalidArgument, "{}: option 'channels': {} is outside 1..16", spec,
                    c);
      p.channels = int(c);
    } else if (key == "levels") {
      VX_ASSIGN(auto l, parse_int(val, key, spec));
      if (l < 1 || l > 30)
        return fail(ErrorCode::kInvalidArgument, "{}: option 'levels': {} is outside 1..30", spec,
                    l);
      p.levels = int(l);
    } else if (key == "seed") {
      VX_ASSIGN(auto sd, parse_int(val, key, spec));
      p.seed = std::uint32_t(sd);
    } else if (key == "latency_ms") {
      double ms = 0;
      auto [ptr, ec] = std::from_chars(val.data(), val.data() + val.size(), ms);
      if (ec != std::errc() || ptr != val.data() + val.size() || ms < 0 || ms > 10000)
        return fail(ErrorCode::kInvalidArgument,
                    "{}: option 'latency_ms': '{}' is not a number in 0..10000", spec, val);
      p.latency_ms = ms;
    } else if (key == "dtype") {
      if (val == "uint8")
        p.dtype = DType::kUInt8;
      else if (val == "uint16")
        p.dtype = DType::kUInt16;
      else if (val == "float32")
        p.dtype = DType::kFloat32;
      else
        return fail(ErrorCode::kInvalidArgument,
                    "{}: option 'dtype': '{}' is not uint8, uint16 or float32", spec, val);
    } else {
      return fail(
          ErrorCode::kInvalidArgument,
          "{}: unknown option '{}' (shape, chunk, channels, levels, dtype, latency_ms, seed)", spec,
          key);
    }
  }
  VolumeInfo info;
  info.location = std::string(spec);
  info.format = "synthetic";
  info.dtype = p.dtype;
  info.axes = {{"c", AxisType::kChannel, ""},
               {"z", AxisType::kSpace, "micrometer"},
               {"y", AxisType::kSpace, "micrometer"},
               {"x", AxisType::kSpace, "micrometer"}};
  int max_levels = 1;
  while (std::max({p.shape[0], p.shape[1], p.shape[2]}) > (p.chunk << (max_levels - 1)) &&
         max_levels < 30)
    ++max_levels;
  const int levels = p.levels ? std::min(p.levels, max_levels + 4) : max_levels;
  for (int l = 0; l < levels; ++l) {
    Level lv;
    lv.path = std::to_string(l);
    lv.shape = {p.channels};
    lv.chunks = {1};
    lv.scale = {1};
    lv.translation = {0};
    const double f = std::ldexp(1.0, l);
    for (int d = 0; d < 3; ++d) {
      const auto n = std::max<std::int64_t>(1, (p.shape[d] + (std::int64_t(1) << l) - 1) >> l);
      lv.shape.push_back(n);
      lv.chunks.push_back(std::min(p.chunk, n));
      lv.scale.push_back(f);
      lv.translation.push_back(0.5 * (f - 1.0));
    }
    lv.codec = "procedural";
    info.levels.push_back(std::move(lv));
  }
  static const std::array<std::uint8_t, 3> colors[] = {
      {0, 255, 255}, {255, 0, 255}, {255, 255, 0}, {0, 255, 0}};
  for (int c = 0; c < p.channels; ++c) {
    Channel ch;
    ch.name = c % 2 == 0 ? (c == 0 ? "nuclei" : fmt::format("nuclei {}", c / 2))
                         : (c == 1 ? "membranes" : fmt::format("membranes {}", c / 2));
    ch.color = colors[c % 4];
    const double hi = p.dtype == DType::kUInt8 ? 220 : p.dtype == DType::kFloat32 ? 3500 : 3500;
    ch.window = Window{p.dtype == DType::kUInt8 ? 6.0 : 100.0, c % 2 ? hi * 0.7 : hi, 0,
                       p.dtype == DType::kUInt8 ? 255.0 : 65535.0};
    info.channels.push_back(std::move(ch));
  }
  return SourcePtr(std::make_shared<SyntheticSource>(std::move(info), p));
}

}  // namespace vx::data::legacy

using namespace vx::data;
using Clock = std::chrono::steady_clock;

namespace {

struct Job {
  int level;
  Index index;
};

// Chunks of the central part of a level (mostly tissue), both channels, spread by a fixed
// sequence so that every run reads the same ones.
std::vector<Job> pick_chunks(const VolumeInfo& info, int level, int n) {
  const auto& lv = info.levels[std::size_t(level)];
  const auto grid = lv.grid();
  std::vector<Job> jobs;
  std::uint64_t st = 0x9E3779B97F4A7C15ull * std::uint64_t(level + 1);
  for (int i = 0; i < n; ++i) {
    Index idx{};
    idx[0] = i % grid[0];
    for (int d = 1; d < 4; ++d) {
      st = st * 6364136223846793005ull + 1442695040888963407ull;
      const auto g = grid[std::size_t(d)];
      const auto lo = g / 4, span = std::max<std::int64_t>(1, g - 2 * lo);
      idx[d] = lo + std::int64_t((st >> 33) % std::uint64_t(span));
    }
    jobs.push_back({level, idx});
  }
  return jobs;
}

// Seconds to read all jobs with `threads` threads sharing them: wall-clock, or with one
// thread its CPU time (the machine may be shared; a core's rate is what issue 11 asks).
double run(const VolumeSource& src, const std::vector<Job>& jobs, unsigned threads) {
  const auto cpu = std::clock();
  std::atomic<std::size_t> next{0};
  std::atomic<bool> failed{false};
  const auto bytes = src.info().chunk_bytes(jobs.front().level);
  const auto t = Clock::now();
  std::vector<std::thread> pool;
  for (unsigned k = 0; k < threads; ++k)
    pool.emplace_back([&] {
      std::vector<std::byte> buf(bytes);
      for (std::size_t i; (i = next++) < jobs.size();)
        if (!src.read_chunk(jobs[i].level, jobs[i].index, buf)) failed = true;
    });
  for (auto& th : pool)
    th.join();
  if (failed) {
    fmt::print(stderr, "a read failed\n");
    std::exit(1);
  }
  if (threads == 1) return double(std::clock() - cpu) / CLOCKS_PER_SEC;
  return std::chrono::duration<double>(Clock::now() - t).count();
}

void stats(const VolumeSource& src, const char* name, int level) {
  for (int c = 0; c < 2; ++c) {
    auto jobs = pick_chunks(src.info(), level, 8);
    std::vector<std::byte> buf(src.info().chunk_bytes(level));
    std::vector<std::uint16_t> all;
    for (auto& j : jobs) {
      j.index[0] = c;
      if (!src.read_chunk(j.level, j.index, buf)) std::exit(1);
      const auto* v = reinterpret_cast<const std::uint16_t*>(buf.data());
      all.insert(all.end(), v, v + buf.size() / 2);
    }
    std::sort(all.begin(), all.end());
    double mean = 0;
    std::size_t bright = 0;
    for (auto v : all) {
      mean += v;
      bright += v > 1000;
    }
    auto pct = [&](double p) { return all[std::size_t(p * double(all.size() - 1))]; };
    fmt::print(
        "{:7} level {} ch {}: mean {:7.1f}  p1 {:5} p50 {:5} p90 {:5} p99 {:5} max {:5}  >1000: "
        "{:5.1f}%\n",
        name, level, c, mean / double(all.size()), pct(0.01), pct(0.5), pct(0.9), pct(0.99),
        all.back(), 100.0 * double(bright) / double(all.size()));
  }
}

}  // namespace

int main(int argc, char** argv) {
  int chunks = 64, old_chunks = 8, levels = 5;
  unsigned threads = std::max(1u, std::thread::hardware_concurrency());
  std::string spec = "synthetic:cells";
  bool want_stats = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&] {
      if (i + 1 >= argc) {
        fmt::print(stderr, "{} needs a value\n", a);
        std::exit(2);
      }
      return std::string(argv[++i]);
    };
    if (a == "--chunks")
      chunks = std::stoi(next());
    else if (a == "--old-chunks")
      old_chunks = std::stoi(next());
    else if (a == "--levels")
      levels = std::stoi(next());
    else if (a == "--threads")
      threads = unsigned(std::stoi(next()));
    else if (a == "--spec")
      spec = next();
    else if (a == "--stats")
      want_stats = true;
    else {
      fmt::print(stderr,
                 "usage: voxcast_bench_synthetic [--chunks N] [--old-chunks M] "
                 "[--levels L] [--threads T] [--spec SPEC] [--stats]\n");
      return 2;
    }
  }
  auto now = open_synthetic(spec);
  auto old = legacy::open_synthetic(spec);
  if (!now || !old) {
    fmt::print(stderr, "{}\n", (!now ? now : old).error().what());
    return 1;
  }
  const auto& info = (*now)->info();
  levels = std::min(levels, int(info.levels.size()));
  if (want_stats) {
    for (int l = 0; l < levels; ++l) {
      stats(**old, "old", l);
      stats(**now, "new", l);
    }
    return 0;
  }
  fmt::print("{}: chunk {} bytes at level 0, {} threads for all-core\n", spec, info.chunk_bytes(0),
             threads);
  fmt::print("1T: one thread, MB/s per CPU-second; {}T: wall-clock\n", threads);
  fmt::print("level | new 1T MB/s | old 1T MB/s | ratio | new {}T MB/s | old {}T MB/s | ratio\n",
             threads, threads);
  for (int l = 0; l < levels; ++l) {
    const auto jobs = pick_chunks(info, l, chunks);
    const auto old_jobs = pick_chunks(info, l, old_chunks);
    const double mb = double(info.chunk_bytes(l)) / 1e6;
    run(**now, std::vector<Job>(jobs.begin(), jobs.begin() + std::min<std::size_t>(4, jobs.size())),
        1);  // warm-up
    const double n1 = mb * double(jobs.size()) / run(**now, jobs, 1);
    const double o1 = mb * double(old_jobs.size()) / run(**old, old_jobs, 1);
    const double nt = mb * double(jobs.size()) / run(**now, jobs, threads);
    const double ot = mb * double(old_jobs.size()) / run(**old, old_jobs, threads);
    fmt::print("{:5} | {:11.0f} | {:11.1f} | {:5.1f} | {:11.0f} | {:11.1f} | {:5.1f}\n", l, n1, o1,
               n1 / o1, nt, ot, nt / ot);
  }
  return 0;
}
