#include "data/chunk_cache.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <future>
#include <list>
#include <map>
#include <thread>
#include <unordered_map>

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

namespace {

constexpr std::size_t kEntryOverhead = 256;  // map node, list node, entry: counted too

std::size_t hash_key(const Key& k) {
  std::uint64_t h =
      0x9E3779B97F4A7C15ull ^ (std::uint64_t(k.source) << 40) ^ std::uint64_t(k.level);
  for (auto v : k.index) {
    h ^= std::uint64_t(v) + 0x9E3779B97F4A7C15ull + (h << 6) + (h >> 2);
  }
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  return std::size_t(h);
}

}  // namespace

std::size_t ChunkKeyHash::operator()(const ChunkKey& k) const {
  return hash_key(k);
}

struct ChunkCache::Shard {
  std::mutex mutex;
  std::unordered_map<Key, std::shared_ptr<CacheEntry>, ChunkKeyHash> map;
  std::list<CacheEntry*> lru;  // ready entries, most recent first
};

struct ChunkCache::SourceSlot {
  std::shared_ptr<const VolumeSource> source;
  std::vector<std::vector<std::int64_t>> grids;  // chunks per axis, per level
  std::mutex mutex;
  std::vector<std::shared_ptr<const std::byte[]>> fill;  // per level, made on first need
};

// Buffers of evicted chunks, kept for the next reads of the same size: fresh memory costs a
// page fault and a kernel page clear per 4 KiB, which dominates cold reads of fast codecs.
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
    return std::shared_ptr<std::byte[]>(new std::byte[size]);  // not zeroed: fully written
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
      evictions{0}, cancelled{0}, errors{0}, missing{0}, retries{0}, failed_hits{0}, dropped{0};
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

int visible_priority(int level, double centre_distance) {
  return kPriorityVisible + prefetch_priority(level, centre_distance);
}

int prefetch_priority(int level, double centre_distance) {
  const double d = std::clamp(centre_distance, 0.0, 1.0);
  return std::clamp(level, 0, 200) * 4096 + (4095 - int(d * 4095));
}

// --- ChunkPin, ChunkRequest --------------------------------------------------------------

// Adopts a pin already counted (under the shard mutex) by the cache.
ChunkPin::ChunkPin(std::shared_ptr<CacheEntry> entry) : entry_(std::move(entry)) {}

ChunkPin::~ChunkPin() {
  if (entry_) entry_->pins.fetch_sub(1, std::memory_order_acq_rel);
}

ChunkPin& ChunkPin::operator=(ChunkPin&& other) noexcept {
  if (this != &other) {
    if (entry_) entry_->pins.fetch_sub(1, std::memory_order_acq_rel);
    entry_ = std::move(other.entry_);
  }
  return *this;
}

std::span<const std::byte> ChunkPin::bytes() const {
  return entry_ ? std::span<const std::byte>(entry_->data.get(), entry_->size)
                : std::span<const std::byte>();
}

bool ChunkPin::is_fill() const {
  return entry_ && entry_->fill;
}

void ChunkRequest::cancel() {
  if (!state_ || state_->cancelled.exchange(true, std::memory_order_acq_rel)) return;
  if (!state_->link) return;
  std::lock_guard lock(state_->link->mutex);
  if (!state_->link->cancel) return;  // the cache is gone
  if (auto e = state_->entry.lock()) state_->link->cancel(e);
}

bool ChunkRequest::cancelled() const {
  return state_ && state_->cancelled.load();
}

// --- ChunkCache ----------------------------------------------------------------------------

