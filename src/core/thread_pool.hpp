// A fixed pool of worker threads that runs tasks by priority (higher first, FIFO among
// equals). Used for I/O-bound work such as chunk reads, where threads block on storage;
// CPU-bound parallel loops use oneTBB instead.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <queue>
#include <string>
#include <thread>
#include <vector>

namespace vx {

class PriorityPool {
 public:
  using Task = std::function<void()>;

  explicit PriorityPool(unsigned threads);
  // Stops the workers; tasks still queued are destroyed without running, so a task's
  // captured state must clean up in its destructor (the chunk cache cancels its waiters
  // before the pool goes).
  ~PriorityPool();
  PriorityPool(const PriorityPool&) = delete;
  PriorityPool& operator=(const PriorityPool&) = delete;

  void submit(int priority, Task task);
  // Adds workers until there are at least n (never removes any).
  void ensure_threads(unsigned n);
  unsigned threads() const;

 private:
  struct Item {
    int priority;
    std::uint64_t seq;
    Task task;
    bool operator<(const Item& o) const {
      return priority != o.priority ? priority < o.priority : seq > o.seq;
    }
  };
  void run();

  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::priority_queue<Item> queue_;
  std::uint64_t next_seq_ = 0;
  bool stopping_ = false;
  std::vector<std::thread> workers_;  // guarded by mutex_ for growth
};

}  // namespace vx
