#include "core/progress.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "core/log.hpp"

namespace vx {

std::string format_bytes(double bytes) {
  static const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  int u = 0;
  while (bytes >= 1024.0 && u < 5) {
    bytes /= 1024.0;
    ++u;
  }
  return u == 0 ? fmt::format("{:.0f} B", bytes) : fmt::format("{:.1f} {}", bytes, units[u]);
}

std::string format_duration(double seconds) {
  if (seconds < 60) return fmt::format("{:.1f}s", seconds);
  const auto s = static_cast<long>(seconds);
  if (s < 3600) return fmt::format("{}m{:02}s", s / 60, s % 60);
  return fmt::format("{}h{:02}m", s / 3600, (s % 3600) / 60);
}

ProgressBar::ProgressBar(std::string title, std::uint64_t total, std::string label, bool enabled)
    : title_(std::move(title)),
      total_(std::max<std::uint64_t>(total, 1)),
      label_(std::move(label)),
      enabled_(enabled),
      tty_(isatty(STDERR_FILENO) != 0),
      start_(std::chrono::steady_clock::now()),
      last_log_(start_) {
  if (enabled_) thread_ = std::thread([this] { loop(); });
}

ProgressBar::~ProgressBar() {
  if (!enabled_) return;
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
  draw(true);
}

void ProgressBar::set_title(std::string title) {
  std::lock_guard lock(mutex_);
  title_ = std::move(title);
}

void ProgressBar::loop() {
  std::unique_lock lock(mutex_);
  while (
      !cv_.wait_for(lock, std::chrono::milliseconds(tty_ ? 200 : 1000), [this] { return stop_; })) {
    lock.unlock();
    draw(false);
    lock.lock();
  }
}

void ProgressBar::draw(bool final) {
  const auto now = std::chrono::steady_clock::now();
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  const auto done = std::min(done_.load(), total_);
  const double frac = double(done) / double(total_);
  const double rate = elapsed > 0 ? double(done) / elapsed : 0.0;
  const double byte_rate = elapsed > 0 ? double(bytes_.load()) / elapsed : 0.0;
  const double eta = rate > 0 ? double(total_ - done) / rate : 0.0;
  std::string title;
  {
    std::lock_guard lock(mutex_);
    title = title_;
  }
  const std::string rates = byte_rate > 0 ? fmt::format("{}/s", format_bytes(byte_rate))
                                          : fmt::format("{:.1f} {}/s", rate, label_);
  if (tty_) {
    constexpr int kWidth = 30;
    const int filled = static_cast<int>(frac * kWidth);
    std::string bar(filled, '#');
    bar.resize(kWidth, '.');
    std::fprintf(stderr, "\r%-24s [%s] %5.1f%% %llu/%llu %s  %s  %s %s", title.c_str(), bar.c_str(),
                 frac * 100.0, static_cast<unsigned long long>(done),
                 static_cast<unsigned long long>(total_), label_.c_str(), rates.c_str(),
                 final ? "elapsed" : "ETA", format_duration(final ? elapsed : eta).c_str());
    if (final) std::fputc('\n', stderr);
    std::fflush(stderr);
    return;
  }
  if (!final && now - last_log_ < std::chrono::seconds(5)) return;
  last_log_ = now;
  VX_LOG(info, "progress", "task={} done={} total={} percent={:.1f} rate={} {}={}",
         log_quote(title), done, total_, frac * 100.0, log_quote(rates), final ? "elapsed" : "eta",
         format_duration(final ? elapsed : eta));
}

}  // namespace vx
