// Server (listener, accept, welcome) and Client (connect, welcome, deadline).
#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>

#include <cstring>

#include "wire/detail.hpp"

namespace vx::wire {
namespace detail {
namespace {

std::string format_address(const sockaddr* sa) {
  char host[INET6_ADDRSTRLEN] = {};
  uint16_t port = 0;
  if (sa->sa_family == AF_INET) {
    auto* in = reinterpret_cast<const sockaddr_in*>(sa);
    inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
    port = ntohs(in->sin_port);
    return std::string(host) + ":" + std::to_string(port);
  }
  if (sa->sa_family == AF_INET6) {
    auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
    inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
    port = ntohs(in6->sin6_port);
    return "[" + std::string(host) + "]:" + std::to_string(port);
  }
  return "?";
}

std::string ucx_version() {
  unsigned major = 0, minor = 0, release = 0;
  ucp_get_version(&major, &minor, &release);
  return std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(release);
}

bool ucx_connects_over_ipv6() {
  unsigned major = 0, minor = 0, release = 0;
  ucp_get_version(&major, &minor, &release);
  return major > 1 || (major == 1 && minor > 13);
}

struct AddrInfo {
  addrinfo* ai = nullptr;
  ~AddrInfo() {
    if (ai) freeaddrinfo(ai);
  }
};

Result<sockaddr_storage> resolve(const std::string& host, uint16_t port, bool passive,
                                 socklen_t* len) {
  if (host.empty()) return tl::unexpected(Error{Errc::kInvalidArgument, "empty host"});
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = passive ? AI_PASSIVE : 0;
  AddrInfo res;
  const std::string service = std::to_string(port);
  if (int rc = getaddrinfo(host.c_str(), service.c_str(), &hints, &res.ai); rc != 0) {
    return tl::unexpected(
        Error{Errc::kAddress, "cannot resolve host '" + host + "': " + gai_strerror(rc)});
  }
  sockaddr_storage out{};
  std::memcpy(&out, res.ai->ai_addr, res.ai->ai_addrlen);
  *len = res.ai->ai_addrlen;
  return out;
}

void on_error(void* arg, ucp_ep_h, ucs_status_t status) {
  auto* ep = static_cast<EndpointImpl*>(arg);
  ep->node->endpoint_failed(ep, status);
}

void on_conn(ucp_conn_request_h request, void* arg) {
  auto* node = static_cast<NodeImpl*>(arg);
  // Runs inside ucp_worker_progress: create the endpoint after it returns.
  node->defer([node, request] { node->accept(request); });
}

void internal_send_done(void* request, ucs_status_t status, void* user) {
  (void)request;
  (void)status;  // a failed welcome surfaces as the endpoint's failure
  if (auto st = RequestState::claim(user)) st->complete(Completion{});
}

}  // namespace

void NodeImpl::accept(ucp_conn_request_h request) {
  if (closed.load()) {
    ucp_listener_reject(listener.get(), request);
    return;
  }
  auto impl = std::make_shared<EndpointImpl>(shared_from_this());
  ucp_conn_request_attr_t attr{};
  attr.field_mask = UCP_CONN_REQUEST_ATTR_FIELD_CLIENT_ADDR | UCP_CONN_REQUEST_ATTR_FIELD_CLIENT_ID;
  if (ucp_conn_request_query(request, &attr) == UCS_OK) {
    impl->peer = format_address(reinterpret_cast<const sockaddr*>(&attr.client_address));
  }
  // A client whose UCX settings differ from ours would take this process down in UCX's
  // wire-up (an assertion), and one that is not a wire client could not speak to us:
  // both are refused before any endpoint exists (the client sees kRefused).
  if (attr.client_id != config_id()) {
    rejected.fetch_add(1);
    ucp_listener_reject(listener.get(), request);
    return;
  }
  ucp_ep_params_t p{};
  p.field_mask = UCP_EP_PARAM_FIELD_CONN_REQUEST | UCP_EP_PARAM_FIELD_ERR_HANDLER |
                 UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE;
  p.conn_request = request;
  p.err_mode =
      options.peer_error_handling ? UCP_ERR_HANDLING_MODE_PEER : UCP_ERR_HANDLING_MODE_NONE;
  p.err_handler.cb = on_error;
  p.err_handler.arg = impl.get();
  ucp_ep_h ep = nullptr;
  if (ucp_ep_create(worker.get(), &p, &ep) != UCS_OK) return;  // the client sees a refusal
  {
    std::lock_guard lock(mu);
    impl->id = next_id++;
    impl->ep = ep;
    live.push_back(impl);
  }
  impl->welcome.id = impl->id;
  // The endpoint is announced (welcome, endpoints(), on_accept) only once it is wired
  // up: UCX 1.13 queues sends posted while the lanes are still being set up and replays
  // them when they are, and that replay can call a null function under load (a segfault
  // in ucp_wireup_replay_pending_requests, found by the soak test). A flush completes
  // once every lane is connected.
  ready_after_flush(impl, [this, impl] { welcome_and_announce(impl); });
}

void NodeImpl::ready_after_flush(const std::shared_ptr<EndpointImpl>& impl,
                                 std::function<void()> then, Callback on_fail) {
  auto st = make_request(
      Kind::kInternal,
      [this, then = std::move(then), on_fail = std::move(on_fail)](const Result<Completion>& r) {
        if (r) {
          outside_progress(then);
        } else if (on_fail) {
          on_fail(r);  // else the endpoint's error handler reports it
        }
      });
  st->ep = impl;
  st->keep = impl;
  ucs_status_ptr_t r;
  {
    std::lock_guard lock(impl->m);
    if (!impl->ep) return;  // closed or failed meanwhile
    track(st);
    ucp_request_param_t fp{};
    fp.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA;
    fp.cb.send = ep_op_done;
    fp.user_data = st.get();
    r = ucp_ep_flush_nbx(impl->ep, &fp);
  }
  finish_post(std::move(st), r, {});
}

void NodeImpl::welcome_and_announce(const std::shared_ptr<EndpointImpl>& impl) {
  if (closed.load()) return;
  auto st = make_request(Kind::kInternal, {});
  st->keep = impl;
  st->ep = impl;
  ucs_status_ptr_t r;
  {
    std::lock_guard lock(impl->m);
    if (!impl->ep || impl->state != EpState::kOpen) return;
    {
      // Listed before the welcome leaves: a client that has its welcome finds itself in
      // endpoints(). Sends the accept callback posts follow the welcome on the endpoint.
      std::lock_guard list_lock(mu);
      endpoints.push_back(impl);
    }
    track(st);
    ucp_request_param_t sp{};
    sp.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA;
    sp.cb.send = internal_send_done;
    sp.user_data = st.get();
    r = ucp_tag_send_nbx(impl->ep, &impl->welcome, sizeof(Welcome), kWelcomeTag, &sp);
  }
  finish_post(std::move(st), r, {});
  if (on_accept) on_accept(Endpoint(impl));
}

void NodeImpl::check_connect_deadline() {
  std::shared_ptr<RequestState> st;
  std::shared_ptr<EndpointImpl> ep;
  {
    std::lock_guard lock(mu);
    if (!connect_request) {
      connecting.store(false, std::memory_order_relaxed);
      return;
    }
    if (connect_request->done.load()) {
      connect_request.reset();
      connecting.store(false, std::memory_order_relaxed);
      return;
    }
    if (std::chrono::steady_clock::now() < connect_deadline) return;
    st = std::exchange(connect_request, nullptr);
    connecting.store(false, std::memory_order_relaxed);
    ep = client_ep;
  }
  std::string peer = ep ? ep->peer : "?";
  Error err{Errc::kRefused, "cannot connect to " + peer + ": no welcome within " +
                                std::to_string(options.connect_timeout.count()) + " ms"};
  std::vector<std::shared_ptr<RequestState>> welcome;
  {
    std::lock_guard lock(mu);
    welcome = pending.of_kinds({Kind::kConnect});
  }
  for (auto& s : welcome)
    s->cancel(err);
  st->complete(tl::unexpected(err));
  if (ep) defer([this, ep] { (void)release_endpoint(ep, true); });
}

}  // namespace detail

namespace {

Result<std::shared_ptr<detail::NodeImpl>> make_node(const Options& options, bool server) {
  auto node = std::make_shared<detail::NodeImpl>();
  if (auto s = node->init(options, server); !s) return tl::unexpected(s.error());
  return node;
}

}  // namespace

// ---- Server ----------------------------------------------------------------------

Result<Server> Server::listen(std::string host, uint16_t port, Options options, AcceptFn on_accept,
                              DisconnectFn on_disconnect) {
  socklen_t len = 0;
  auto addr = detail::resolve(host, port, true, &len);
  if (!addr) return tl::unexpected(addr.error());
  auto node = make_node(options, true);
  if (!node) return tl::unexpected(node.error());
  auto& n = **node;
  n.on_accept = std::move(on_accept);
  n.on_disconnect = std::move(on_disconnect);
  ucp_listener_params_t lp{};
  lp.field_mask = UCP_LISTENER_PARAM_FIELD_SOCK_ADDR | UCP_LISTENER_PARAM_FIELD_CONN_HANDLER;
  lp.sockaddr.addr = reinterpret_cast<const sockaddr*>(&*addr);
  lp.sockaddr.addrlen = len;
  lp.conn_handler.cb = detail::on_conn;
  lp.conn_handler.arg = &n;
  ucp_listener_h listener = nullptr;
  if (auto s = ucp_listener_create(n.worker.get(), &lp, &listener); s != UCS_OK) {
    auto err = detail::ucx_error(s, "cannot listen on " + host + ":" + std::to_string(port));
    err.code = Errc::kAddress;
    return tl::unexpected(err);
  }
  n.listener = detail::UcxListener(listener);
  ucp_listener_attr_t attr{};
  attr.field_mask = UCP_LISTENER_ATTR_FIELD_SOCKADDR;
  if (ucp_listener_query(listener, &attr) == UCS_OK) {
    auto* sa = reinterpret_cast<const sockaddr*>(&attr.sockaddr);
    n.port = ntohs(sa->sa_family == AF_INET6 ? reinterpret_cast<const sockaddr_in6*>(sa)->sin6_port
                                             : reinterpret_cast<const sockaddr_in*>(sa)->sin_port);
  }
  n.host = host;
  n.start_progress();
  return Server(std::move(*node));
}

uint16_t Server::port() const {
  return impl_->port;
}
std::string Server::host() const {
  return impl_->host;
}
std::vector<Endpoint> Server::endpoints() const {
  std::lock_guard lock(impl_->mu);
  std::vector<Endpoint> out;
  for (auto& e : impl_->endpoints)
    out.emplace_back(e);
  return out;
}

// ---- Client ----------------------------------------------------------------------

Result<Client> Client::create(Options options) {
  auto node = make_node(options, false);
  if (!node) return tl::unexpected(node.error());
  (*node)->start_progress();
  return Client(std::move(*node));
}

Result<Client> Client::connect(std::string host, uint16_t port, Options options) {
  auto client = create(options);
  if (!client) return client;
  if (auto r = client->connect_async(std::move(host), port).wait(); !r) {
    return tl::unexpected(r.error());
  }
  return client;
}

Request Client::connect_async(std::string host, uint16_t port, Callback cb) {
  auto& n = *impl_;
  auto st = n.make_request(detail::Kind::kConnect, std::move(cb));
  if (n.closed.load()) return detail::NodeImpl::failed(st, Error{Errc::kClosed, "client closed"});
  if (n.client_ep) {
    return detail::NodeImpl::failed(st, Error{Errc::kInvalidArgument, "already connected"});
  }
  socklen_t len = 0;
  auto addr = detail::resolve(host, port, false, &len);
  if (!addr) return detail::NodeImpl::failed(st, addr.error());
  if (addr->ss_family == AF_INET6 && !detail::ucx_connects_over_ipv6()) {
    // UCX 1.13 cannot finish such a connect (docs/wire.md, "IPv6"), and on its way to the
    // refusal it corrupts the heap of a release build (malloc aborts at a thread's exit).
    // Refused here, before UCX is involved, with the same error it would have given.
    return detail::NodeImpl::failed(
        st,
        Error{Errc::kRefused,
              "connect to " + detail::format_address(reinterpret_cast<const sockaddr*>(&*addr)) +
                  " refused: UCX " + detail::ucx_version() +
                  " cannot connect over IPv6; use an IPv4 address"});
  }
  auto impl = std::make_shared<detail::EndpointImpl>(impl_);
  impl->peer = detail::format_address(reinterpret_cast<const sockaddr*>(&*addr));
  {
    std::lock_guard lock(n.mu);
    n.client_ep = impl;
    n.connect_request = st;
    n.connecting.store(true, std::memory_order_release);
    n.connect_deadline = std::chrono::steady_clock::now() + n.options.connect_timeout;
  }

  // The welcome is the first message on this worker: post its receive before connecting.
  std::weak_ptr<detail::RequestState> weak = st;
  std::weak_ptr<detail::NodeImpl> weak_node = impl_;
  auto on_welcome = [weak, weak_node, impl](const Result<Completion>& r) {
    auto user = weak.lock();
    auto node = weak_node.lock();
    if (!user || !node) return;
    if (!r) {
      user->complete(tl::unexpected(r.error()));
      return;
    }
    const auto& w = node->welcome_in;
    if (r->length != sizeof(detail::Welcome) || w.magic != detail::kWelcomeMagic) {
      user->complete(tl::unexpected(
          Error{Errc::kRefused, impl->peer + " is not a wire server (unexpected first message)"}));
      return;
    }
    impl->id = w.id;
    node->client_id = w.id;
    // Complete the connect once our own lanes are wired up too (see accept()).
    const Completion done{w.id, r->length};
    node->outside_progress([node, impl, user, done] {
      node->ready_after_flush(
          impl, [user, done] { user->complete(done); },
          [user](const Result<Completion>& failed) { user->complete(failed); });
    });
  };
  auto welcome = n.recv(std::as_writable_bytes(std::span(&n.welcome_in, 1)), detail::kWelcomeTag,
                        ~uint64_t{0}, on_welcome, detail::Kind::kConnect);

  ucp_ep_params_t p{};
  p.field_mask = UCP_EP_PARAM_FIELD_FLAGS | UCP_EP_PARAM_FIELD_SOCK_ADDR |
                 UCP_EP_PARAM_FIELD_ERR_HANDLER | UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE;
  p.flags = UCP_EP_PARAMS_FLAGS_CLIENT_SERVER | UCP_EP_PARAMS_FLAGS_SEND_CLIENT_ID;
  p.sockaddr.addr = reinterpret_cast<const sockaddr*>(&*addr);
  p.sockaddr.addrlen = len;
  p.err_mode =
      n.options.peer_error_handling ? UCP_ERR_HANDLING_MODE_PEER : UCP_ERR_HANDLING_MODE_NONE;
  p.err_handler.cb = detail::on_error;
  p.err_handler.arg = impl.get();
  ucp_ep_h ep = nullptr;
  if (auto s = ucp_ep_create(n.worker.get(), &p, &ep); s != UCS_OK) {
    welcome.cancel();
    auto err = detail::ucx_error(s, "cannot connect to " + impl->peer);
    err.code = Errc::kRefused;
    return detail::NodeImpl::failed(st, err);
  }
  {
    std::lock_guard lock(impl->m);
    impl->ep = ep;
  }
  {
    std::lock_guard lock(n.mu);
    n.live.push_back(impl);
  }
  n.wake();
  return Request(std::move(st));
}

Endpoint Client::endpoint() const {
  return Endpoint(impl_->client_ep);
}
uint32_t Client::id() const {
  return impl_->client_id.load();
}

Request Client::send(std::span<const std::byte> data, uint64_t tag, Callback cb) {
  if (impl_->closed.load()) {
    auto st = impl_->make_request(detail::Kind::kSend, std::move(cb));
    return detail::NodeImpl::failed(st, Error{Errc::kClosed, "client closed"});
  }
  if (!impl_->client_ep) {
    auto st = impl_->make_request(detail::Kind::kSend, std::move(cb));
    return detail::NodeImpl::failed(st, Error{Errc::kInvalidArgument, "client not connected"});
  }
  return Endpoint(impl_->client_ep).send(data, tag, std::move(cb));
}

}  // namespace vx::wire
