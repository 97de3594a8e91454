#include "data/codecs.hpp"

#include <blosc.h>
#include <nmmintrin.h>
#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <array>
#include <cstring>

namespace vx::data {
namespace {

const unsigned char* u8(std::span<const std::byte> s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

}  // namespace

Result<std::size_t> blosc_decoded_size(std::span<const std::byte> in, const std::string& where) {
  if (in.size() < BLOSC_MIN_HEADER_LENGTH)
    return fail(ErrorCode::kCorrupt, "{}: blosc stream of {} bytes is shorter than its header",
                where, in.size());
  size_t nbytes = 0, cbytes = 0, blocksize = 0;
  blosc_cbuffer_sizes(in.data(), &nbytes, &cbytes, &blocksize);
  if (cbytes != in.size())
    return fail(ErrorCode::kCorrupt,
                "{}: blosc header says {} compressed bytes but the chunk has {} (truncated?)",
                where, cbytes, in.size());
  return nbytes;
}

Result<std::size_t> blosc_decode(std::span<const std::byte> in, std::span<std::byte> out,
                                 const std::string& where) {
  VX_ASSIGN(auto nbytes, blosc_decoded_size(in, where));
  if (nbytes != out.size())
    return fail(ErrorCode::kCorrupt, "{}: blosc stream decodes to {} bytes, expected {}", where,
                nbytes, out.size());
  // blosc_decompress_ctx is thread-safe (no global state); one thread per call, the caller
  // already decodes many chunks in parallel.
  const int n = blosc_decompress_ctx(in.data(), out.data(), out.size(), 1);
  if (n < 0 || std::size_t(n) != out.size())
    return fail(ErrorCode::kCorrupt, "{}: blosc decompression failed (code {})", where, n);
  return out.size();
}

Result<std::size_t> zstd_decode(std::span<const std::byte> in, std::span<std::byte> out,
                                const std::string& where) {
  // One decompression context per thread, reused: ZSTD_decompress would build one per call.
  struct DCtx {
    ZSTD_DCtx* ctx = ZSTD_createDCtx();
    ~DCtx() { ZSTD_freeDCtx(ctx); }
  };
  thread_local DCtx dctx;
  const auto size = ZSTD_decompressDCtx(dctx.ctx, out.data(), out.size(), in.data(), in.size());
  if (ZSTD_isError(size))
    return fail(ErrorCode::kCorrupt, "{}: zstd: {}", where, ZSTD_getErrorName(size));
  if (size != out.size())
    return fail(ErrorCode::kCorrupt, "{}: zstd stream decodes to {} bytes, expected {}", where,
                size, out.size());
  return size;
}

Result<Bytes> zstd_decode_any(std::span<const std::byte> in, std::size_t max_size,
                              const std::string& where) {
  const auto known = ZSTD_getFrameContentSize(in.data(), in.size());
  if (known == ZSTD_CONTENTSIZE_ERROR)
    return fail(ErrorCode::kCorrupt, "{}: not a zstd frame", where);
  if (known != ZSTD_CONTENTSIZE_UNKNOWN) {
    if (known > max_size)
      return fail(ErrorCode::kCorrupt, "{}: zstd frame claims {} bytes, more than the {} expected",
                  where, known, max_size);
    Bytes out(known);
    VX_TRY(zstd_decode(in, out, where));
    return out;
  }
  // Streaming decode for frames written without a content size.
  std::unique_ptr<ZSTD_DStream, decltype(&ZSTD_freeDStream)> ds(ZSTD_createDStream(),
                                                                ZSTD_freeDStream);
  Bytes out;
  ZSTD_inBuffer input{in.data(), in.size(), 0};
  std::array<std::byte, 1 << 16> block{};
  for (;;) {
    ZSTD_outBuffer output{block.data(), block.size(), 0};
    const auto rc = ZSTD_decompressStream(ds.get(), &output, &input);
    if (ZSTD_isError(rc))
      return fail(ErrorCode::kCorrupt, "{}: zstd: {}", where, ZSTD_getErrorName(rc));
    out.insert(out.end(), block.begin(), block.begin() + output.pos);
    if (out.size() > max_size)
      return fail(ErrorCode::kCorrupt, "{}: zstd output exceeds the {} bytes expected", where,
                  max_size);
    if (rc == 0) break;
    if (input.pos == input.size && output.pos == 0)
      return fail(ErrorCode::kCorrupt, "{}: zstd stream is truncated", where);
  }
  return out;
}

namespace {

// Runs inflate over `in`, calling sink(bytes) for each produced block.
template <class Sink>
Status inflate_all(std::span<const std::byte> in, bool gzip, const std::string& where,
                   Sink&& sink) {
  z_stream zs{};
  // 15 + 16: gzip only; 15: zlib only.
  if (inflateInit2(&zs, gzip ? 15 + 16 : 15) != Z_OK)
    return fail(ErrorCode::kOutOfMemory, "{}: zlib init failed", where);
  struct End {
    z_stream* z;
    ~End() { inflateEnd(z); }
  } end{&zs};
  zs.next_in = const_cast<Bytef*>(u8(in));
  zs.avail_in = static_cast<uInt>(in.size());
  std::array<unsigned char, 1 << 16> block{};
  for (;;) {
    zs.next_out = block.data();
    zs.avail_out = block.size();
    const int rc = inflate(&zs, Z_NO_FLUSH);
    if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR)
      return fail(ErrorCode::kCorrupt, "{}: {} stream is corrupt ({})", where,
                  gzip ? "gzip" : "zlib", zs.msg ? zs.msg : "inflate error");
    const std::size_t produced = block.size() - zs.avail_out;
    VX_TRY(sink(
        std::span<const std::byte>(reinterpret_cast<const std::byte*>(block.data()), produced)));
    if (rc == Z_STREAM_END) return {};
    if (rc == Z_BUF_ERROR && produced == 0)
      return fail(ErrorCode::kCorrupt, "{}: {} stream is truncated", where, gzip ? "gzip" : "zlib");
  }
}

}  // namespace

Result<std::size_t> zlib_decode(std::span<const std::byte> in, std::span<std::byte> out, bool gzip,
                                const std::string& where) {
  std::size_t pos = 0;
  VX_TRY(inflate_all(in, gzip, where, [&](std::span<const std::byte> b) -> Status {
    if (pos + b.size() > out.size())
      return fail(ErrorCode::kCorrupt, "{}: {} stream decodes to more than the expected {} bytes",
                  where, gzip ? "gzip" : "zlib", out.size());
    std::memcpy(out.data() + pos, b.data(), b.size());
    pos += b.size();
    return {};
  }));
  if (pos != out.size())
    return fail(ErrorCode::kCorrupt, "{}: {} stream decodes to {} bytes, expected {}", where,
                gzip ? "gzip" : "zlib", pos, out.size());
  return pos;
}

Result<Bytes> zlib_decode_any(std::span<const std::byte> in, bool gzip, std::size_t max_size,
                              const std::string& where) {
  Bytes out;
  VX_TRY(inflate_all(in, gzip, where, [&](std::span<const std::byte> b) -> Status {
    out.insert(out.end(), b.begin(), b.end());
    if (out.size() > max_size)
      return fail(ErrorCode::kCorrupt, "{}: output exceeds the {} bytes expected", where, max_size);
    return {};
  }));
  return out;
}

Result<Bytes> blosc_encode(std::span<const std::byte> in, std::size_t typesize,
                           const std::string& cname, int clevel, Shuffle shuffle) {
  Bytes out(in.size() + BLOSC_MAX_OVERHEAD);
  const int n = blosc_compress_ctx(clevel, static_cast<int>(shuffle), typesize, in.size(),
                                   in.data(), out.data(), out.size(), cname.c_str(), 0, 1);
  if (n <= 0) return fail(ErrorCode::kInternal, "blosc compression with '{}' failed", cname);
  out.resize(std::size_t(n));
  return out;
}

Result<Bytes> zstd_encode(std::span<const std::byte> in, int level) {
  Bytes out(ZSTD_compressBound(in.size()));
  const auto n = ZSTD_compress(out.data(), out.size(), in.data(), in.size(), level);
  if (ZSTD_isError(n)) return fail(ErrorCode::kInternal, "zstd: {}", ZSTD_getErrorName(n));
  out.resize(n);
  return out;
}

Result<Bytes> gzip_encode(std::span<const std::byte> in, int level) {
  z_stream zs{};
  if (deflateInit2(&zs, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    return fail(ErrorCode::kOutOfMemory, "zlib deflate init failed");
  Bytes out(deflateBound(&zs, in.size()));
  zs.next_in = const_cast<Bytef*>(u8(in));
  zs.avail_in = static_cast<uInt>(in.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  const int rc = deflate(&zs, Z_FINISH);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  if (rc != Z_STREAM_END) return fail(ErrorCode::kInternal, "gzip compression failed");
  return out;
}

namespace {

struct Crc32cTable {
  std::array<std::uint32_t, 256> t{};
  constexpr Crc32cTable() {
    for (std::uint32_t i = 0; i < 256; ++i) {
      std::uint32_t c = i;
      for (int k = 0; k < 8; ++k)
        c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
      t[i] = c;
    }
  }
};
constexpr Crc32cTable kCrcTable;

__attribute__((target("sse4.2"))) std::uint32_t crc32c_hw(const unsigned char* p, std::size_t n,
                                                          std::uint32_t c) {
  std::uint64_t c64 = c;
  while (n >= 8) {
    std::uint64_t v;
    std::memcpy(&v, p, 8);
    c64 = _mm_crc32_u64(c64, v);
    p += 8;
    n -= 8;
  }
  c = static_cast<std::uint32_t>(c64);
  while (n--)
    c = _mm_crc32_u8(c, *p++);
  return c;
}

}  // namespace

std::uint32_t crc32c(std::span<const std::byte> data, std::uint32_t crc) {
  std::uint32_t c = ~crc;
  const auto* p = u8(data);
  if (__builtin_cpu_supports("sse4.2")) return ~crc32c_hw(p, data.size(), c);
  for (std::size_t i = 0; i < data.size(); ++i)
    c = kCrcTable.t[(c ^ p[i]) & 0xFF] ^ (c >> 8);
  return ~c;
}

void byteswap_inplace(std::span<std::byte> data, std::size_t itemsize) {
  auto* p = reinterpret_cast<unsigned char*>(data.data());
  const std::size_t n = data.size() / itemsize;
  switch (itemsize) {
    case 1:
      return;
    case 2:
      for (std::size_t i = 0; i < n; ++i) {
        std::uint16_t v;
        std::memcpy(&v, p + 2 * i, 2);
        v = __builtin_bswap16(v);
        std::memcpy(p + 2 * i, &v, 2);
      }
      return;
    case 4:
      for (std::size_t i = 0; i < n; ++i) {
        std::uint32_t v;
        std::memcpy(&v, p + 4 * i, 4);
        v = __builtin_bswap32(v);
        std::memcpy(p + 4 * i, &v, 4);
      }
      return;
    case 8:
      for (std::size_t i = 0; i < n; ++i) {
        std::uint64_t v;
        std::memcpy(&v, p + 8 * i, 8);
        v = __builtin_bswap64(v);
        std::memcpy(p + 8 * i, &v, 8);
      }
      return;
    default:
      for (std::size_t i = 0; i < n; ++i)
        std::reverse(p + i * itemsize, p + (i + 1) * itemsize);
  }
}

void transpose(std::span<const std::byte> src, std::span<std::byte> dst,
               std::span<const std::int64_t> shape, std::span<const int> perm,
               std::size_t itemsize) {
  const int nd = static_cast<int>(shape.size());
  // Source strides (elements), then walk dst in C order with src strides permuted.
  std::array<std::int64_t, 8> sstride{}, dshape{}, pstride{}, idx{};
  std::int64_t s = 1;
  for (int i = nd - 1; i >= 0; --i) {
    sstride[i] = s;
    s *= shape[i];
  }
  for (int i = 0; i < nd; ++i) {
    dshape[i] = shape[perm[i]];
    pstride[i] = sstride[perm[i]];
  }
  const std::int64_t total = s;
  const auto* in = src.data();
  auto* out = dst.data();
  std::int64_t off = 0;
  for (std::int64_t k = 0; k < total; ++k) {
    std::memcpy(out + k * itemsize, in + off * itemsize, itemsize);
    for (int d = nd - 1; d >= 0; --d) {
      off += pstride[d];
      if (++idx[d] < dshape[d]) break;
      off -= pstride[d] * dshape[d];
      idx[d] = 0;
    }
  }
}

}  // namespace vx::data
