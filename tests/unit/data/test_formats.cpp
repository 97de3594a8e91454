#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include "data/chunk_cache.hpp"
#include "data/codecs.hpp"
#include "data/file_io.hpp"
#include "data/mapped_array.hpp"
#include "data/zarr_meta.hpp"

namespace vx::data {
namespace {

namespace fs = std::filesystem;

std::string error_of(const json& j, bool v3 = false) {
  auto r = v3 ? parse_zarr_json_v3(j, "a/zarr.json") : parse_zarray_v2(j, "a/.zarray");
  return r ? std::string("no error") : r.error().message;
}

json good_v2() {
  return json::parse(R"({"zarr_format":2,"shape":[10,20],"chunks":[5,5],"dtype":"<u2",
    "compressor":{"id":"blosc","cname":"lz4","clevel":5,"shuffle":1},"fill_value":0,"order":"C",
    "filters":null})");
}

TEST(ZarrV2Meta, ParsesAGoodArray) {
  auto m = parse_zarray_v2(good_v2(), "a/.zarray");
  ASSERT_TRUE(m) << m.error().what();
  EXPECT_EQ(m->dtype, DType::kUInt16);
  EXPECT_EQ(m->chunk_key(std::vector<std::int64_t>{1, 3}), "1.3");
  EXPECT_EQ(m->codecs.describe(), "bytes | blosc(lz4,shuffle)");
}

TEST(ZarrV2Meta, EveryMalformedFieldIsNamed) {
  struct Case {
    const char* field;
    json value;
    const char* expect;
  };
  const Case cases[] = {
      {"shape", "10x20", "'shape'"},
      {"shape", json::array({10, -1}), "negative"},
      {"chunks", json::array({5}), "'chunks'"},
      {"chunks", json::array({5, 0}), "positive"},
      {"dtype", "<c16", "'dtype'"},
      {"dtype", "|V4", "'dtype'"},
      {"dtype", 5, "'dtype'"},
      {"compressor", json{{"id", "snappyx"}}, "snappyx"},
      {"compressor", json{{"id", "blosc"}, {"cname", "nope"}}, "nope"},
      {"filters", json::array({json{{"id", "delta"}}}), "delta"},
      {"order", "Z", "'order'"},
      {"fill_value", "abc", "'fill_value'"},
      {"dimension_separator", "-", "dimension_separator"},
      {"zarr_format", 3, "zarr_format"},
  };
  for (const auto& c : cases) {
    auto j = good_v2();
    j[c.field] = c.value;
    const auto msg = error_of(j);
    EXPECT_NE(msg.find(c.expect), std::string::npos) << c.field << ": " << msg;
    EXPECT_NE(msg.find("a/.zarray"), std::string::npos) << msg;
  }
  auto j = good_v2();
  j.erase("shape");
  EXPECT_NE(error_of(j).find("required"), std::string::npos);
  EXPECT_NE(error_of(json::array()).find("expected an object"), std::string::npos);
}

json good_v3() {
  return json::parse(R"({"zarr_format":3,"node_type":"array","shape":[16,16],"data_type":"uint16",
    "chunk_grid":{"name":"regular","configuration":{"chunk_shape":[8,16]}},"fill_value":0,
    "chunk_key_encoding":{"name":"default","configuration":{"separator":"/"}},
    "codecs":[{"name":"sharding_indexed","configuration":{"chunk_shape":[4,8],
      "codecs":[{"name":"bytes","configuration":{"endian":"little"}},{"name":"zstd","configuration":{"level":1}}],
      "index_codecs":[{"name":"bytes","configuration":{"endian":"little"}},{"name":"crc32c"}],
      "index_location":"end"}}]})");
}

