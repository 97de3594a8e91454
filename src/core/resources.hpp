// Named memory budgets (host RAM now, device memory later) that everything holding memory on
// behalf of users charges and releases: the chunk cache, derived-chunk results, pipelines'
// state (FFT plans, model weights). DESIGN.md, "Seams: Resources".
//
// - A holder registers with an eviction callback and a rank. When a charge would pass the
//   limit, the budget asks other holders to give memory back: lower ranks first (idle
//   pipelines, rank kRankPipeline), least recently used first within a rank, then caches
//   (kRankCache). A holder's callback frees what it can (never what is in use) and calls
//   release() for it.
// - charge() refuses with ErrorCode::kOutOfMemory when eviction cannot make room; the message
//   names the budget, the request and what holds the budget. force_charge() always succeeds
//   (memory already allocated, e.g. chunks pinned by readers): the budget then runs over its
//   limit until the caller reclaims or holders release; `slack` is the stated over-run.
// - Thread-safe. Callbacks run on the charging thread, never under the budget's lock, and
//   never after their holder is destroyed (the destructor waits for a running callback).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/error.hpp"

namespace vx {

inline constexpr int kRankPipeline = 0;  // offloaded first
inline constexpr int kRankCache = 1;     // cached results, after idle pipelines

struct HolderSnapshot {
  std::string name;
  int rank = 0;
  std::uint64_t bytes = 0;
  double idle_s = 0;  // since the holder last charged or was touched
  std::uint64_t evicted_bytes = 0;
};

struct BudgetSnapshot {
  std::string name;
  std::uint64_t limit = 0, slack = 0, used = 0, peak = 0;
  std::uint64_t evictions = 0;  // eviction callbacks that freed something
  std::uint64_t refusals = 0;   // charges refused (out_of_memory)
  std::vector<HolderSnapshot> holders;
};

class Budget {
 public:
  // `want`: bytes the budget would like back. Frees up to that much of what is idle, calling
  // release() for it, and returns the bytes freed (0 when everything is in use).
  using Evictor = std::function<std::uint64_t(std::uint64_t want)>;

  // A share of the budget. A default-constructed (or moved-from) holder charges nothing.
  class Holder {
   public:
    Holder() = default;
    ~Holder();
    Holder(Holder&& o) noexcept = default;
    Holder& operator=(Holder&& o) noexcept;
    Holder(const Holder&) = delete;
    Holder& operator=(const Holder&) = delete;

    explicit operator bool() const { return entry_ != nullptr; }
    // Charges `bytes`, evicting other holders' idle memory when needed; kOutOfMemory when
    // that is not enough (nothing charged then).
    Status charge(std::uint64_t bytes);
    // Charges without refusing and without evicting (memory already allocated, e.g. a
    // chunk pinned by readers); returns whether the budget is now over its limit, for the
    // caller to reclaim() once it holds no locks.
    bool force_charge(std::uint64_t bytes);
    void release(std::uint64_t bytes);
    // Asks the other holders to release until the budget is `headroom` under its limit.
    bool reclaim_others(std::uint64_t headroom = 0);
    void touch();  // counts as a use for LRU order
    std::uint64_t bytes() const;
    Budget* budget() const { return budget_; }

   private:
    friend class Budget;
    struct Entry;
    Holder(Budget* b, std::shared_ptr<Entry> e) : budget_(b), entry_(std::move(e)) {}
    void reset();
    Budget* budget_ = nullptr;
    std::shared_ptr<Entry> entry_;
  };

  Budget(std::string name, std::uint64_t limit, std::uint64_t slack = 0);
  ~Budget();
  Budget(const Budget&) = delete;
  Budget& operator=(const Budget&) = delete;

  // A new holder; it must be destroyed before the budget.
  Holder add_holder(std::string name, int rank, Evictor evictor = nullptr);

  const std::string& name() const { return name_; }
  std::uint64_t limit() const { return limit_; }
  std::uint64_t used() const;
  BudgetSnapshot snapshot() const;
  // Asks holders (except `except`) to release until used() <= limit() - `headroom`; returns
  // whether that was reached.
  bool reclaim(std::uint64_t headroom = 0, const void* except = nullptr);

 private:
  std::string holders_text() const;  // needs mutex_ held
  const std::string name_;
  const std::uint64_t limit_, slack_;
  mutable std::mutex mutex_;
  std::uint64_t used_ = 0, peak_ = 0, evictions_ = 0, refusals_ = 0;
  std::uint64_t next_id_ = 0;
  std::map<std::uint64_t, std::shared_ptr<Holder::Entry>> holders_;
};

// The budgets of a process by name ("host"), for reports (GET /api/v1/resources).
std::string format_bytes(std::uint64_t bytes);  // "12.5 MiB"

}  // namespace vx
