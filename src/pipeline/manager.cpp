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

  // Unloads when loaded and idle; returns the bytes freed. Needs load_mutex held.
  std::uint64_t unload_if_idle(bool* unloaded = nullptr) {
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
    VX_LOG(info, "pipeline.unloaded", "pipeline={} bytes={}", desc->name, bytes_freed);
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
      return lock ? raw->unload_if_idle() : std::uint64_t(0);
    });
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
  std::lock_guard lock(s->mutex);
  if (!charged) {
    if (bytes && inst) inst->unload();
    s->status = LoadStatus::kError;
    s->error = charged.error().what();
    VX_LOG(warn, "pipeline.load_failed", "pipeline={} error={}", s->desc->name,
           log_quote(s->error));
    return tl::unexpected(
        with_context(charged.error(), fmt::format("loading pipeline '{}'", name)));
  }
  s->instance = std::move(inst);
  s->bytes = *bytes;
  s->status = LoadStatus::kLoaded;
  s->error.clear();
  s->loads++;
  VX_LOG(info, "pipeline.loaded", "pipeline={} bytes={} ms={:.1f}", s->desc->name, *bytes,
         std::chrono::duration<double, std::milli>(SteadyClock::now() - t0).count());
  return lease();
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
    std::lock_guard lock(s->mutex);
    if (s->status != LoadStatus::kLoaded) {
      if (s->status == LoadStatus::kError) {
        s->status = LoadStatus::kNotLoaded;
        s->error.clear();
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
    s->unload_if_idle(&unloaded);
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

Budget::Holder Manager::scratch_holder(const std::string& name) {
  return budget_.add_holder("scratch " + name, kRankPipeline);
}

}  // namespace vx::pipeline
