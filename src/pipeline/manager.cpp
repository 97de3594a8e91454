#include <fmt/format.h>

#include "core/log.hpp"
#include "pipeline/pipeline.hpp"

namespace vx::pipeline {

using SteadyClock = std::chrono::steady_clock;

std::string_view to_string(LoadStatus s) {
  switch (s) {
    case LoadStatus::kNotLoaded:
      return "not_loaded";
    case LoadStatus::kLoading:
      return "loading";
    case LoadStatus::kLoaded:
      return "loaded";
    case LoadStatus::kError:
      return "error";
  }
  return "?";
}

struct Manager::Subscription::Listeners {
  std::mutex mutex;
  std::uint64_t next = 1;
  std::map<std::uint64_t, std::shared_ptr<const Listener>> items;

  void notify(const json& change) {
    std::vector<std::shared_ptr<const Listener>> all;
    {
      std::lock_guard lock(mutex);
      for (const auto& [id, l] : items)
        all.push_back(l);
    }
    for (const auto& l : all)
      (*l)(change);
  }
};

Manager::Subscription::~Subscription() {
  if (auto l = listeners_.lock()) {
    std::lock_guard lock(l->mutex);
    l->items.erase(id_);
  }
}

Manager::Subscription& Manager::Subscription::operator=(Subscription&& o) noexcept {
  if (this != &o) {
    this->~Subscription();
    listeners_ = std::move(o.listeners_);
    id_ = o.id_;
    o.id_ = 0;
  }
  return *this;
}

Manager::Subscription Manager::subscribe(Listener listener) {
  Subscription sub;
  std::lock_guard lock(listeners_->mutex);
  sub.listeners_ = listeners_;
  sub.id_ = listeners_->next++;
  listeners_->items.emplace(sub.id_, std::make_shared<const Listener>(std::move(listener)));
  return sub;
}

struct Lease::Slot {
  const Descriptor* desc = nullptr;
  std::mutex load_mutex;  // serializes load and unload
  mutable std::mutex mutex;
  // Guarded by mutex:
  LoadStatus status = LoadStatus::kNotLoaded;
  std::string error;
  std::unique_ptr<Pipeline> instance;
  std::uint64_t bytes = 0;
  int busy = 0;
  std::uint64_t loads = 0;
  SteadyClock::time_point last_use = SteadyClock::now();
  Budget::Holder holder;
  std::shared_ptr<Manager::Subscription::Listeners> listeners;

  // Tells the listeners the current status (call with no lock held).
  void changed(std::string_view reason) const {
    json j;
    {
      std::lock_guard lock(mutex);
      j = {{"name", desc->name},
           {"status", to_string(status)},
           {"memory_bytes", bytes},
           {"reason", reason}};
      if (!error.empty()) j["error"] = error;
    }
    if (listeners) listeners->notify(j);
  }

