// Chunk codecs (private to src/data): decoders for the Zarr v2/v3 compressors and filters,
// and the encoders the writer needs. Vendor headers (blosc, zstd, zlib) stay in codecs.cpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/error.hpp"

namespace vx::data {

using Bytes = std::vector<std::byte>;

// Each decoder either fills `out` exactly (returns its size) or fails with kCorrupt.
// `where` names the chunk for error messages.
Result<std::size_t> blosc_decode(std::span<const std::byte> in, std::span<std::byte> out,
                                 const std::string& where);
Result<std::size_t> zstd_decode(std::span<const std::byte> in, std::span<std::byte> out,
                                const std::string& where);
// gzip=true accepts gzip framing (RFC 1952), otherwise zlib (RFC 1950).
Result<std::size_t> zlib_decode(std::span<const std::byte> in, std::span<std::byte> out, bool gzip,
                                const std::string& where);

// Decoded size announced by the stream header when the format has one.
Result<std::size_t> blosc_decoded_size(std::span<const std::byte> in, const std::string& where);
// For decoders whose output size is not known in advance (chains of compressors, .nii.gz).
// Output beyond max_size is refused as corrupt, so a hostile header cannot exhaust memory.
Result<Bytes> zstd_decode_any(std::span<const std::byte> in, std::size_t max_size,
                              const std::string& where);
Result<Bytes> zlib_decode_any(std::span<const std::byte> in, bool gzip, std::size_t max_size,
                              const std::string& where);

enum class Shuffle { kNone = 0, kByte = 1, kBit = 2 };
Result<Bytes> blosc_encode(std::span<const std::byte> in, std::size_t typesize,
                           const std::string& cname, int clevel, Shuffle shuffle);
Result<Bytes> zstd_encode(std::span<const std::byte> in, int level);
Result<Bytes> gzip_encode(std::span<const std::byte> in, int level);

// CRC32C (Castagnoli), as the Zarr v3 crc32c codec uses it. SSE4.2 when the CPU has it.
std::uint32_t crc32c(std::span<const std::byte> data, std::uint32_t crc = 0);

// Reverses the byte order of every `itemsize`-byte element in place.
void byteswap_inplace(std::span<std::byte> data, std::size_t itemsize);

// dst = src.transpose(perm) for a C-order array of `shape` (dst shape[i] = shape[perm[i]]).
void transpose(std::span<const std::byte> src, std::span<std::byte> dst,
               std::span<const std::int64_t> shape, std::span<const int> perm,
               std::size_t itemsize);

}  // namespace vx::data
