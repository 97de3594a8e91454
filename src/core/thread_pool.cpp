#include "core/thread_pool.hpp"

namespace vx {

PriorityPool::PriorityPool(unsigned threads) {
  workers_.reserve(threads);
  for (unsigned i = 0; i < threads; ++i)
    workers_.emplace_back([this] { run(); });
}

PriorityPool::~PriorityPool() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& w : workers_)
    w.join();
  // Queued tasks are destroyed here, outside the workers, without running.
}

void PriorityPool::submit(int priority, Task task) {
  {
    std::lock_guard lock(mutex_);
    queue_.push(Item{priority, next_seq_++, std::move(task)});
  }
  cv_.notify_one();
}

std::size_t PriorityPool::queued() const {
  std::lock_guard lock(mutex_);
  return queue_.size();
}

void PriorityPool::run() {
  for (;;) {
    Task task;
    {
      std::unique_lock lock(mutex_);
      cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      // priority_queue::top is const; the task is moved out through a const_cast-free copy
      // of the handle, then popped.
      task = std::move(const_cast<Item&>(queue_.top()).task);
      queue_.pop();
    }
    task();
  }
}

}  // namespace vx
