#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <stdexcept>

#include "data/chunk_cache.hpp"
#include "pipeline/kernels.hpp"
#include "pipeline/pipeline.hpp"

namespace vx::pipeline {
namespace {

using data::DType;
using data::Index;

// A 3-D uint16 volume in memory, split into chunks of any shape.
class MemSource : public data::VolumeSource {
 public:
  MemSource(std::vector<std::int64_t> shape, std::vector<std::int64_t> chunks,
            std::vector<std::uint16_t> values, std::vector<double> scale = {1, 1, 1})
      : values_(std::move(values)) {
    info_.location = "memory";
    info_.format = "test";
    info_.dtype = DType::kUInt16;
    info_.axes = {{"z", data::AxisType::kSpace, ""},
                  {"y", data::AxisType::kSpace, ""},
                  {"x", data::AxisType::kSpace, ""}};
    data::Level lv;
    lv.shape = std::move(shape);
    lv.chunks = std::move(chunks);
    lv.scale = std::move(scale);
    lv.translation = {0, 0, 0};
    info_.levels.push_back(lv);
  }
  const data::VolumeInfo& info() const override { return info_; }
  Result<data::ReadResult> read_chunk(int, const Index& idx,
                                      std::span<std::byte> out) const override {
    const auto& lv = info_.levels[0];
    auto* o = reinterpret_cast<std::uint16_t*>(out.data());
    for (std::int64_t z = 0; z < lv.chunks[0]; ++z)
      for (std::int64_t y = 0; y < lv.chunks[1]; ++y)
        for (std::int64_t x = 0; x < lv.chunks[2]; ++x) {
          const auto gz = idx[0] * lv.chunks[0] + z, gy = idx[1] * lv.chunks[1] + y,
                     gx = idx[2] * lv.chunks[2] + x;
          const bool in = gz < lv.shape[0] && gy < lv.shape[1] && gx < lv.shape[2];
          *o++ = in ? values_[std::size_t((gz * lv.shape[1] + gy) * lv.shape[2] + gx)] : 0;
        }
    return data::ReadResult{false, out.size()};
  }

