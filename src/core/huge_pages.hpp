// Large buffers on transparent huge pages.
//
// A chunk of 64^3 uint16 is 512 KiB: from new[] it is its own mapping of 128 pages of 4 KiB,
// each a page fault and a TLB entry. On a virtual machine both are expensive (a cold render of
// a 512^3 volume spent about half its time in page faults; the slice pass, which walks every
// brick of the volume per frame, stalls on TLB misses). Here buffers come from 64 MiB regions
// aligned to 2 MiB and advised MADV_HUGEPAGE: one fault and one TLB entry per 2 MiB.
//
// Blocks tile runs of whole huge pages (a 512 KiB block is a quarter of one; a 4 MiB block a run
// of two). Sizes whose blocks would leave more than an eighth of their pages unused, or under
// 64 KiB, are not worth it and come from new[]. Memory goes back to the system as buffers die: a
// free block is released (MADV_DONTNEED), a run without live blocks gives its pages back to its
// region, and a region without runs is unmapped. So the memory held stays the memory in use, as
// the budgets (core/resources.hpp) count it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <unordered_set>

namespace vx {

class HugePageArena {
 public:
  static constexpr std::size_t kHugePage = std::size_t(2) << 20;
  static constexpr std::size_t kRegion = std::size_t(64) << 20;  // one mapping, 32 huge pages
  static constexpr std::size_t kMinBlock = std::size_t(64) << 10;

  HugePageArena();
  // Every buffer it gave must be gone by then.
  ~HugePageArena();
  HugePageArena(const HugePageArena&) = delete;
  HugePageArena& operator=(const HugePageArena&) = delete;

  // Whether buffers of `size` bytes come from huge pages (see above).
  static bool fits(std::size_t size);
  // A buffer of `size` bytes, not zeroed, 4 KiB aligned; null when !fits(size) or the system
  // refuses memory. The buffer refers to the arena: the arena must outlive it.
  std::shared_ptr<std::byte[]> take(std::size_t size);

  struct Stats {
    std::uint64_t regions = 0;       // mappings of kRegion bytes
    std::uint64_t bytes_mapped = 0;  // address space held
    std::uint64_t bytes_live = 0;    // blocks in use (their rounded sizes)
    std::uint64_t blocks_live = 0;
  };
  Stats stats() const;

  // The arena of the process (never destroyed: buffers may outlive any owner).
  static HugePageArena& shared();

 private:
  struct Region;
  struct Run;
  void give_back(std::byte* p);
  Run* new_run(std::size_t block, std::uint32_t pages, std::uint32_t slots);
  void release_run(Run* run);

  mutable std::mutex mutex_;
  // By base address: the region holding a block is the last one at or below it.
  std::map<std::uintptr_t, std::unique_ptr<Region>> regions_;
  std::unordered_map<std::size_t, std::unordered_set<Run*>> partial_;  // by block size
  Stats stats_;
};

// A buffer for chunk data: from the process's huge-page arena where the size fits it, else
// from new[]. Not zeroed. VOXCAST_HUGE_PAGES=0 in the environment turns the arena off; builds
// with AddressSanitizer do not use it either (it could not see overflows between blocks).
std::shared_ptr<std::byte[]> take_buffer(std::size_t size);
// Whether take_buffer uses the arena in this process.
bool huge_buffers_on();

}  // namespace vx
