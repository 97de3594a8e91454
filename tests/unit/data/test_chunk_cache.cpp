#include <fmt/format.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <future>
#include <mutex>
#include <optional>
#include <thread>

#include <unistd.h>

#include <fstream>

#include "core/huge_pages.hpp"
#include "data/chunk_cache.hpp"
#include "data/fetch_set.hpp"

namespace vx::data {
namespace {

// A 3-D uint16 source whose voxel value is a function of its coordinates; counts reads,
// can block, fail or report chunks missing.
class TestSource : public VolumeSource {
 public:
  TestSource(std::vector<std::int64_t> shape, std::vector<std::int64_t> chunks) {
    info_.location = "test:source";
    info_.format = "test";
    info_.dtype = DType::kUInt16;
    info_.fill_value = 9;
    info_.axes = {
        {"z", AxisType::kSpace, ""}, {"y", AxisType::kSpace, ""}, {"x", AxisType::kSpace, ""}};
    Level lv;
    lv.shape = std::move(shape);
    lv.chunks = std::move(chunks);
    lv.scale = {1, 1, 1};
    lv.translation = {0, 0, 0};
    info_.levels.push_back(lv);
  }
  static std::uint16_t value(std::int64_t z, std::int64_t y, std::int64_t x) {
    return std::uint16_t((z * 31 + y * 7 + x) & 0xFFFF);
  }
  const VolumeInfo& info() const override { return info_; }
  Result<ReadResult> read_chunk(int, const Index& idx, std::span<std::byte> out) const override {
    reads++;
    {
      std::unique_lock lock(m);
      order.push_back(idx);
      cv.wait(lock, [&] { return !blocked; });
    }
    if (idx[0] == fail_z)
      return fail(ErrorCode::kCorrupt, "chunk {}.{}.{}: broken", idx[0], idx[1], idx[2]);
    if (idx[0] == missing_z) return ReadResult{true, 0};
    const auto& lv = info_.levels[0];
    auto* o = reinterpret_cast<std::uint16_t*>(out.data());
    for (std::int64_t z = 0; z < lv.chunks[0]; ++z)
      for (std::int64_t y = 0; y < lv.chunks[1]; ++y)
        for (std::int64_t x = 0; x < lv.chunks[2]; ++x)
          *o++ = value(idx[0] * lv.chunks[0] + z, idx[1] * lv.chunks[1] + y,
                       idx[2] * lv.chunks[2] + x);
    return ReadResult{false, out.size() / 2};
  }
  void block() {
    std::lock_guard l(m);
    blocked = true;
  }
  void unblock() {
    {
      std::lock_guard l(m);
      blocked = false;
    }
    cv.notify_all();
  }

  mutable std::atomic<int> reads{0};
  mutable std::mutex m;
  mutable std::condition_variable cv;
  mutable std::vector<Index> order;
  bool blocked = false;
  std::int64_t fail_z = -1, missing_z = -1;