ChunkCache::ChunkCache(CacheOptions options)
    : options_(options),
      stats_(std::make_unique<Atomics>()),
      pool_buffers_(std::make_unique<BufferPool>()),
      queue_(std::make_unique<IoQueue>()),
      link_(std::make_shared<detail::CancelLink>()) {
  pool_buffers_->limit =
      std::min<std::uint64_t>(options_.budget_bytes / 8, std::uint64_t(256) << 20);
  if (options_.shards == 0) options_.shards = 1;
  if (options_.max_queued == 0) options_.max_queued = 1;
  for (unsigned i = 0; i < options_.shards; ++i)
    shards_.push_back(std::make_unique<Shard>());
  link_->cancel = [this](const std::shared_ptr<CacheEntry>& e) { on_cancel(e); };
  // Automatic sizing starts at 2 per core and grows as sources are added (add_source).
  ensure_io_threads(options_.io_threads ? options_.io_threads
                                        : 2 * std::max(1u, std::thread::hardware_concurrency()));
}

ChunkCache::~ChunkCache() {
  {
    std::lock_guard lock(link_->mutex);  // waits for a cancel() in progress
    link_->cancel = nullptr;
  }
  {
    std::lock_guard lock(queue_->mutex);
    queue_->stopping = true;
  }
  queue_->cv.notify_all();
  std::vector<std::thread> threads;
  {
    std::lock_guard lock(threads_mutex_);
    threads.swap(io_threads_);
  }
  for (auto& t : threads)
    t.join();  // running reads finish; queued ones are dropped below
  queue_->items.clear();
  for (auto& shard : shards_) {
    std::vector<std::shared_ptr<RequestState>> orphans;
    {
      std::lock_guard lock(shard->mutex);
      for (auto& [key, entry] : shard->map)
        if (!entry->ready)
          orphans.insert(orphans.end(), entry->waiters.begin(), entry->waiters.end());
    }
    for (auto& w : orphans)
      if (!w->cancelled.load() && w->callback)
        w->callback(make_error(ErrorCode::kCancelled, "the chunk cache is shutting down"));
  }
}

void ChunkCache::ensure_io_threads(unsigned n) {
  std::lock_guard lock(threads_mutex_);
  while (io_threads_.size() < n)
    io_threads_.emplace_back([this] { io_worker(); });
}

void ChunkCache::io_worker() {
  for (;;) {
    std::shared_ptr<CacheEntry> e;
    {
      std::unique_lock lock(queue_->mutex);
      queue_->cv.wait(lock, [this] { return queue_->stopping || !queue_->items.empty(); });
      if (queue_->stopping) return;
      auto it = queue_->items.begin();
      e = std::move(it->second);
      queue_->items.erase(it);
      e->queued = false;
    }
    run_read(std::move(e));
  }
}

// Needs the entry's shard mutex held (lock order: shard, then queue). Returns the entry the
// queue dropped to stay within max_queued (maybe `e` itself), for abandon() once the shard
// mutex is released.
std::shared_ptr<CacheEntry> ChunkCache::enqueue(const std::shared_ptr<CacheEntry>& e,
                                                int priority) {
  std::shared_ptr<CacheEntry> dropped;
  {
    std::lock_guard lock(queue_->mutex);
    if (e->queued) {
      if (-e->qkey.first >= priority) return nullptr;
      queue_->items.erase(e->qkey);  // moved up, not queued twice
    }
    e->qkey = {-priority, queue_->next++};
    e->queued = true;
    queue_->items.emplace(e->qkey, e);
    if (queue_->items.size() > options_.max_queued) {
      auto last = std::prev(queue_->items.end());
      dropped = std::move(last->second);
      dropped->queued = false;
      queue_->items.erase(last);
      stats_->dropped++;
    }
  }
  queue_->cv.notify_one();
  return dropped;
}

// Takes an entry that will not be read out of the map and fails its live waiters.
void ChunkCache::abandon(const std::shared_ptr<CacheEntry>& e, const Error& why) {
  std::vector<std::shared_ptr<RequestState>> waiters;
  {
    auto& shard = shard_for(e->hash);
    std::lock_guard lock(shard.mutex);
    if (e->ready) return;
    e->started = true;
    waiters = std::move(e->waiters);
    e->waiters.clear();
    if (auto it = shard.map.find(e->key); it != shard.map.end() && it->second == e)
      shard.map.erase(it);
  }
  for (auto& w : waiters)
    if (!w->cancelled.load() && w->callback) w->callback(tl::unexpected(why));
}

