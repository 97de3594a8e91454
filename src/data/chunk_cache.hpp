// ChunkCache: decoded chunks of any number of sources under one byte budget.
//
// - Sharded LRU (a mutex per shard); the budget is global and eviction takes the least
//   recently used unpinned chunk of all shards first. Buffers of evicted chunks are recycled for
//   the next reads (at most an eighth of the budget, 256 MiB, is held for that). Pinned chunks are
//   never evicted; if pins alone exceed the budget the cache runs over it until they are released
//   (counters show it).
// - ChunkPin is a move-only handle that keeps a chunk resident and unpins on destruction.
//   A pin does not refer to the cache, so it may outlive it.
// - Concurrent requests for one chunk share one read ("joined" in the counters).
// - Reads and decompression run on the cache's own I/O threads in priority order (see
//   visible_priority()); the queue is bounded (CacheOptions::max_queued). Asking again for
//   a queued chunk with a higher priority moves it up; it is never queued twice. A queued
//   read whose requests are all cancelled leaves the queue at once.
// - A read that fails is retried (CacheOptions::retries, with exponential backoff); a chunk
//   that still fails is remembered as failed for failure_ttl_ms, so requests for it get the
//   error at once instead of reading it again (no re-read loops on a corrupt chunk).
// - Callbacks run on an I/O thread, or inline in request() on a hit; they must not block.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <thread>
#include <unordered_map>
#include <vector>

#include "core/error.hpp"
#include "core/resources.hpp"
#include "core/thread_pool.hpp"
#include "data/data.hpp"

namespace vx::data {

// Read priorities, higher first. Every visible chunk outranks every prefetch.
inline constexpr int kPriorityPrefetch = 0;
inline constexpr int kPriorityVisible = 1 << 20;
// A visible chunk's priority: coarse levels before fine ones (a coarse chunk covers more of
// the screen and is what a refining frame draws first), then nearer the centre of the screen
// first. `centre_distance` is 0 at the centre and 1 at a corner (clamped).
int visible_priority(int level, double centre_distance);
// The same order below every visible chunk, for prefetch (the next slices, neighbours).
int prefetch_priority(int level, double centre_distance);

using SourceId = std::uint32_t;

// One chunk of one source: the key of the cache and of everything kept per chunk.
struct ChunkKey {
  SourceId source = 0;
  int level = 0;
  Index index{};
  bool operator==(const ChunkKey&) const = default;
};
struct ChunkKeyHash {
  std::size_t operator()(const ChunkKey& k) const;
};

namespace detail {
struct CacheEntry;
struct RequestState;
struct CancelLink;
}  // namespace detail

class ChunkPin {
 public:
  ChunkPin() = default;
  explicit ChunkPin(std::shared_ptr<detail::CacheEntry> entry);
  ~ChunkPin();
  ChunkPin(ChunkPin&& other) noexcept : entry_(std::move(other.entry_)) {}
  ChunkPin& operator=(ChunkPin&& other) noexcept;
  ChunkPin(const ChunkPin&) = delete;
  ChunkPin& operator=(const ChunkPin&) = delete;

  explicit operator bool() const { return entry_ != nullptr; }
  // Decoded bytes (VolumeSource::read_chunk layout). A missing chunk points at a shared
  // buffer of the fill value.
  std::span<const std::byte> bytes() const;
  bool is_fill() const;
  template <class T>
  std::span<const T> as() const {
    auto b = bytes();
    return {reinterpret_cast<const T*>(b.data()), b.size() / sizeof(T)};
  }

 private:
  std::shared_ptr<detail::CacheEntry> entry_;
};

// A ticket for an asynchronous request. Destroying it does not cancel; cancel() does.
class ChunkRequest {
 public:
  ChunkRequest() = default;
  explicit ChunkRequest(std::shared_ptr<detail::RequestState> state) : state_(std::move(state)) {}
  // The callback will not run after cancel() returns, unless it is already running. When no
  // live request for the chunk is left, its queued read leaves the queue.
  void cancel();
  bool cancelled() const;

