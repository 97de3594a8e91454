// The huge-page arena for chunk buffers: which sizes it takes, that its blocks are disjoint and
// keep their bytes under churn from several threads, that it unmaps what it no longer needs,
// and that its memory really is on huge pages where the system allows them.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "core/huge_pages.hpp"

namespace vx {
namespace {

constexpr std::size_t KiB = 1024, MiB = 1024 * 1024;

struct Held {
  std::shared_ptr<std::byte[]> buf;
  std::size_t size = 0;
  std::uint8_t tag = 0;
};

void fill(const Held& h) {
  std::memset(h.buf.get(), h.tag, h.size);
}

bool intact(const Held& h) {
  const auto* p = reinterpret_cast<const std::uint8_t*>(h.buf.get());
  return std::all_of(p, p + h.size, [&](std::uint8_t x) { return x == h.tag; });
}

TEST(HugePages, TakesOnlySizesThatTileHugePages) {
  EXPECT_TRUE(HugePageArena::fits(512 * KiB));  // 64^3 uint16: a quarter of a huge page
  EXPECT_TRUE(HugePageArena::fits(4 * MiB));    // 128^3 uint16: a run of two
  EXPECT_TRUE(HugePageArena::fits(64 * KiB));
  EXPECT_TRUE(HugePageArena::fits(600 * KiB));   // three per huge page: 12.1% unused
  EXPECT_FALSE(HugePageArena::fits(700 * KiB));  // two per huge page: 32% unused
  EXPECT_FALSE(HugePageArena::fits(3 * MiB));    // a run of two, a quarter unused
  EXPECT_FALSE(HugePageArena::fits(2 * MiB + 1));
  EXPECT_FALSE(HugePageArena::fits(63 * KiB));  // small: new[] does as well
  EXPECT_FALSE(HugePageArena::fits(0));
  EXPECT_FALSE(HugePageArena::fits(65 * MiB));  // over a region

  HugePageArena arena;
  EXPECT_EQ(arena.take(700 * KiB), nullptr);
  EXPECT_EQ(arena.stats().regions, 0u);
  auto b = take_buffer(700 * KiB);  // the shared entry point falls back to new[]
  ASSERT_NE(b, nullptr);
  std::memset(b.get(), 1, 700 * KiB);
}

TEST(HugePages, BlocksAreDisjointKeepTheirBytesAndRegionsGoWhenEmpty) {
  HugePageArena arena;
  const std::size_t sizes[] = {512 * KiB, 256 * KiB, 4 * MiB, 64 * KiB, 1 * MiB, 600 * KiB};
  std::vector<Held> held;
  std::mt19937 rng(7);
  for (int i = 0; i < 300; ++i) {
    Held h{nullptr, sizes[std::size_t(i) % std::size(sizes)], std::uint8_t(i + 1)};
    h.buf = arena.take(h.size);
    ASSERT_NE(h.buf, nullptr) << h.size;
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(h.buf.get()) % 4096, 0u);
    fill(h);
    held.push_back(std::move(h));
  }
  for (const auto& h : held)
    ASSERT_TRUE(intact(h)) << "a block was overwritten by another";
  auto s = arena.stats();
  EXPECT_EQ(s.blocks_live, 300u);
  EXPECT_GT(s.regions, 0u);
  EXPECT_EQ(s.bytes_mapped, s.regions * HugePageArena::kRegion);
  // Free half in random order, take again (reusing the holes), check everything.
  std::shuffle(held.begin(), held.end(), rng);
  held.resize(150);
  for (int i = 0; i < 150; ++i) {
    Held h{nullptr, sizes[std::size_t(i * 5) % std::size(sizes)], std::uint8_t(200 + i % 50)};
    h.buf = arena.take(h.size);
    ASSERT_NE(h.buf, nullptr);
    fill(h);
    held.push_back(std::move(h));
  }
  for (const auto& h : held)
    ASSERT_TRUE(intact(h));
  EXPECT_EQ(arena.stats().blocks_live, 300u);
  EXPECT_LE(arena.stats().regions, s.regions + 2) << "holes were not reused";
  held.clear();
  s = arena.stats();
  EXPECT_EQ(s.blocks_live, 0u);
  EXPECT_EQ(s.bytes_live, 0u);
  EXPECT_EQ(s.regions, 0u) << "empty regions stay mapped";
  EXPECT_EQ(s.bytes_mapped, 0u);
}

TEST(HugePages, ThreadsTakingAndFreeingAtOnceNeverShareABlock) {
  HugePageArena arena;
  std::vector<std::thread> threads;
  std::atomic<int> bad{0};
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      std::mt19937 rng{unsigned(t)};
      std::vector<Held> mine;
      const std::size_t sizes[] = {512 * KiB, 128 * KiB, 4 * MiB, 64 * KiB};
      for (int i = 0; i < 600; ++i) {
        if (!mine.empty() && rng() % 3 == 0) {
          const auto k = rng() % mine.size();
          if (!intact(mine[k])) ++bad;
          mine.erase(mine.begin() + std::ptrdiff_t(k));
          continue;
        }
        Held h{nullptr, sizes[rng() % 4], std::uint8_t(t * 60 + i % 60 + 1)};
        h.buf = arena.take(h.size);
        if (!h.buf) {
          ++bad;
          continue;
        }
        fill(h);
        mine.push_back(std::move(h));
      }
      for (const auto& h : mine)
        if (!intact(h)) ++bad;
    });
  for (auto& th : threads)
    th.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_EQ(arena.stats().regions, 0u);
  EXPECT_EQ(arena.stats().blocks_live, 0u);
}

