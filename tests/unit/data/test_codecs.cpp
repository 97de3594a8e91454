#include <gtest/gtest.h>

#include <numeric>
#include <random>

#include "data/codecs.hpp"
#include "data/zarr_meta.hpp"

namespace vx::data {
namespace {

Bytes sample(std::size_t n, unsigned seed = 7) {
  std::mt19937 rng(seed);
  Bytes b(n);
  // Smooth-ish data so compressors have something to do.
  for (std::size_t i = 0; i < n; ++i)
    b[i] = std::byte((i / 7 + (rng() % 3)) & 0xFF);
  return b;
}

TEST(Crc32c, MatchesTheStandardCheckValue) {
  const std::string s = "123456789";
  EXPECT_EQ(crc32c(std::as_bytes(std::span(s.data(), s.size()))), 0xE3069283u);
  EXPECT_EQ(crc32c({}), 0u);
  // Incremental equals one-shot.
  auto b = sample(1000);
  EXPECT_EQ(crc32c(std::span(b).subspan(300), crc32c(std::span(b).first(300))), crc32c(b));
}

struct BloscCase {
  const char* cname;
  Shuffle shuffle;
};
class BloscRoundTrip : public ::testing::TestWithParam<BloscCase> {};

TEST_P(BloscRoundTrip, DecodesWhatItEncodes) {
  auto in = sample(40000);
  auto enc = blosc_encode(in, 2, GetParam().cname, 5, GetParam().shuffle);
  ASSERT_TRUE(enc) << enc.error().what();
  Bytes out(in.size());
  auto n = blosc_decode(*enc, out, "test");
  ASSERT_TRUE(n) << n.error().what();
  EXPECT_EQ(out, in);
}

INSTANTIATE_TEST_SUITE_P(
    AllCompressors, BloscRoundTrip,
    ::testing::Values(BloscCase{"lz4", Shuffle::kByte}, BloscCase{"lz4hc", Shuffle::kNone},
                      BloscCase{"zstd", Shuffle::kBit}, BloscCase{"zlib", Shuffle::kByte},
                      BloscCase{"blosclz", Shuffle::kBit}),
    [](const auto& info) {
      return std::string(info.param.cname) + "_shuffle" + std::to_string(int(info.param.shuffle));
    });

TEST(Codecs, ZstdAndGzipRoundTrip) {
  auto in = sample(70000);
  auto z = zstd_encode(in, 3);
  ASSERT_TRUE(z);
  Bytes out(in.size());
  ASSERT_TRUE(zstd_decode(*z, out, "t"));
  EXPECT_EQ(out, in);
  auto any = zstd_decode_any(*z, in.size(), "t");
  EXPECT_FALSE(zstd_decode_any(*z, in.size() - 1, "t"));
  ASSERT_TRUE(any);
  EXPECT_EQ(*any, in);
  auto g = gzip_encode(in, 6);
  ASSERT_TRUE(g);
  Bytes out2(in.size());
  ASSERT_TRUE(zlib_decode(*g, out2, true, "t"));
  EXPECT_EQ(out2, in);
}

TEST(Codecs, TruncatedAndCorruptStreamsFailWithTheChunkNamed) {
  auto in = sample(50000);
  Bytes out(in.size());
  auto b = *blosc_encode(in, 1, "lz4", 5, Shuffle::kNone);
  auto r = blosc_decode(std::span(b).first(b.size() / 2), out, "chunk 0.0.1");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kCorrupt);
  EXPECT_NE(r.error().message.find("chunk 0.0.1"), std::string::npos);
  EXPECT_FALSE(blosc_decode(std::span(b).first(3), out, "c"));

  auto z = *zstd_encode(in, 3);
  EXPECT_FALSE(zstd_decode(std::span(z).first(z.size() - 5), out, "c"));
  Bytes garbage = sample(500, 99);
  EXPECT_FALSE(zstd_decode(garbage, out, "c"));
  EXPECT_FALSE(zstd_decode_any(garbage, 1 << 20, "c"));