  // Unloads when loaded and idle; returns the bytes freed. Needs load_mutex held.
  std::uint64_t unload_if_idle(bool* unloaded = nullptr, std::string_view reason = "request") {
    std::unique_ptr<Pipeline> inst;
    std::uint64_t bytes_freed;
    {
      std::lock_guard lock(mutex);
      if (status != LoadStatus::kLoaded || busy > 0) return 0;
      inst = std::move(instance);
      bytes_freed = bytes;
      bytes = 0;
      status = LoadStatus::kNotLoaded;
    }
    inst->unload();
    holder.release(bytes_freed);
    if (unloaded) *unloaded = true;
    VX_LOG(info, "pipeline.unloaded", "pipeline={} bytes={} reason={}", desc->name, bytes_freed,
           reason);
    changed(reason);
    return bytes_freed;
  }
};

Lease::~Lease() {
  if (!slot_) return;
  std::lock_guard lock(slot_->mutex);
  slot_->busy--;
  slot_->last_use = SteadyClock::now();
}

Manager::Manager(Registry registry, Budget& budget)
    : registry_(std::move(registry)), budget_(budget) {
  listeners_ = std::make_shared<Subscription::Listeners>();
  for (const auto* d : registry_.list()) {
    auto s = std::make_shared<Lease::Slot>();
    s->desc = d;
    if (!d->error.empty()) {
      s->status = LoadStatus::kError;
      s->error = d->error;
    }
    Lease::Slot* raw = s.get();
    s->holder = budget_.add_holder("pipeline " + d->name, kRankPipeline, [raw](std::uint64_t) {
      std::unique_lock lock(raw->load_mutex, std::try_to_lock);
      return lock ? raw->unload_if_idle(nullptr, "offloaded") : std::uint64_t(0);
    });
    s->listeners = listeners_;
    slots_.emplace(d->name, std::move(s));
  }
}

Manager::~Manager() {
  for (auto& [name, s] : slots_) {
    s->holder = {};
    if (s->instance) s->instance->unload();
  }
}

Lease::Slot* Manager::slot(std::string_view name) const {
  auto it = slots_.find(name);
  return it == slots_.end() ? nullptr : it->second.get();
}

Result<Lease> Manager::use(std::string_view name) {
  auto it = slots_.find(name);
  if (it == slots_.end()) {
    std::string known;
    for (const auto& [n, s] : slots_)
      known += (known.empty() ? "" : ", ") + n;
    return fail(ErrorCode::kNotFound, "unknown pipeline '{}' (known: {})", name, known);
  }
  auto& s = it->second;
  auto lease = [&]() {  // needs s->mutex held
    Lease l;
    s->busy++;
    s->last_use = SteadyClock::now();
    l.slot_ = s;
    l.pipeline_ = s->instance.get();
    return l;
  };
  {
    std::lock_guard lock(s->mutex);
    if (s->status == LoadStatus::kLoaded) {
      s->holder.touch();
      return lease();
    }
  }
  std::lock_guard load_lock(s->load_mutex);
  {
    std::lock_guard lock(s->mutex);
    if (s->status == LoadStatus::kLoaded) return lease();
    s->status = LoadStatus::kLoading;
  }
  s->changed("use");
  const auto t0 = SteadyClock::now();
  std::unique_ptr<Pipeline> inst;
  Result<std::uint64_t> bytes = make_error(ErrorCode::kInternal, "not loaded");
  try {
    inst = s->desc->make();
    bytes = inst->load();
  } catch (const std::exception& e) {
    bytes = fail(ErrorCode::kInternal, "{}", e.what());
  }
  Status charged = bytes ? s->holder.charge(*bytes) : Status(tl::unexpected(bytes.error()));
  Lease l;
  {
    std::lock_guard lock(s->mutex);
    if (!charged) {
      if (bytes && inst) inst->unload();
      s->status = LoadStatus::kError;
      s->error = charged.error().what();
      VX_LOG(warn, "pipeline.load_failed", "pipeline={} error={}", s->desc->name,
             log_quote(s->error));
    } else {
      s->instance = std::move(inst);
      s->bytes = *bytes;
      s->status = LoadStatus::kLoaded;
      s->error.clear();
      s->loads++;
      VX_LOG(info, "pipeline.loaded", "pipeline={} bytes={} ms={:.1f}", s->desc->name, *bytes,
             std::chrono::duration<double, std::milli>(SteadyClock::now() - t0).count());
      l = lease();
    }
  }
  s->changed("use");
  if (!charged)
    return tl::unexpected(
        with_context(charged.error(), fmt::format("loading pipeline '{}'", name)));
  return l;
}

Status Manager::load(std::string_view name) {
  VX_ASSIGN(auto l, use(name));
  return {};
}

Status Manager::unload(std::string_view name) {
  auto* s = slot(name);
  if (!s) return fail(ErrorCode::kNotFound, "unknown pipeline '{}'", name);
  std::lock_guard load_lock(s->load_mutex);
  {
    std::unique_lock lock(s->mutex);
    if (s->status != LoadStatus::kLoaded) {
      if (s->status == LoadStatus::kError) {
        s->status = LoadStatus::kNotLoaded;
        s->error.clear();
        lock.unlock();
        s->changed("request");
      }
      return {};
    }
    if (s->busy > 0)
      return fail(ErrorCode::kBusy, "pipeline '{}' is in use ({} computations)", name, s->busy);
  }
  s->unload_if_idle();
  return {};
}

int Manager::unload_idle(std::chrono::milliseconds idle) {
  int n = 0;
  const auto now = SteadyClock::now();
  for (auto& [name, s] : slots_) {
    std::lock_guard load_lock(s->load_mutex);
    {
      std::lock_guard lock(s->mutex);
      if (now - s->last_use < idle) continue;
    }
    bool unloaded = false;
    s->unload_if_idle(&unloaded, "idle");
    n += unloaded ? 1 : 0;
  }
  return n;
}

LoadStatus Manager::status(std::string_view name) const {
  auto* s = slot(name);
  if (!s) return LoadStatus::kNotLoaded;
  std::lock_guard lock(s->mutex);
  return s->status;
}

json Manager::list() const {
  json out = json::array();
  for (const auto& [name, s] : slots_) {
    std::lock_guard lock(s->mutex);
    json j{{"name", name},
           {"version", s->desc->version},
           {"description", s->desc->description},
           {"schema", s->desc->schema.to_json_schema()},
           {"status", to_string(s->status)},
           {"memory_bytes", s->bytes},
           {"in_use", s->busy},
           {"loads", s->loads}};
    if (!s->error.empty()) j["error"] = s->error;
    if (s->instance && s->status == LoadStatus::kLoaded) {
      if (auto h = s->instance->health(); !h.empty()) {
        j["status"] = to_string(LoadStatus::kError);
        j["error"] = std::move(h);
      }
      if (auto d = s->instance->details(); !d.is_null()) j["worker"] = std::move(d);
    } else if (s->desc->details) {
      j["worker"] = s->desc->details();
    }
    out.push_back(std::move(j));
  }
  return out;
}

std::shared_ptr<Budget::Holder> Manager::scratch_holder(const std::string& name) {
  std::lock_guard lock(scratch_mutex_);
  auto& h = scratch_[name];
  if (!h)
    h = std::make_shared<Budget::Holder>(budget_.add_holder("scratch " + name, kRankPipeline));
  return h;
}

}  // namespace vx::pipeline
