// Private: the objects behind wire.hpp's handles, and RAII wrappers for UCX handles.
// Ownership runs parent-ward: a RequestState and an EndpointImpl hold their NodeImpl,
// which holds the worker, which holds the context (DESIGN.md convention 3).
#pragma once

#include <ucp/api/ucp.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <vector>

#include "wire/wire.hpp"

namespace vx::wire::detail {

// ---- UCX handles: move-only, released by their own UCX call ------------------------
template <class H, void (*Release)(H)>
class Handle {
 public:
  Handle() = default;
  explicit Handle(H h) : h_(h) {}
  ~Handle() { reset(); }
  Handle(Handle&& o) noexcept : h_(std::exchange(o.h_, nullptr)) {}
  Handle& operator=(Handle&& o) noexcept {
    if (this != &o) {
      reset();
      h_ = std::exchange(o.h_, nullptr);
    }
    return *this;
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  H get() const { return h_; }
  explicit operator bool() const { return h_ != nullptr; }
  void reset() {
    if (h_) Release(std::exchange(h_, nullptr));
  }

 private:
  H h_ = nullptr;
};
using UcxConfig = Handle<ucp_config_t*, ucp_config_release>;
using UcxContext = Handle<ucp_context_h, ucp_cleanup>;
using UcxWorker = Handle<ucp_worker_h, ucp_worker_destroy>;
using UcxListener = Handle<ucp_listener_h, ucp_listener_destroy>;

// Maps a UCX status to a typed error; `who` names the peer or the operation.
Error ucx_error(ucs_status_t status, std::string_view who);
Errc errc_of(ucs_status_t status);

// The 16-byte message a server sends on every new endpoint; the client's connect
// completes when it arrives. Sent once, before any user message, with kWelcomeTag.
inline constexpr uint64_t kWelcomeTag = 0xffff'ffff'ffff'fffeULL;
inline constexpr uint32_t kWelcomeMagic = 0x31575856;  // "VXW1" little-endian
// What a client announces in its connection request (UCP client_id): the magic in the
// high half, then the settings both peers of an endpoint must share.
inline constexpr uint32_t kConfigNoRndvLanes = 1;  // UCX MAX_RNDV_LANES=0

struct Welcome {
  uint32_t magic = kWelcomeMagic;
  uint32_t version = 1;
  uint32_t id = 0;
  uint32_t reserved = 0;
};

struct NodeImpl;
struct EndpointImpl;

// UCX completion callback of sends, flushes and closes on one endpoint (user = state).
void ep_op_done(void* request, ucs_status_t status, void* user);

enum class Kind { kSend, kRecv, kFlush, kClose, kConnect, kInternal };

struct RequestState : std::enable_shared_from_this<RequestState> {
  RequestState(std::shared_ptr<NodeImpl> n, Kind k, Callback cb)
      : node(std::move(n)), kind(k), callback(std::move(cb)) {}
  ~RequestState();

  std::shared_ptr<NodeImpl> node;  // keeps the worker alive for ucp_request_free
  Kind kind;
  Callback callback;
  std::weak_ptr<EndpointImpl> ep;  // sends, flushes and closes: the endpoint
  std::shared_ptr<void> keep;      // held until completion (an endpoint being closed)
  Completion expect;               // what a successful send reports

  std::mutex m;
  std::condition_variable cv;
  std::atomic<bool> done{false};
  Result<Completion> result;
  void* ucx = nullptr;            // the UCX request, freed when this state dies
  bool cancel_requested = false;  // cancel() came before the UCX handle was stored
  std::optional<Error> fail_as;   // cancelled on behalf of a failure: report this

  // Sets the result, wakes waiters, then runs the callback (outside the lock).
  void complete(Result<Completion> r);
  // The operation and its peer, for error messages: "send to peer 127.0.0.1:41234".
  std::string describe() const;
  // A UCX failure of this operation, named by describe().
  Error failure(ucs_status_t status) const;
  // Stores the UCX handle once posted; cancels at once if cancel() came first.
  void attach(void* request);
  void cancel(std::optional<Error> reason = std::nullopt);
  // In a UCX completion callback: the state behind `user`, taken out of its node's pending
  // list (null when close() already failed it).
  static std::shared_ptr<RequestState> claim(void* user);

