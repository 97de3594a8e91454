// NodeImpl: the UCX context and worker, their progress, and request bookkeeping.
#include <poll.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <thread>

#include "wire/detail.hpp"

namespace vx::wire {

namespace detail {

// ---- setup -----------------------------------------------------------------------

uint64_t NodeImpl::config_id() const {
  return (uint64_t{kWelcomeMagic} << 32) | (no_rndv_lanes ? kConfigNoRndvLanes : 0u);
}

std::string NodeImpl::name() const {
  if (server) return "server " + host + ":" + std::to_string(port);
  // client_ep is set once by connect and cleared only by close, after the progress stops.
  auto ep = client_ep;
  return ep ? "client of " + ep->peer : std::string("client (not connected)");
}

namespace {

bool has_token(std::string_view list, std::string_view token) {
  size_t pos = 0;
  while (pos <= list.size()) {
    size_t end = list.find(',', pos);
    if (end == std::string_view::npos) end = list.size();
    if (list.substr(pos, end - pos) == token) return true;
    pos = end + 1;
  }
  return false;
}

// The UCX_TLS to apply: the option, else the environment's; with tcp added for the
// connection set-up unless the list is "all" or an exclusion list ("^ib").
std::string transports_for(const Options& opts, bool* tcp_added) {
  std::string tls = opts.transports;
  if (tls.empty()) {
    const char* env = std::getenv("UCX_TLS");
    tls = env ? env : "";
  }
  *tcp_added = false;
  if (tls.empty() || tls == "all" || tls.front() == '^') return tls.empty() ? "all" : tls;
  if (!has_token(tls, "tcp")) {
    tls += ",tcp";
    *tcp_added = true;
  }
  return tls;
}

// Whether the machine has RDMA devices (InfiniBand, RoCE) that UCX could use.
bool has_rdma_devices() {
  std::error_code ec;
  auto it = std::filesystem::directory_iterator("/sys/class/infiniband", ec);
  return !ec && it != std::filesystem::directory_iterator();
}

// Whether the list can select posix/sysv shared memory (else MM_ERROR_HANDLING would be
// reported by UCX as an unused setting).
bool may_use_shm(std::string_view tls) {
  if (tls == "all" || tls.front() == '^') return true;
  for (auto t : {"shm", "sm", "mm", "posix", "sysv"}) {
    if (has_token(tls, t)) return true;
  }
  return false;
}

}  // namespace

Status NodeImpl::init(const Options& opts, bool is_server) {
  options = opts;
  server = is_server;
  ucp_config_t* raw_config = nullptr;
  if (auto s = ucp_config_read(nullptr, nullptr, &raw_config); s != UCS_OK) {
    return tl::unexpected(ucx_error(s, "reading UCX configuration"));
  }
  UcxConfig config(raw_config);
  bool tcp_added = false;
  tls = transports_for(opts, &tcp_added);
  if (auto s = ucp_config_modify(config.get(), "TLS", tls.c_str()); s != UCS_OK) {
    return tl::unexpected(ucx_error(s, "transports '" + tls + "'"));
  }
  // UCX 1.13 drops posix/sysv shared memory from endpoints that ask for peer error
  // handling unless MM_ERROR_HANDLING is set; keepalive over tcp then detects a dead
  // peer. An explicit UCX_MM_ERROR_HANDLING in the environment wins.
  if (opts.peer_error_handling && may_use_shm(tls) && !std::getenv("UCX_MM_ERROR_HANDLING")) {
    if (auto s = ucp_config_modify(config.get(), "MM_ERROR_HANDLING", "y"); s != UCS_OK) {
      return tl::unexpected(ucx_error(s, "setting MM_ERROR_HANDLING"));
    }
  }
  // tcp added only for the connection set-up should not carry bulk data: UCX 1.13 picks
  // it for rendezvous lanes next to shared memory (cma is not offered on error-handling
  // endpoints), which caps large messages at loopback TCP speed (4 GB/s against 10).
  // Sending large messages eagerly through the shared memory segments instead is a local
  // choice that any peer understands. Without RDMA devices the rendezvous lanes are
  // tcp and go too (MAX_RNDV_LANES=0): otherwise every progress call polls tcp, which
  // makes an 8-byte message over shm 2x to 4x slower (docs/benchmarks.md). Peers must
  // agree on that setting (UCX 1.13 aborts in wire-up when they do not), so clients
  // announce theirs in the connection request and servers refuse a client that differs
  // (config_id()). The environment's settings win.
  if (tcp_added && may_use_shm(tls) && !std::getenv("UCX_RNDV_THRESH")) {
    if (auto s = ucp_config_modify(config.get(), "RNDV_THRESH", "inf"); s != UCS_OK) {
      return tl::unexpected(ucx_error(s, "setting RNDV_THRESH"));
    }
  }
  if (const char* env = std::getenv("UCX_MAX_RNDV_LANES")) {
    no_rndv_lanes = std::string_view(env) == "0";
  } else if (!has_rdma_devices()) {
    // Without RDMA hardware the rendezvous lanes are tcp; with them gone UCX sends large
    // messages over its active-message lanes (measured in docs/benchmarks.md). Every
    // node of this machine makes the same choice, whatever its transports, so two
    // defaults always agree. Where RDMA devices exist they carry rendezvous: kept.
    if (auto s = ucp_config_modify(config.get(), "MAX_RNDV_LANES", "0"); s != UCS_OK) {
      return tl::unexpected(ucx_error(s, "setting MAX_RNDV_LANES"));
    }
    no_rndv_lanes = true;
  }
  if (options.spin.count() < 0) {
    // Auto: polling while operations are in flight only pays where a core is spare; on
    // two cores the spinning threads of two processes starve the ones doing the work.
    options.spin = std::thread::hardware_concurrency() > 2 ? std::chrono::microseconds(100)
                                                           : std::chrono::microseconds(0);
  }
  ucp_params_t params{};
  params.field_mask = UCP_PARAM_FIELD_FEATURES | UCP_PARAM_FIELD_MT_WORKERS_SHARED;
  params.features = UCP_FEATURE_TAG | UCP_FEATURE_WAKEUP;
  params.mt_workers_shared = 1;
  ucp_context_h ctx = nullptr;
  if (auto s = ucp_init(&params, config.get(), &ctx); s != UCS_OK) {
    return tl::unexpected(ucx_error(s, "ucp_init with transports '" + tls + "'"));
  }
  context = UcxContext(ctx);

  ucp_worker_params_t wp{};
  wp.field_mask = UCP_WORKER_PARAM_FIELD_THREAD_MODE | UCP_WORKER_PARAM_FIELD_CLIENT_ID;
  wp.client_id = config_id();  // sent with a client's connection request
  wp.thread_mode = UCS_THREAD_MODE_MULTI;
  ucp_worker_h w = nullptr;
  if (auto s = ucp_worker_create(context.get(), &wp, &w); s != UCS_OK) {
    return tl::unexpected(ucx_error(s, "ucp_worker_create"));
  }
  worker = UcxWorker(w);
  if (auto s = ucp_worker_get_efd(worker.get(), &worker_fd); s != UCS_OK) {
    return tl::unexpected(ucx_error(s, "ucp_worker_get_efd"));
  }
  return {};
}

void NodeImpl::start_progress() {
  if (options.progress == ProgressMode::kEventFd) {
    progress();  // leave the fd armed
    return;
  }
  if (options.progress != ProgressMode::kThread) return;
  thread = std::thread([this] { run_thread(); });
  thread_id = thread.get_id();
}

NodeImpl::~NodeImpl() {
  // Public handles close before they let go; this only runs once nothing can post.
  stop = true;
  if (thread.joinable()) {
    if (on_progress_thread()) {
      thread.detach();  // the last reference died in a callback; the loop sees `stop`
    } else {
      ucp_worker_signal(worker.get());
      thread.join();
    }
  }
  listener.reset();
}

// ---- requests --------------------------------------------------------------------

std::shared_ptr<RequestState> NodeImpl::make_request(Kind kind, Callback cb) {
  return new_request_state(shared_from_this(), kind, std::move(cb));
}

void NodeImpl::track(const std::shared_ptr<RequestState>& st) {
  std::lock_guard lock(mu);
  pending.add(st);
}

std::optional<Error> NodeImpl::track_recv(const std::shared_ptr<RequestState>& st) {
  std::lock_guard lock(mu);
  if (peer_lost) return peer_lost;
  pending.add(st);
  return std::nullopt;
}

std::shared_ptr<RequestState> NodeImpl::untrack(RequestState* raw) {
  std::lock_guard lock(mu);
  return pending.remove(raw);
}

Request NodeImpl::failed(std::shared_ptr<RequestState> st, Error e) {
  st->complete(tl::unexpected(std::move(e)));
  return Request(std::move(st));
}

Request NodeImpl::finish_post(std::shared_ptr<RequestState> st, ucs_status_ptr_t r, Completion ok) {
  if (r == nullptr) {
    untrack(st.get());
    st->complete(ok);
  } else if (UCS_PTR_IS_ERR(r)) {
    untrack(st.get());
    st->complete(tl::unexpected(st->failure(UCS_PTR_STATUS(r))));
  } else {
    st->attach(r);
    wake();
  }
  return Request(std::move(st));
}

void NodeImpl::wake() {
  if (options.progress == ProgressMode::kEventFd) {
    // Whatever was posted may need progress before any fd event: give it some now,
    // which also leaves the fd armed.
    progress();
    return;
  }
  if (options.progress != ProgressMode::kThread) return;
  posted.fetch_add(1, std::memory_order_seq_cst);
  if (sleeping.load(std::memory_order_seq_cst)) ucp_worker_signal(worker.get());
}

namespace {

void recv_done(void* request, ucs_status_t status, const ucp_tag_recv_info_t* info, void* user) {
  (void)request;
  auto st = RequestState::claim(user);
  if (!st) return;
  if (status == UCS_OK) {
    st->complete(Completion{info->sender_tag, info->length});
  } else if (status == UCS_ERR_MESSAGE_TRUNCATED) {
    st->complete(tl::unexpected(Error{
        Errc::kTruncated,
        st->describe() + ": a message with tag " + std::to_string(info ? info->sender_tag : 0) +
            " is larger than the " + std::to_string(st->expect.length) + "-byte receive buffer",
        static_cast<int>(status)}));
  } else {
    st->complete(tl::unexpected(st->failure(status)));
  }
}

void flush_done(void* request, ucs_status_t status, void* user) {
  (void)request;
  auto st = RequestState::claim(user);
  if (!st) return;
  if (status == UCS_OK) {
    st->complete(Completion{});
  } else {
    st->complete(tl::unexpected(st->failure(status)));
  }
}

}  // namespace

Request NodeImpl::recv(std::span<std::byte> buffer, uint64_t tag, uint64_t mask, Callback cb,
                       Kind kind) {
  auto st = make_request(kind, std::move(cb));
  st->expect.length = buffer.size();
  if (closed.load()) return failed(st, Error{Errc::kClosed, "receive on " + name() + ": closed"});
  if (!server && kind == Kind::kRecv && client_id.load() == 0) {
    // The server's welcome must be the first message matched on a client's worker.
    return failed(st, Error{Errc::kInvalidArgument,
                            "receive before the client is connected: await connect first"});
  }
  // A client's receives can only be answered by its one peer: once that has failed, a
  // receive would wait forever (UCX does not tie a tag receive to an endpoint).
  if (server || kind != Kind::kRecv) {
    track(st);
  } else if (auto lost = track_recv(st)) {
    lost->message = "receive: " + lost->message;
    return failed(st, std::move(*lost));
  }
  ucp_request_param_t p{};
  p.op_attr_mask =
      UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA | UCP_OP_ATTR_FIELD_DATATYPE;
  p.cb.recv = recv_done;
  p.user_data = st.get();
  p.datatype = ucp_dt_make_contig(1);
  // UCX 1.13 leaves recv_info unset on some immediate completions: always complete
  // through the callback (which may run inside ucp_tag_recv_nbx).
  p.op_attr_mask |= UCP_OP_ATTR_FLAG_NO_IMM_CMPL;
  auto r = ucp_tag_recv_nbx(worker.get(), buffer.data(), buffer.size(), tag, mask, &p);
  return finish_post(std::move(st), r, {});
}

Request NodeImpl::flush(Callback cb) {
  auto st = make_request(Kind::kFlush, std::move(cb));
  if (closed.load()) return failed(st, Error{Errc::kClosed, "flush on " + name() + ": closed"});
  track(st);
  ucp_request_param_t p{};
  p.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA;
  p.cb.send = flush_done;
  p.user_data = st.get();
  auto r = ucp_worker_flush_nbx(worker.get(), &p);
  return finish_post(std::move(st), r, {});
}

// ---- progress --------------------------------------------------------------------

void NodeImpl::defer(std::function<void()> fn) {
  std::lock_guard lock(mu);
  deferred.push_back(std::move(fn));
  has_deferred.store(true, std::memory_order_release);
}

namespace {
thread_local const NodeImpl* tls_progressing = nullptr;  // for close()'s check
thread_local const NodeImpl* tls_progress_context = nullptr;
}  // namespace

bool NodeImpl::in_progress_context() const {
  if (tls_progress_context == this) return true;
  // kThread: only the progress thread progresses; a thread that is not it never is.
  return options.progress == ProgressMode::kThread && thread.joinable() && on_progress_thread();
}

void NodeImpl::kick() {
  if (options.progress == ProgressMode::kThread) posted.fetch_add(1, std::memory_order_seq_cst);
  if (options.progress != ProgressMode::kPolling) ucp_worker_signal(worker.get());
}

void NodeImpl::outside_progress(std::function<void()> fn) {
  if (!in_callback()) {
    fn();
    return;
  }
  defer(std::move(fn));
}

bool NodeImpl::in_callback() const {
  return tls_progressing == this;
}

bool NodeImpl::run_deferred() {
  // The common case, nothing deferred, costs an atomic load rather than the lock: this
  // runs twice per progress call, which is the latency path.
  if (!has_deferred.load(std::memory_order_acquire)) return false;
  std::vector<std::function<void()>> work;
  {
    std::lock_guard lock(mu);
    has_deferred.store(false, std::memory_order_relaxed);
    if (deferred.empty()) return false;
    work.swap(deferred);
  }
  for (auto& fn : work)
    fn();
  return true;
}

bool NodeImpl::progress_once(const std::atomic<bool>* until) {
  const NodeImpl* outer_context = std::exchange(tls_progress_context, this);
  // Deferred work first too: a cancel handed over by another thread must take effect
  // before UCX matches the next message to the receive it cancels.
  bool any = run_deferred();
  const NodeImpl* outer = std::exchange(tls_progressing, this);
  while (ucp_worker_progress(worker.get()) != 0) {
    any = true;
    if (until && until->load(std::memory_order_acquire)) break;
  }
  tls_progressing = outer;
  any |= run_deferred();
  if (connecting.load(std::memory_order_acquire)) check_connect_deadline();
  tls_progress_context = outer_context;
  return any;
}

bool NodeImpl::progress() {
  if (options.progress == ProgressMode::kThread) return false;
  bool any = progress_once();
  if (options.progress == ProgressMode::kEventFd) {
    // Arm the fd. Busy means that work came in since the last progress (messages keep
    // arriving) or that UCX has work queued (a send waiting for room in a shared memory
    // queue): signal the fd rather than progressing and arming again, so that the owner's
    // loop comes back soon and runs its other work (the receiver, perhaps) meanwhile. Each
    // arm is system calls (an eventfd read and a socket drain per transport), and arming
    // in a loop while a stream kept it busy cost 64 KiB shm streams two thirds of their
    // speed (docs/benchmarks.md, "Arming once").
    arms.fetch_add(1, std::memory_order_relaxed);
    if (ucp_worker_arm(worker.get()) == UCS_ERR_BUSY) ucp_worker_signal(worker.get());
  }
  return any;
}

void NodeImpl::wait_fd(int timeout_ms) {
  pollfd p{worker_fd, POLLIN, 0};
  (void)::poll(&p, 1, timeout_ms);
}

void NodeImpl::run_thread() {
  int ep = epoll_create1(EPOLL_CLOEXEC);
  epoll_event ev{};
  ev.events = EPOLLIN;
  epoll_ctl(ep, EPOLL_CTL_ADD, worker_fd, &ev);
  using clock = std::chrono::steady_clock;
  auto last = clock::now();
  while (!stop.load(std::memory_order_acquire)) {
    if (progress_once()) {
      last = clock::now();
      continue;
    }
    bool busy;
    {
      std::lock_guard lock(mu);
      busy = !pending.empty();
    }
    if (busy && clock::now() - last < options.spin) continue;
    // Sleep until the worker has an event. Dekker with wake(): announce the sleep, then
    // re-check that nothing was posted since the last progress.
    uint64_t seen = posted.load(std::memory_order_seq_cst);
    if (ucp_worker_arm(worker.get()) == UCS_ERR_BUSY) continue;
    sleeping.store(true, std::memory_order_seq_cst);
    if (posted.load(std::memory_order_seq_cst) == seen && !stop.load()) {
      epoll_event out{};
      // Pending operations are re-checked now and then (connect deadlines, transports
      // whose progress raises no event); an idle node sleeps without a timeout.
      epoll_wait(ep, &out, 1, busy ? 100 : -1);
    }
    sleeping.store(false, std::memory_order_seq_cst);
    last = clock::now();
  }
  ::close(ep);
}

}  // namespace detail

// ---- Node ------------------------------------------------------------------------

Node::Node(std::shared_ptr<detail::NodeImpl> impl) : impl_(std::move(impl)) {}
Node::Node(Node&&) noexcept = default;
Node& Node::operator=(Node&& o) noexcept {
  if (this != &o) {
    if (impl_) (void)impl_->close(true);
    impl_ = std::move(o.impl_);
  }
  return *this;
}
Node::~Node() {
  if (impl_) (void)impl_->close(true);
}

Request Node::recv(std::span<std::byte> buffer, uint64_t tag, uint64_t mask, Callback cb) {
  return impl_->recv(buffer, tag, mask, std::move(cb));
}
Request Node::flush(Callback cb) {
  return impl_->flush(std::move(cb));
}
Request Node::flush(const Endpoint& endpoint, Callback cb) {
  if (!endpoint) {
    auto st = impl_->make_request(detail::Kind::kFlush, std::move(cb));
    return detail::NodeImpl::failed(st,
                                    Error{Errc::kInvalidArgument, "flush of an empty endpoint"});
  }
  return Endpoint(endpoint).flush(std::move(cb));
}
Status Node::close(bool force) {
  return impl_->close(force);
}
bool Node::closed() const {
  return impl_->closed.load();
}
ProgressMode Node::progress_mode() const {
  return impl_->options.progress;
}
int Node::event_fd() const {
  return impl_->options.progress == ProgressMode::kEventFd ? impl_->worker_fd : -1;
}
bool Node::progress() {
  return impl_->progress();
}
std::uint64_t Node::arms() const {
  return impl_->arms.load(std::memory_order_relaxed);
}
bool Node::poll() {
  if (impl_->options.progress == ProgressMode::kThread) return false;
  return impl_->progress_once();
}
std::string Node::transports() const {
  return impl_->tls;
}

}  // namespace vx::wire