std::string read_text(const char* path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::uint64_t vmstat(const std::string& key) {
  std::istringstream in(read_text("/proc/vmstat"));
  std::string k;
  std::uint64_t v;
  while (in >> k >> v)
    if (k == key) return v;
  return 0;
}

// AnonHugePages of the mapping holding `p`, in kB (/proc/self/smaps).
std::uint64_t huge_kb_at(const void* p) {
  std::istringstream in(read_text("/proc/self/smaps"));
  const auto addr = reinterpret_cast<std::uintptr_t>(p);
  std::string line;
  bool inside = false;
  while (std::getline(in, line)) {
    std::uintptr_t lo = 0, hi = 0;
    if (std::sscanf(line.c_str(), "%lx-%lx ", &lo, &hi) == 2 &&
        line.find(' ') != std::string::npos && line.find(':') > line.find(' ')) {
      inside = addr >= lo && addr < hi;
      continue;
    }
    if (inside && line.rfind("AnonHugePages:", 0) == 0) return std::stoull(line.substr(14));
  }
  return 0;
}

TEST(HugePages, MemoryIsOnHugePagesWhereTheSystemAllows) {
  const auto mode = read_text("/sys/kernel/mm/transparent_hugepage/enabled");
  if (mode.find("[never]") != std::string::npos || mode.empty())
    GTEST_SKIP() << "transparent huge pages are off here: " << mode;
  HugePageArena arena;
  const auto fallbacks = vmstat("thp_fault_fallback");
  std::vector<std::shared_ptr<std::byte[]>> bufs;
  for (int i = 0; i < 4; ++i) {  // one huge page's worth
    bufs.push_back(arena.take(512 * KiB));
    std::memset(bufs.back().get(), 1, 512 * KiB);
  }
  const auto kb = huge_kb_at(bufs[0].get());
  if (kb == 0 && vmstat("thp_fault_fallback") > fallbacks)
    GTEST_SKIP() << "the kernel had no free huge page (thp_fault_fallback rose)";
  EXPECT_GE(kb, 2048u) << "the arena's memory is on 4 KiB pages";
}

}  // namespace
}  // namespace vx
