#include "core/huge_pages.hpp"

#include <sys/mman.h>

#include <array>
#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

namespace vx {
namespace {

constexpr std::size_t kPage = 4096;
constexpr std::uint32_t kPagesPerRegion = HugePageArena::kRegion / HugePageArena::kHugePage;
static_assert(kPagesPerRegion <= 32, "a region's huge pages are one 32-bit mask");

std::size_t round_up(std::size_t x, std::size_t to) {
  return (x + to - 1) / to * to;
}

// Blocks of `size` bytes: the block, the huge pages of a run and the blocks per run; pages 0
// when the size does not fit (see the header).
struct Geometry {
  std::size_t block = 0;
  std::uint32_t pages = 0, slots = 0;
};

Geometry geometry(std::size_t size) {
  Geometry g;
  if (size < HugePageArena::kMinBlock || size > HugePageArena::kRegion) return g;
  g.block = round_up(size, kPage);
  const std::size_t H = HugePageArena::kHugePage;
  const std::size_t run = g.block <= H ? H : round_up(g.block, H);
  const std::size_t slots = run / g.block;
  if ((run - slots * g.block) * 8 > run) return g;  // over an eighth unused
  g.pages = std::uint32_t(run / H);
  g.slots = std::uint32_t(slots);
  return g;
}

}  // namespace

struct HugePageArena::Region {
  std::byte* base = nullptr;
  std::uint32_t used = 0;                   // a bit per huge page in a run
  std::array<Run*, kPagesPerRegion> run{};  // the run each page belongs to
};

struct HugePageArena::Run {
  Region* region = nullptr;
  std::byte* base = nullptr;
  std::uint32_t first = 0, pages = 0;  // huge pages of the region
  std::size_t block = 0;
  std::uint32_t slots = 0;
  std::vector<std::uint32_t> free;  // free slots
};

HugePageArena::HugePageArena() = default;

HugePageArena::~HugePageArena() {
  for (auto& [base, r] : regions_) {
    for (std::uint32_t i = 0; i < kPagesPerRegion; ++i)
      if (Run* run = r->run[i]; run && run->first == i) delete run;
    ::munmap(r->base, kRegion);
  }
}

bool HugePageArena::fits(std::size_t size) {
  return geometry(size).pages > 0;
}

HugePageArena& HugePageArena::shared() {
  static auto* arena = new HugePageArena;  // never destroyed: see the header
  return *arena;
}

HugePageArena::Stats HugePageArena::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

HugePageArena::Run* HugePageArena::new_run(std::size_t block, std::uint32_t pages,
                                           std::uint32_t slots) {
  const std::uint32_t want = pages >= 32 ? ~0u : ((1u << pages) - 1);
  Region* region = nullptr;
  std::uint32_t first = 0;
  for (auto& [base, r] : regions_) {
    for (std::uint32_t i = 0; i + pages <= kPagesPerRegion; ++i)
      if ((r->used & (want << i)) == 0) {
        region = r.get(), first = i;
        break;
      }
    if (region) break;
  }
  if (!region) {
    // A region aligned to a huge page: map one huge page more, then trim both ends.
    void* raw = ::mmap(nullptr, kRegion + kHugePage, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (raw == MAP_FAILED) return nullptr;
    auto* p = static_cast<std::byte*>(raw);
    const auto addr = reinterpret_cast<std::uintptr_t>(p);
    const std::size_t head = round_up(addr, kHugePage) - addr;
    if (head) ::munmap(p, head);
    if (kHugePage - head) ::munmap(p + head + kRegion, kHugePage - head);
    auto r = std::make_unique<Region>();
    r->base = p + head;
    ::madvise(r->base, kRegion, MADV_HUGEPAGE);  // where THP is "madvise"; harmless elsewhere
    region = r.get();
    const auto key = reinterpret_cast<std::uintptr_t>(r->base);
    regions_.emplace(key, std::move(r));
    ++stats_.regions;
    stats_.bytes_mapped += kRegion;
  }
  auto* run = new Run;
  run->region = region;
  run->first = first;
  run->pages = pages;
  run->base = region->base + std::size_t(first) * kHugePage;
  run->block = block;
  run->slots = slots;
  run->free.reserve(slots);
  for (std::uint32_t s = slots; s-- > 0;)
    run->free.push_back(s);  // slot 0 first
  region->used |= want << first;
  for (std::uint32_t i = 0; i < pages; ++i)
    region->run[first + i] = run;
  return run;
}

void HugePageArena::release_run(Run* run) {
  Region* region = run->region;
  ::madvise(run->base, std::size_t(run->pages) * kHugePage, MADV_DONTNEED);
  const std::uint32_t want = run->pages >= 32 ? ~0u : ((1u << run->pages) - 1);
  region->used &= ~(want << run->first);
  for (std::uint32_t i = 0; i < run->pages; ++i)
    region->run[run->first + i] = nullptr;
  partial_[run->block].erase(run);
  delete run;
  if (region->used == 0) {
    const auto key = reinterpret_cast<std::uintptr_t>(region->base);
    ::munmap(region->base, kRegion);
    regions_.erase(key);
    --stats_.regions;
    stats_.bytes_mapped -= kRegion;
  }
}

std::shared_ptr<std::byte[]> HugePageArena::take(std::size_t size) {
  const Geometry g = geometry(size);
  if (!g.pages) return nullptr;
  std::byte* p = nullptr;
  {
    std::lock_guard lock(mutex_);
    auto& partial = partial_[g.block];
    Run* run = partial.empty() ? new_run(g.block, g.pages, g.slots) : *partial.begin();
    if (!run) return nullptr;
    const std::uint32_t slot = run->free.back();
    run->free.pop_back();
    if (run->free.empty())
      partial.erase(run);
    else
      partial.insert(run);
    p = run->base + std::size_t(slot) * g.block;
    stats_.bytes_live += g.block;
    ++stats_.blocks_live;
  }
  try {
    return std::shared_ptr<std::byte[]>(p, [this](std::byte* q) { give_back(q); });
  } catch (...) {  // the control block could not be allocated
    give_back(p);
    throw;
  }
}

void HugePageArena::give_back(std::byte* p) {
  std::lock_guard lock(mutex_);
  const auto addr = reinterpret_cast<std::uintptr_t>(p);
  auto it = regions_.upper_bound(addr);
  --it;  // the region holding p: the last base at or below it
  Run* run = it->second->run[(addr - it->first) / kHugePage];
  const auto slot = std::uint32_t(std::size_t(p - run->base) / run->block);
  stats_.bytes_live -= run->block;
  --stats_.blocks_live;
  run->free.push_back(slot);
  if (run->free.size() == run->slots) return release_run(run);
  // The block's memory goes back now (this splits its huge page; the run's other blocks keep
  // theirs mapped). The pool in front of the arena (the chunk cache's) keeps the buffers it
  // will reuse, so blocks come here only when memory is really given up.
  ::madvise(p, run->block, MADV_DONTNEED);
  partial_[run->block].insert(run);
}

namespace {

bool sanitized() {
#if defined(__SANITIZE_ADDRESS__)
  return true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
  return true;
#else
  return false;
#endif
#else
  return false;
#endif
}

bool arena_on() {
  static const bool on = [] {
    if (sanitized()) return false;
    const char* e = std::getenv("VOXCAST_HUGE_PAGES");
    return !(e && std::strcmp(e, "0") == 0);
  }();
  return on;
}

}  // namespace

bool huge_buffers_on() {
  return arena_on();
}

std::shared_ptr<std::byte[]> take_buffer(std::size_t size) {
  if (arena_on() && HugePageArena::fits(size))
    if (auto b = HugePageArena::shared().take(size)) return b;
  return std::shared_ptr<std::byte[]>(new std::byte[size]);
}

}  // namespace vx
