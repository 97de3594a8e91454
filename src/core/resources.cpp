#include "core/resources.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "core/log.hpp"

namespace vx {

using SteadyClock = std::chrono::steady_clock;

struct Budget::Holder::Entry {
  std::uint64_t id = 0;
  std::string name;
  int rank = 0;
  Evictor evictor;
  // Guarded by the budget's mutex:
  std::uint64_t bytes = 0, evicted = 0;
  SteadyClock::time_point last_use = SteadyClock::now();
  // Held while the evictor runs; the holder's destructor takes it, so no callback runs after.
  std::mutex evict_mutex;
  bool alive = true;  // guarded by evict_mutex
};

std::string format_bytes(std::uint64_t bytes) {
  if (bytes < 1024) return fmt::format("{} B", bytes);
  if (bytes < (1u << 20)) return fmt::format("{:.1f} KiB", double(bytes) / 1024);
  if (bytes < (1ull << 30)) return fmt::format("{:.1f} MiB", double(bytes) / (1 << 20));
  return fmt::format("{:.2f} GiB", double(bytes) / (1ull << 30));
}

Budget::Budget(std::string name, std::uint64_t limit, std::uint64_t slack)
    : name_(std::move(name)), limit_(limit), slack_(slack) {}

Budget::~Budget() = default;

Budget::Holder Budget::add_holder(std::string name, int rank, Evictor evictor) {
  auto e = std::make_shared<Holder::Entry>();
  e->name = std::move(name);
  e->rank = rank;
  e->evictor = std::move(evictor);
  std::lock_guard lock(mutex_);
  e->id = next_id_++;
  holders_.emplace(e->id, e);
  return Holder(this, std::move(e));
}

std::uint64_t Budget::used() const {
  std::lock_guard lock(mutex_);
  return used_;
}

std::string Budget::holders_text() const {
  std::vector<const Holder::Entry*> v;
  for (const auto& [id, e] : holders_)
    if (e->bytes > 0) v.push_back(e.get());
  std::sort(v.begin(), v.end(), [](auto* a, auto* b) { return a->bytes > b->bytes; });
  if (v.empty()) return "nothing";
  std::string out;
  for (const auto* e : v)
    out += fmt::format("{}{} {}", out.empty() ? "" : ", ", e->name, format_bytes(e->bytes));
  return out;
}

BudgetSnapshot Budget::snapshot() const {
  std::lock_guard lock(mutex_);
  BudgetSnapshot s{name_, limit_, slack_, used_, peak_, evictions_, refusals_, {}};
  const auto now = SteadyClock::now();
  for (const auto& [id, e] : holders_)
    s.holders.push_back({e->name, e->rank, e->bytes,
                         std::chrono::duration<double>(now - e->last_use).count(), e->evicted});
  return s;
}

bool Budget::reclaim(std::uint64_t headroom, const void* except) {
  auto target = [&] { return limit_ > headroom ? limit_ - headroom : 0; };
  std::vector<std::shared_ptr<Holder::Entry>> order;
  {
    std::lock_guard lock(mutex_);
    if (used_ <= target()) return true;
    for (const auto& [id, e] : holders_)
      if (e.get() != except && e->evictor && e->bytes > 0) order.push_back(e);
    std::sort(order.begin(), order.end(), [](const auto& a, const auto& b) {
      return a->rank != b->rank ? a->rank < b->rank : a->last_use < b->last_use;
    });
  }
  for (auto& e : order) {
    std::uint64_t want;
    {
      std::lock_guard lock(mutex_);
      if (used_ <= target()) return true;
      want = used_ - target();
    }
    std::uint64_t freed = 0;
    {
      std::lock_guard elock(e->evict_mutex);
      if (!e->alive) continue;
      freed = e->evictor(want);
    }
    if (freed > 0) {
      std::lock_guard lock(mutex_);
      evictions_++;
      e->evicted += freed;
    }
  }
  std::lock_guard lock(mutex_);
  return used_ <= target();
}

// --- Holder -----------------------------------------------------------------------------------

Budget::Holder::~Holder() {
  reset();
}

Budget::Holder& Budget::Holder::operator=(Holder&& o) noexcept {
  if (this != &o) {
    reset();
    budget_ = o.budget_;
    entry_ = std::move(o.entry_);
    o.budget_ = nullptr;
  }
  return *this;
}

void Budget::Holder::reset() {
  if (!entry_) return;
  {
    std::lock_guard elock(entry_->evict_mutex);  // waits for a running evictor
    entry_->alive = false;
  }
  std::lock_guard lock(budget_->mutex_);
  budget_->used_ -= entry_->bytes;
  budget_->holders_.erase(entry_->id);
  entry_.reset();
  budget_ = nullptr;
}

Status Budget::Holder::charge(std::uint64_t bytes) {
  if (!entry_) return {};
  auto& b = *budget_;
  // Under b.mutex_: whether the bytes reserved below fit now; if so they are granted.
  auto granted = [&] {
    if (b.used_ > b.limit_) return false;
    b.peak_ = std::max(b.peak_, b.used_);
    entry_->last_use = SteadyClock::now();
    return true;
  };
  if (bytes <= b.limit_) {
    // Reserve first, then evict down to the limit. Evicting first and taking after would
    // let a concurrent charge (another computation's scratch, the cache's new chunks) take
    // the room one reclaim made, and a full budget would refuse work that eviction could
    // make room for. The reservation may pass the limit until the evictions below.
    {
      std::lock_guard lock(b.mutex_);
      b.used_ += bytes;
      entry_->bytes += bytes;
      if (granted()) return {};
    }
    // A little more than needed (a 64th of the limit, at most 64 MiB) goes at once, so that
    // a full budget does not scan its holders for every chunk.
    const std::uint64_t margin = std::min<std::uint64_t>(b.limit_ / 64, std::uint64_t(64) << 20);
    for (;;) {
      std::uint64_t evictions_before;
      {
        std::lock_guard lock(b.mutex_);
        evictions_before = b.evictions_;
      }
      b.reclaim(margin, entry_.get());
      std::lock_guard lock(b.mutex_);
      if (granted()) return {};
      if (b.evictions_ != evictions_before) continue;  // progress: others took that room
      b.used_ -= bytes;  // nothing left to evict: give the reservation back
      entry_->bytes -= bytes;
      break;
    }
  }
  std::lock_guard lock(b.mutex_);
  b.refusals_++;
  const auto msg = fmt::format("budget '{}' cannot give {} {} ({} of {} in use, held by {})",
                               b.name_, entry_->name, format_bytes(bytes), format_bytes(b.used_),
                               format_bytes(b.limit_), b.holders_text());
  VX_LOG(warn, "budget.refused", "budget={} holder={} bytes={} used={} limit={}", b.name_,
         log_quote(entry_->name), bytes, b.used_, b.limit_);
  return make_error(ErrorCode::kOutOfMemory, msg);
}

bool Budget::Holder::force_charge(std::uint64_t bytes) {
  if (!entry_) return false;
  auto& b = *budget_;
  std::lock_guard lock(b.mutex_);
  b.used_ += bytes;
  b.peak_ = std::max(b.peak_, b.used_);
  entry_->bytes += bytes;
  entry_->last_use = SteadyClock::now();
  return b.used_ > b.limit_;
}

void Budget::Holder::release(std::uint64_t bytes) {
  if (!entry_) return;
  auto& b = *budget_;
  std::lock_guard lock(b.mutex_);
  bytes = std::min(bytes, entry_->bytes);
  entry_->bytes -= bytes;
  b.used_ -= bytes;
}

bool Budget::Holder::reclaim_others(std::uint64_t headroom) {
  if (!entry_) return true;
  return budget_->reclaim(headroom, entry_.get());
}

void Budget::Holder::touch() {
  if (!entry_) return;
  std::lock_guard lock(budget_->mutex_);
  entry_->last_use = SteadyClock::now();
}

std::uint64_t Budget::Holder::bytes() const {
  if (!entry_) return 0;
  std::lock_guard lock(budget_->mutex_);
  return entry_->bytes;
}

}  // namespace vx