 private:
  VolumeInfo info_;
};

constexpr std::size_t kChunkBytes = 8 * 8 * 8 * 2;

TEST(ChunkCache, HitAfterMissAndCounters) {
  auto src = std::make_shared<TestSource>(std::vector<std::int64_t>{16, 16, 16},
                                          std::vector<std::int64_t>{8, 8, 8});
  ChunkCache cache(CacheOptions{1 << 20, 2, 4});
  const auto id = cache.add_source(src);
  auto a = cache.get(id, 0, Index{1, 0, 1});
  ASSERT_TRUE(a) << a.error().what();
  EXPECT_EQ(a->as<std::uint16_t>()[0], TestSource::value(8, 0, 8));
  EXPECT_FALSE(cache.try_get(id, 0, Index{0, 0, 0}).has_value());
  auto b = cache.try_get(id, 0, Index{1, 0, 1});
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(b->bytes().data(), a->bytes().data());  // the same resident buffer, no copy
  const auto c = cache.counters();
  EXPECT_EQ(c.misses, 1u);
  EXPECT_EQ(c.hits, 1u);
  EXPECT_EQ(c.bytes_decoded, kChunkBytes);
  EXPECT_EQ(c.bytes_read, kChunkBytes / 2);
  EXPECT_EQ(c.entries, 1u);
  EXPECT_EQ(src->reads.load(), 1);
}

TEST(ChunkCache, ConcurrentRequestsForOneChunkShareOneRead) {
  auto src = std::make_shared<TestSource>(std::vector<std::int64_t>{8, 8, 8},
                                          std::vector<std::int64_t>{8, 8, 8});
  src->block();
  ChunkCache cache(CacheOptions{1 << 20, 4, 4});
  const auto id = cache.add_source(src);
  std::atomic<int> delivered{0};
  std::vector<ChunkPin> pins(10);
  std::mutex m;
  for (int i = 0; i < 10; ++i)
    cache.request(id, 0, Index{0, 0, 0}, kPriorityVisible, [&, i](Result<ChunkPin> r) {
      ASSERT_TRUE(r);
      std::lock_guard l(m);
      pins[std::size_t(i)] = std::move(*r);
      delivered++;
    });
  src->unblock();
  while (delivered.load() < 10)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EXPECT_EQ(src->reads.load(), 1);
  EXPECT_EQ(cache.counters().joined, 9u);
  for (auto& p : pins)
    EXPECT_EQ(p.bytes().data(), pins[0].bytes().data());
}

TEST(ChunkCache, StaysWithinBudgetEvictingLeastRecentlyUsed) {
  auto src = std::make_shared<TestSource>(std::vector<std::int64_t>{64, 8, 8},
                                          std::vector<std::int64_t>{8, 8, 8});
  // Room for about 4 chunks (each is charged its bytes plus a small overhead).
  ChunkCache cache(CacheOptions{4 * (kChunkBytes + 256), 2, 1});
  const auto id = cache.add_source(src);
  for (int z = 0; z < 4; ++z)
    ASSERT_TRUE(cache.get(id, 0, Index{z, 0, 0}));
  ASSERT_TRUE(cache.try_get(id, 0, Index{0, 0, 0}));  // touch 0: now 1 is the oldest
  ASSERT_TRUE(cache.get(id, 0, Index{4, 0, 0}));
  EXPECT_TRUE(cache.try_get(id, 0, Index{0, 0, 0}).has_value());
  EXPECT_FALSE(cache.try_get(id, 0, Index{1, 0, 0}).has_value());
  for (int z = 0; z < 8; ++z)
    ASSERT_TRUE(cache.get(id, 0, Index{z, 0, 0}));
  const auto c = cache.counters();
  EXPECT_LE(c.bytes_cached, cache.budget_bytes());
  EXPECT_GE(c.evictions, 4u);
}

// Resident memory of this process (/proc/self/statm), bytes.
std::uint64_t resident_bytes() {
  std::ifstream in("/proc/self/statm");
  std::uint64_t size = 0, resident = 0;
  in >> size >> resident;
  return resident * std::uint64_t(sysconf(_SC_PAGESIZE));
}

TEST(ChunkCache, MemoryHeldFollowsTheBudgetAndGoesBackWithTheCache) {
  // 256 chunks of 512 KiB (128 MiB) read one after another through a 16 MiB budget. Chunk
  // buffers come from huge pages where they fit (core/huge_pages.hpp); evicted ones are
  // reused for the next reads, and all of them go back to the system with the cache.
  constexpr std::int64_t kChunks = 256;
  auto src = std::make_shared<TestSource>(std::vector<std::int64_t>{64 * kChunks, 64, 64},
                                          std::vector<std::int64_t>{64, 64, 64});
  const std::uint64_t budget = std::uint64_t(16) << 20;
  const auto before = resident_bytes();
  const auto arena_before = HugePageArena::shared().stats();
  std::uint64_t peak = 0;
  {
    ChunkCache cache(CacheOptions{budget, 2, 1});
    const auto id = cache.add_source(src);
    for (std::int64_t z = 0; z < kChunks; ++z) {
      ASSERT_TRUE(cache.get(id, 0, Index{z, 0, 0}));
      if (z % 16 == 15) peak = std::max(peak, resident_bytes());
    }
    EXPECT_GE(cache.counters().evictions, std::uint64_t(kChunks - 32));
    const auto live = HugePageArena::shared().stats().bytes_live - arena_before.bytes_live;
    EXPECT_LE(live, budget + budget / 8 + (std::uint64_t(4) << 20))
        << "the arena holds more than the cache and its pool of free buffers";
  }
  // The budget, the pool of free buffers (an eighth of it), the blocks a request holds
  // while it is decoded, and slack for the allocator: far from the 128 MiB read.
  const auto grown = peak > before ? peak - before : 0;
  EXPECT_LT(grown, budget + (std::uint64_t(40) << 20))
      << "resident memory grew by " << (grown >> 20) << " MiB reading through a " << (budget >> 20)
      << " MiB cache";
  const auto arena_after = HugePageArena::shared().stats();
  EXPECT_EQ(arena_after.bytes_live, arena_before.bytes_live) << "the cache's buffers stay taken";
  EXPECT_LE(arena_after.bytes_mapped, arena_before.bytes_mapped)
      << "regions stay mapped after their buffers are gone";
  // new[] (VOXCAST_HUGE_PAGES=0, sanitizer builds) may keep freed memory for reuse
  // (AddressSanitizer's quarantine does): only the arena promises it back.
  if (!huge_buffers_on()) return;
  const auto after = resident_bytes();
  EXPECT_LT(after, before + (std::uint64_t(12) << 20))
      << "resident memory stays " << ((after - before) >> 20) << " MiB up after the cache is gone";
}

TEST(ChunkCache, PartialReadsGiveUpAtTheDeadlineAndTheReadsLandLater) {
  auto src = std::make_shared<TestSource>(std::vector<std::int64_t>{32, 8, 8},
                                          std::vector<std::int64_t>{8, 8, 8});
  ChunkCache cache(CacheOptions{64 * kChunkBytes, 2, 1});
  const auto id = cache.add_source(src);
  ASSERT_TRUE(cache.get(id, 0, Index{0, 0, 0}));  // a hit: never waited for
  src->block();                                   // the others cannot be read for now
  const std::vector<Index> want{{0, 0, 0}, {1, 0, 0}, {2, 0, 0}};
  const auto t0 = std::chrono::steady_clock::now();
  auto got =
      get_chunks_partial(cache, id, 0, want, kPriorityVisible, t0 + std::chrono::milliseconds(200));
  const auto waited = std::chrono::steady_clock::now() - t0;
  EXPECT_LT(waited, std::chrono::seconds(5)) << "it waited for the blocked reads";
  ASSERT_EQ(got.pins.size(), 3u);
  EXPECT_TRUE(got.pins[0]);
  ASSERT_EQ(got.failed.size(), 2u);
  EXPECT_EQ(got.failed[0].first, 1u);
  EXPECT_EQ(got.failed[1].first, 2u);
  EXPECT_EQ(got.failed[0].second.code, ErrorCode::kBusy);
  EXPECT_NE(got.failed[0].second.message.find("not ready within"), std::string::npos);
  // The reads go on after the caller has gone, and land in the cache.
  src->unblock();
  // Two reader threads: the chunks land in either order, so wait for both.
  const auto landed = [&] {
    return cache.try_get(id, 0, Index{1, 0, 0}) && cache.try_get(id, 0, Index{2, 0, 0});
  };
  for (int i = 0; i < 500 && !landed(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_TRUE(cache.try_get(id, 0, Index{1, 0, 0}));
  EXPECT_TRUE(cache.try_get(id, 0, Index{2, 0, 0}));
  // Without a deadline, it waits for every chunk.
  auto all = get_chunks_partial(cache, id, 0, std::vector<Index>{{3, 0, 0}});
  EXPECT_TRUE(all.pins[0]);
  EXPECT_TRUE(all.failed.empty());
}

TEST(ChunkCache, PartialReadsStopWhenCancelledAndTheQueuedReadsAreDropped) {
  auto src = std::make_shared<TestSource>(std::vector<std::int64_t>{64, 8, 8},
                                          std::vector<std::int64_t>{8, 8, 8});
  ChunkCache cache(CacheOptions{64 * kChunkBytes, 1, 1});  // one reader: the rest queue
  const auto id = cache.add_source(src);
  ASSERT_TRUE(cache.get(id, 0, Index{0, 0, 0}));
  src->block();
  std::vector<Index> want;
  for (int z = 0; z < 8; ++z)
    want.push_back(Index{z, 0, 0});
  std::atomic<bool> cancel{false};
  std::thread stopper([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    cancel = true;
  });
  auto got = get_chunks_partial(cache, id, 0, want, kPriorityVisible, std::nullopt, &cancel);
  stopper.join();
  EXPECT_TRUE(got.pins[0]);  // the hit
  ASSERT_EQ(got.failed.size(), 7u);
  for (const auto& [i, e] : got.failed) {
    EXPECT_EQ(e.code, ErrorCode::kCancelled) << i;
    EXPECT_NE(e.message.find("cancelled"), std::string::npos) << e.message;
  }
  // The one read in progress finishes; the six queued behind it are never made.
  src->unblock();
  const auto landed = [&] {
    int n = 0;
    for (int z = 1; z < 8; ++z)
      n += cache.try_get(id, 0, Index{z, 0, 0}).has_value();
    return n;
  };
  for (int i = 0; i < 500 && landed() == 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(src->reads.load(), 2) << "queued reads nobody wants were still made";
  EXPECT_EQ(landed(), 1);
  EXPECT_GE(cache.counters().cancelled, 6u);
  // Not cancelled: it waits for every chunk.
  std::atomic<bool> never{false};
  auto all = get_chunks_partial(cache, id, 0, want, kPriorityVisible, std::nullopt, &never);
  EXPECT_TRUE(all.failed.empty());
  EXPECT_EQ(src->reads.load(), 8);
}

TEST(ChunkCache, PinnedChunksAreNeverEvictedAndPinsOutliveTheCache) {
  auto src = std::make_shared<TestSource>(std::vector<std::int64_t>{64, 8, 8},
                                          std::vector<std::int64_t>{8, 8, 8});
  ChunkPin keep;
  {
    ChunkCache cache(CacheOptions{2 * (kChunkBytes + 256), 2, 1});
    const auto id = cache.add_source(src);
    auto p = cache.get(id, 0, Index{0, 0, 0});
    ASSERT_TRUE(p);
    keep = std::move(*p);
    for (int z = 1; z < 8; ++z)
      ASSERT_TRUE(cache.get(id, 0, Index{z, 0, 0}));
    EXPECT_TRUE(cache.try_get(id, 0, Index{0, 0, 0}).has_value());
    EXPECT_EQ(src->reads.load(), 8);
  }
  EXPECT_EQ(keep.as<std::uint16_t>()[5], TestSource::value(0, 0, 5));  // still valid
}

TEST(ChunkCache, VisibleRequestsAreReadBeforePrefetch) {
  auto src = std::make_shared<TestSource>(std::vector<std::int64_t>{64, 8, 8},
                                          std::vector<std::int64_t>{8, 8, 8});
  ChunkCache cache(CacheOptions{1 << 20, 1, 4});
  const auto id = cache.add_source(src);
  src->block();
  std::atomic<int> done{0};
  auto cb = [&](Result<ChunkPin>) { done++; };
  cache.request(id, 0, Index{0, 0, 0}, kPriorityPrefetch, cb);  // occupies the only thread
  while (src->reads.load() == 0)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  for (int z = 1; z <= 3; ++z)
    cache.request(id, 0, Index{z, 0, 0}, kPriorityPrefetch, cb);
  cache.request(id, 0, Index{7, 0, 0}, kPriorityVisible, cb);
  src->unblock();
  while (done.load() < 5)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  std::lock_guard l(src->m);
  ASSERT_EQ(src->order.size(), 5u);
  EXPECT_EQ(src->order[1][0], 7);  // first after the blocked one
  EXPECT_EQ(src->order[2][0], 1);  // then FIFO among prefetches
}

TEST(ChunkCache, CancelledRequestsAreNotRead) {
  auto src = std::make_shared<TestSource>(std::vector<std::int64_t>{64, 8, 8},
                                          std::vector<std::int64_t>{8, 8, 8});
  ChunkCache cache(CacheOptions{1 << 20, 1, 4});
  const auto id = cache.add_source(src);
  src->block();
  std::atomic<int> done{0};
  cache.request(id, 0, Index{0, 0, 0}, kPriorityVisible, [&](Result<ChunkPin>) { done++; });
  while (src->reads.load() == 0)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  std::atomic<int> cancelled_calls{0};
  auto t = cache.request(id, 0, Index{1, 0, 0}, kPriorityVisible,
                         [&](Result<ChunkPin>) { cancelled_calls++; });
  t.cancel();
  EXPECT_TRUE(t.cancelled());
  cache.request(id, 0, Index{2, 0, 0}, kPriorityPrefetch, [&](Result<ChunkPin>) { done++; });
  src->unblock();
  while (done.load() < 2)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EXPECT_EQ(src->reads.load(), 2);
  EXPECT_EQ(cancelled_calls.load(), 0);
  EXPECT_EQ(cache.counters().cancelled, 1u);
  // A later request for the cancelled chunk reads it normally.
  EXPECT_TRUE(cache.get(id, 0, Index{1, 0, 0}));
}

// A computed source: each chunk is its input chunk plus one; counts computations.
class PlusOne : public ComputedSource {
 public:
  PlusOne(ChunkCache& cache, SourceId input) : cache_(cache), input_(input) {
    info_ = cache.source(input).info();
    info_.location = "test:plus-one";
  }
  const VolumeInfo& info() const override { return info_; }
  ChunkCache& input_cache() const override { return cache_; }
  Result<std::vector<ChunkKey>> inputs(int level, const Index& index) const override {
    return std::vector<ChunkKey>{{input_, level, index}};
  }
  Result<ReadResult> compute(int, const Index&, std::span<const ChunkPin> pins,
                             std::span<std::byte> out) const override {
    computes++;
    const auto in = pins[0].bytes();
    for (std::size_t i = 0; i + 1 < out.size(); i += 2) {
      std::uint16_t v;
      std::memcpy(&v, in.data() + i, 2);
      v = std::uint16_t(v + 1);
      std::memcpy(out.data() + i, &v, 2);
    }
    return ReadResult{false, out.size() / 2};
  }
  mutable std::atomic<int> computes{0};

 private:
  ChunkCache& cache_;
  SourceId input_;
  VolumeInfo info_;
};

TEST(ChunkCache, CancelledComputationsDoNotRunAndReleaseTheirInputs) {
  // A view that moved on (every request for a computed chunk cancelled) while the chunk's
  // inputs were being read: the computation is dropped, not run, and the input it pinned is
  // released (the cache can evict it). A later request computes it normally.
  auto src = std::make_shared<TestSource>(std::vector<std::int64_t>{16, 8, 8},
                                          std::vector<std::int64_t>{8, 8, 8});
  ChunkCache cache(CacheOptions{1 << 20, 1, 4});
  const auto in = cache.add_source(src);
  auto plus = std::make_shared<PlusOne>(cache, in);
  const auto id = cache.add_source(plus);
  src->block();
  std::atomic<int> calls{0};
  auto req =
      cache.request(id, 0, Index{1, 0, 0}, kPriorityVisible, [&](Result<ChunkPin>) { calls++; });
  while (src->reads.load() == 0)  // the input's read has started (blocked)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  req.cancel();
  src->unblock();
  // The input arrives (it stays cached); its computation must not run.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!cache.try_get(in, 0, Index{1, 0, 0}) && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  ASSERT_TRUE(cache.try_get(in, 0, Index{1, 0, 0})) << "the input was never read";
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // what a computation would take
  EXPECT_EQ(plus->computes.load(), 0);
  EXPECT_EQ(calls.load(), 0);
  EXPECT_GE(cache.counters().cancelled, 1u);
  EXPECT_FALSE(cache.try_get(id, 0, Index{1, 0, 0}));
  // Nothing holds the input any more: the cache can evict it (reclaiming all of the budget
  // evicts every unpinned chunk).
  cache.budget().reclaim(cache.budget().limit());
  EXPECT_FALSE(cache.try_get(in, 0, Index{1, 0, 0})) << "the dropped computation kept its pin";
  // Asked again, it is computed.
  auto got = cache.get(id, 0, Index{1, 0, 0});
  ASSERT_TRUE(got);
  std::uint16_t v;
  std::memcpy(&v, got->bytes().data(), 2);
  EXPECT_EQ(v, TestSource::value(8, 0, 0) + 1);
  EXPECT_EQ(plus->computes.load(), 1);
}

TEST(ChunkCache, ARemovedSourceFreesItsChunksAndRefusesNewRequests) {
  // A server drops derived sources nobody names any more (stream::DerivedCatalog): their
  // unpinned chunks go at once, pinned ones stay valid, new requests fail naming the id, a
  // read already running lands safely, and the other sources are untouched.
  auto src = std::make_shared<TestSource>(std::vector<std::int64_t>{32, 8, 8},
                                          std::vector<std::int64_t>{8, 8, 8});
  auto other = std::make_shared<TestSource>(std::vector<std::int64_t>{8, 8, 8},
                                            std::vector<std::int64_t>{8, 8, 8});
  std::weak_ptr<TestSource> gone = src;
  ChunkCache cache(CacheOptions{1 << 20, 2, 4});
  const auto id = cache.add_source(src);
  const auto keep_id = cache.add_source(other);
  ASSERT_TRUE(cache.get(keep_id, 0, Index{0, 0, 0}));
  for (int z = 0; z < 3; ++z)
    ASSERT_TRUE(cache.get(id, 0, Index{z, 0, 0}));
  auto pinned = cache.get(id, 0, Index{0, 0, 0});
  ASSERT_TRUE(pinned);
  // A read in flight when the source goes (blocked inside read_chunk).
  src->block();
  std::promise<Result<ChunkPin>> late;
  cache.request(id, 0, Index{3, 0, 0}, kPriorityVisible,
                [&](Result<ChunkPin> r) { late.set_value(std::move(r)); });
  while (src->reads.load() < 4)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EXPECT_EQ(cache.counters().sources, 2u);
  EXPECT_EQ(cache.counters().entries, 4u);
  cache.remove_source(id);
  src.reset();  // the cache's slot and the running read hold it now
  const auto c = cache.counters();
  EXPECT_EQ(c.sources, 1u);
  EXPECT_EQ(c.entries, 2u) << "the unpinned chunks of the removed source stayed";
  EXPECT_EQ(pinned->as<std::uint16_t>()[3], TestSource::value(0, 0, 3));
  auto again = cache.get(id, 0, Index{1, 0, 0});
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, ErrorCode::kNotFound);
  EXPECT_NE(again.error().message.find(fmt::format("source id {}", id)), std::string::npos)
      << again.error().message;
  EXPECT_THROW((void)cache.source(id), std::out_of_range);
  ASSERT_FALSE(gone.expired()) << "the running read lost its source";
  gone.lock()->unblock();
  auto r = late.get_future().get();
  ASSERT_TRUE(r) << r.error().what();
  EXPECT_EQ(r->as<std::uint16_t>()[0], TestSource::value(24, 0, 0));
  EXPECT_TRUE(cache.try_get(keep_id, 0, Index{0, 0, 0}).has_value());
  cache.remove_source(id);  // twice: ignored
  cache.remove_source(9999);
  // The source itself goes once the last read is done with it.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!gone.expired() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EXPECT_TRUE(gone.expired()) << "the removed source was never freed";
  // Ids are not reused: a new source does not see the old one's chunks.
  const auto fresh = cache.add_source(other);
  EXPECT_NE(fresh, id);
  EXPECT_FALSE(cache.try_get(fresh, 0, Index{1, 0, 0}).has_value());
}

TEST(ChunkCache, ErrorsAreRetriedThenRememberedForEveryWaiter) {
  auto src = std::make_shared<TestSource>(std::vector<std::int64_t>{16, 8, 8},
                                          std::vector<std::int64_t>{8, 8, 8});
  src->fail_z = 1;
  CacheOptions o{1 << 20, 2, 4};
  o.retries = 2;
  o.retry_backoff_ms = 1;
  ChunkCache cache(o);
  const auto id = cache.add_source(src);
  auto r = cache.get(id, 0, Index{1, 0, 0});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kCorrupt);
  EXPECT_NE(r.error().message.find("chunk 1.0.0"), std::string::npos);
  EXPECT_EQ(src->reads.load(), 3);  // the first try and two retries
  EXPECT_EQ(cache.counters().retries, 2u);
  EXPECT_EQ(cache.counters().errors, 1u);
  // Remembered: the next request gets the same error at once, without reading.
  auto again = cache.get(id, 0, Index{1, 0, 0});
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().message, r.error().message);
  EXPECT_EQ(src->reads.load(), 3);
  EXPECT_EQ(cache.counters().failed_hits, 1u);
  EXPECT_FALSE(cache.try_get(id, 0, Index{1, 0, 0}).has_value());
  auto out = cache.get(id, 0, Index{5, 0, 0});
  ASSERT_FALSE(out);
  EXPECT_EQ(out.error().code, ErrorCode::kInvalidArgument);
}

TEST(ChunkCache, FailuresAreForgottenAfterTheirTime) {
  auto src = std::make_shared<TestSource>(std::vector<std::int64_t>{16, 8, 8},
                                          std::vector<std::int64_t>{8, 8, 8});
  src->fail_z = 1;
  CacheOptions o{1 << 20, 2, 4};
  o.retries = 0;
  o.failure_ttl_ms = 0;  // not remembered
  ChunkCache cache(o);
  const auto id = cache.add_source(src);
  EXPECT_FALSE(cache.get(id, 0, Index{1, 0, 0}));
  EXPECT_FALSE(cache.get(id, 0, Index{1, 0, 0}));
  EXPECT_EQ(src->reads.load(), 2);
  src->fail_z = -1;  // the storage recovered
  EXPECT_TRUE(cache.get(id, 0, Index{1, 0, 0}));
}

// Blocks the only I/O thread with chunk 0, then runs `body` with the queue filling behind it.
template <class F>
void with_blocked_thread(TestSource& src, ChunkCache& cache, SourceId id, F body) {
  src.block();
  std::atomic<bool> first{false};
  cache.request(id, 0, Index{0, 0, 0}, kPriorityPrefetch, [&](Result<ChunkPin>) { first = true; });
  while (src.reads.load() == 0)
    std::this_thread::yield();
  body();
  src.unblock();
  while (!first.load())
    std::this_thread::yield();
}

TEST(ChunkCache, EvictsTheLeastRecentlyUsedChunkOfAllShards) {
  auto src = std::make_shared<TestSource>(std::vector<std::int64_t>{128, 8, 8},
                                          std::vector<std::int64_t>{8, 8, 8});
  ChunkCache cache(CacheOptions{8 * (kChunkBytes + 256), 2, 16});  // room for 8 chunks
  const auto id = cache.add_source(src);
  for (int z = 0; z < 8; ++z)
    ASSERT_TRUE(cache.get(id, 0, Index{z, 0, 0}));
  for (int z = 0; z < 4; ++z)  // used again: now the most recent
    ASSERT_TRUE(cache.try_get(id, 0, Index{z, 0, 0}).has_value());
  for (int z = 8; z < 12; ++z)
    ASSERT_TRUE(cache.get(id, 0, Index{z, 0, 0}));
  for (int z = 0; z < 4; ++z)
    EXPECT_TRUE(cache.try_get(id, 0, Index{z, 0, 0}).has_value()) << "chunk " << z;
  for (int z = 4; z < 8; ++z)
    EXPECT_FALSE(cache.try_get(id, 0, Index{z, 0, 0}).has_value()) << "chunk " << z;
  EXPECT_EQ(cache.counters().evictions, 4u);
}

TEST(ChunkCache, RaisingAPriorityMovesTheQueuedReadWithoutASecondOne) {
  auto src = std::make_shared<TestSource>(std::vector<std::int64_t>{64, 8, 8},
                                          std::vector<std::int64_t>{8, 8, 8});
  ChunkCache cache(CacheOptions{1 << 20, 1, 4});
  const auto id = cache.add_source(src);
  std::atomic<int> done{0};
  auto cb = [&](Result<ChunkPin> r) {
    EXPECT_TRUE(r);
    done++;
  };
  with_blocked_thread(*src, cache, id, [&] {
    for (int z = 1; z <= 3; ++z)
      cache.request(id, 0, Index{z, 0, 0}, kPriorityPrefetch, cb);
    cache.request(id, 0, Index{3, 0, 0}, kPriorityVisible, cb);  // the last one, now urgent
    EXPECT_EQ(cache.counters().queued, 3u);                      // moved, not queued twice
    EXPECT_EQ(cache.counters().joined, 1u);
  });
  while (done.load() < 4)
    std::this_thread::yield();
  std::lock_guard l(src->m);
  ASSERT_EQ(src->order.size(), 4u);  // 0, then 3, 1, 2: each read once
  EXPECT_EQ(src->order[1][0], 3);
  EXPECT_EQ(src->order[2][0], 1);
  EXPECT_EQ(src->order[3][0], 2);
}

TEST(ChunkCache, CancellingTheLastRequestTakesTheReadOutOfTheQueue) {
  auto src = std::make_shared<TestSource>(std::vector<std::int64_t>{64, 8, 8},
                                          std::vector<std::int64_t>{8, 8, 8});
  ChunkCache cache(CacheOptions{1 << 20, 1, 4});
  const auto id = cache.add_source(src);
  std::atomic<int> calls{0};
  with_blocked_thread(*src, cache, id, [&] {
    auto a = cache.request(id, 0, Index{1, 0, 0}, kPriorityVisible, [&](auto) { calls++; });
    auto b = cache.request(id, 0, Index{1, 0, 0}, kPriorityVisible, [&](auto) { calls++; });
    a.cancel();
    EXPECT_EQ(cache.counters().queued, 1u);  // b still wants it
    b.cancel();
    EXPECT_EQ(cache.counters().queued, 0u);  // gone from the queue at once
    EXPECT_EQ(cache.counters().cancelled, 1u);
  });
  EXPECT_TRUE(cache.get(id, 0, Index{2, 0, 0}));  // the thread moved on past nothing
  EXPECT_EQ(src->reads.load(), 2);
  EXPECT_EQ(calls.load(), 0);
  EXPECT_TRUE(cache.get(id, 0, Index{1, 0, 0}));  // asked again: read normally
}

TEST(ChunkCache, AFullQueueDropsItsLowestPriorityRead) {
  auto src = std::make_shared<TestSource>(std::vector<std::int64_t>{64, 8, 8},
                                          std::vector<std::int64_t>{8, 8, 8});
  CacheOptions o{1 << 20, 1, 4};
  o.max_queued = 2;
  ChunkCache cache(o);
  const auto id = cache.add_source(src);
  std::atomic<int> ok{0};
  std::optional<Error> dropped;
  std::mutex m;
  with_blocked_thread(*src, cache, id, [&] {
    cache.request(id, 0, Index{1, 0, 0}, kPriorityPrefetch, [&](Result<ChunkPin> r) {
      std::lock_guard l(m);
      if (r)
        ok++;
      else
        dropped = r.error();
    });
    for (int z : {2, 3})
      cache.request(id, 0, Index{z, 0, 0}, kPriorityVisible, [&](Result<ChunkPin> r) {
        if (r) ok++;
      });
    EXPECT_EQ(cache.counters().queued, 2u);
    EXPECT_EQ(cache.counters().dropped, 1u);
  });
  while (ok.load() < 2)
    std::this_thread::yield();
  std::lock_guard l(m);
  ASSERT_TRUE(dropped.has_value());
  EXPECT_EQ(dropped->code, ErrorCode::kBusy);
  EXPECT_EQ(ok.load(), 2);
}

TEST(ChunkCache, VisiblePrioritiesRankCoarseThenCentreAboveEveryPrefetch) {
  EXPECT_GT(visible_priority(3, 0.9), visible_priority(2, 0.0));  // coarse first
  EXPECT_GT(visible_priority(2, 0.1), visible_priority(2, 0.5));  // then the centre
  EXPECT_GT(visible_priority(0, 1.0), prefetch_priority(30, 0.0));
  EXPECT_EQ(visible_priority(1, -3), visible_priority(1, 0));  // clamped
}

TEST(FetchSet, AsksOnceReportsArrivalsAndCancelsWhatTheViewDropped) {
  auto src = std::make_shared<TestSource>(std::vector<std::int64_t>{64, 8, 8},
                                          std::vector<std::int64_t>{8, 8, 8});
  ChunkCache cache(CacheOptions{1 << 20, 1, 4});
  const auto id = cache.add_source(src);
  FetchSet fetch(cache);
  std::atomic<int> events{0};
  fetch.set_listener([&](bool) { events++; });
  with_blocked_thread(*src, cache, id, [&] {
    ChunkPin pin;
    fetch.begin_round();
    for (int round = 0; round < 3; ++round)  // a frame that asks three times asks once
      for (int z : {1, 2, 3})
        EXPECT_EQ(fetch.want(id, 0, Index{z, 0, 0}, visible_priority(0, 0), pin),
                  FetchSet::State::kPending);
    fetch.end_round();
    EXPECT_EQ(fetch.pending(), 3u);
    EXPECT_EQ(cache.counters().queued, 3u);
    EXPECT_EQ(cache.counters().misses, 4u);  // chunk 0 and three, no second requests
    // The view moves: only chunk 2 is still needed; 1 and 3 leave the queue.
    fetch.begin_round();
    EXPECT_EQ(fetch.want(id, 0, Index{2, 0, 0}, visible_priority(0, 0), pin),
              FetchSet::State::kPending);
    fetch.end_round();
    EXPECT_EQ(fetch.pending(), 1u);
    EXPECT_EQ(cache.counters().queued, 1u);
  });
  // The arrival is counted before the listener runs (on the I/O thread): wait for both.
  while (fetch.pending() > 0 || events.load() == 0)
    std::this_thread::yield();
  EXPECT_EQ(events.load(), 1);
  EXPECT_EQ(src->reads.load(), 2);  // 0 and 2
  ChunkPin pin;
  fetch.begin_round();
  EXPECT_EQ(fetch.want(id, 0, Index{2, 0, 0}, visible_priority(0, 0), pin),
            FetchSet::State::kReady);
  EXPECT_EQ(pin.as<std::uint16_t>()[0], TestSource::value(16, 0, 0));
}

TEST(FetchSet, AFailedChunkIsReportedOnceAndNotAskedForAgain) {
  auto src = std::make_shared<TestSource>(std::vector<std::int64_t>{64, 8, 8},
                                          std::vector<std::int64_t>{8, 8, 8});
  src->fail_z = 4;
  CacheOptions o{1 << 20, 2, 4};
  o.retry_backoff_ms = 1;
  ChunkCache cache(o);
  const auto id = cache.add_source(src);
  FetchSet fetch(cache);
  std::atomic<int> failures{0};
  fetch.set_listener([&](bool failed) { failures += failed; });
  ChunkPin pin;
  fetch.begin_round();
  EXPECT_EQ(fetch.want(id, 0, Index{4, 0, 0}, visible_priority(0, 0), pin),
            FetchSet::State::kPending);
  fetch.end_round();
  while (failures.load() == 0)
    std::this_thread::yield();
  const int reads = src->reads.load();
  for (int frame = 0; frame < 5; ++frame) {  // the frames that follow draw without it
    fetch.begin_round();
    EXPECT_EQ(fetch.want(id, 0, Index{4, 0, 0}, visible_priority(0, 0), pin),
              FetchSet::State::kFailed);
    fetch.end_round();
  }
  EXPECT_EQ(src->reads.load(), reads);
  EXPECT_EQ(failures.load(), 1);
  auto f = fetch.take_failures();
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0].index[0], 4);
  EXPECT_NE(f[0].error.message.find("broken"), std::string::npos);
  EXPECT_TRUE(fetch.take_failures().empty());  // once
  EXPECT_EQ(fetch.pending(), 0u);
}

