// A set of resident objects (the CUDA backend's device bricks) charged to a named budget
// (core/resources.hpp), evicted least recently used, never while pinned. Thread-safe. A
// template without any CUDA in it, so the device brick pool uses it with device buffers and
// host tests check its bookkeeping with plain ones.
#pragma once

#include <cstdint>
#include <list>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>

#include "core/error.hpp"
#include "core/resources.hpp"

namespace vx::render {

template <class Key, class Value, class Hash = std::hash<Key>>
class ResidentSet {
 public:
  // `budget` must outlive the set.
  ResidentSet(Budget& budget, std::string holder_name)
      : holder_(budget.add_holder(std::move(holder_name), kRankCache)) {}
  ~ResidentSet() {
    std::lock_guard lock(mutex_);
    map_.clear();
    holder_.release(holder_.bytes());
  }
  ResidentSet(const ResidentSet&) = delete;
  ResidentSet& operator=(const ResidentSet&) = delete;

  // The value under `key`, pinned until release(key). When absent: charges `bytes` (evicting
  // this set's unpinned entries, least recently used first, while the budget refuses) and
  // makes it with make() -> Result<Value>; a make() that fails with kOutOfMemory (the
  // allocator ran out before the budget did) evicts one more and tries again. Errors:
  // kOutOfMemory naming the budget when pinned entries leave no room, or make()'s error.
  template <class Make>
  Result<Value*> acquire(const Key& key, std::uint64_t bytes, Make&& make) {
    std::lock_guard lock(mutex_);
    if (auto it = map_.find(key); it != map_.end()) {
      ++it->second.pins;
      lru_.splice(lru_.begin(), lru_, it->second.lru);
      holder_.touch();
      ++hits_;
      return &it->second.value;
    }
    for (;;) {
      auto st = holder_.charge(bytes);
      if (st) break;
      if (!evict_one()) return tl::unexpected(st.error());
    }
    for (;;) {
      auto made = make();
      if (made) {
        lru_.push_front(key);
        auto& e = map_[key];
        e.value = std::move(*made);
        e.bytes = bytes;
        e.pins = 1;
        e.lru = lru_.begin();
        return &e.value;
      }
      if (made.error().code == ErrorCode::kOutOfMemory && evict_one()) continue;
      holder_.release(bytes);
      return tl::unexpected(made.error());
    }
  }

  void release(const Key& key) {
    std::lock_guard lock(mutex_);
    if (auto it = map_.find(key); it != map_.end() && it->second.pins > 0) --it->second.pins;
  }

  bool contains(const Key& key) const {
    std::lock_guard lock(mutex_);
    return map_.count(key) != 0;
  }
  std::size_t size() const {
    std::lock_guard lock(mutex_);
    return map_.size();
  }
  std::uint64_t bytes() const { return holder_.bytes(); }
  std::uint64_t evictions() const {
    std::lock_guard lock(mutex_);
    return evictions_;
  }
  std::uint64_t hits() const {
    std::lock_guard lock(mutex_);
    return hits_;
  }

 private:
  struct Entry {
    Value value{};
    std::uint64_t bytes = 0;
    int pins = 0;
    typename std::list<Key>::iterator lru;  // position in lru_ (front: most recent)
  };

  // Frees the least recently used unpinned entry; false when every entry is pinned.
  bool evict_one() {
    for (auto it = lru_.rbegin(); it != lru_.rend(); ++it) {
      auto e = map_.find(*it);
      if (e == map_.end() || e->second.pins > 0) continue;
      holder_.release(e->second.bytes);
      lru_.erase(e->second.lru);
      map_.erase(e);
      ++evictions_;
      return true;
    }
    return false;
  }

  Budget::Holder holder_;
  mutable std::mutex mutex_;
  std::unordered_map<Key, Entry, Hash> map_;
  std::list<Key> lru_;
  std::uint64_t evictions_ = 0, hits_ = 0;
};

}  // namespace vx::render