  auto g = *gzip_encode(in, 6);
  auto tr = zlib_decode(std::span(g).first(g.size() / 2), out, true, "c");
  ASSERT_FALSE(tr);
  EXPECT_NE(tr.error().message.find("truncated"), std::string::npos) << tr.error().message;
  EXPECT_FALSE(zlib_decode(garbage, out, false, "c"));
  // Right stream, wrong expected size.
  Bytes small(in.size() - 1);
  EXPECT_FALSE(zlib_decode(g, small, true, "c"));
  EXPECT_FALSE(zstd_decode(z, small, "c"));
}

TEST(Codecs, TransposeMatchesIndexArithmetic) {
  const std::int64_t shape[3] = {2, 3, 4};
  std::vector<std::uint16_t> src(24);
  std::iota(src.begin(), src.end(), 0);
  const int perm[3] = {2, 0, 1};  // dst shape (4, 2, 3), dst[i,j,k] = src[j,k,i]
  std::vector<std::uint16_t> dst(24);
  transpose(std::as_bytes(std::span(src)), std::as_writable_bytes(std::span(dst)), shape, perm, 2);
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 2; ++j)
      for (int k = 0; k < 3; ++k)
        EXPECT_EQ(dst[std::size_t((i * 2 + j) * 3 + k)], src[std::size_t((j * 3 + k) * 4 + i)]);
}

TEST(Codecs, ByteswapReversesEachElement) {
  std::vector<std::uint32_t> v = {0x01020304u, 0xA0B0C0D0u};
  byteswap_inplace(std::as_writable_bytes(std::span(v)), 4);
  EXPECT_EQ(v[0], 0x04030201u);
  EXPECT_EQ(v[1], 0xD0C0B0A0u);
}

TEST(CodecChain, V3ChainWithTransposeBigEndianAndCrcDecodes) {
  // Encode by hand: a (2,3) uint16 array, transpose [1,0], big-endian bytes, gzip, crc32c.
  json meta =
      json::parse(R"({"zarr_format":3,"node_type":"array","shape":[2,3],"data_type":"uint16",
    "chunk_grid":{"name":"regular","configuration":{"chunk_shape":[2,3]}},"fill_value":0,
    "codecs":[{"name":"transpose","configuration":{"order":[1,0]}},
              {"name":"bytes","configuration":{"endian":"big"}},
              {"name":"gzip","configuration":{"level":5}},{"name":"crc32c"}]})");
  auto m = parse_zarr_json_v3(meta, "zarr.json");
  ASSERT_TRUE(m) << m.error().what();
  const std::uint16_t a[2][3] = {{1, 2, 3}, {400, 500, 600}};
  std::vector<std::uint16_t> t;  // a.T, big-endian
  for (int j = 0; j < 3; ++j)
    for (int i = 0; i < 2; ++i)
      t.push_back(std::uint16_t((a[i][j] >> 8) | (a[i][j] << 8)));
  auto gz = *gzip_encode(std::as_bytes(std::span(t)), 5);
  const auto crc = crc32c(gz);
  const auto* cp = reinterpret_cast<const std::byte*>(&crc);
  gz.insert(gz.end(), cp, cp + 4);
  std::vector<std::uint16_t> out(6);
  const std::int64_t shape[2] = {2, 3};
  auto st = decode_chain(m->codecs, gz, std::as_writable_bytes(std::span(out)), shape, 2, "c/0/0");
  ASSERT_TRUE(st) << st.error().what();
  EXPECT_EQ(out, (std::vector<std::uint16_t>{1, 2, 3, 400, 500, 600}));
  gz[3] ^= std::byte{0x40};
  auto bad = decode_chain(m->codecs, gz, std::as_writable_bytes(std::span(out)), shape, 2, "c/0/0");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("crc32c"), std::string::npos);
  EXPECT_NE(bad.error().message.find("c/0/0"), std::string::npos);
}

}  // namespace
}  // namespace vx::data