TEST(ZarrV3Meta, ParsesShardingAndNamesBadCodecs) {
  auto m = parse_zarr_json_v3(good_v3(), "a/zarr.json");
  ASSERT_TRUE(m) << m.error().what();
  ASSERT_NE(m->sharding(), nullptr);
  EXPECT_EQ(m->read_chunks(), (std::vector<std::int64_t>{4, 8}));
  EXPECT_EQ(m->chunk_key(std::vector<std::int64_t>{1, 0}), "c/1/0");

  auto j = good_v3();
  j["codecs"][0]["configuration"]["codecs"][1]["name"] = "lzma";
  EXPECT_NE(error_of(j, true).find("lzma"), std::string::npos);
  j = good_v3();
  j["codecs"][0]["configuration"]["chunk_shape"] = json::array({3, 8});
  EXPECT_NE(error_of(j, true).find("does not divide"), std::string::npos);
  j = good_v3();
  j["data_type"] = "complex64";
  EXPECT_NE(error_of(j, true).find("data_type"), std::string::npos);
  j = good_v3();
  j["codecs"] = json::array({json{{"name", "zstd"}}});
  EXPECT_NE(error_of(j, true).find("before the array-to-bytes"), std::string::npos);
  j = good_v3();
  j["codecs"][0]["configuration"]["index_location"] = "middle";
  EXPECT_NE(error_of(j, true).find("index_location"), std::string::npos);
  j = good_v3();
  j["chunk_grid"]["name"] = "rectilinear";
  EXPECT_NE(error_of(j, true).find("rectilinear"), std::string::npos);
}

// Builds a sharded v3 array by the spec and reads it back through open_volume.
TEST(ZarrV3Sharding, ReadsInnerChunksAndMissingOnes) {
  const auto dir = fs::temp_directory_path() / ("vx_shard_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir / "c" / "0");
  auto meta = good_v3();
  meta["fill_value"] = 5;
  std::ofstream(dir / "zarr.json") << meta.dump();
  // One shard (index 0,0) of 8x16 = 2x2 inner chunks of 4x8; inner chunk (1,0) is missing.
  // Shard (1,0) does not exist at all.
  Bytes shard;
  std::vector<std::uint64_t> index(8, ~0ull);
  for (int i = 0; i < 4; ++i) {
    if (i == 2) continue;
    std::vector<std::uint16_t> v(32);
    for (int k = 0; k < 32; ++k)
      v[std::size_t(k)] = std::uint16_t(i * 100 + k);
    auto z = *zstd_encode(std::as_bytes(std::span(v)), 1);
    index[std::size_t(i) * 2] = shard.size();
    index[std::size_t(i) * 2 + 1] = z.size();
    shard.insert(shard.end(), z.begin(), z.end());
  }
  auto ib = std::as_bytes(std::span(index));
  Bytes idx(ib.begin(), ib.end());
  const auto crc = crc32c(idx);
  const auto* cp = reinterpret_cast<const std::byte*>(&crc);
  idx.insert(idx.end(), cp, cp + 4);
  shard.insert(shard.end(), idx.begin(), idx.end());
  ASSERT_TRUE(write_file_atomic((dir / "c" / "0" / "0").string(), shard));

  auto src = open_volume(dir.string());
  ASSERT_TRUE(src) << src.error().what();
  EXPECT_EQ((*src)->info().format, "zarr");
  EXPECT_EQ((*src)->info().zarr_format, 3);
  ChunkCache cache(CacheOptions{1 << 20, 2, 2});
  const auto id = cache.add_source(*src);
  auto c3 = cache.get(id, 0, Index{1, 1, 0});
  ASSERT_TRUE(c3) << c3.error().what();
  EXPECT_EQ(c3->as<std::uint16_t>()[7], 307);
  const auto read_once = cache.counters().bytes_read;
  auto c1 = cache.get(id, 0, Index{0, 0, 0});  // same shard: its index is not read again
  ASSERT_TRUE(c1);
  EXPECT_EQ(cache.counters().bytes_read - read_once, index[1]);
  auto c2 = cache.get(id, 0, Index{1, 0, 0});
  ASSERT_TRUE(c2);
  EXPECT_TRUE(c2->is_fill());
  EXPECT_EQ(c2->as<std::uint16_t>()[0], 5);
  auto far = cache.get(id, 0, Index{3, 1, 0});  // in the shard file that does not exist
  ASSERT_TRUE(far);
  EXPECT_TRUE(far->is_fill());

  Bytes scratch(64);
  // A flipped index byte fails the index checksum, naming the shard.
  shard[shard.size() - 10] ^= std::byte{1};
  ASSERT_TRUE(write_file_atomic((dir / "c" / "0" / "0").string(), shard));
  // Shard indexes are cached per source (data is read-only while open): reopen.
  src = open_volume(dir.string());
  ASSERT_TRUE(src);
  auto bad = (*src)->read_chunk(0, Index{0, 0, 0}, scratch);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("crc32c"), std::string::npos) << bad.error().message;
  EXPECT_NE(bad.error().message.find("c/0/0"), std::string::npos) << bad.error().message;
  // A truncated shard cannot hold its index.
  ASSERT_TRUE(write_file_atomic((dir / "c" / "0" / "0").string(), std::span(shard).first(20)));
  src = open_volume(dir.string());
  ASSERT_TRUE(src);
  auto trunc = (*src)->read_chunk(0, Index{0, 0, 0}, scratch);
  ASSERT_FALSE(trunc);
  EXPECT_NE(trunc.error().message.find("index"), std::string::npos);
  fs::remove_all(dir);
}

