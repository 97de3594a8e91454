// wire: full-duplex, zero-copy tagged messaging over UCX (TCP, shared memory, RDMA where
// the machine has it). A library of its own: it depends on UCX, tl::expected and the
// standard library only, and no UCX type appears in this header (DESIGN.md convention 2).
//
//   auto server = vx::wire::Server::listen("0.0.0.0", 13337);
//   auto client = vx::wire::Client::connect("127.0.0.1", server->port());
//   client->send(bytes, /*tag=*/7).wait();              // reads `bytes` in place
//   auto got = server->recv(buffer, 0, 0).wait();       // lands in `buffer`, any tag
//
// Threads. Every call is thread-safe. Completion callbacks run in the progress context:
// the progress thread (ProgressMode::kThread), the thread that calls progress()
// (kEventFd, kPolling), or the calling thread when an operation completes at once. A
// callback must not block and must not wait on another wire request.
//
// Buffers. send() reads the caller's memory and recv() writes straight into it; neither
// copies nor keeps it past completion. The caller keeps the buffer alive and untouched
// until the request completes (or its cancel completes).
//
// Fork. UCX objects belong to the process that made them. A child of fork() must not use
// or destroy its parent's Server, Client, Endpoint or Request (let them leak, or exec);
// it creates its own after the fork.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <tl/expected.hpp>
#include <vector>

namespace vx::wire {

enum class Errc {
  kInvalidArgument,  // the caller passed something wrong (empty host, recv before connect)
  kAddress,          // the host cannot be resolved, or the port cannot be bound
  kRefused,          // nobody accepted the connection (closed port, no route, timeout)
  kPeerFailure,      // the peer died or reset the connection; pending operations fail
  kTruncated,        // the message is larger than the receive buffer
  kCancelled,        // cancelled by the caller
  kClosed,           // the endpoint, client or server was closed
  kTimedOut,         // an explicit deadline passed
  kUcx,              // any other UCX error; the message carries UCX's text
};
std::string_view to_string(Errc code);

struct Error {
  Errc code = Errc::kUcx;
  std::string message;  // names the peer: "peer 127.0.0.1:41234: connection reset"
  int ucx_status = 0;   // the ucs_status_t it came from (0 when none)
  uint64_t tag = 0;     // kTruncated: the sender's tag of the message that did not fit
  std::string what() const;
};

template <class T>
using Result = tl::expected<T, Error>;
using Status = tl::expected<void, Error>;

// How UCX gets progressed (docs/wire.md, "Progress").
enum class ProgressMode {
  // A progress thread. While operations are in flight it polls, for at most `spin` after
  // the last event; then it sleeps on the worker's event fd. Idle costs no CPU. Default.
  kThread,
  // No thread. The owner waits for event_fd() to become readable (epoll, asyncio) and
  // calls progress(), which re-arms the fd before it returns. Request::wait() sleeps.
  kEventFd,
  // No thread. The owner calls progress() in a loop; Request::wait() busy-polls. The
  // lowest latency, for HPC codes that own a core.
  kPolling,
};
std::string_view to_string(ProgressMode mode);
Result<ProgressMode> parse_progress_mode(std::string_view name);

struct Options {
  ProgressMode progress = ProgressMode::kThread;
  // UCX transports (UCX_TLS syntax: "tcp", "shm", "sm,tcp", "^ib"). Empty: UCX_TLS from
  // the environment, else UCX's default (all). `tcp` is added when missing: UCX 1.13
  // sets up connections from a listener over the tcp socket manager.
  std::string transports;
  // Detect dead peers (UCP_ERR_HANDLING_MODE_PEER). Shared memory keeps working: the
  // library sets MM_ERROR_HANDLING=y through the config API, which UCX 1.13 requires
  // for posix/sysv shared memory to be chosen on an error-handling endpoint.
  bool peer_error_handling = true;
  // kThread: how long the progress thread keeps polling after the last event while
  // operations are in flight. Negative: automatic (100 us with more than two cores, else
  // 0: on two cores spinning threads starve the ones doing the work).
  std::chrono::microseconds spin{-1};
  // Client connect: how long to wait for the server's welcome.
  std::chrono::milliseconds connect_timeout{5000};
  // Node::close(graceful): how long to wait for the endpoints' flushes; after it, close
  // returns kTimedOut and fails what is left with kClosed.
  std::chrono::milliseconds close_timeout{5000};
};

// What a completed operation reports. recv: the sender's tag and the message length.
// send: the tag sent and the bytes sent. flush and close: zeros.
struct Completion {
  uint64_t tag = 0;
  size_t length = 0;
};

using Callback = std::function<void(const Result<Completion>&)>;

namespace detail {
struct NodeImpl;
struct EndpointImpl;
struct RequestState;
}  // namespace detail

// A pending operation. Move-only. Destroying it does not cancel the operation: the
// callback (if any) still runs, and the buffer must stay valid until it has.
class Request {
 public:
  Request();
  ~Request();
  Request(Request&&) noexcept;
  Request& operator=(Request&&) noexcept;
  Request(const Request&) = delete;
  Request& operator=(const Request&) = delete;

  bool done() const;
  // Blocks until the operation completes; drives progress in kEventFd and kPolling mode.
  Result<Completion> wait();
  // As wait(), giving up after `timeout` with kTimedOut (the operation stays pending).
  Result<Completion> wait_for(std::chrono::nanoseconds timeout);
  // Asks UCX to cancel; the request then completes with kCancelled unless it completed
  // first. Safe at any time, any number of times.
  void cancel();

  explicit Request(std::shared_ptr<detail::RequestState> state);