void ChunkCache::on_cancel(const std::shared_ptr<CacheEntry>& e) {
  auto& shard = shard_for(e->hash);
  {
    std::lock_guard lock(shard.mutex);
    if (e->started || e->ready) return;
    const bool wanted = std::any_of(e->waiters.begin(), e->waiters.end(),
                                    [](const auto& w) { return !w->cancelled.load(); });
    if (wanted) return;
    e->started = true;  // abandoned: an I/O thread that pops it skips it
    e->waiters.clear();
    if (auto it = shard.map.find(e->key); it != shard.map.end() && it->second == e)
      shard.map.erase(it);
    std::lock_guard qlock(queue_->mutex);
    if (e->queued) {
      queue_->items.erase(e->qkey);
      e->queued = false;
    }
  }
  stats_->cancelled++;
}

SourceId ChunkCache::add_source(std::shared_ptr<const VolumeSource> source) {
  std::lock_guard lock(sources_mutex_);
  auto slot = std::make_unique<SourceSlot>();
  slot->source = std::move(source);
  slot->fill.resize(slot->source->info().levels.size());
  for (const auto& lv : slot->source->info().levels)
    slot->grids.push_back(lv.grid());
  if (options_.io_threads == 0) ensure_io_threads(std::min(slot->source->io_concurrency(), 256u));
  sources_.push_back(std::move(slot));
  return SourceId(sources_.size() - 1);
}

const VolumeSource& ChunkCache::source(SourceId id) const {
  std::lock_guard lock(sources_mutex_);
  return *sources_.at(id)->source;
}

ChunkCache::Shard& ChunkCache::shard_for(std::size_t hash) {
  return *shards_[(hash >> 7) % shards_.size()];
}

CacheCounters ChunkCache::counters() const {
  CacheCounters c;
  c.hits = stats_->hits;
  c.misses = stats_->misses;
  c.joined = stats_->joined;
  c.bytes_read = stats_->bytes_read;
  c.bytes_decoded = stats_->bytes_decoded;
  c.evictions = stats_->evictions;
  c.cancelled = stats_->cancelled;
  c.errors = stats_->errors;
  c.missing = stats_->missing;
  c.retries = stats_->retries;
  c.failed_hits = stats_->failed_hits;
  c.dropped = stats_->dropped;
  {
    std::lock_guard lock(queue_->mutex);
    c.queued = queue_->items.size();
  }
  c.bytes_cached = bytes_cached_;
  c.entries = entries_;
  {
    std::lock_guard lock(pool_buffers_->mutex);
    c.bytes_pooled = pool_buffers_->bytes;
  }
  return c;
}

namespace {

// grids: chunks per axis of every level, computed once per source (this runs per request).
Status check_key(const VolumeInfo& info, const std::vector<std::vector<std::int64_t>>& grids,
                 int level, const Index& index) {
  if (level < 0 || level >= int(grids.size()))
    return fail(ErrorCode::kInvalidArgument, "{}: level {} does not exist ({} levels)",
                info.location, level, grids.size());
  const auto& grid = grids[std::size_t(level)];
  for (std::size_t d = 0; d < grid.size(); ++d)
    if (index[d] < 0 || index[d] >= grid[d])
      return fail(ErrorCode::kInvalidArgument, "{}: chunk index {} on axis '{}' is outside 0..{}",
                  info.location, index[d], info.axes[d].name, grid[d] - 1);
  for (std::size_t d = grid.size(); d < index.size(); ++d)
    if (index[d] != 0)
      return fail(ErrorCode::kInvalidArgument, "{}: chunk index has too many axes", info.location);
  return {};
}

}  // namespace

std::optional<ChunkPin> ChunkCache::try_get(SourceId id, int level, const Index& index) {
  const Key key{id, level, index};
  const auto h = hash_key(key);
  auto& shard = shard_for(h);
  std::lock_guard lock(shard.mutex);
  auto it = shard.map.find(key);
  if (it == shard.map.end() || !it->second->ready) return std::nullopt;
  auto& e = it->second;
  e->pins.fetch_add(1, std::memory_order_acq_rel);
  shard.lru.splice(shard.lru.begin(), shard.lru, e->lru);
  e->tick = clock_++;
  stats_->hits++;
  return ChunkPin(e);
}

