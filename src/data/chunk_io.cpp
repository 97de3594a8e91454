// ChunkCache's I/O side: the priority queue of reads, its threads, reading and retrying a
// chunk, handing it to its waiters, and leaving the queue (cancelled, or dropped when full).
#include <algorithm>

#include "data/chunk_cache_impl.hpp"

namespace vx::data {

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

namespace {

// Under the shard's mutex: when no request for `e` is left uncancelled, forgets it (its
// waiters, its place in the map) and says so. Queued reads, reads about to start and
// computations about to run all end this way when nobody wants them any more.
template <class ShardT>
bool forget_if_unwanted_locked(ShardT& shard, const std::shared_ptr<CacheEntry>& e) {
  const bool wanted = std::any_of(e->waiters.begin(), e->waiters.end(),
                                  [](const auto& w) { return !w->cancelled.load(); });
  if (wanted) return false;
  e->waiters.clear();
  if (auto it = shard.map.find(e->key); it != shard.map.end() && it->second == e)
    shard.map.erase(it);
  return true;
}

}  // namespace

void ChunkCache::on_cancel(const std::shared_ptr<CacheEntry>& e) {
  auto& shard = shard_for(e->hash);
  {
    std::lock_guard lock(shard.mutex);
    if (e->started || e->ready) return;
    if (!forget_if_unwanted_locked(shard, e)) return;
    e->started = true;  // abandoned: an I/O thread that pops it skips it
    std::lock_guard qlock(queue_->mutex);
    if (e->queued) {
      queue_->items.erase(e->qkey);
      e->queued = false;
    }
  }
  stats_->cancelled++;
}

void ChunkCache::run_read(std::shared_ptr<CacheEntry> e) {
  auto& shard = shard_for(e->hash);
  {
    std::lock_guard lock(shard.mutex);
    if (e->started) return;  // abandoned while queued
    e->started = true;
    if (forget_if_unwanted_locked(shard, e)) {
      stats_->cancelled++;
      return;
    }
  }
  auto slot = slot_of(e->key.source);
  if (!slot) {  // removed while queued: nobody wants its chunks any more (not a failure)
    abandon(e, Error{ErrorCode::kCancelled,
                     fmt::format("chunk cache: source id {} was removed", e->key.source)});
    return;
  }
  if (dynamic_cast<const ComputedSource*>(slot->source.get())) {
    run_compute(std::move(e), std::move(slot));
    return;
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
  finish(e, *slot, std::move(result), std::move(buffer));
}

void ChunkCache::finish(const std::shared_ptr<CacheEntry>& e, const SourceSlot& slot,
                        Result<ReadResult> result, std::shared_ptr<std::byte[]> buffer) {
  auto& shard = shard_for(e->hash);
  const auto& info = slot.source->info();
  const std::size_t bytes = info.chunk_bytes(e->key.level);
  std::shared_ptr<const std::byte[]> fill;
  if (result && result->missing) {
    std::lock_guard lock(slot.mutex);
    auto& f = slot.fill[std::size_t(e->key.level)];
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
      // Not when memory was short or the request was cancelled: those are tried again.
      const auto code = result.error().code;
      if (options_.failure_ttl_ms > 0 && code != ErrorCode::kOutOfMemory &&
          code != ErrorCode::kCancelled) {
        e->error = result.error();
        e->expires =
            std::chrono::steady_clock::now() + std::chrono::milliseconds(options_.failure_ttl_ms);
        e->charge = kEntryOverhead;
        shard.lru.push_front(e.get());
        e->tick = clock_++;
        e->lru = shard.lru.begin();
        bytes_cached_ += e->charge;
        holder_.force_charge(e->charge);
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
      holder_.force_charge(e->charge);
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

namespace {

// The inputs of one computation, filled by their callbacks (any thread); the last one in
// starts the computation.
struct Gather {
  std::vector<ChunkPin> pins;
  std::atomic<std::size_t> remaining{0};
  std::mutex mutex;
  std::optional<Error> error;
};

}  // namespace

// A computation whose every request was cancelled (the view moved on, or its frame was
// superseded) is dropped before it runs, as a queued read is: it releases its inputs' pins
// and leaves the compute threads to the views that want chunks now. Without this, a pan
// waited behind the last view's computations, which also kept their inputs pinned (a cache
// of pinned chunks cannot make room for anything). Requests from other computations
// (chains) and synchronous reads (get()) are never cancelled, so what they need still runs;
// a view's requests, prefetches included, are cancelled when a render round no longer wants
// them (FetchSet::end_round).
bool ChunkCache::drop_if_unwanted(const std::shared_ptr<CacheEntry>& e) {
  {
    auto& shard = shard_for(e->hash);
    std::lock_guard lock(shard.mutex);
    if (!forget_if_unwanted_locked(shard, e)) return false;
  }
  stats_->cancelled++;
  return true;  // the caller releases the inputs' pins
}

void ChunkCache::run_compute(std::shared_ptr<CacheEntry> e, std::shared_ptr<SourceSlot> slot) {
  const auto* computed = static_cast<const ComputedSource*>(slot->source.get());
  auto keys = computed->inputs(e->key.level, e->key.index);
  if (!keys) {
    finish(e, *slot, tl::unexpected(keys.error()), nullptr);
    return;
  }
  int priority;
  {
    std::lock_guard lock(shard_for(e->hash).mutex);
    priority = e->priority;
  }
  auto g = std::make_shared<Gather>();
  g->pins.resize(keys->size());
  g->remaining = keys->size() + 1;  // +1: held until every request is made
  auto done = [this, e, slot, computed, g, priority] {
    if (stopping_) return;  // the destructor cancels the entry's waiters
    if (g->error) {
      finish(e, *slot, tl::unexpected(*g->error), nullptr);
      return;
    }
    if (drop_if_unwanted(e)) {
      g->pins.clear();
      return;
    }
    compute_->submit(priority, [this, e, slot, computed, g] {
      if (stopping_) return;
      if (drop_if_unwanted(e)) {
        g->pins.clear();
        return;
      }
      const std::size_t bytes = slot->source->info().chunk_bytes(e->key.level);
      std::shared_ptr<std::byte[]> buffer = pool_buffers_->take(bytes);
      Result<ReadResult> r = make_error(ErrorCode::kInternal, "not computed");
      try {
        r = computed->compute(e->key.level, e->key.index, g->pins, std::span(buffer.get(), bytes));
      } catch (const std::exception& ex) {  // a pipeline's bug must not take the server down
        r = fail(ErrorCode::kInternal, "{}: {}", slot->source->info().location, ex.what());
      }
      g->pins.clear();  // unpin the inputs before the result is counted
      if (r) stats_->computed++;
      finish(e, *slot, std::move(r), std::move(buffer));
    });
  };
  auto arrive = [g, done](std::size_t i, Result<ChunkPin> r) {
    if (r) {
      g->pins[i] = std::move(*r);
    } else {
      std::lock_guard lock(g->mutex);
      if (!g->error) g->error = with_context(r.error(), "computing from an input chunk");
    }
    if (g->remaining.fetch_sub(1) == 1) done();
  };
  // Not kept: the computation is not cancelled once its inputs are asked for.
  for (std::size_t i = 0; i < keys->size(); ++i) {
    const auto& k = (*keys)[i];
    request(k.source, k.level, k.index, priority,
            [arrive, i](Result<ChunkPin> r) { arrive(i, std::move(r)); });
  }
  if (g->remaining.fetch_sub(1) == 1) done();
}

Result<ReadResult> ComputedSource::read_chunk(int level, const Index& index,
                                              std::span<std::byte> out) const {
  VX_ASSIGN(auto keys, inputs(level, index));
  std::vector<ChunkPin> pins;
  pins.reserve(keys.size());
  // Runs of one (source, level) are read concurrently (inputs are usually one run).
  for (std::size_t i = 0; i < keys.size();) {
    std::size_t j = i;
    std::vector<Index> run;
    while (j < keys.size() && keys[j].source == keys[i].source && keys[j].level == keys[i].level)
      run.push_back(keys[j++].index);
    VX_ASSIGN(auto got, get_chunks(input_cache(), keys[i].source, keys[i].level, run));
    for (auto& p : got)
      pins.push_back(std::move(p));
    i = j;
  }
  return compute(level, index, pins, out);
}

}  // namespace vx::data
