// Conversion of any readable volume to a multiscale OME-Zarr (v0.4 on Zarr v2, or v0.5 on
// Zarr v3), streaming: level 0 is read chunk by chunk through a ChunkCache, each coarser
// level is a 2x mean of the level written before it, read back from disk. Peak memory is
// the cache budget plus a few chunks per worker thread, whatever the input size.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "core/error.hpp"
#include "core/resources.hpp"

namespace vx::data {

class ChunkCache;

enum class OutputCodec { kZstd, kLz4, kNone };

struct ConvertOptions {
  int zarr_version = 2;     // 2: OME-Zarr 0.4; 3: OME-Zarr 0.5
  std::int64_t chunk = 64;  // chunk edge along spatial axes (1 along c and t)
  OutputCodec codec = OutputCodec::kZstd;
  int levels = 0;  // 0: until every spatial axis fits in one chunk
  int shard = 0;   // Zarr v3: shards of shard^n chunks (spatial axes); 0: none
  std::uint64_t cache_bytes = 256ull << 20;
  unsigned io_threads = 0;  // 0: the cache's default
  bool progress = true;
  bool overwrite = false;    // replace an existing Zarr store at the output path
  Budget* budget = nullptr;  // the cache's budget (default: its own of cache_bytes)
  // Applied to the input before writing (voxcast convert --pipeline): given the cache and the
  // input's id, returns the id of the source to write (a derived source of the same cache).
  std::function<Result<std::uint32_t>(ChunkCache&, std::uint32_t input)> transform;
  // Split over processes (mpirun voxcast convert): this one writes part `part` of `parts`
  // contiguous runs of each level's chunks (or shards). `agree` is called by all with this
  // process's status after preparing the output and after each level (the next level reads
  // it), and returns the first error of any; part 0 writes the metadata.
  int part = 0, parts = 1;
  std::function<Status(const Status&)> agree;
};

struct ConvertStats {
  int levels = 0;
  std::uint64_t chunks_written = 0;  // files: chunks, or shards with --shard
  std::uint64_t chunks_empty = 0;    // all fill value: not written (readers see the fill value)
  std::uint64_t bytes_decoded = 0;   // uncompressed bytes of all levels
  std::uint64_t bytes_written = 0;   // compressed bytes on disk
  double seconds = 0;
};

Result<ConvertStats> convert_to_ome_zarr(std::string_view input, const std::string& output,
                                         const ConvertOptions& options);

}  // namespace vx::data