  // Membership of the node's PendingList (guarded by NodeImpl::mu): while linked, the
  // request holds itself alive for the UCX callback that will claim it.
  std::shared_ptr<RequestState> pending_self;
  RequestState* pending_prev = nullptr;
  RequestState* pending_next = nullptr;
};

// The requests in flight on a node, linked through the requests themselves: tracking one
// allocates nothing, since it is on the latency path (a hash map cost a node allocation
// and a free per operation). Guarded by NodeImpl::mu.
class PendingList {
 public:
  void add(std::shared_ptr<RequestState> st);
  // The reference the list held, or null when `raw` is not in it (already claimed).
  std::shared_ptr<RequestState> remove(RequestState* raw);
  bool empty() const { return head_ == nullptr; }
  // Every request in flight whose kind is in `kinds` (references, to use outside the lock).
  std::vector<std::shared_ptr<RequestState>> of_kinds(std::initializer_list<Kind> kinds) const;
  // Empties the list, handing its references over.
  std::vector<std::shared_ptr<RequestState>> take_all();

 private:
  RequestState* head_ = nullptr;
};

// Makes RequestStates from a small per-thread cache of freed blocks instead of malloc: a
// request is made per operation, on the latency path. Under AddressSanitizer it is plain
// allocation, so that a use after free is still caught.
std::shared_ptr<RequestState> new_request_state(std::shared_ptr<NodeImpl> node, Kind kind,
                                                Callback cb);

enum class EpState { kOpen, kClosed, kFailed };

struct EndpointImpl : std::enable_shared_from_this<EndpointImpl> {
  explicit EndpointImpl(std::shared_ptr<NodeImpl> n) : node(std::move(n)) {}
  ~EndpointImpl();

  std::shared_ptr<NodeImpl> node;
  uint32_t id = 0;
  std::string peer;
  Welcome welcome;  // the server's welcome, sent from here (must outlive the send)

  // Guards ep and state against a close on another thread. Never taken under UCX's
  // worker lock (callbacks), so posting while holding it cannot deadlock.
  mutable std::mutex m;
  ucp_ep_h ep = nullptr;
  EpState state = EpState::kOpen;
  // Why it failed: written once before `failed` is set, read freely after.
  std::optional<Error> error;
  std::atomic<bool> failed{false};

  Error closed_error() const;  // the error for an operation on a closed/failed endpoint
};

struct NodeImpl : std::enable_shared_from_this<NodeImpl> {
  ~NodeImpl();

  Options options;
  bool server = false;
  std::string tls;             // the UCX_TLS value applied
  bool no_rndv_lanes = false;  // UCX MAX_RNDV_LANES=0 is in effect
  uint64_t config_id() const;  // kWelcomeMagic << 32 | settings peers must share
  std::string host;
  uint16_t port = 0;

  UcxContext context;
  UcxWorker worker;
  int worker_fd = -1;  // ucp_worker_get_efd (owned by the worker)
  UcxListener listener;

  // Progress.
  std::thread thread;
  std::thread::id thread_id;
  std::atomic<bool> stop{false};
  std::atomic<bool> sleeping{false};
  std::atomic<uint64_t> posted{0};
  std::atomic<uint64_t> arms{0};  // ucp_worker_arm calls by progress() (eventfd mode)
  std::atomic<bool> closed{false};
  std::atomic<uint64_t> rejected{0};  // server: clients refused for their settings
  std::mutex close_mutex;

  // Requests in flight (the list holds the reference the UCX callback will drop).
  std::mutex mu;
  PendingList pending;
  std::vector<std::shared_ptr<EndpointImpl>> endpoints;  // server: connected ones
  std::vector<std::shared_ptr<EndpointImpl>> live;       // every ep not yet released
  std::vector<std::function<void()>> deferred;           // run after progress
  std::atomic<bool> has_deferred{false};                 // deferred is not empty
  std::atomic<bool> connecting{false};                   // connect_request is set
  uint32_t next_id = 1;