TEST(NpyHeader, ParsesAndRejectsMalformedHeaders) {
  const auto h = make_npy_header(DType::kUInt16, std::vector<std::int64_t>{3, 4, 5});
  auto p = parse_npy_header(std::as_bytes(std::span(h.data(), h.size())), "x.npy");
  ASSERT_TRUE(p) << p.error().what();
  EXPECT_EQ(p->layout.shape, (std::vector<std::int64_t>{3, 4, 5}));
  EXPECT_EQ(p->layout.strides, (std::vector<std::int64_t>{40, 10, 2}));
  EXPECT_EQ(p->header_bytes % 64, 0u);
  auto bad = [](std::string text) {
    auto r = parse_npy_header(std::as_bytes(std::span(text.data(), text.size())), "x.npy");
    return r ? std::string("ok") : r.error().message;
  };
  auto with = [](const std::string& dict) {
    std::string s = "\x93NUMPY";
    s += char(1);
    s += char(0);
    s += char(dict.size() & 0xFF);
    s += char(dict.size() >> 8);
    return s + dict;
  };
  EXPECT_NE(bad("PK\3\4junk").find("magic"), std::string::npos);
  EXPECT_NE(bad(with("{'descr': '<c8', 'fortran_order': False, 'shape': (3,), }")).find("descr"),
            std::string::npos);
  EXPECT_NE(
      bad(with("{'descr': '<u2', 'fortran_order': Maybe, 'shape': (3,), }")).find("fortran_order"),
      std::string::npos);
  EXPECT_NE(bad(with("{'descr': '<u2', 'fortran_order': False, 'shape': (a,), }")).find("shape"),
            std::string::npos);
  EXPECT_NE(bad(with("{'descr': '<u2', 'fortran_order': False, 'shape': (3,")).find("shape"),
            std::string::npos);
  EXPECT_NE(bad(with("{'descr': '<u2', 'fortran_order': False, 'shape': (), }")).find("dimensions"),
            std::string::npos);
  std::string truncated = with("{'descr': '<u2', 'fortran_order': False, 'shape': (3,), }");
  EXPECT_NE(bad(truncated.substr(0, 20)).find("truncated"), std::string::npos);
}

TEST(NiftiHeader, RejectsWhatIsNotNifti) {
  Bytes hdr(352);
  auto r = parse_nifti_header(hdr, "x.nii");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("sizeof_hdr"), std::string::npos);
  const std::int32_t n = 348;
  std::memcpy(hdr.data(), &n, 4);
  std::memcpy(hdr.data() + 344, "n+1\0", 4);
  const std::int16_t dim0 = 9;
  std::memcpy(hdr.data() + 40, &dim0, 2);
  r = parse_nifti_header(hdr, "x.nii");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("dim[0]"), std::string::npos);
  EXPECT_FALSE(parse_nifti_header(std::span(hdr).first(100), "x.nii"));
}