ChunkRequest ChunkCache::request(SourceId id, int level, const Index& index, int priority,
                                 ChunkCallback callback) {
  SourceSlot* slot = nullptr;
  {
    std::lock_guard lock(sources_mutex_);
    if (id >= sources_.size()) {
      callback(fail(ErrorCode::kInvalidArgument, "unknown source id {}", id));
      return {};
    }
    slot = sources_[id].get();
  }
  if (auto ok = check_key(slot->source->info(), slot->grids, level, index); !ok) {
    callback(tl::unexpected(ok.error()));
    return {};
  }
  const Key key{id, level, index};
  const auto h = hash_key(key);
  auto& shard = shard_for(h);
  std::unique_lock lock(shard.mutex);
  auto it = shard.map.find(key);
  if (it != shard.map.end() && it->second->ready) {
    auto e = it->second;
    e->pins.fetch_add(1, std::memory_order_acq_rel);
    shard.lru.splice(shard.lru.begin(), shard.lru, e->lru);
    e->tick = clock_++;
    lock.unlock();
    stats_->hits++;
    callback(ChunkPin(std::move(e)));
    return {};
  }
  if (it != shard.map.end() && it->second->error) {
    if (std::chrono::steady_clock::now() < it->second->expires) {
      const Error err = *it->second->error;
      shard.lru.splice(shard.lru.begin(), shard.lru, it->second->lru);
      it->second->tick = clock_++;
      lock.unlock();
      stats_->failed_hits++;
      callback(tl::unexpected(err));
      return {};
    }
    // Expired: forget it and read again.
    shard.lru.erase(it->second->lru);
    bytes_cached_ -= it->second->charge;
    entries_--;
    shard.map.erase(it);
    it = shard.map.end();
  }
  auto state = std::make_shared<RequestState>();
  state->callback = std::move(callback);
  state->link = link_;
  std::shared_ptr<CacheEntry> dropped;
  if (it != shard.map.end()) {
    auto& e = it->second;
    e->waiters.push_back(state);
    state->entry = e;
    stats_->joined++;
    if (priority > e->priority && !e->started) {
      e->priority = priority;
      dropped = enqueue(e, priority);
    }
  } else {
    auto e = std::make_shared<CacheEntry>();
    e->key = key;
    e->hash = h;
    e->priority = priority;
    e->waiters.push_back(state);
    state->entry = e;
    shard.map.emplace(key, e);
    stats_->misses++;
    dropped = enqueue(e, priority);
  }
  lock.unlock();
  if (dropped) abandon(dropped, Error{ErrorCode::kBusy, "the chunk I/O queue is full"});
  return ChunkRequest(std::move(state));
}

