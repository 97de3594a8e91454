#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <future>

#include "data/chunk_cache_impl.hpp"

namespace vx::data {

std::size_t ChunkKeyHash::operator()(const ChunkKey& k) const {
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
      own_budget_(options.budget ? nullptr
                                 : std::make_unique<Budget>("chunk_cache", options.budget_bytes)),
      budget_(options.budget ? options.budget : own_budget_.get()),
      stats_(std::make_unique<Atomics>()),
      pool_buffers_(std::make_unique<BufferPool>()),
      queue_(std::make_unique<IoQueue>()),
      link_(std::make_shared<detail::CancelLink>()) {
  options_.budget_bytes = budget_->limit();
  pool_buffers_->limit =
      std::min<std::uint64_t>(options_.budget_bytes / 8, std::uint64_t(256) << 20);
  holder_ = budget_->add_holder("chunk_cache", kRankCache,
                                [this](std::uint64_t want) { return evict_bytes(0, want); });
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
  holder_ = {};  // no evictions from other holders from here on
  stopping_ = true;
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
  // Running computations finish (their input callbacks see stopping_ and do nothing);
  // queued ones are dropped; their entries' waiters are cancelled below.
  compute_.reset();
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

SourceId ChunkCache::add_source(std::shared_ptr<const VolumeSource> source) {
  std::lock_guard lock(sources_mutex_);
  auto slot = std::make_shared<SourceSlot>();
  slot->source = std::move(source);
  slot->fill.resize(slot->source->info().levels.size());
  for (const auto& lv : slot->source->info().levels)
    slot->grids.push_back(lv.grid());
  if (options_.io_threads == 0) ensure_io_threads(std::min(slot->source->io_concurrency(), 256u));
  if (!compute_ && dynamic_cast<const ComputedSource*>(slot->source.get()))
    compute_ = std::make_unique<PriorityPool>(std::max(1u, std::thread::hardware_concurrency()));
  const SourceId id = next_source_++;
  sources_.emplace(id, std::move(slot));
  return id;
}

void ChunkCache::remove_source(SourceId id) {
  remove_sources({&id, 1});
}

void ChunkCache::remove_sources(std::span<const SourceId> ids) {
  std::vector<std::shared_ptr<SourceSlot>> slots;  // released after the lock: may free sources
  std::vector<SourceId> gone;
  {
    std::lock_guard lock(sources_mutex_);
    for (const auto id : ids)
      if (auto it = sources_.find(id); it != sources_.end()) {
        slots.push_back(std::move(it->second));
        sources_.erase(it);
        gone.push_back(id);
      }
  }
  if (gone.empty()) return;
  std::sort(gone.begin(), gone.end());
  // Their chunks can never be asked for again: free the unpinned ones now rather than when
  // the budget runs out (pinned ones go with the LRU; entries still reading land and go the
  // same way). One walk of the cache for the whole batch.
  for (auto& shard : shards_) {
    std::lock_guard lock(shard->mutex);
    for (auto it = shard->lru.begin(); it != shard->lru.end();) {
      CacheEntry* e = *it;
      ++it;  // evict_locked erases e's node
      if (e->pins.load(std::memory_order_acquire) == 0 &&
          std::binary_search(gone.begin(), gone.end(), e->key.source))
        evict_locked(*shard, e);
    }
  }
}

std::shared_ptr<ChunkCache::SourceSlot> ChunkCache::slot_of(SourceId id) const {
  std::lock_guard lock(sources_mutex_);
  auto it = sources_.find(id);
  return it == sources_.end() ? nullptr : it->second;
}

const VolumeSource& ChunkCache::source(SourceId id) const {
  std::lock_guard lock(sources_mutex_);
  auto it = sources_.find(id);
  if (it == sources_.end())
    throw std::out_of_range(fmt::format("chunk cache: source id {} is not registered", id));
  return *it->second->source;
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
  c.computed = stats_->computed;
  {
    std::lock_guard lock(sources_mutex_);
    c.sources = sources_.size();
  }
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
  const auto h = ChunkKeyHash{}(key);
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
  const auto slot = slot_of(id);
  if (!slot) {
    callback(fail(ErrorCode::kNotFound,
                  "chunk cache: source id {} is not registered (never added, "
                  "or removed)",
                  id));
    return {};
  }
  if (auto ok = check_key(slot->source->info(), slot->grids, level, index); !ok) {
    callback(tl::unexpected(ok.error()));
    return {};
  }
  const Key key{id, level, index};
  const auto h = ChunkKeyHash{}(key);
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
    holder_.release(it->second->charge);
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

// Least recently used first across all shards: each round finds the shard whose oldest
// unpinned entry is the oldest of all, and evicts from it down to the next shard's age. (Taking
// one shard's tail to the end before looking at the others would throw out chunks that just
// arrived while older ones wait in other shards: a view near the budget would thrash.)
// The budget may be shared (pipelines, other caches): idle pipelines are offloaded first.
void ChunkCache::evict_over_budget(std::size_t start) {
  if (budget_->used() <= budget_->limit()) return;
  holder_.reclaim_others();
  const auto used = budget_->used(), limit = budget_->limit();
  if (used > limit) evict_bytes(start, used - limit);
}

// Evicts least recently used unpinned chunks until `want` bytes are freed (or only pinned
// ones are left); returns the bytes freed.
std::uint64_t ChunkCache::evict_bytes(std::size_t start, std::uint64_t want) {
  constexpr std::uint64_t kNone = ~std::uint64_t(0);
  std::uint64_t freed = 0;
  while (freed < want) {
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
    if (oldest == kNone) return freed;  // everything is pinned: over budget until pins go
    auto& shard = *shards_[victim];
    std::lock_guard lock(shard.mutex);
    auto it = shard.lru.end();
    bool evicted = false;
    while (it != shard.lru.begin() && freed < want) {
      --it;
      CacheEntry* e = *it;
      if (e->pins.load(std::memory_order_acquire) != 0) continue;
      if (evicted && e->tick > second) break;  // another shard holds older ones now
      evicted = true;
      it = std::next(it);  // evict_locked erases e's node; `it` stays valid
      freed += evict_locked(shard, e);
    }
    if (!evicted) return freed;  // raced with a pin; try again on the next insert
  }
  return freed;
}

std::uint64_t ChunkCache::evict_locked(Shard& shard, CacheEntry* e) {
  const std::uint64_t charge = e->charge;
  bytes_cached_ -= charge;
  holder_.release(charge);
  entries_--;
  stats_->evictions++;
  shard.lru.erase(e->lru);
  // Unpinned and out of the LRU: nobody else holds the buffer, reuse it.
  if (!e->fill && !e->error && e->data.use_count() == 1)
    pool_buffers_->give(std::const_pointer_cast<std::byte[]>(std::move(e->data)), e->size);
  const Key key = e->key;  // erase() frees e: do not pass a reference into it
  shard.map.erase(key);
  return charge;
}

Result<ChunkPin> ChunkCache::get(SourceId id, int level, const Index& index, int priority) {
  std::promise<Result<ChunkPin>> promise;
  auto future = promise.get_future();
  request(id, level, index, priority,
          [&promise](Result<ChunkPin> r) { promise.set_value(std::move(r)); });
  return future.get();
}

}  // namespace vx::data