 private:
  data::VolumeInfo info_;
  std::vector<std::uint16_t> values_;
};

const std::vector<std::int64_t> kShape{19, 21, 23};

std::vector<std::uint16_t> noise(std::size_t n) {
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> d(0, 4000);
  std::vector<std::uint16_t> v(n);
  for (auto& x : v)
    x = std::uint16_t(d(rng));
  return v;
}

// Level 0 of source `id` as doubles.
std::vector<double> read_all(data::ChunkCache& cache, data::SourceId id) {
  const auto& info = cache.source(id).info();
  const auto& lv = info.levels[0];
  std::vector<std::int64_t> start(3, 0);
  const std::size_t n = std::size_t(lv.shape[0] * lv.shape[1] * lv.shape[2]);
  std::vector<std::byte> raw(n * data::dtype_size(info.dtype));
  auto ok = data::read_region(cache, id, 0, start, lv.shape, raw);
  EXPECT_TRUE(ok) << ok.error().what();
  std::vector<double> out(n);
  for (std::size_t i = 0; i < n; ++i) {
    switch (info.dtype) {
      case DType::kFloat32:
        out[i] = reinterpret_cast<const float*>(raw.data())[i];
        break;
      case DType::kUInt16:
        out[i] = reinterpret_cast<const std::uint16_t*>(raw.data())[i];
        break;
      case DType::kUInt8:
        out[i] = reinterpret_cast<const std::uint8_t*>(raw.data())[i];
        break;
      default:
        ADD_FAILURE() << "dtype";
    }
  }
  return out;
}

struct Fixture {
  Budget budget{"host", 256u << 20};
  Manager manager{builtin_registry(), budget};
  data::ChunkCache cache{[this] {
    data::CacheOptions o{0, 2, 4};
    o.budget = &budget;
    return o;
  }()};
};

// A chunk computed alone equals the same region of the whole array computed at once: the
// pipeline on 8^3 chunks (edge chunks, halos across borders) against one chunk that holds
// the whole array.
void expect_halo_correct(const std::string& name, const json& params,
                         std::vector<double> scale = {1, 1, 1}, std::int64_t z_chunk = 0) {
  Fixture f;
  const auto values = noise(std::size_t(kShape[0] * kShape[1] * kShape[2]));
  const auto chunked = f.cache.add_source(
      std::make_shared<MemSource>(kShape, std::vector<std::int64_t>{8, 8, 8}, values, scale));
  const auto whole = f.cache.add_source(std::make_shared<MemSource>(kShape, kShape, values, scale));
  auto a = DerivedSource::create(f.manager, f.cache, chunked, name, params, z_chunk);
  auto b = DerivedSource::create(f.manager, f.cache, whole, name, params);
  ASSERT_TRUE(a && b);
  if (z_chunk > 0) EXPECT_EQ((*a)->info().levels[0].chunks[0], z_chunk);
  const auto ra = read_all(f.cache, f.cache.add_source(*a));
  const auto rb = read_all(f.cache, f.cache.add_source(*b));
  ASSERT_EQ(ra.size(), rb.size());
  double worst = 0;
  for (std::size_t i = 0; i < ra.size(); ++i)
    worst = std::max(worst, std::abs(ra[i] - rb[i]));
  EXPECT_LE(worst, 1e-3) << name << " " << params.dump();
  // And it changed something (the test would pass on an identity otherwise).
  const auto input = read_all(f.cache, chunked);
  double diff = 0;
  for (std::size_t i = 0; i < ra.size(); ++i)
    diff = std::max(diff, std::abs(ra[i] - input[i]));
  EXPECT_GT(diff, 0.5) << name;
}

TEST(Pipelines, RegistryListsEveryBuiltin) {
  const auto r = builtin_registry();
  for (const char* n : {"gaussian", "median", "dog", "tophat", "threshold"})
    EXPECT_NE(r.find(n), nullptr) << n;
  EXPECT_EQ(r.find("nope"), nullptr);
}

TEST(Pipelines, ChunksEqualTheWholeArray) {
  expect_halo_correct("gaussian", {{"sigma", 1.5}});
  expect_halo_correct("gaussian", {{"sigma", json::array({2, 1, 0.7})}}, {2, 1, 1});
  expect_halo_correct("median", {{"radius", 1}});
  expect_halo_correct("median", {{"radius", 2}});
  expect_halo_correct("dog", {{"low_sigma", 1}, {"high_sigma", 2}});
  expect_halo_correct("tophat", {{"radius", 2}});
  expect_halo_correct("threshold", {{"method", "manual"}, {"value", 2000}});
}

// A thin source (chunks one or a few planes deep, for 2D views) computes the same values.
TEST(Pipelines, ThinChunksEqualTheWholeArray) {
  for (const std::int64_t z : {1, 3}) {
    expect_halo_correct("gaussian", {{"sigma", 1.5}}, {1, 1, 1}, z);
    expect_halo_correct("median", {{"radius", 2}}, {1, 1, 1}, z);
    expect_halo_correct("dog", {{"low_sigma", 1}, {"high_sigma", 2}}, {1, 1, 1}, z);
  }
}

TEST(Pipelines, ChainsCompose) {
  Fixture f;
  const auto values = noise(std::size_t(kShape[0] * kShape[1] * kShape[2]));
  const auto chunked = f.cache.add_source(
      std::make_shared<MemSource>(kShape, std::vector<std::int64_t>{8, 8, 8}, values));
  const auto whole = f.cache.add_source(std::make_shared<MemSource>(kShape, kShape, values));
  auto chain = [&](data::SourceId in) {
    auto m = DerivedSource::create(f.manager, f.cache, in, "median", {{"radius", 1}});
    EXPECT_TRUE(m);
    auto g = DerivedSource::create(f.manager, f.cache, f.cache.add_source(*m), "gaussian",
                                   {{"sigma", 1}});
    EXPECT_TRUE(g);
    return read_all(f.cache, f.cache.add_source(*g));
  };
  const auto a = chain(chunked), b = chain(whole);
  for (std::size_t i = 0; i < a.size(); ++i)
    ASSERT_NEAR(a[i], b[i], 1e-3) << i;
}

TEST(Pipelines, ADerivedSourceWhoseInputWasRemovedFailsItsChunksAndNothingElse) {
  // A server removes a source nobody names (ChunkCache::remove_source); a derived source made
  // from it may still be asked for a chunk (a computation already under way). It must fail
  // that chunk, saying why, not look its input up by the forgotten id (that threw and ended
  // the process).
  Fixture f;
  const auto in = f.cache.add_source(std::make_shared<MemSource>(
      kShape, std::vector<std::int64_t>{8, 8, 8}, noise(std::size_t(19 * 21 * 23))));
  auto g = DerivedSource::create(f.manager, f.cache, in, "gaussian", {{"sigma", 1}});
  ASSERT_TRUE(g) << g.error().what();
  const auto id = f.cache.add_source(*g);
  ASSERT_TRUE(f.cache.get(id, 0, data::Index{0, 0, 0}));
  f.cache.remove_source(in);
  EXPECT_NO_THROW((void)(*g)->inputs(0, data::Index{1, 1, 1}));
  auto r = f.cache.get(id, 0, data::Index{1, 1, 1});
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find(fmt::format("source id {}", in)), std::string::npos)
      << r.error().message;
}

TEST(Pipelines, LazyLoadingAndUnloading) {
  Fixture f;
  for (const auto& p : f.manager.list())
    EXPECT_EQ(p["status"], "not_loaded") << p["name"];
  const auto src = f.cache.add_source(std::make_shared<MemSource>(
      kShape, std::vector<std::int64_t>{8, 8, 8}, noise(std::size_t(19 * 21 * 23))));
  auto d = DerivedSource::create(f.manager, f.cache, src, "gaussian", {{"sigma", 1}});
  ASSERT_TRUE(d);
  EXPECT_EQ(f.manager.status("gaussian"), LoadStatus::kLoaded);
  EXPECT_EQ(f.manager.status("median"), LoadStatus::kNotLoaded);
  ASSERT_TRUE(f.manager.unload("gaussian"));
  EXPECT_EQ(f.manager.status("gaussian"), LoadStatus::kNotLoaded);
  const auto id = f.cache.add_source(*d);
  ASSERT_TRUE(f.cache.get(id, 0, Index{1, 1, 1}));  // loads it again on use
  EXPECT_EQ(f.manager.status("gaussian"), LoadStatus::kLoaded);
  for (const auto& p : f.manager.list())
    if (p["name"] == "gaussian") EXPECT_EQ(p["loads"], 2);
}

TEST(Pipelines, BadRequestsNameWhatIsWrong) {
  Fixture f;
  const auto src = f.cache.add_source(std::make_shared<MemSource>(
      kShape, std::vector<std::int64_t>{8, 8, 8}, noise(std::size_t(19 * 21 * 23))));
  auto unknown = DerivedSource::create(f.manager, f.cache, src, "sharpen", {});
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().code, ErrorCode::kNotFound);
  EXPECT_NE(unknown.error().message.find("'sharpen'"), std::string::npos);
  EXPECT_NE(unknown.error().message.find("gaussian"), std::string::npos);
  auto bad = DerivedSource::create(f.manager, f.cache, src, "gaussian", {{"sigma", -2}});
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(bad.error().message.rfind("params.sigma", 0), 0u) << bad.error().message;
  auto axes =
      DerivedSource::create(f.manager, f.cache, src, "gaussian", {{"sigma", json::array({1, 2})}});
  ASSERT_FALSE(axes);
  EXPECT_EQ(axes.error().message.rfind("params.sigma", 0), 0u) << axes.error().message;
  EXPECT_FALSE(parse_pipeline_arg(f.manager.registry(), "gaussian:sigma=x"));
  auto ok = parse_pipeline_arg(f.manager.registry(), "gaussian:sigma=2/1/1");
  ASSERT_TRUE(ok) << ok.error().what();
  EXPECT_EQ((*ok)["params"]["sigma"], json({2.0, 1.0, 1.0}));
}