TEST(ChunkCache, MissingChunksReadAsTheFillValue) {
  auto src = std::make_shared<TestSource>(std::vector<std::int64_t>{16, 8, 8},
                                          std::vector<std::int64_t>{8, 8, 8});
  src->missing_z = 0;
  ChunkCache cache(CacheOptions{1 << 20, 2, 4});
  const auto id = cache.add_source(src);
  auto p = cache.get(id, 0, Index{0, 0, 0});
  ASSERT_TRUE(p);
  EXPECT_TRUE(p->is_fill());
  for (auto v : p->as<std::uint16_t>())
    ASSERT_EQ(v, 9);
  EXPECT_EQ(cache.counters().missing, 1u);
  EXPECT_LT(cache.counters().bytes_cached, kChunkBytes);  // shared fill buffer, not a copy
}

TEST(ReadRegion, CopiesAcrossChunkBoundariesAndFillsOutside) {
  auto src = std::make_shared<TestSource>(std::vector<std::int64_t>{20, 13, 11},
                                          std::vector<std::int64_t>{8, 5, 4});
  ChunkCache cache(CacheOptions{1 << 20, 3, 4});
  const auto id = cache.add_source(src);
  const std::int64_t start[3] = {5, -2, 3}, shape[3] = {16, 9, 10};
  std::vector<std::uint16_t> out(16 * 9 * 10);
  auto st = read_region(cache, id, 0, start, shape, std::as_writable_bytes(std::span(out)));
  ASSERT_TRUE(st) << st.error().what();
  for (std::int64_t z = 0; z < 16; ++z)
    for (std::int64_t y = 0; y < 9; ++y)
      for (std::int64_t x = 0; x < 10; ++x) {
        const auto gz = start[0] + z, gy = start[1] + y, gx = start[2] + x;
        const bool inside = gz < 20 && gy >= 0 && gy < 13 && gx < 11;
        ASSERT_EQ(out[std::size_t((z * 9 + y) * 10 + x)],
                  inside ? TestSource::value(gz, gy, gx) : 9)
            << z << "," << y << "," << x;
      }
  std::vector<std::uint16_t> small(3);
  EXPECT_FALSE(read_region(cache, id, 0, start, shape, std::as_writable_bytes(std::span(small))));
}

}  // namespace
}  // namespace vx::data