TEST(Synthetic, IsDeterministicMultiscaleAndValidatesOptions) {
  auto a = open_volume("synthetic:cells?shape=64x128x96&chunk=32");
  ASSERT_TRUE(a) << a.error().what();
  const auto& info = (*a)->info();
  EXPECT_EQ(info.levels.size(), 3u);
  EXPECT_EQ(info.levels[1].shape, (std::vector<std::int64_t>{2, 32, 64, 48}));
  Bytes c1(info.chunk_bytes(0)), c2(info.chunk_bytes(0)), c3(info.chunk_bytes(0));
  ASSERT_TRUE((*a)->read_chunk(0, Index{0, 1, 1, 1}, c1));
  ASSERT_TRUE((*a)->read_chunk(0, Index{0, 1, 1, 1}, c2));
  EXPECT_EQ(c1, c2);
  ASSERT_TRUE((*a)->read_chunk(0, Index{1, 1, 1, 1}, c3));
  EXPECT_NE(c1, c3);  // channels differ
  // Looks like microscopy: a dim background with bright structures.
  auto v = std::span(reinterpret_cast<const std::uint16_t*>(c1.data()), c1.size() / 2);
  const auto [lo, hi] = std::minmax_element(v.begin(), v.end());
  EXPECT_LT(*lo, 300);
  EXPECT_GT(*hi, 1000);

  for (const char* bad :
       {"synthetic:nope", "synthetic:cells?shape=abc", "synthetic:cells?shape=1x2",
        "synthetic:cells?chunk=3", "synthetic:cells?colour=red", "synthetic:cells?latency_ms=x"}) {
    auto r = open_volume(bad);
    EXPECT_FALSE(r) << bad;
    if (!r) EXPECT_NE(r.error().message.find("synthetic:"), std::string::npos) << r.error().message;
  }
}

TEST(Synthetic, IsBitIdenticalAcrossCallsAndThreads) {
  // The default 1 TiB volume: chunks in the tissue at fine and coarse levels, each dtype.
  for (const char* spec : {"synthetic:cells", "synthetic:cells?dtype=float32&seed=7",
                           "synthetic:cells?dtype=uint8&chunk=48"}) {
    auto src = open_volume(spec);
    ASSERT_TRUE(src) << src.error().what();
    const auto& info = (*src)->info();
    for (int level : {0, 2, 4}) {
      const auto grid = info.levels[std::size_t(level)].grid();
      for (std::int64_t c : {0, 1}) {
        const Index idx{c, grid[1] / 2, grid[2] / 2 - 1, grid[3] / 2};
        Bytes a(info.chunk_bytes(level)), b(a.size()), t1(a.size()), t2(a.size());
        ASSERT_TRUE((*src)->read_chunk(level, idx, a));
        ASSERT_TRUE((*src)->read_chunk(level, idx, b));
        std::thread x([&] { ASSERT_TRUE((*src)->read_chunk(level, idx, t1)); });
        std::thread y([&] { ASSERT_TRUE((*src)->read_chunk(level, idx, t2)); });
        x.join();
        y.join();
        EXPECT_EQ(a, b) << spec << " level " << level;
        EXPECT_EQ(a, t1) << spec << " level " << level;
        EXPECT_EQ(a, t2) << spec << " level " << level;
      }
    }
  }
}