// A pipeline that throws in process(), and one that holds memory when loaded.
class Thrower final : public Pipeline {
 public:
  Ext3 halo(const json&, const LevelContext&) const override { return {1, 1, 1}; }
  Status process(const json&, const LevelContext&, const BlockView&,
                 const BlockView&) const override {
    throw std::runtime_error("thrower broke");
  }
};
class Heavy final : public Pipeline {
 public:
  explicit Heavy(std::uint64_t bytes = 600) : bytes_(bytes) {}
  Result<std::uint64_t> load() override { return bytes_; }
  Ext3 halo(const json&, const LevelContext&) const override { return {0, 0, 0}; }
  Status process(const json&, const LevelContext&, const BlockView& in,
                 const BlockView& out) const override {
    std::copy(in.data, in.data + in.voxels(), out.data);
    return {};
  }

 private:
  std::uint64_t bytes_;
};

Registry test_registry() {
  Registry r;
  EXPECT_TRUE(r.add({"thrower", "1", "", {}, [] { return std::make_unique<Thrower>(); }}));
  EXPECT_TRUE(r.add({"heavy1", "1", "", {}, [] { return std::make_unique<Heavy>(); }}));
  EXPECT_TRUE(r.add({"heavy2", "1", "", {}, [] { return std::make_unique<Heavy>(); }}));
  EXPECT_FALSE(r.add({"heavy2", "1", "", {}, [] { return std::make_unique<Heavy>(); }}));
  return r;
}

