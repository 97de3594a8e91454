// synthetic:cells — a procedural, deterministic, multiscale volume that looks like
// fluorescence microscopy of tissue: nuclei (channel 0) and cell membranes (channel 1) of
// a jittered Voronoi tessellation, inside a lobed tissue mask. Chunks are computed on
// demand, so the default 1 TiB (2 x 4096 x 8192 x 8192 uint16) costs nothing until read.
// This file is the VolumeSource and its options; synthetic_cells.cpp computes the chunks.
#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <thread>
#include <vector>

#include "core/cpu_slots.hpp"
#include "data/formats.hpp"
#include "data/synthetic_cells.hpp"

namespace vx::data {
namespace {

using SynthParams = synth::Params;

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
    std::int64_t start[3], count[3], cs[3];
    for (int d = 0; d < 3; ++d) {
      cs[d] = lv.chunks[std::size_t(d) + 1];
      start[d] = index[d + 1] * cs[d];
      count[d] = std::min(cs[d], lv.shape[std::size_t(d) + 1] - start[d]);
    }
    synth::generate_chunk(p_, level, channel, start, count, cs, info_.dtype, out);
    return ReadResult{false, 0};
  }

 private:
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

}  // namespace vx::data