 private:
  std::shared_ptr<detail::RequestState> state_;
};

struct CacheOptions {
  // Without `budget`, the cache makes its own budget "chunk_cache" of budget_bytes. With one
  // (the server's "host" budget), it charges that, and budget_bytes is ignored: the cache
  // then shares the limit with pipelines and derived results (core/resources.hpp).
  std::uint64_t budget_bytes = 256ull << 20;
  // 0: automatic, the largest VolumeSource::io_concurrency() of the sources added (2 per
  // core on local storage, many more on network file systems, where reads wait ms each).
  // Sources hold a CpuSlots slot while decoding, so decoding never oversubscribes the cores.
  unsigned io_threads = 0;
  unsigned shards = 16;
  // Failed reads are tried again this many times, after retry_backoff_ms, then 4x that, ...
  unsigned retries = 2;
  unsigned retry_backoff_ms = 10;
  // A chunk that failed every try answers with its error, without reading, for this long.
  unsigned failure_ttl_ms = 30'000;
  // Queued reads beyond this drop the lowest-priority ones (their requests get kBusy).
  std::size_t max_queued = 1 << 16;
  Budget* budget = nullptr;  // see budget_bytes
};

struct CacheCounters {
  std::uint64_t hits = 0;           // served from memory
  std::uint64_t misses = 0;         // started a read
  std::uint64_t joined = 0;         // joined a read already in flight
  std::uint64_t bytes_read = 0;     // compressed bytes taken from storage
  std::uint64_t bytes_decoded = 0;  // decoded bytes produced
  std::uint64_t evictions = 0;
  std::uint64_t cancelled = 0;     // reads skipped because nobody wanted them any more
  std::uint64_t errors = 0;        // reads that failed every try
  std::uint64_t retries = 0;       // reads tried again after a failure
  std::uint64_t failed_hits = 0;   // requests answered from a remembered failure
  std::uint64_t queued = 0;        // reads waiting in the I/O queue now
  std::uint64_t dropped = 0;       // queued reads dropped because the queue was full
  std::uint64_t missing = 0;       // chunks absent from storage (fill value)
  std::uint64_t bytes_cached = 0;  // resident now
  std::uint64_t entries = 0;       // resident now
  std::uint64_t bytes_pooled = 0;  // buffers of evicted chunks kept for reuse
  std::uint64_t computed = 0;      // chunks of computed sources produced
  std::uint64_t sources = 0;       // sources registered now (add_source less remove_source)
};

class ChunkCache;

// A source whose chunks are computed from chunks of other sources of the same cache (a
// derived source, src/pipeline). The cache requests inputs() asynchronously with the
// request's priority and runs compute() on its compute threads once all are pinned: an I/O
// thread never waits for another chunk, and compute() never waits at all. Results are cached
// under the computed source's own id like any chunk.
class ComputedSource : public VolumeSource {
 public:
  // The input chunks chunk `index` of `level` needs (its region plus the halo).
  virtual Result<std::vector<ChunkKey>> inputs(int level, const Index& index) const = 0;
  // Fills `out` (info().chunk_bytes(level)) from `pins` (in the order of inputs()).
  virtual Result<ReadResult> compute(int level, const Index& index, std::span<const ChunkPin> pins,
                                     std::span<std::byte> out) const = 0;
  // The cache the inputs live in.
  virtual ChunkCache& input_cache() const = 0;
  // A blocking read for callers outside the cache (voxcast convert): gets the inputs through
  // input_cache() and computes. Never called by the cache itself.
  Result<ReadResult> read_chunk(int level, const Index& index,
                                std::span<std::byte> out) const override;
};

using ChunkCallback = std::function<void(Result<ChunkPin>)>;

class ChunkCache {
 public:
  explicit ChunkCache(CacheOptions options = {});
  // Cancels queued reads (their callbacks get ErrorCode::kCancelled), waits for running ones.
  ~ChunkCache();
  ChunkCache(const ChunkCache&) = delete;
  ChunkCache& operator=(const ChunkCache&) = delete;

  // Registers a source; ids are never reused, so keys of a removed source never match.
  SourceId add_source(std::shared_ptr<const VolumeSource> source);
  // Forgets a source: new requests for it fail (kNotFound, naming the id), its resident
  // chunks that nobody pins are freed now and pinned ones when evicted. Reads and
  // computations already running finish on the source, which lives until they do. The owner
  // of the id calls this when nothing will render from it again (a derived source no session
  // or job names, stream/session.hpp); unknown ids are ignored.
  void remove_source(SourceId id);
  // Several at once: one walk of the resident chunks for all of them.
  void remove_sources(std::span<const SourceId> ids);
  // The source registered as `id`. Throws std::out_of_range for an id never added or removed:
  // callers hold the ids they render from (render::RenderInputs::keep).
  const VolumeSource& source(SourceId id) const;

  // Returns the chunk if resident (a hit), without reading.
  std::optional<ChunkPin> try_get(SourceId id, int level, const Index& index);
  // Asynchronous read. A hit calls `callback` inline before returning.
  ChunkRequest request(SourceId id, int level, const Index& index, int priority,
                       ChunkCallback callback);
  // Blocking read.
  Result<ChunkPin> get(SourceId id, int level, const Index& index, int priority = kPriorityVisible);

