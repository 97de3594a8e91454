// FetchSet: the chunks one consumer (a streaming session) needs for what it shows now.
//
// A renderer asks it for each chunk of a frame with want(): a resident chunk comes back
// pinned; a missing one is requested from the cache once (asking again with a higher
// priority moves the queued read up, it adds no second request). end_round() cancels every
// request the last frame no longer wanted, so a view that moves on leaves nothing queued
// behind it. Chunks that failed (after the cache's retries) are remembered here: want()
// reports them as failed, the frame is drawn without them, and nothing asks for them again
// while they stay in view.
//
// Thread-safety: want(), begin_round() and end_round() come from one render at a time;
// arrivals come on cache I/O threads. The listener runs on those threads, outside the set's
// lock, and must not block.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "data/chunk_cache.hpp"

namespace vx::data {

class FetchSet {
 public:
  enum class State { kReady, kPending, kFailed };
  struct Failure {
    SourceId source = 0;
    int level = 0;
    Index index{};
    Error error;
  };

  explicit FetchSet(ChunkCache& cache);
  // Cancels every outstanding request.
  ~FetchSet();
  FetchSet(const FetchSet&) = delete;
  FetchSet& operator=(const FetchSet&) = delete;

  // Called after each arrival or failure (true for a failure), on an I/O thread.
  void set_listener(std::function<void(bool failed)> listener);

  void begin_round();
  // kReady: `pin` holds the chunk. kPending: requested (or already on its way). kFailed: it
  // could not be read; draw without it. A prefetch (something the view may need next) is
  // not counted in pending() and its arrival calls no listener.
  State want(SourceId source, int level, const Index& index, int priority, ChunkPin& pin,
             bool prefetch = false);
  // Cancels what was requested before this round and not wanted in it.
  void end_round();
  // Cancels everything (the session left, or its view changed completely).
  void clear();

  // Chunks the current view waits for (prefetches not counted).
  std::size_t pending() const;
  // Failures not yet taken (each reported once).
  std::vector<Failure> take_failures();

  struct Core;

 private:
  ChunkCache& cache_;
  std::shared_ptr<Core> core_;
};

}  // namespace vx::data
