// libFuzzer target: the chunk decoders (blosc, zstd, gzip, zlib, crc32c, byte order,
// transpose) and the shard index decoder on arbitrary chunk bytes. The first input byte
// picks the codec chain; the rest is the stored chunk.
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "data/zarr_meta.hpp"

using namespace vx::data;

namespace {

std::vector<ArrayMeta> chains() {
  const char* metas[] = {
      R"({"zarr_format":2,"shape":[8,8],"chunks":[8,8],"dtype":"<u2","compressor":{"id":"blosc","cname":"lz4","shuffle":1}})",
      R"({"zarr_format":2,"shape":[8,8],"chunks":[8,8],"dtype":">u2","compressor":{"id":"zstd","level":1},"order":"F"})",
      R"({"zarr_format":2,"shape":[8,8],"chunks":[8,8],"dtype":"<f4","compressor":{"id":"gzip"}})",
      R"({"zarr_format":2,"shape":[8,8],"chunks":[8,8],"dtype":"|u1","compressor":{"id":"zlib"}})",
      R"({"zarr_format":2,"shape":[8,8],"chunks":[8,8],"dtype":"<u2","compressor":null})",
      R"({"zarr_format":3,"node_type":"array","shape":[8,8],"data_type":"uint16","fill_value":0,
          "chunk_grid":{"name":"regular","configuration":{"chunk_shape":[8,8]}},
          "codecs":[{"name":"transpose","configuration":{"order":[1,0]}},{"name":"bytes","configuration":{"endian":"big"}},
                    {"name":"blosc","configuration":{"cname":"zstd","shuffle":"bitshuffle"}},{"name":"crc32c"}]})",
      R"({"zarr_format":3,"node_type":"array","shape":[8,8],"data_type":"uint16","fill_value":0,
          "chunk_grid":{"name":"regular","configuration":{"chunk_shape":[8,8]}},
          "codecs":[{"name":"bytes","configuration":{"endian":"little"}},{"name":"gzip"},{"name":"zstd"}]})",
  };
  std::vector<ArrayMeta> out;
  for (const char* m : metas) {
    auto j = parse_json(m, "seed");
    auto a =
        (*j)["zarr_format"] == 2 ? parse_zarray_v2(*j, "seed") : parse_zarr_json_v3(*j, "seed");
    if (!a) __builtin_trap();  // the seeds themselves must parse
    out.push_back(std::move(*a));
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const auto metas = chains();
  if (size < 1) return 0;
  const auto stored = std::as_bytes(std::span(data + 1, size - 1));
  const auto& m = metas[data[0] % metas.size()];
  std::vector<std::byte> out(64 * dtype_size(m.dtype));
  (void)decode_chain(m.codecs, stored, out, m.chunks, dtype_size(m.dtype), "fuzz");
  // Shard index: 4 entries of (offset, nbytes) + crc32c.
  CodecChain index;
  index.array_to_bytes.kind = CodecSpec::Kind::kBytes;
  index.bytes_to_bytes.push_back({CodecSpec::Kind::kCrc32c, {}, false, nullptr, "crc32c"});
  std::vector<std::byte> entries(64);
  const std::int64_t shape[1] = {8};
  (void)decode_chain(index, stored, entries, shape, 8, "fuzz index");
  return 0;
}