  CacheCounters counters() const;
  std::uint64_t budget_bytes() const { return budget_->limit(); }
  Budget& budget() const { return *budget_; }

  struct Shard;
  struct SourceSlot;
  struct BufferPool;
  struct IoQueue;

 private:
  void run_read(std::shared_ptr<detail::CacheEntry> entry);
  void run_compute(std::shared_ptr<detail::CacheEntry> entry, std::shared_ptr<SourceSlot> slot);
  // True (and the entry forgotten) when every request for it was cancelled.
  bool drop_if_unwanted(const std::shared_ptr<detail::CacheEntry>& entry);
  // Hands a read's or computation's result to the entry's waiters (caches it on success).
  void finish(const std::shared_ptr<detail::CacheEntry>& entry, const SourceSlot& slot,
              Result<ReadResult> result, std::shared_ptr<std::byte[]> buffer);
  std::uint64_t evict_bytes(std::size_t start_shard, std::uint64_t want);
  // Frees one unpinned ready entry of shard's LRU list (the shard locked); returns its charge.
  std::uint64_t evict_locked(Shard& shard, detail::CacheEntry* entry);
  std::shared_ptr<SourceSlot> slot_of(SourceId id) const;  // null: unknown or removed
  void io_worker();
  void ensure_io_threads(unsigned n);
  void on_cancel(const std::shared_ptr<detail::CacheEntry>& entry);
  std::shared_ptr<detail::CacheEntry> enqueue(const std::shared_ptr<detail::CacheEntry>& entry,
                                              int priority);
  void abandon(const std::shared_ptr<detail::CacheEntry>& entry, const Error& why);
  void evict_over_budget(std::size_t start_shard);
  Shard& shard_for(std::size_t hash);

  CacheOptions options_;
  std::unique_ptr<Budget> own_budget_;
  Budget* budget_ = nullptr;
  Budget::Holder holder_;
  std::atomic<bool> stopping_{false};
  std::unique_ptr<PriorityPool> compute_;  // made when the first computed source is added
  std::vector<std::unique_ptr<Shard>> shards_;
  mutable std::mutex sources_mutex_;
  // Running reads and computations hold their source's slot, so removal never pulls it from
  // under them.
  std::unordered_map<SourceId, std::shared_ptr<SourceSlot>> sources_;
  SourceId next_source_ = 0;
  std::atomic<std::uint64_t> bytes_cached_{0};
  std::atomic<std::uint64_t> entries_{0};
  std::atomic<std::uint64_t> clock_{1};  // use counter: entries' ticks
  struct Atomics;
  std::unique_ptr<Atomics> stats_;
  std::unique_ptr<BufferPool> pool_buffers_;
  std::unique_ptr<IoQueue> queue_;
  std::shared_ptr<detail::CancelLink> link_;
  std::mutex threads_mutex_;
  std::vector<std::thread> io_threads_;
};

// Pins every chunk in `indices` (reads the missing ones concurrently) and returns them in
// the same order, or the first error. Blocking: never call it from a cache callback.
Result<std::vector<ChunkPin>> get_chunks(ChunkCache& cache, SourceId id, int level,
                                         std::span<const Index> indices,
                                         int priority = kPriorityVisible);

// get_chunks that keeps going past failures: the pins of the chunks that could be read (an
// empty pin where one failed) and an error for each that could not.
struct PartialChunks {
  std::vector<ChunkPin> pins;
  std::vector<std::pair<std::size_t, Error>> failed;  // (position in `indices`, why)
};
// With a deadline, chunks not there by then are given up (kBusy, "not ready within"): their
// requests go on and land in the cache, but the caller does not wait for them. With `cancel`,
// it looks every 50 ms; once true, the requests not served yet are cancelled (their queued
// reads leave the queue) and fail with kCancelled.
PartialChunks get_chunks_partial(
    ChunkCache& cache, SourceId id, int level, std::span<const Index> indices,
    int priority = kPriorityVisible,
    std::optional<std::chrono::steady_clock::time_point> deadline = std::nullopt,
    const std::atomic<bool>* cancel = nullptr);

// Copies the box [start, start + shape) of `level` into `out` (C order, dtype of the
// source, shape.size() == ndim), reading the chunks it touches concurrently through the
// cache. Voxels of missing chunks and outside the array get the fill value.
Status read_region(ChunkCache& cache, SourceId id, int level, std::span<const std::int64_t> start,
                   std::span<const std::int64_t> shape, std::span<std::byte> out,
                   int priority = kPriorityVisible);

}  // namespace vx::data