TEST(Pipelines, APipelineThatThrowsFailsItsChunksOnly) {
  Budget budget("host", 64u << 20);
  Manager manager(test_registry(), budget);
  data::CacheOptions o{0, 2, 4};
  o.budget = &budget;
  data::ChunkCache cache(o);
  const auto src = cache.add_source(std::make_shared<MemSource>(
      kShape, std::vector<std::int64_t>{8, 8, 8}, noise(std::size_t(19 * 21 * 23))));
  auto d = DerivedSource::create(manager, cache, src, "thrower", {});
  ASSERT_TRUE(d);
  const auto id = cache.add_source(*d);
  auto r = cache.get(id, 0, Index{0, 0, 0});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kInternal);
  EXPECT_NE(r.error().message.find("thrower broke"), std::string::npos) << r.error().message;
  EXPECT_TRUE(cache.get(src, 0, Index{0, 0, 0}));  // the input is untouched
  EXPECT_EQ(manager.status("thrower"), LoadStatus::kLoaded);
}

TEST(Pipelines, IdlePipelinesAreOffloadedAndMemoryRefusedWhenShort) {
  Budget budget("host", 1000);
  Manager manager(test_registry(), budget);
  ASSERT_TRUE(manager.load("heavy1"));
  EXPECT_EQ(budget.used(), 600u);
  ASSERT_TRUE(manager.load("heavy2"));  // heavy1 is idle: offloaded to make room
  EXPECT_EQ(manager.status("heavy1"), LoadStatus::kNotLoaded);
  EXPECT_EQ(manager.status("heavy2"), LoadStatus::kLoaded);
  {
    auto lease = manager.use("heavy2");  // in use: cannot be offloaded
    ASSERT_TRUE(lease);
    auto r = manager.load("heavy1");
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, ErrorCode::kOutOfMemory);
    EXPECT_NE(r.error().message.find("budget 'host'"), std::string::npos) << r.error().message;
    EXPECT_NE(r.error().message.find("pipeline heavy2"), std::string::npos) << r.error().message;
    EXPECT_EQ(manager.status("heavy1"), LoadStatus::kError);
    EXPECT_FALSE(manager.unload("heavy2"));  // busy
  }
  EXPECT_TRUE(manager.load("heavy1"));  // retried once memory frees up
  EXPECT_LE(budget.snapshot().peak, 1000u);
}

TEST(Pipelines, ChunkScratchOverTheBudgetIsOutOfMemory) {
  Budget budget("host", 40u << 10);  // too small for a 32^3 chunk's float scratch
  Manager manager(builtin_registry(), budget);
  data::CacheOptions o{0, 2, 4};
  o.budget = &budget;
  data::ChunkCache cache(o);
  const std::vector<std::int64_t> shape{32, 32, 32};
  const auto src = cache.add_source(std::make_shared<MemSource>(
      shape, std::vector<std::int64_t>{16, 16, 16}, noise(32 * 32 * 32)));
  auto d = DerivedSource::create(manager, cache, src, "gaussian", {{"sigma", 2}});
  ASSERT_TRUE(d);
  const auto id = cache.add_source(*d);
  auto r = cache.get(id, 0, Index{0, 0, 0});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kOutOfMemory);
  EXPECT_NE(r.error().message.find("budget 'host'"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("gaussian"), std::string::npos) << r.error().message;
  EXPECT_TRUE(cache.get(src, 0, Index{1, 1, 1}));  // the cache still serves
  EXPECT_GE(budget.snapshot().refusals, 1u);
}

