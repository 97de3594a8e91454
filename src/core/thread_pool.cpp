#include "core/thread_pool.hpp"

namespace vx {

PriorityPool::PriorityPool(unsigned threads) {
  ensure_threads(threads);
}

PriorityPool::~PriorityPool() {
  std::vector<std::thread> workers;
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    workers.swap(workers_);
  }
  cv_.notify_all();
  for (auto& w : workers)
    w.join();
  // Queued tasks are destroyed here, outside the workers, without running.
}

void PriorityPool::ensure_threads(unsigned n) {
  std::lock_guard lock(mutex_);
  while (workers_.size() < n && !stopping_)
    workers_.emplace_back([this] { run(); });
}

unsigned PriorityPool::threads() const {
  std::lock_guard lock(mutex_);
  return static_cast<unsigned>(workers_.size());
}

void PriorityPool::submit(int priority, Task task) {
  {
    std::lock_guard lock(mutex_);
    queue_.push(Item{priority, next_seq_++, std::move(task)});
  }
  cv_.notify_one();
}

void PriorityPool::run() {
  for (;;) {
    Task task;
    {
      std::unique_lock lock(mutex_);
      cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      // top() is const; the task is moved out of it and then popped.
      task = std::move(const_cast<Item&>(queue_.top()).task);
      queue_.pop();
    }
    task();
  }
}

}  // namespace vx