namespace vx::data {
namespace {

TEST(FetchSet, PrefetchesAreReadQuietlyAndBecomeNeededWhenAsked) {
  auto src = std::make_shared<TestSource>(std::vector<std::int64_t>{64, 8, 8},
                                          std::vector<std::int64_t>{8, 8, 8});
  ChunkCache cache(CacheOptions{1 << 20, 1, 4});
  const auto id = cache.add_source(src);
  FetchSet fetch(cache);
  std::atomic<int> events{0};
  fetch.set_listener([&](bool) { events++; });
  with_blocked_thread(*src, cache, id, [&] {
    ChunkPin pin;
    fetch.begin_round();
    EXPECT_EQ(fetch.want(id, 0, Index{1, 0, 0}, prefetch_priority(0, 0), pin, true),
              FetchSet::State::kPending);
    EXPECT_EQ(fetch.want(id, 0, Index{2, 0, 0}, prefetch_priority(0, 0), pin, true),
              FetchSet::State::kPending);
    EXPECT_EQ(fetch.pending(), 0u);  // nothing the view waits for
    // Chunk 2 is needed now: it moves up and is waited for.
    EXPECT_EQ(fetch.want(id, 0, Index{2, 0, 0}, visible_priority(0, 0), pin),
              FetchSet::State::kPending);
    fetch.end_round();
    EXPECT_EQ(fetch.pending(), 1u);
    EXPECT_EQ(cache.counters().queued, 2u);
  });
  while (cache.counters().misses - cache.counters().cancelled < 3 ||
         cache.try_get(id, 0, Index{1, 0, 0}) == std::nullopt ||
         cache.try_get(id, 0, Index{2, 0, 0}) == std::nullopt)
    std::this_thread::yield();
  while (fetch.pending() > 0)
    std::this_thread::yield();
  std::lock_guard l(src->m);
  EXPECT_EQ(src->order[1][0], 2);  // the needed one first
  EXPECT_EQ(events.load(), 1);     // and only its arrival is an event
}

}  // namespace
}  // namespace vx::data
