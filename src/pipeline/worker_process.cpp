#include "pipeline/worker_process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <optional>
#include <random>
#include <thread>

#include "core/log.hpp"
#include "wire/wire.hpp"

namespace vx::pipeline::detail {

using SteadyClock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// ---- WorkerProcess ----

struct WorkerProcess::Conn {
  pid_t pid = 0;
  std::unique_ptr<Slab> slab;  // mapped by the worker too when `shm`
  bool shm = false;
  wire::Endpoint ep;
  std::uint32_t id = 0;
  std::atomic<bool> dead{false};
  std::mutex mutex;
  bool reaped = false;
  int status = 0;
  // Whether the process has ended (reaps it then). Cheap: one waitpid(WNOHANG).
  bool exited() {
    std::lock_guard lock(mutex);
    if (!reaped) {
      int s = 0;
      const pid_t r = ::waitpid(pid, &s, WNOHANG);
      if (r == pid || (r < 0 && errno == ECHILD)) {
        reaped = true;
        status = r == pid ? s : 0;
      }
    }
    return reaped;
  }
  void reap_blocking(milliseconds limit) {
    const auto until = SteadyClock::now() + limit;
    while (!exited() && SteadyClock::now() < until)
      std::this_thread::sleep_for(milliseconds(5));
  }
};

namespace {

enum class Waited { kDone, kDied, kTimeout };

// Waits for `r` in short slices, checking between them that the process lives.
Waited wait_alive(wire::Request& r, const std::function<bool()>& dead,
                  SteadyClock::time_point deadline, wire::Result<wire::Completion>& out) {
  for (;;) {
    const auto left = deadline - SteadyClock::now();
    if (left <= SteadyClock::duration::zero()) return Waited::kTimeout;
    out = r.wait_for(std::min<SteadyClock::duration>(left, milliseconds(50)));
    if (out || out.error().code != wire::Errc::kTimedOut) return Waited::kDone;
    if (dead()) return Waited::kDied;
  }
}

std::string random_hex(std::size_t bytes) {
  std::random_device rd;
  std::string s;
  for (std::size_t i = 0; i < bytes; ++i)
    s += fmt::format("{:02x}", rd() & 0xff);
  return s;
}

milliseconds backoff(int consecutive) {
  if (consecutive <= 0) return milliseconds(0);
  return std::min<milliseconds>(milliseconds(200 << std::min(consecutive - 1, 10)),
                                milliseconds(10'000));
}

wire::Callback keep(Bytes b) {
  return [b = std::move(b)](const wire::Result<wire::Completion>&) {};
}

}  // namespace

WorkerProcess::WorkerProcess(WorkerSpec spec, std::shared_ptr<Hub> hub,
                             std::vector<std::string> pipelines, Budget* budget)
    : name_(fmt::format("worker '{}'", spec.name)),
      spec_(std::move(spec)),
      hub_(std::move(hub)),
      pipelines_(std::move(pipelines)) {
  if (budget)
    holder_ = budget->add_holder("worker " + spec_.name, kRankPipeline,
                                 [this](std::uint64_t) { return offload(); });
}

WorkerProcess::~WorkerProcess() {
  holder_ = {};  // no eviction callback from here on
  std::shared_ptr<Conn> c;
  {
    std::lock_guard lock(mutex_);
    c = std::move(conn_);
  }
  if (c) stop(c);
}

std::uint64_t WorkerProcess::offload() {
  std::shared_ptr<Conn> c;
  {
    std::lock_guard lock(mutex_);
    if (!conn_ || inflight_ > 0 || !charged_) return 0;
    c = std::move(conn_);
  }
  VX_LOG(info, "pipeline.worker_offload", "worker={} bytes={}", spec_.name, spec_.memory_bytes);
  stop(c);
  return spec_.memory_bytes;
}

void WorkerProcess::uncharge() {
  {
    std::lock_guard lock(mutex_);
    if (!charged_) return;
    charged_ = false;
  }
  holder_.release(spec_.memory_bytes);
}

Status WorkerProcess::acquire() {
  {
    std::lock_guard lock(mutex_);
    ++users_;
  }
  auto c = running();
  if (!c) {
    release();
    return tl::unexpected(c.error());
  }
  return {};
}

void WorkerProcess::release() {
  std::shared_ptr<Conn> c;
  {
    std::lock_guard lock(mutex_);
    if (--users_ > 0) return;
    users_ = 0;
    c = std::move(conn_);
  }
  if (c) stop(c);
}

void WorkerProcess::shutdown() {
  std::shared_ptr<Conn> c;
  bool busy = false;
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    c = std::move(conn_);
    busy = inflight_ > 0;
  }
  if (!c) return;
  // A request in flight may be stuck (its answer up to timeout_s away): do not wait for the
  // process to read the stop message behind it. The waiting thread sees the connection dead.
  if (busy) ::kill(c->pid, SIGKILL);
  stop(c);
}

Result<std::shared_ptr<WorkerProcess::Conn>> WorkerProcess::running() {
  if (stopping_) return fail(ErrorCode::kCancelled, "{} stopped with the server", name_);
  std::lock_guard start_lock(start_mutex_);
  std::shared_ptr<Conn> old;
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return fail(ErrorCode::kCancelled, "{} stopped with the server", name_);
    if (conn_ && !conn_->dead && !conn_->exited()) return conn_;
    if (users_ <= 0) return fail(ErrorCode::kInternal, "{} is not loaded", name_);
    old = conn_;
  }
  if (old && !old->dead) died(old, "", false);  // found dead: record how
  SteadyClock::time_point next;
  {
    std::lock_guard lock(mutex_);
    next = next_start_;
  }
  const auto now = SteadyClock::now();
  if (next > now) {
    if (next - now > milliseconds(2000)) {
      std::lock_guard lock(mutex_);
      return fail(ErrorCode::kInternal,
                  "{} is restarting: it died {} time(s) in a row (last: {}); "
                  "next start in {} ms",
                  name_, consecutive_deaths_, last_death_,
                  std::chrono::duration_cast<milliseconds>(next - now).count());
    }
    std::this_thread::sleep_for(next - now);
  }
  auto c = start();
  if (!c) {
    std::lock_guard lock(mutex_);
    ++consecutive_deaths_;
    next_start_ = SteadyClock::now() + backoff(consecutive_deaths_);
    last_death_ = c.error().message;
  }
  return c;
}

Result<std::shared_ptr<WorkerProcess::Conn>> WorkerProcess::start() {
  VX_ASSIGN(auto* hs, hub_->server());
  auto& srv = hs->server;
  const auto launch = hub_->next_launch();
  const auto token = random_hex(16);
  auto hello = hub_->buffer(kHeaderMax);
  auto r = srv.recv(std::span(hello->data(), kHeaderMax), make_tag(0, Kind::kHello, launch),
                    0xffffffffull, keep(hello));
  Command cmd{spec_.command, spec_.env, spec_.cwd};
  cmd.env["VOXCAST_WORKER_ADDRESS"] = fmt::format("127.0.0.1:{}", srv.port());
  cmd.env["VOXCAST_WORKER_TOKEN"] = token;
  cmd.env["VOXCAST_WORKER_LAUNCH"] = std::to_string(launch);
  cmd.env["VOXCAST_WORKER_NAME"] = spec_.name;
  if (!spec_.transports.empty()) cmd.env["UCX_TLS"] = spec_.transports;
  auto c = std::make_shared<Conn>();
  if (spec_.shm_bytes > 0) {
    c->slab = Slab::create(fmt::format("/voxcast-{}-{}", ::getpid(), launch), spec_.shm_bytes);
    if (c->slab) {
      cmd.env["VOXCAST_WORKER_SHM"] = c->slab->name();
      cmd.env["VOXCAST_WORKER_SHM_BYTES"] = std::to_string(c->slab->size());
    }
  }
  const auto t0 = SteadyClock::now();
  if (holder_) {
    if (auto st = holder_.charge(spec_.memory_bytes); !st) {
      r.cancel();
      return fail(st.error().code, "cannot start {} (memory_mb {}): {}", name_,
                  spec_.memory_bytes >> 20, st.error().message);
    }
    std::lock_guard lock(mutex_);
    charged_ = true;
  }
  auto pid = spawn(cmd);
  if (!pid) {
    r.cancel();
    uncharge();
    return fail(pid.error().code, "cannot start {}: {}", name_, pid.error().message);
  }
  c->pid = *pid;
  auto abandon = [&](std::string why) {
    r.cancel();
    ::kill(c->pid, SIGKILL);
    c->reap_blocking(milliseconds(2000));
    c->dead = true;
    uncharge();
    VX_LOG(warn, "pipeline.worker_start_failed", "worker={} pid={} error={}", spec_.name, c->pid,
           log_quote(why));
    return make_error(ErrorCode::kInternal, std::move(why));
  };
  wire::Result<wire::Completion> got = tl::unexpected(wire::Error{});
  switch (wait_alive(
      r, [&] { return c->exited() || stopping_; }, t0 + spec_.start_timeout, got)) {
    case Waited::kDied:
      if (stopping_) return abandon(fmt::format("{} stopped with the server", name_));
      return abandon(
          fmt::format("{} (pid {}) {} before connecting (its output is in the "
                      "server's log)",
                      name_, c->pid, describe_exit(c->status)));
    case Waited::kTimeout:
      return abandon(fmt::format("{} (pid {}) did not connect within {} ms", name_, c->pid,
                                 spec_.start_timeout.count()));
    case Waited::kDone:
      break;
  }
  if (!got) return abandon(fmt::format("{}: hello: {}", name_, got.error().what()));
  const auto h =
      json::parse(reinterpret_cast<const char*>(hello->data()),
                  reinterpret_cast<const char*>(hello->data()) + got->length, nullptr, false);
  if (!h.is_object() || h.value("token", "") != token)
    return abandon(fmt::format("{}: its hello is not JSON with the launch's token", name_));
  if (h.value("protocol", 0) != 1)
    return abandon(fmt::format("{}: protocol {} (this server speaks 1)", name_,
                               h.value("protocol", json()).dump()));
  std::vector<std::string> names;
  if (h.contains("pipelines") && h["pipelines"].is_array())
    for (const auto& p : h["pipelines"])
      if (p.is_object() && p.contains("name") && p["name"].is_string())
        names.push_back(p["name"].get<std::string>());
  std::sort(names.begin(), names.end());
  auto expected = pipelines_;
  std::sort(expected.begin(), expected.end());
  if (names != expected)
    return abandon(fmt::format("{} announced pipelines [{}] but described [{}] at start", name_,
                               fmt::join(names, ", "), fmt::join(expected, ", ")));
  if (c->slab) {
    c->slab->unlink();  // mapped by both now (or never by the worker)
    c->shm = h.value("shm", false) == true;
  }
  c->id = std::uint32_t(got->tag >> 32);
  for (const auto& ep : srv.endpoints())
    if (ep.id() == c->id) c->ep = ep;
  if (!c->ep) return abandon(fmt::format("{}: its connection {} is gone", name_, c->id));
  std::lock_guard lock(mutex_);
  conn_ = c;
  ++starts_;
  VX_LOG(info, "pipeline.worker_started", "worker={} pid={} ms={:.0f} starts={}", spec_.name,
         c->pid, std::chrono::duration<double, std::milli>(SteadyClock::now() - t0).count(),
         starts_);
  return c;
}

void WorkerProcess::stop(const std::shared_ptr<Conn>& c) {
  if (c->dead.exchange(true)) return;
  const std::string stop = R"({"op":"stop","seq":0})";
  auto b = hub_->buffer(stop.size());
  std::memcpy(b->data(), stop.data(), stop.size());
  if (c->ep.connected())
    c->ep.send(std::span<const std::byte>(b->data(), stop.size()),
               make_tag(c->id, Kind::kRequest, 0), keep(b));
  c->reap_blocking(milliseconds(2000));
  if (!c->exited()) {
    ::kill(c->pid, SIGKILL);
    c->reap_blocking(milliseconds(2000));
  }
  c->ep.close(true);
  uncharge();
  VX_LOG(info, "pipeline.worker_stopped", "worker={} pid={}", spec_.name, c->pid);
}

void WorkerProcess::died(const std::shared_ptr<Conn>& c, std::string why, bool kill_it) {
  if (c->dead.exchange(true)) return;
  if (kill_it) ::kill(c->pid, SIGKILL);
  c->reap_blocking(milliseconds(2000));
  std::string msg = fmt::format("{} (pid {}) {}", name_, c->pid,
                                c->exited() ? describe_exit(c->status) : "did not exit");
  if (!why.empty()) msg = fmt::format("{} (pid {}): {}; killed", name_, c->pid, why);
  c->ep.close(true);
  uncharge();
  std::lock_guard lock(mutex_);
  if (conn_ == c) conn_.reset();
  ++deaths_;
  ++consecutive_deaths_;
  next_start_ = SteadyClock::now() + backoff(consecutive_deaths_);
  last_death_ = msg;
  VX_LOG(warn, "pipeline.worker_died", "worker={} pid={} deaths={} restart_in_ms={} reason={}",
         spec_.name, c->pid, deaths_, backoff(consecutive_deaths_).count(), log_quote(msg));
}

std::pair<Outcome, Result<Reply>> WorkerProcess::attempt(const json& request,
                                                         std::span<const std::byte> payload,
                                                         std::size_t reply_bytes) {
  auto failed = [](Outcome o, Error e) { return std::pair{o, Result<Reply>(tl::unexpected(e))}; };
  auto c = running();
  if (!c) return failed(Outcome::kFailed, c.error());
  auto conn = *c;
  {
    std::lock_guard lock(mutex_);
    ++inflight_;  // not offloaded while a request is in flight
  }
  struct Inflight {
    WorkerProcess& w;
    ~Inflight() {
      std::lock_guard lock(w.mutex_);
      --w.inflight_;
    }
  } inflight{*this};
  auto hs = hub_->server();
  if (!hs) return failed(Outcome::kFailed, hs.error());
  auto& srv = (*hs)->server;
  const auto seq = hub_->next_seq();
  auto hdr = hub_->buffer(kHeaderMax);
  json h = request;
  h["seq"] = seq;
  // The block and the result through shared memory when there is room: only headers go
  // over wire then. The range is freed when the reply (or this attempt) is done with it.
  std::shared_ptr<void> slot;
  std::size_t out_off = 0;
  if (conn->shm && !payload.empty() && reply_bytes) {
    const auto in_bytes = (payload.size() + 63) & ~std::size_t(63);
    if (auto off = conn->slab->alloc(in_bytes + reply_bytes)) {
      struct Range {
        std::shared_ptr<Conn> c;
        std::size_t off;
        ~Range() { c->slab->free(off); }
      };
      slot = std::shared_ptr<Range>(new Range{conn, *off});  // no temporary to free it
      std::memcpy(conn->slab->at(*off), payload.data(), payload.size());
      out_off = *off + in_bytes;
      h["shm"] = {{"in", *off}, {"out", out_off}, {"out_bytes", reply_bytes}};
      payload = {};
    }
  }
  Bytes data = reply_bytes && !slot ? hub_->buffer(reply_bytes) : nullptr;
  auto r_hdr = srv.recv(std::span(hdr->data(), kHeaderMax), make_tag(conn->id, Kind::kReply, seq),
                        ~0ull, keep(hdr));
  wire::Request r_data;
  if (data)
    r_data = srv.recv(std::span(data->data(), reply_bytes),
                      make_tag(conn->id, Kind::kReplyData, seq), ~0ull, keep(data));
  const auto text = h.dump();
  auto tb = hub_->buffer(text.size());
  std::memcpy(tb->data(), text.data(), text.size());
  conn->ep.send(std::span<const std::byte>(tb->data(), text.size()),
                make_tag(conn->id, Kind::kRequest, seq), keep(tb));
  if (!payload.empty()) {
    auto pb = hub_->buffer(payload.size());
    std::memcpy(pb->data(), payload.data(), payload.size());
    conn->ep.send(std::span<const std::byte>(pb->data(), payload.size()),
                  make_tag(conn->id, Kind::kRequestData, seq), keep(pb));
  }
  const auto deadline = SteadyClock::now() + spec_.timeout;
  auto cancel_all = [&] {
    r_hdr.cancel();
    if (data) r_data.cancel();
  };
  auto dead = [&] { return conn->dead || conn->exited(); };
  auto await = [&](wire::Request& r, wire::Result<wire::Completion>& got) -> std::optional<Error> {
    switch (wait_alive(r, dead, deadline, got)) {
      case Waited::kDone:
        return std::nullopt;
      case Waited::kDied:
        cancel_all();
        died(conn, "", false);
        return Error{ErrorCode::kInternal, "died"};
      case Waited::kTimeout:
        cancel_all();
        died(conn, fmt::format("no answer within {} ms", spec_.timeout.count()), true);
        return Error{ErrorCode::kInternal,
                     fmt::format("{} did not answer within {} ms (timeout_s in the manifest); it "
                                 "was killed and starts again on the next request",
                                 name_, spec_.timeout.count())};
    }
    return std::nullopt;
  };
  auto death = [&] {
    std::lock_guard lock(mutex_);
    return failed(Outcome::kDied, Error{ErrorCode::kInternal, last_death_});
  };
  wire::Result<wire::Completion> got = tl::unexpected(wire::Error{});
  if (auto e = await(r_hdr, got))
    return e->message == "died" ? death() : failed(Outcome::kFailed, *e);
  auto malformed = [&](std::string what) {
    cancel_all();
    died(conn, "malformed reply: " + what, true);
    return failed(Outcome::kFailed,
                  Error{ErrorCode::kInternal, fmt::format("{}: malformed reply: {}", name_, what)});
  };
  if (!got) return malformed(got.error().what());
  Reply reply;
  reply.header =
      json::parse(reinterpret_cast<const char*>(hdr->data()),
                  reinterpret_cast<const char*>(hdr->data()) + got->length, nullptr, false);
  if (!reply.header.is_object()) return malformed("not a JSON object");
  if (reply.header.value("seq", json()) != seq)
    return malformed(
        fmt::format("seq {} where {} was expected", reply.header.value("seq", json()).dump(), seq));
  if (reply.header.value("ok", false) != true) {
    cancel_all();
    return failed(Outcome::kFailed,
                  Error{ErrorCode::kInternal,
                        reply.header.value("error", json("no error text")).get<std::string>()});
  }
  if (data) {
    if (auto e = await(r_data, got))
      return e->message == "died" ? death() : failed(Outcome::kFailed, *e);
    if (!got && got.error().code != wire::Errc::kTruncated)
      return failed(Outcome::kFailed, Error{ErrorCode::kInternal, got.error().what()});
    reply.truncated = !got;
    reply.data = std::span<const std::byte>(data->data(), got ? got->length : 0);
    reply.hold = std::move(data);
  } else if (slot) {  // written in place, or not at all when its size was wrong
    if (reply.header.value("shm", false) == true)
      reply.data = std::span<const std::byte>(conn->slab->at(out_off), reply_bytes);
    reply.hold = std::move(slot);
  }
  return {Outcome::kOk, std::move(reply)};
}

Result<Reply> WorkerProcess::call(json header, std::span<const std::byte> payload,
                                  std::size_t reply_bytes) {
  auto [outcome, reply] = attempt(header, payload, reply_bytes);
  if (outcome == Outcome::kDied) {
    // Lost to the worker's death (perhaps another request's): once more, on a new worker.
    const auto first = reply.error().message;
    std::tie(outcome, reply) = attempt(header, payload, reply_bytes);
    if (outcome == Outcome::kDied)
      return fail(ErrorCode::kInternal, "{} died twice computing it (first: {}; then: {})", name_,
                  first, reply.error().message);
  }
  if (outcome == Outcome::kOk) {
    std::lock_guard lock(mutex_);
    consecutive_deaths_ = 0;
  }
  return std::move(reply);
}

std::string WorkerProcess::health() const {
  auto* self = const_cast<WorkerProcess*>(this);
  std::shared_ptr<Conn> c;
  {
    std::lock_guard lock(mutex_);
    c = conn_;
  }
  if (c && !c->dead && c->exited()) self->died(c, "", false);  // noticed here first
  std::lock_guard lock(mutex_);
  if (conn_ || users_ == 0 || last_death_.empty()) return {};
  return fmt::format("{}; restarts on the next request ({} death(s) in a row)", last_death_,
                     consecutive_deaths_);
}

json WorkerProcess::details() const {
  std::lock_guard lock(mutex_);
  json j{{"name", spec_.name},
         {"pid", conn_ ? json(conn_->pid) : json()},
         {"starts", starts_},
         {"deaths", deaths_},
         {"memory_bytes", charged_ ? spec_.memory_bytes : 0}};
  if (!last_death_.empty()) j["last_death"] = last_death_;
  return j;
}

}  // namespace vx::pipeline::detail
