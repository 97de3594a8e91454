// Zarr array metadata (v2 .zarray and v3 zarr.json) normalized to one codec-chain model,
// and the chain decoder (private to src/data).
#pragma once

#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "data/codecs.hpp"
#include "data/data.hpp"
#include "data/json_util.hpp"

namespace vx::data {

struct ShardSpec;

struct CodecSpec {
  enum class Kind { kTranspose, kBytes, kSharding, kBlosc, kZstd, kGzip, kZlib, kCrc32c };
  Kind kind = Kind::kBytes;
  std::vector<int> order;   // transpose: encoded = decoded.transpose(order)
  bool big_endian = false;  // bytes
  std::shared_ptr<const ShardSpec> shard;
  std::string desc;                  // "blosc(lz4,shuffle)"
  std::string cname;                 // blosc
  Shuffle shuffle = Shuffle::kNone;  // blosc
  int level = 5;                     // compression level (blosc clevel, zstd, gzip)
};

// The Zarr v3 codec pipeline: array->array, one array->bytes, bytes->bytes.
struct CodecChain {
  std::vector<CodecSpec> array_to_array;
  CodecSpec array_to_bytes;
  std::vector<CodecSpec> bytes_to_bytes;
  std::string describe() const;
};

struct ShardSpec {
  std::vector<std::int64_t> inner_chunks;
  CodecChain inner;
  CodecChain index;  // bytes (+ crc32c)
  bool index_at_end = true;
};

struct ArrayMeta {
  int zarr_format = 2;
  std::vector<std::int64_t> shape;
  std::vector<std::int64_t> chunks;  // stored chunk (shard) shape
  DType dtype = DType::kUInt8;
  double fill_value = 0;
  CodecChain codecs;
  bool default_key_encoding = false;  // v3 "default": "c/..." prefix; else v2 style
  char separator = '.';
  std::vector<std::string> dimension_names;  // v3, may be empty
  json attributes;                           // v3 attributes (v2 keeps them in .zattrs)

  const ShardSpec* sharding() const { return codecs.array_to_bytes.shard.get(); }
  // The unit of reads: inner chunk when sharded.
  std::vector<std::int64_t> read_chunks() const {
    return sharding() ? sharding()->inner_chunks : chunks;
  }
  std::string chunk_key(std::span<const std::int64_t> index) const;
};

// Checks the metadata's "zarr_format" field equals `expected`.
Status require_zarr_format(const json& j, const std::string& file, int expected);
Result<ArrayMeta> parse_zarray_v2(const json& j, const std::string& file);
Result<ArrayMeta> parse_zarr_json_v3(const json& j, const std::string& file);

// Decodes one stored chunk through every codec of `chain` into `out` (C order, native byte
// order, `shape` x itemsize bytes). Sharding is handled by the caller. `where` names the
// chunk in errors.
Status decode_chain(const CodecChain& chain, std::span<const std::byte> stored,
                    std::span<std::byte> out, std::span<const std::int64_t> shape,
                    std::size_t itemsize, const std::string& where);

// Encodes a chunk for the writer (no sharding, no transpose): inverse of decode_chain.
Result<Bytes> encode_chain(const CodecChain& chain, std::span<const std::byte> data,
                           std::size_t itemsize);

}  // namespace vx::data
