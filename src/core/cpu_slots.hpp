// CpuSlots: at most N threads in a CPU-bound section at once. The chunk cache runs many I/O
// threads so that storage latency overlaps; sources take a slot only around decoding, so
// decode work never oversubscribes the cores while reads wait on storage.
#pragma once

#include <semaphore>
#include <thread>

namespace vx {

class CpuSlots {
 public:
  explicit CpuSlots(unsigned n = std::max(1u, std::thread::hardware_concurrency()))
      : sem_(std::ptrdiff_t(n)) {}
  CpuSlots(const CpuSlots&) = delete;
  CpuSlots& operator=(const CpuSlots&) = delete;

  class Guard {
   public:
    explicit Guard(std::counting_semaphore<>& s) : s_(&s) { s_->acquire(); }
    ~Guard() {
      if (s_) s_->release();
    }
    Guard(Guard&& o) noexcept : s_(o.s_) { o.s_ = nullptr; }
    Guard(const Guard&) = delete;
    Guard& operator=(const Guard&) = delete;
    Guard& operator=(Guard&&) = delete;

   private:
    std::counting_semaphore<>* s_;
  };

  [[nodiscard]] Guard acquire() { return Guard(sem_); }

 private:
  std::counting_semaphore<> sem_;
};

}  // namespace vx