void ChunkCache::run_read(std::shared_ptr<CacheEntry> e) {
  auto& shard = shard_for(e->hash);
  {
    std::lock_guard lock(shard.mutex);
    if (e->started) return;  // abandoned while queued
    e->started = true;
    const bool wanted = std::any_of(e->waiters.begin(), e->waiters.end(),
                                    [](const auto& w) { return !w->cancelled.load(); });
    if (!wanted) {
      if (auto it = shard.map.find(e->key); it != shard.map.end() && it->second == e)
        shard.map.erase(it);
      stats_->cancelled++;
      return;
    }
  }
  SourceSlot* slot;
  {
    std::lock_guard lock(sources_mutex_);
    slot = sources_[e->key.source].get();
  }
  const auto& info = slot->source->info();
  const std::size_t bytes = info.chunk_bytes(e->key.level);
  std::shared_ptr<std::byte[]> buffer = pool_buffers_->take(bytes);
  auto result =
      slot->source->read_chunk(e->key.level, e->key.index, std::span(buffer.get(), bytes));
  // Storage hiccups (a network file system, a busy disk) often pass: try again a few times,
  // waiting longer each time, unless the request itself was wrong or nobody wants it now.
  for (unsigned attempt = 0; !result && attempt < options_.retries; ++attempt) {
    if (result.error().code == ErrorCode::kInvalidArgument) break;
    {
      std::lock_guard lock(queue_->mutex);
      if (queue_->stopping) break;
    }
    std::this_thread::sleep_for(
        std::chrono::milliseconds(std::uint64_t(options_.retry_backoff_ms) << (2 * attempt)));
    stats_->retries++;
    result = slot->source->read_chunk(e->key.level, e->key.index, std::span(buffer.get(), bytes));
  }

  std::shared_ptr<const std::byte[]> fill;
  if (result && result->missing) {
    std::lock_guard lock(slot->mutex);
    auto& f = slot->fill[std::size_t(e->key.level)];
    if (!f) {
      std::shared_ptr<std::byte[]> nf(new std::byte[bytes]);
      fill_with(std::span(nf.get(), bytes), info.dtype, info.fill_value);
      f = std::move(nf);
    }
    fill = f;
  }

  std::vector<std::shared_ptr<RequestState>> waiters;
  std::vector<bool> pinned;
  {
    std::lock_guard lock(shard.mutex);
    waiters = std::move(e->waiters);
    e->waiters.clear();
    if (!result) {
      // Remembered, so that the views that need it draw without it instead of asking again.
      if (options_.failure_ttl_ms > 0) {
        e->error = result.error();
        e->expires =
            std::chrono::steady_clock::now() + std::chrono::milliseconds(options_.failure_ttl_ms);
        e->charge = kEntryOverhead;
        shard.lru.push_front(e.get());
        e->tick = clock_++;
        e->lru = shard.lru.begin();
        bytes_cached_ += e->charge;
        entries_++;
      } else if (auto it = shard.map.find(e->key); it != shard.map.end() && it->second == e) {
        shard.map.erase(it);
      }
    } else {
      if (result->missing) {
        e->data = std::move(fill);
        e->fill = true;
        e->charge = kEntryOverhead;
      } else {
        e->data = std::move(buffer);
        e->charge = bytes + kEntryOverhead;
      }
      e->size = bytes;
      e->ready = true;
      shard.lru.push_front(e.get());
      e->tick = clock_++;
      e->lru = shard.lru.begin();
      for (const auto& w : waiters) {
        const bool live = !w->cancelled.load();
        pinned.push_back(live);
        if (live) e->pins.fetch_add(1, std::memory_order_acq_rel);
      }
      bytes_cached_ += e->charge;
      entries_++;
    }
  }
  if (!result) {
    stats_->errors++;
    for (auto& w : waiters)
      if (!w->cancelled.load()) w->callback(tl::unexpected(result.error()));
    return;
  }
  if (result->missing) {
    stats_->missing++;
  } else {
    stats_->bytes_read += result->bytes_read;
    stats_->bytes_decoded += bytes;
  }
  // Evict before delivering, so a caller that continues after its callback sees a cache
  // within budget. The new entry is already pinned for its waiters and stays.
  evict_over_budget((e->hash >> 7) % shards_.size());
  for (std::size_t i = 0; i < waiters.size(); ++i)
    if (pinned[i]) waiters[i]->callback(ChunkPin(e));
}