  // Server callbacks.
  Server::AcceptFn on_accept;
  Server::DisconnectFn on_disconnect;

  // Client.
  std::shared_ptr<EndpointImpl> client_ep;
  std::atomic<uint32_t> client_id{0};
  // Set (under mu) once the one peer has failed: a receive posted after that fails at
  // once with this error; one registered before it is failed by the failure handler.
  std::optional<Error> peer_lost;
  std::shared_ptr<RequestState> connect_request;
  std::chrono::steady_clock::time_point connect_deadline{};
  Welcome welcome_in;

  // "server 0.0.0.0:13337" or "client of 127.0.0.1:13337", for error messages.
  std::string name() const;

  // ---- setup (node.cpp) ----
  Status init(const Options& opts, bool is_server);
  void start_progress();

  // ---- requests ----
  std::shared_ptr<RequestState> make_request(Kind kind, Callback cb);
  // Registers a request before posting: the UCX callback may fire before post returns.
  void track(const std::shared_ptr<RequestState>& st);
  // track() for a client's receive: refuses (returns the peer's error) once the peer has
  // failed, in the same critical section that endpoint_failed's handler collects under.
  std::optional<Error> track_recv(const std::shared_ptr<RequestState>& st);
  // Hands a posted operation's return value over: immediate, error or pending.
  Request finish_post(std::shared_ptr<RequestState> st, ucs_status_ptr_t r, Completion ok);
  static Request failed(std::shared_ptr<RequestState> st, Error e);
  std::shared_ptr<RequestState> untrack(RequestState* raw);
  void wake();  // kThread: make sure the thread is not asleep on work just posted

  Request recv(std::span<std::byte> buffer, uint64_t tag, uint64_t mask, Callback cb,
               Kind kind = Kind::kRecv);
  Request flush(Callback cb);

  // ---- progress ----
  // ucp_worker_progress until idle (or until *until is set: a waiter returns as soon as
  // its request is done, without one more progress call on its latency path), then
  // deferred work.
  bool progress_once(const std::atomic<bool>* until = nullptr);
  bool progress();  // progress_once, re-arming the fd in kEventFd mode
  void run_thread();
  void defer(std::function<void()> fn);
  bool run_deferred();  // in the progress context; whether there was any
  // Runs fn now, or after the current ucp_worker_progress when called from inside it.
  void outside_progress(std::function<void()> fn);
  void wait_fd(int timeout_ms);
  bool on_progress_thread() const { return std::this_thread::get_id() == thread_id; }
  // Whether this thread is inside this node's ucp_worker_progress (its callbacks run
  // there), in any mode. Per thread: several threads may progress one node at once.
  bool in_callback() const;
  // Whether this thread is the one progressing this node now (inside progress_once,
  // deferred work included, or the progress thread): the only place a request's
  // completion cannot race with a call on it.
  bool in_progress_context() const;
  // Wakes the progress (thread or event fd) to run deferred work.
  void kick();

  // ---- endpoints (endpoint.cpp) ----
  void accept(ucp_conn_request_h request);
  // Flushes a new endpoint (completes once its lanes are wired up), then runs `then`
  // outside progress; nothing when the endpoint fails first.
  void ready_after_flush(const std::shared_ptr<EndpointImpl>& ep, std::function<void()> then,
                         Callback on_fail = {});
  void welcome_and_announce(const std::shared_ptr<EndpointImpl>& ep);
  void endpoint_failed(EndpointImpl* ep, ucs_status_t status);
  // Closes the UCX endpoint (once), drops it from the lists; the returned request
  // completes when UCX has released it.
  Request release_endpoint(const std::shared_ptr<EndpointImpl>& ep, bool force, Callback cb = {});
  void check_connect_deadline();

  Status close(bool force);
};

}  // namespace vx::wire::detail
