// synthetic:cells, the generator: one chunk of the procedural tissue volume, computed on
// demand (synthetic_source.cpp is the VolumeSource around it). Private to src/data.
#pragma once

#include <cstdint>
#include <span>

#include "data/data.hpp"

namespace vx::data::synth {

struct Params {
  std::int64_t shape[3] = {4096, 8192, 8192};  // z, y, x
  std::int64_t chunk = 64;
  int channels = 2;
  DType dtype = DType::kUInt16;
  double latency_ms = 0;
  std::uint32_t seed = 1;
  int levels = 0;  // 0: until the largest dimension fits one chunk
};

// Fills `out` (the chunk's cs[0] x cs[1] x cs[2] voxels of `dtype`) with the chunk of `level`
// and `channel` that starts at voxel `start` and holds `count` voxels of data on each axis (z,
// y, x); the rest is zero. Deterministic: depends only on its arguments.
void generate_chunk(const Params& p, int level, int channel, const std::int64_t start[3],
                    const std::int64_t count[3], const std::int64_t cs[3], DType dtype,
                    std::span<std::byte> out);

}  // namespace vx::data::synth