 private:
  std::shared_ptr<detail::RequestState> state_;
};

// One connection, as seen from either side. A cheap, copyable reference that keeps the
// worker allocated; the connection itself ends when either side closes it, when the peer
// fails, or when its Server/Client is closed or destroyed (which closes every endpoint).
class Endpoint {
 public:
  Endpoint() = default;
  explicit Endpoint(std::shared_ptr<detail::EndpointImpl> impl);

  explicit operator bool() const { return impl_ != nullptr; }
  // Server-assigned number, unique within one server, the same on both sides. UCX tag
  // matching is per worker, so a server's recv() matches every client: put id() in
  // your tags to tell senders apart.
  uint32_t id() const;
  std::string peer() const;  // "127.0.0.1:41234"
  bool connected() const;    // false once closed or failed
  // UCX's description of the endpoint's lanes and protocols (ucp_ep_print_info).
  std::string info() const;

  // Sends `data` with `tag`. Zero-copy; the request completes when `data` may be reused.
  Request send(std::span<const std::byte> data, uint64_t tag, Callback callback = {});
  // Completes when every send issued before it on this endpoint has completed locally and
  // has been delivered to the peer's UCX worker (matched, or waiting in its unexpected
  // queue): closing the endpoint afterwards cannot lose them. It does not mean the peer
  // application has received them.
  Request flush(Callback callback = {});
  // Graceful (UCX flushes, then disconnects; wait_for() bounds the wait) or forced
  // (pending operations fail at once). Closing twice is a no-op.
  Request close(bool force = false, Callback callback = {});

  bool operator==(const Endpoint& other) const { return impl_ == other.impl_; }
  const std::shared_ptr<detail::EndpointImpl>& impl() const { return impl_; }

 private:
  std::shared_ptr<detail::EndpointImpl> impl_;
};

// What Server and Client share: a UCX context and worker, and their progress.
class Node {
 public:
  // Receives one message whose tag matches: (sender_tag & mask) == (tag & mask); a mask
  // of 0 matches any tag. The message lands in `buffer`; one larger than the buffer
  // completes with kTruncated (and is consumed).
  Request recv(std::span<std::byte> buffer, uint64_t tag, uint64_t mask, Callback callback = {});
  // flush() on every endpoint; completes when all of them have.
  Request flush(Callback callback = {});
  // Endpoint::flush() of one endpoint (the flush(endpoint)).
  Request flush(const Endpoint& endpoint, Callback callback = {});
  // Closes every endpoint (graceful or forced), stops accepting, fails pending receives
  // with kClosed and stops the progress thread. Closing twice is a no-op. The destructor
  // closes with force.
  Status close(bool force = false);
  bool closed() const;

  ProgressMode progress_mode() const;
  // kEventFd: readable when progress() has work. -1 in other modes.
  int event_fd() const;
  // Progresses the worker until idle; in kEventFd mode then re-arms event_fd() (or signals
  // it when work is already waiting). Returns whether anything happened. A no-op in kThread
  // mode.
  bool progress();
  // progress() without re-arming event_fd(), for a caller that polls in a loop: arming
  // asks every peer to signal its next message (a system call on their side), so arm only
  // before sleeping on the fd, with a last progress(). A no-op in kThread mode.
  bool poll();
  // How many times progress() has armed event_fd() (kEventFd; 0 otherwise). Each arm is
  // system calls here and asks the peers to signal (docs/wire.md, "Progress").
  std::uint64_t arms() const;
  // Transports UCX chose for this node's endpoints (UCX_TLS as applied), for logs.
  std::string transports() const;

  virtual ~Node();

 protected:
  Node() = default;
  explicit Node(std::shared_ptr<detail::NodeImpl> impl);
  Node(Node&&) noexcept;
  Node& operator=(Node&&) noexcept;
  std::shared_ptr<detail::NodeImpl> impl_;
};

class Server : public Node {
 public:
  using AcceptFn = std::function<void(Endpoint)>;
  using DisconnectFn = std::function<void(Endpoint, const Error&)>;

  // Listens on host:port (IPv4 or IPv6 literal or name; "0.0.0.0" or "::" for all; port
  // 0 picks a free one). on_accept runs in the progress context for each new endpoint;
  // on_disconnect when one fails or is closed by the peer (it has then left endpoints()).
  static Result<Server> listen(std::string host, uint16_t port, Options options = {},
                               AcceptFn on_accept = {}, DisconnectFn on_disconnect = {});
  Server(Server&&) noexcept = default;
  Server& operator=(Server&&) noexcept = default;

  uint16_t port() const;
  std::string host() const;
  std::vector<Endpoint> endpoints() const;

 private:
  explicit Server(std::shared_ptr<detail::NodeImpl> impl) : Node(std::move(impl)) {}
};

class Client : public Node {
 public:
  // Makes the client's context and worker; no connection yet.
  static Result<Client> create(Options options = {});
  // Connects and waits for the server's welcome (which carries id()).
  static Result<Client> connect(std::string host, uint16_t port, Options options = {});
  Client(Client&&) noexcept = default;
  Client& operator=(Client&&) noexcept = default;

  // Completes (Completion.tag = id) once the server has accepted and welcomed us; a
  // closed port completes with kRefused.
  Request connect_async(std::string host, uint16_t port, Callback callback = {});
  Endpoint endpoint() const;  // empty until connect_async was called
  uint32_t id() const;        // 0 until connected

  Request send(std::span<const std::byte> data, uint64_t tag, Callback callback = {});

 private:
  explicit Client(std::shared_ptr<detail::NodeImpl> impl) : Node(std::move(impl)) {}
};

}  // namespace vx::wire