TEST(Synthetic, LooksLikeTissue) {
  auto src = open_volume("synthetic:cells");
  ASSERT_TRUE(src) << src.error().what();
  const auto& info = (*src)->info();
  const auto grid = info.levels[0].grid();
  auto read = [&](int level, const Index& idx) {
    Bytes raw(info.chunk_bytes(level));
    EXPECT_TRUE((*src)->read_chunk(level, idx, raw));
    std::vector<std::uint16_t> v(raw.size() / 2);
    std::memcpy(v.data(), raw.data(), raw.size());
    return v;
  };
  auto fraction_above = [](const std::vector<std::uint16_t>& v, int t) {
    return double(std::count_if(v.begin(), v.end(), [&](auto x) { return x > t; })) /
           double(v.size());
  };
  // Inside the tissue (the centre): nuclei are bright blobs filling a minority of voxels.
  std::vector<std::uint16_t> nuclei, membranes;
  for (std::int64_t k = 0; k < 4; ++k) {
    const Index at{0, grid[1] / 2 + k, grid[2] / 2 - k, grid[3] / 2 + 2 * k};
    auto n = read(0, at);
    auto m = read(0, Index{1, at[1], at[2], at[3]});
    nuclei.insert(nuclei.end(), n.begin(), n.end());
    membranes.insert(membranes.end(), m.begin(), m.end());
  }
  EXPECT_GT(fraction_above(nuclei, 1200), 0.02);
  EXPECT_LT(fraction_above(nuclei, 1200), 0.25);
  EXPECT_GT(*std::max_element(nuclei.begin(), nuclei.end()), 2500);
  // Membranes: thin bright sheets, so a modest fraction is bright and most voxels are not.
  EXPECT_GT(fraction_above(membranes, 1000), 0.03);
  EXPECT_LT(fraction_above(membranes, 1000), 0.35);
  EXPECT_LT(fraction_above(membranes, 2500), 0.01);  // window 100..2450
  // Sheets, not blobs: a bright membrane voxel mostly has a dim voxel within 3 along x.
  {
    std::size_t bright = 0, edged = 0;
    for (std::size_t i = 3; i + 3 < membranes.size(); ++i)
      if (membranes[i] > 1200) {
        ++bright;
        bool dim = false;
        for (std::size_t d = 1; d <= 3; ++d)
          dim |= membranes[i - d] < 600 || membranes[i + d] < 600;
        edged += dim;
      }
    ASSERT_GT(bright, 0u);
    EXPECT_GT(double(edged) / double(bright), 0.6);
  }
  // Outside the tissue (a corner): dim background and noise only.
  for (std::int64_t c : {0, 1}) {
    auto out = read(0, Index{c, 0, 0, 0});
    EXPECT_LT(*std::max_element(out.begin(), out.end()), 200);
    EXPECT_GT(*std::min_element(out.begin(), out.end()), 50);
  }
  // Coarse levels blend to the mean: no bright detail left at the coarsest.
  const int last = int(info.levels.size()) - 1;
  auto coarse = read(last, Index{0, 0, 0, 0});
  EXPECT_LT(*std::max_element(coarse.begin(), coarse.end()), 800);
  EXPECT_GT(*std::max_element(coarse.begin(), coarse.end()), 300);
}

TEST(Synthetic, AsksForMoreConcurrentReadsWhenItSimulatesLatency) {
  auto local = open_volume("synthetic:cells?shape=64x64x64");
  auto remote = open_volume("synthetic:cells?shape=64x64x64&latency_ms=5");
  ASSERT_TRUE(local && remote);
  EXPECT_EQ((*local)->io_concurrency(), io_concurrency_for_path(""));
  EXPECT_GT((*remote)->io_concurrency(), (*local)->io_concurrency());
  EXPECT_EQ(io_concurrency_for_path(fs::temp_directory_path().string()),
            io_concurrency_for_path(""));
}

TEST(OpenVolume, NamesThePathThatIsNotADataset) {
  auto r = open_volume("/definitely/not/here.zarr");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kNotFound);
  EXPECT_NE(r.error().message.find("/definitely/not/here.zarr"), std::string::npos);
  auto d = open_volume(fs::temp_directory_path().string());
  ASSERT_FALSE(d);
  EXPECT_NE(d.error().message.find("not a Zarr store"), std::string::npos);
}

}  // namespace
}  // namespace vx::data
