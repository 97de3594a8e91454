// The bookkeeping of the CUDA backend's device brick pool (render/resident_set.hpp), checked
// on the host with plain buffers: a budget, LRU eviction, pins, allocator failures.
#include "render/resident_set.hpp"

#include <gtest/gtest.h>

#include <vector>

namespace vx::render {
namespace {

using Set = ResidentSet<int, std::vector<char>>;

Result<std::vector<char>> buffer(std::uint64_t n, int* made = nullptr) {
  if (made) ++*made;
  return std::vector<char>(std::size_t(n));
}

TEST(ResidentSet, PinnedEntriesStayAndTheBudgetRefusesNamingItself) {
  Budget device("device", 1000);
  Set set(device, "cuda.bricks");
  int made = 0;
  auto a = set.acquire(1, 400, [&] { return buffer(400, &made); });
  auto b = set.acquire(2, 400, [&] { return buffer(400, &made); });
  ASSERT_TRUE(a && b);
  EXPECT_EQ(device.used(), 800u);
  auto c = set.acquire(3, 400, [&] { return buffer(400, &made); });  // a and b are pinned
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().code, ErrorCode::kOutOfMemory);
  EXPECT_NE(c.error().message.find("budget 'device'"), std::string::npos) << c.error().message;
  EXPECT_EQ(device.used(), 800u);
  EXPECT_EQ(made, 2);
  // A hit neither charges nor makes anything.
  auto again = set.acquire(2, 400, [&] { return buffer(400, &made); });
  ASSERT_TRUE(again);
  EXPECT_EQ(*again, *b);
  EXPECT_EQ(made, 2);
  EXPECT_EQ(set.hits(), 1u);
  set.release(2);
  set.release(2);
  set.release(1);
  // Now c evicts the least recently used unpinned entry: a (b was used after it).
  c = set.acquire(3, 400, [&] { return buffer(400, &made); });
  ASSERT_TRUE(c) << c.error().what();
  EXPECT_FALSE(set.contains(1));
  EXPECT_TRUE(set.contains(2));
  EXPECT_EQ(set.evictions(), 1u);
  EXPECT_EQ(device.used(), 800u);
  EXPECT_EQ(set.bytes(), 800u);
}

TEST(ResidentSet, AllocatorOutOfMemoryEvictsAndRetriesOtherErrorsReleaseTheCharge) {
  Budget device("device", 10'000);
  Set set(device, "cuda.bricks");
  ASSERT_TRUE(set.acquire(1, 100, [] { return buffer(100); }));
  set.release(1);
  int tries = 0;
  auto r = set.acquire(2, 100, [&]() -> Result<std::vector<char>> {
    if (++tries == 1) return fail(ErrorCode::kOutOfMemory, "cudaMalloc: out of memory");
    return buffer(100);
  });
  ASSERT_TRUE(r) << r.error().what();
  EXPECT_EQ(tries, 2);
  EXPECT_FALSE(set.contains(1));  // evicted to make room on the device
  auto bad = set.acquire(3, 100, []() -> Result<std::vector<char>> {
    return fail(ErrorCode::kUnsupported, "gather kernel: invalid argument");
  });
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, ErrorCode::kUnsupported);
  EXPECT_EQ(device.used(), 100u);  // only entry 2
  EXPECT_EQ(set.size(), 1u);
}

TEST(ResidentSet, ReleasesItsChargeWhenDestroyed) {
  Budget device("device", 1000);
  {
    Set set(device, "cuda.bricks");
    ASSERT_TRUE(set.acquire(1, 300, [] { return buffer(300); }));
    EXPECT_EQ(device.used(), 300u);
  }
  EXPECT_EQ(device.used(), 0u);
}

}  // namespace
}  // namespace vx::render
