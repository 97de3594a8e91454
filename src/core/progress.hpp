// A progress bar for long CLI work: done/total, rate and ETA. On a terminal it redraws one
// line on stderr; otherwise (CI, pipes) it logs a progress event every few seconds.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

namespace vx {

class ProgressBar {
 public:
  // label: what is counted ("chunks"); bytes are shown as a rate when add() reports them.
  ProgressBar(std::string title, std::uint64_t total, std::string label, bool enabled = true);
  ~ProgressBar();  // finishes the line
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;

  void add(std::uint64_t done, std::uint64_t bytes = 0) {
    done_.fetch_add(done, std::memory_order_relaxed);
    bytes_.fetch_add(bytes, std::memory_order_relaxed);
  }
  void set_title(std::string title);

 private:
  void draw(bool final);
  void loop();

  std::string title_;
  std::uint64_t total_;
  std::string label_;
  bool enabled_;
  bool tty_;
  std::atomic<std::uint64_t> done_{0};
  std::atomic<std::uint64_t> bytes_{0};
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_log_;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

// "1.5 GiB", "640 KiB"
std::string format_bytes(double bytes);
// "1m05s", "3.2s"
std::string format_duration(double seconds);

}  // namespace vx
