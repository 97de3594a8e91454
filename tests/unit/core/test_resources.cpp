#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/resources.hpp"

namespace vx {
namespace {

TEST(Budget, ChargesAndReleasesWithinTheLimit) {
  Budget b("host", 1000);
  auto h = b.add_holder("cache", kRankCache);
  ASSERT_TRUE(h.charge(600));
  EXPECT_EQ(b.used(), 600u);
  EXPECT_EQ(h.bytes(), 600u);
  h.release(200);
  EXPECT_EQ(b.used(), 400u);
  EXPECT_EQ(b.snapshot().peak, 600u);
}

TEST(Budget, RefusalNamesTheBudgetAndWhatHoldsIt) {
  Budget b("host", 1000);
  auto pinned = b.add_holder("chunk_cache", kRankCache);  // no evictor: nothing can go
  ASSERT_TRUE(pinned.charge(900));
  auto p = b.add_holder("pipeline gaussian", kRankPipeline);
  auto r = p.charge(200);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kOutOfMemory);
  EXPECT_NE(r.error().message.find("budget 'host'"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("pipeline gaussian"), std::string::npos);
  EXPECT_NE(r.error().message.find("chunk_cache 900 B"), std::string::npos) << r.error().message;
  EXPECT_EQ(b.used(), 900u);  // nothing charged by the refusal
  EXPECT_EQ(b.snapshot().refusals, 1u);
  pinned.release(500);
  EXPECT_TRUE(p.charge(200));  // retried once memory is free
}

TEST(Budget, EvictsIdlePipelinesLeastRecentlyUsedFirstThenCaches) {
  Budget b("host", 1000);
  std::vector<std::string> order;
  Budget::Holder a, c, cache;
  a = b.add_holder("a", kRankPipeline, [&](std::uint64_t) {
    order.push_back("a");
    const auto n = a.bytes();
    a.release(n);
    return n;
  });
  c = b.add_holder("c", kRankPipeline, [&](std::uint64_t) {
    order.push_back("c");
    const auto n = c.bytes();
    c.release(n);
    return n;
  });
  cache = b.add_holder("cache", kRankCache, [&](std::uint64_t want) {
    order.push_back("cache");
    const auto n = std::min(want, cache.bytes());
    cache.release(n);
    return n;
  });
  ASSERT_TRUE(cache.charge(300));  // used first, but a cache: evicted after pipelines
  ASSERT_TRUE(c.charge(300));
  ASSERT_TRUE(a.charge(300));
  c.touch();  // a is now the least recently used pipeline
  auto newcomer = b.add_holder("new", kRankPipeline);
  ASSERT_TRUE(newcomer.charge(350));  // needs 250: a alone frees enough
  EXPECT_EQ(order, (std::vector<std::string>{"a"}));
  ASSERT_TRUE(newcomer.charge(500));  // needs 450 more: c, then part of the cache
  EXPECT_EQ(order, (std::vector<std::string>{"a", "c", "cache"}));
  EXPECT_LE(b.used(), 1000u);
  // 450 plus the margin a charge evicts beyond its need (a 64th of the limit: 15).
  EXPECT_EQ(cache.bytes(), 135u);
  EXPECT_EQ(b.snapshot().evictions, 3u);
}

TEST(Budget, ForceChargeRunsOverUntilReclaimed) {
  Budget b("host", 100);
  Budget::Holder idle = b.add_holder("idle", kRankPipeline, [&](std::uint64_t) {
    const auto n = idle.bytes();
    idle.release(n);
    return n;
  });
  ASSERT_TRUE(idle.charge(80));
  auto pins = b.add_holder("pins", kRankCache);
  EXPECT_TRUE(pins.force_charge(50));  // over
  EXPECT_EQ(b.used(), 130u);
  EXPECT_TRUE(pins.reclaim_others());
  EXPECT_EQ(b.used(), 50u);
}

TEST(Budget, DestroyedHolderReleasesAndIsNeverCalledAgain) {
  Budget b("host", 100);
  int calls = 0;
  {
    auto h = b.add_holder("gone", kRankPipeline, [&](std::uint64_t) {
      ++calls;
      return std::uint64_t(0);
    });
    ASSERT_TRUE(h.charge(60));
  }
  EXPECT_EQ(b.used(), 0u);
  auto other = b.add_holder("other", kRankCache);
  ASSERT_TRUE(other.charge(100));
  EXPECT_EQ(calls, 0);
  EXPECT_TRUE(b.snapshot().holders.size() == 1);
}

// A budget kept full by a cache of evictable chunks, with computations charging scratch and
// inserting results from several threads at once (a live view over a full cache): no charge
// may be refused while the cache has chunks it can evict. One reclaim's room used to be taken
// by another thread's charge before the first could use it.
TEST(Budget, ConcurrentChargesOnAFullBudgetEvictRatherThanRefuse) {
  constexpr std::uint64_t kChunk = 1000, kScratch = 5000, kLimit = 1000 * kChunk;
  Budget b("host", kLimit);
  std::mutex m;
  std::uint64_t evictable = 0;  // chunks the cache may evict (guarded by m)
  Budget::Holder cache;
  auto evict = [&](std::uint64_t want) {
    std::lock_guard lock(m);
    std::uint64_t freed = 0;
    while (freed < want && evictable > 0) {
      --evictable;
      freed += kChunk;
    }
    cache.release(freed);
    return freed;
  };
  cache = b.add_holder("chunk_cache", kRankCache, evict);
  for (std::uint64_t i = 0; i < kLimit / kChunk; ++i) {
    ASSERT_TRUE(cache.charge(kChunk));
    std::lock_guard lock(m);
    ++evictable;
  }
  std::atomic<int> refused{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      auto scratch = b.add_holder("scratch", kRankCache);
      for (int i = 0; i < 3000; ++i) {
        if (!scratch.charge(kScratch)) {
          refused++;
          continue;
        }
        // The result goes into the cache (charged whatever the budget says, then evicted
        // back down to the limit, as ChunkCache does) while the scratch is still held.
        cache.force_charge(kChunk);
        {
          std::lock_guard lock(m);
          ++evictable;
        }
        if (const auto used = b.used(); used > kLimit) evict(used - kLimit);
        scratch.release(kScratch);
      }
    });
  for (auto& t : threads)
    t.join();
  EXPECT_EQ(refused.load(), 0) << b.snapshot().refusals << " refusals";
}

}  // namespace
}  // namespace vx