// Least recently used first across all shards: each round finds the shard whose oldest
// unpinned entry is the oldest of all, and evicts from it down to the next shard's age. (Taking
// one shard's tail to the end before looking at the others would throw out chunks that just
// arrived while older ones wait in other shards: a view near the budget would thrash.)
void ChunkCache::evict_over_budget(std::size_t start) {
  constexpr std::uint64_t kNone = ~std::uint64_t(0);
  while (bytes_cached_.load() > options_.budget_bytes) {
    std::uint64_t oldest = kNone, second = kNone;
    std::size_t victim = 0;
    for (std::size_t i = 0; i < shards_.size(); ++i) {
      auto& shard = *shards_[(start + i) % shards_.size()];
      std::lock_guard lock(shard.mutex);
      for (auto it = shard.lru.rbegin(); it != shard.lru.rend(); ++it) {
        if ((*it)->pins.load(std::memory_order_acquire) != 0) continue;
        const auto t = (*it)->tick;
        if (t < oldest) {
          second = oldest;
          oldest = t;
          victim = (start + i) % shards_.size();
        } else if (t < second) {
          second = t;
        }
        break;
      }
    }
    if (oldest == kNone) return;  // everything is pinned: over budget until pins go
    auto& shard = *shards_[victim];
    std::lock_guard lock(shard.mutex);
    auto it = shard.lru.end();
    bool evicted = false;
    while (it != shard.lru.begin() && bytes_cached_.load() > options_.budget_bytes) {
      --it;
      CacheEntry* e = *it;
      if (e->pins.load(std::memory_order_acquire) != 0) continue;
      if (evicted && e->tick > second) break;  // another shard holds older ones now
      evicted = true;
      bytes_cached_ -= e->charge;
      entries_--;
      stats_->evictions++;
      it = shard.lru.erase(it);
      // Unpinned and out of the LRU: nobody else holds the buffer, reuse it.
      if (!e->fill && !e->error && e->data.use_count() == 1)
        pool_buffers_->give(std::const_pointer_cast<std::byte[]>(std::move(e->data)), e->size);
      const Key key = e->key;  // erase() frees e: do not pass a reference into it
      shard.map.erase(key);
    }
    if (!evicted) return;  // raced with a pin; try again on the next insert
  }
}

Result<ChunkPin> ChunkCache::get(SourceId id, int level, const Index& index, int priority) {
  std::promise<Result<ChunkPin>> promise;
  auto future = promise.get_future();
  request(id, level, index, priority,
          [&promise](Result<ChunkPin> r) { promise.set_value(std::move(r)); });
  return future.get();
}

