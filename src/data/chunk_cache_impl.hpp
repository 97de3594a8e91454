// ChunkCache's private parts, shared by its two source files: chunk_cache.cpp (requests,
// hits, eviction) and chunk_io.cpp (the I/O queue, its threads, reads and retries).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <list>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>

#include "core/huge_pages.hpp"
#include "data/chunk_cache.hpp"

namespace vx::data {

namespace detail {

struct CacheEntry;

// Lets a ChunkRequest reach its cache while the cache lives (cancel() after the cache is
// gone does nothing). The cache clears `cache` under `mutex` in its destructor.
struct CancelLink {
  std::mutex mutex;
  std::function<void(const std::shared_ptr<CacheEntry>&)> cancel;
};

struct RequestState {
  std::atomic<bool> cancelled{false};
  ChunkCallback callback;
  std::weak_ptr<CacheEntry> entry;
  std::shared_ptr<CancelLink> link;
};

using Key = ChunkKey;

struct CacheEntry {
  Key key;
  std::size_t hash = 0;
  // Ready: the decoded bytes (owned, or the shared fill buffer of a missing chunk).
  std::shared_ptr<const std::byte[]> data;
  std::size_t size = 0;
  bool fill = false;
  std::size_t charge = 0;    // bytes counted against the budget
  std::atomic<int> pins{0};  // incremented only under the shard mutex
  // Guarded by the shard mutex:
  bool ready = false;
  bool started = false;  // taken by an I/O thread, or abandoned (cancelled, dropped)
  int priority = 0;
  std::vector<std::shared_ptr<RequestState>> waiters;
  std::list<CacheEntry*>::iterator lru;
  std::uint64_t tick = 0;  // when last used (the cache's clock), for eviction across shards
  // A remembered failure (ready is false): requests get `error` until `expires`.
  std::optional<Error> error;
  std::chrono::steady_clock::time_point expires{};
  // Guarded by the I/O queue's mutex: the entry's place in the queue.
  bool queued = false;
  std::pair<int, std::uint64_t> qkey{};
};

}  // namespace detail

using detail::CacheEntry;
using detail::Key;
using detail::RequestState;

inline constexpr std::size_t kEntryOverhead = 256;  // map node, list node, entry: counted too

struct ChunkCache::Shard {
  std::mutex mutex;
  std::unordered_map<Key, std::shared_ptr<CacheEntry>, ChunkKeyHash> map;
  std::list<CacheEntry*> lru;  // ready entries, most recent first
};

struct ChunkCache::SourceSlot {
  std::shared_ptr<const VolumeSource> source;
  std::vector<std::vector<std::int64_t>> grids;  // chunks per axis, per level
  // Per level, made on first need; readers hold the slot const (a running read's own).
  mutable std::mutex mutex;
  mutable std::vector<std::shared_ptr<const std::byte[]>> fill;
};

// Buffers of evicted chunks, kept for the next reads of the same size: fresh memory costs a
// page fault and a kernel page clear per page, which dominates cold reads of fast codecs. New
// buffers come from huge pages where their size fits (core/huge_pages.hpp).
// Bounded (an eighth of the budget, at most 256 MiB); counted in CacheCounters::bytes_pooled.
struct ChunkCache::BufferPool {
  std::mutex mutex;
  std::unordered_map<std::size_t, std::vector<std::shared_ptr<std::byte[]>>> free;
  std::uint64_t bytes = 0;
  std::uint64_t limit = 0;

  std::shared_ptr<std::byte[]> take(std::size_t size) {
    {
      std::lock_guard lock(mutex);
      auto it = free.find(size);
      if (it != free.end() && !it->second.empty()) {
        auto b = std::move(it->second.back());
        it->second.pop_back();
        bytes -= size;
        return b;
      }
    }
    return take_buffer(size);  // not zeroed: fully written; on huge pages where it fits
  }
  void give(std::shared_ptr<std::byte[]> b, std::size_t size) {
    std::lock_guard lock(mutex);
    if (bytes + size > limit) return;  // freed here
    free[size].push_back(std::move(b));
    bytes += size;
  }
};

struct ChunkCache::Atomics {
  std::atomic<std::uint64_t> hits{0}, misses{0}, joined{0}, bytes_read{0}, bytes_decoded{0},
      evictions{0}, cancelled{0}, errors{0}, missing{0}, retries{0}, failed_hits{0}, dropped{0},
      computed{0};
};

// Reads waiting for an I/O thread, highest priority first, FIFO among equals. An entry is in
// it at most once; raising its priority moves it.
struct ChunkCache::IoQueue {
  std::mutex mutex;
  std::condition_variable cv;
  // key: (-priority, sequence)
  std::map<std::pair<int, std::uint64_t>, std::shared_ptr<CacheEntry>> items;
  std::uint64_t next = 0;
  bool stopping = false;
};

}  // namespace vx::data
