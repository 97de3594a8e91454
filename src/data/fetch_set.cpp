#include "data/fetch_set.hpp"

#include <atomic>
#include <mutex>
#include <unordered_map>

namespace vx::data {

struct FetchSet::Core {
  std::mutex mutex;
  struct Item {
    ChunkRequest request;
    int priority = 0;
    std::uint64_t round = 0;
    std::uint64_t serial = 0;  // tells a request apart from a later one for the same chunk
    // Set by the callback: an item whose request is done is stale (it raced the insert).
    std::shared_ptr<std::atomic<bool>> done;
    std::shared_ptr<std::atomic<bool>> prefetch;  // only a prefetch wants it (yet)
  };
  std::unordered_map<ChunkKey, Item, ChunkKeyHash> pending;
  std::unordered_map<ChunkKey, std::uint64_t, ChunkKeyHash> failed;  // key -> last round wanted
  std::vector<Failure> new_failures;
  std::uint64_t round = 0;
  std::uint64_t serial = 0;
  std::function<void(bool)> listener;
};

FetchSet::FetchSet(ChunkCache& cache) : cache_(cache), core_(std::make_shared<Core>()) {}

FetchSet::~FetchSet() {
  clear();
}

void FetchSet::set_listener(std::function<void(bool)> listener) {
  std::lock_guard lock(core_->mutex);
  core_->listener = std::move(listener);
}

void FetchSet::begin_round() {
  std::lock_guard lock(core_->mutex);
  ++core_->round;
}

FetchSet::State FetchSet::want(SourceId source, int level, const Index& index, int priority,
                               ChunkPin& pin, bool prefetch) {
  const ChunkKey key{source, level, index};
  std::uint64_t serial;
  {
    std::lock_guard lock(core_->mutex);
    if (auto f = core_->failed.find(key); f != core_->failed.end()) {
      f->second = core_->round;
      return State::kFailed;
    }
  }
  if (auto p = cache_.try_get(source, level, index)) {
    pin = std::move(*p);
    return State::kReady;
  }
  {
    std::lock_guard lock(core_->mutex);
    auto it = core_->pending.find(key);
    if (it != core_->pending.end() && !it->second.done->load()) {
      it->second.round = core_->round;
      if (!prefetch) it->second.prefetch->store(false);
      if (priority <= it->second.priority) return State::kPending;
    }
    serial = ++core_->serial;
  }
  auto done = std::make_shared<std::atomic<bool>>(false);
  auto only_prefetch = std::make_shared<std::atomic<bool>>(prefetch);
  // Requested outside the lock: a hit or a remembered failure calls back inline.
  std::weak_ptr<Core> weak = core_;
  auto req = cache_.request(
      source, level, index, priority, [weak, key, serial, done, only_prefetch](Result<ChunkPin> r) {
        done->store(true);
        auto core = weak.lock();
        if (!core) return;
        std::function<void(bool)> listener;
        {
          std::lock_guard lock(core->mutex);
          auto it = core->pending.find(key);
          if (it != core->pending.end() && it->second.serial == serial) core->pending.erase(it);
          // A prefetch changes nothing on screen: no frame for it, and a failure waits until
          // the view needs the chunk (the cache remembers it and answers at once then).
          if (only_prefetch->load()) return;
          if (!r) {
            if (r.error().code == ErrorCode::kCancelled) return;
            if (core->failed.size() < 100'000) {
              core->failed.emplace(key, core->round);
              core->new_failures.push_back({key.source, key.level, key.index, r.error()});
            }
          }
          listener = core->listener;
        }
        if (listener) listener(!r);
      });
  std::lock_guard lock(core_->mutex);
  // Done already (inline)? Then the callback ran and there is nothing to keep.
  if (auto f = core_->failed.find(key); f != core_->failed.end()) return State::kFailed;
  if (auto p = cache_.try_get(source, level, index)) {
    pin = std::move(*p);
    return State::kReady;
  }
  auto& item = core_->pending[key];
  ChunkRequest old = std::move(item.request);
  item.request = std::move(req);
  item.priority = std::max(item.priority, priority);
  item.round = core_->round;
  item.serial = serial;
  item.done = std::move(done);
  item.prefetch = std::move(only_prefetch);
  old.cancel();  // after the new one joined: the read stays queued, at the higher priority
  return State::kPending;
}

void FetchSet::end_round() {
  std::vector<ChunkRequest> stale;
  {
    std::lock_guard lock(core_->mutex);
    for (auto it = core_->pending.begin(); it != core_->pending.end();) {
      if (it->second.round != core_->round) {
        stale.push_back(std::move(it->second.request));
        it = core_->pending.erase(it);
      } else {
        ++it;
      }
    }
    // Failures out of view are forgotten: the cache remembers them for a while, and a later
    // view that needs them again learns of them from it.
    std::erase_if(core_->failed, [&](const auto& f) { return f.second != core_->round; });
  }
  for (auto& r : stale)
    r.cancel();  // outside the lock: cancel() may take the cache's locks
}

void FetchSet::clear() {
  std::vector<ChunkRequest> all;
  {
    std::lock_guard lock(core_->mutex);
    for (auto& [k, item] : core_->pending)
      all.push_back(std::move(item.request));
    core_->pending.clear();
    core_->failed.clear();
  }
  for (auto& r : all)
    r.cancel();
}

std::size_t FetchSet::pending() const {
  std::lock_guard lock(core_->mutex);
  std::size_t n = 0;
  for (const auto& [k, item] : core_->pending)
    n += !item.done->load() && !item.prefetch->load();
  return n;
}

std::vector<FetchSet::Failure> FetchSet::take_failures() {
  std::lock_guard lock(core_->mutex);
  return std::exchange(core_->new_failures, {});
}

}  // namespace vx::data