TEST(Pipelines, CachedChunksMakeRoomForAPipeline) {
  Budget budget("host", 64u << 10);
  Registry r;
  ASSERT_TRUE(r.add({"big", "1", "", {}, [] { return std::make_unique<Heavy>(48u << 10); }}));
  Manager manager(std::move(r), budget);
  data::CacheOptions o{0, 2, 4};
  o.budget = &budget;
  data::ChunkCache cache(o);
  const std::vector<std::int64_t> shape{24, 24, 24};
  const auto src = cache.add_source(
      std::make_shared<MemSource>(shape, std::vector<std::int64_t>{8, 8, 8}, noise(24 * 24 * 24)));
  for (std::int64_t z = 0; z < 3; ++z)
    for (std::int64_t y = 0; y < 3; ++y)
      for (std::int64_t x = 0; x < 3; ++x)
        ASSERT_TRUE(cache.get(src, 0, Index{z, y, x}));
  const auto before = cache.counters();
  EXPECT_GT(before.bytes_cached, 30u << 10);
  ASSERT_TRUE(manager.load("big"));  // the cache gives back its least recently used chunks
  const auto after = cache.counters();
  EXPECT_GT(after.evictions, before.evictions);
  EXPECT_LE(budget.used(), budget.limit());
  EXPECT_EQ(manager.status("big"), LoadStatus::kLoaded);
  EXPECT_TRUE(cache.try_get(src, 0, Index{2, 2, 2}));  // the most recent one stayed
}

// A PSF file is on level-0 voxels: at a coarser level each coarse voxel takes the part of
// every fine voxel inside it.
TEST(Pipelines, PsfResampledOntoCoarserVoxels) {
  // Three fine voxels (centred) onto voxels twice as wide: the centre one holds all of the
  // middle voxel and half of each side one; the outer ones the other halves.
  Ext3 shape{1, 1, 3};
  auto w = resample_kernel({0.2f, 0.5f, 0.3f}, shape, {1, 1, 2});
  ASSERT_EQ(shape, (Ext3{1, 1, 3}));
  EXPECT_NEAR(w[0], 0.1, 1e-6);
  EXPECT_NEAR(w[1], 0.1 + 0.5 + 0.15, 1e-6);
  EXPECT_NEAR(w[2], 0.15, 1e-6);
  // A single voxel stays one; a factor of 1 changes nothing.
  shape = {1, 1, 1};
  EXPECT_EQ(resample_kernel({1.0f}, shape, {1, 2, 2}), std::vector<float>{1.0f});
  shape = {1, 3, 3};
  const std::vector<float> k{1, 2, 3, 4, 5, 6, 7, 8, 9};
  EXPECT_EQ(resample_kernel(k, shape, {1, 1, 1}), k);
  // 9 wide at level 0 is 5 wide at a 2x level and 3 wide at a 4x level; the sum is kept on
  // every axis at once, and the result is symmetric when the input is.
  for (const double f : {2.0, 4.0}) {
    Ext3 s3{9, 9, 9};
    std::vector<float> g(729);
    for (int z = 0; z < 9; ++z)
      for (int y = 0; y < 9; ++y)
        for (int x = 0; x < 9; ++x)
          g[std::size_t((z * 9 + y) * 9 + x)] = float(
              std::exp(-0.5 * ((z - 4) * (z - 4) + (y - 4) * (y - 4) + (x - 4) * (x - 4)) / 4.0));
    double sum = 0;
    for (float v : g)
      sum += v;
    const auto r = resample_kernel(g, s3, {f, f, f});
    const std::int64_t side = f == 2.0 ? 5 : 3;
    ASSERT_EQ(s3, (Ext3{side, side, side})) << f;
    double rsum = 0;
    for (float v : r)
      rsum += v;
    EXPECT_NEAR(rsum, sum, 1e-4 * sum) << f;
    const auto at = [&](std::int64_t z, std::int64_t y, std::int64_t x) {
      return r[std::size_t((z * side + y) * side + x)];
    };
    EXPECT_NEAR(at(0, 1, 2), at(side - 1, side - 2, side - 3), 1e-6) << f;
    EXPECT_GT(at(side / 2, side / 2, side / 2), at(0, side / 2, side / 2)) << f;
  }
}

}  // namespace
}  // namespace vx::pipeline