PartialChunks get_chunks_partial(ChunkCache& cache, SourceId id, int level,
                                 std::span<const Index> indices, int priority) {
  PartialChunks out;
  out.pins.resize(indices.size());
  // Hits first, without callbacks: a warm view (every frame of an interaction) ends here.
  std::vector<std::size_t> missing;
  for (std::size_t i = 0; i < indices.size(); ++i) {
    if (auto pin = cache.try_get(id, level, indices[i]))
      out.pins[i] = std::move(*pin);
    else
      missing.push_back(i);
  }
  std::mutex m;
  std::condition_variable cv;
  std::size_t pending = missing.size();
  for (const std::size_t i : missing)
    cache.request(id, level, indices[i], priority, [&, i](Result<ChunkPin> r) {
      std::lock_guard lock(m);
      if (r)
        out.pins[i] = std::move(*r);
      else
        out.failed.emplace_back(i, r.error());
      if (--pending == 0) cv.notify_all();
    });
  std::unique_lock lock(m);
  cv.wait(lock, [&] { return pending == 0; });
  std::sort(out.failed.begin(), out.failed.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  return out;
}

Result<std::vector<ChunkPin>> get_chunks(ChunkCache& cache, SourceId id, int level,
                                         std::span<const Index> indices, int priority) {
  auto got = get_chunks_partial(cache, id, level, indices, priority);
  if (!got.failed.empty()) return tl::unexpected(got.failed.front().second);
  return std::move(got.pins);
}

// --- read_region ----------------------------------------------------------------------------

Status read_region(ChunkCache& cache, SourceId id, int level, std::span<const std::int64_t> start,
                   std::span<const std::int64_t> shape, std::span<std::byte> out, int priority) {
  const auto& info = cache.source(id).info();
  if (level < 0 || level >= int(info.levels.size()))
    return fail(ErrorCode::kInvalidArgument, "{}: level {} does not exist ({} levels)",
                info.location, level, info.levels.size());
  const auto& lv = info.levels[std::size_t(level)];
  const int nd = lv.ndim();
  if (int(start.size()) != nd || int(shape.size()) != nd)
    return fail(ErrorCode::kInvalidArgument, "{}: a box needs {} axes, got {}", info.location, nd,
                start.size());
  const std::size_t item = dtype_size(info.dtype);
  std::size_t total = item;
  bool inside = true;
  for (int d = 0; d < nd; ++d) {
    if (shape[std::size_t(d)] < 0)
      return fail(ErrorCode::kInvalidArgument, "{}: box size on axis '{}' is negative",
                  info.location, info.axes[std::size_t(d)].name);
    total *= std::size_t(shape[std::size_t(d)]);
    inside &= start[std::size_t(d)] >= 0 &&
              start[std::size_t(d)] + shape[std::size_t(d)] <= lv.shape[std::size_t(d)];
  }
  if (out.size() != total)
    return fail(ErrorCode::kInvalidArgument, "region buffer has {} bytes, the box needs {}",
                out.size(), total);
  if (total == 0) return {};
  if (!inside) fill_with(out, info.dtype, info.fill_value);

  // Chunk range clipped to the array.
  Index c0{}, c1{};
  for (int d = 0; d < nd; ++d) {
    const auto lo = std::max<std::int64_t>(start[std::size_t(d)], 0);
    const auto hi =
        std::min(start[std::size_t(d)] + shape[std::size_t(d)], lv.shape[std::size_t(d)]);
    if (hi <= lo) return {};
    c0[d] = lo / lv.chunks[std::size_t(d)];
    c1[d] = (hi - 1) / lv.chunks[std::size_t(d)] + 1;
  }

  struct Shared {
    std::mutex m;
    std::condition_variable cv;
    std::size_t pending = 0;
    std::optional<Error> error;
  } sh;
  std::vector<ChunkRequest> tickets;

  auto copy = [&, nd, item](const Index& ci, const ChunkPin& pin) {
    // Overlap of chunk ci with the box, in array coordinates.
    Index lo{}, cnt{};
    for (int d = 0; d < nd; ++d) {
      const auto cs = lv.chunks[std::size_t(d)];
      const auto a = std::max(ci[d] * cs, start[std::size_t(d)]);
      const auto b = std::min({(ci[d] + 1) * cs, start[std::size_t(d)] + shape[std::size_t(d)],
                               lv.shape[std::size_t(d)]});
      lo[d] = a;
      cnt[d] = b - a;
    }
    const std::byte* src = pin.bytes().data();
    Index pos{};
    const int last = nd - 1;
    for (;;) {
      std::int64_t so = 0, dof = 0;
      for (int d = 0; d < nd; ++d) {
        const auto p = lo[d] + (d == last ? 0 : pos[d]);
        so = so * lv.chunks[std::size_t(d)] + (p - ci[d] * lv.chunks[std::size_t(d)]);
        dof = dof * shape[std::size_t(d)] + (p - start[std::size_t(d)]);
      }
      std::memcpy(out.data() + std::size_t(dof) * item, src + std::size_t(so) * item,
                  std::size_t(cnt[last]) * item);
      int d = last - 1;
      for (; d >= 0; --d) {
        if (++pos[d] < cnt[d]) break;
        pos[d] = 0;
      }
      if (d < 0) break;
    }
  };

  Index ci = c0;
  std::size_t n = 1;
  for (int d = 0; d < nd; ++d)
    n *= std::size_t(c1[d] - c0[d]);
  sh.pending = n;
  for (std::size_t k = 0; k < n; ++k) {
    tickets.push_back(cache.request(id, level, ci, priority, [&, ci](Result<ChunkPin> r) {
      if (r) copy(ci, *r);
      std::lock_guard lock(sh.m);
      if (!r && !sh.error) sh.error = r.error();
      if (--sh.pending == 0) sh.cv.notify_all();
    }));
    for (int d = nd - 1; d >= 0; --d) {
      if (++ci[d] < c1[d]) break;
      ci[d] = c0[d];
    }
  }
  std::unique_lock lock(sh.m);
  sh.cv.wait(lock, [&] { return sh.pending == 0; });
  if (sh.error) return tl::unexpected(*sh.error);
  return {};
}

}  // namespace vx::data
