// Error codes and their text, UCX status mapping, and requests: RequestState (one
// operation's completion, cancel and error text) and the public Request handle.
#include <algorithm>
#include <string>

#include "wire/detail.hpp"

namespace vx::wire {

std::string_view to_string(Errc code) {
  switch (code) {
    case Errc::kInvalidArgument:
      return "invalid_argument";
    case Errc::kAddress:
      return "address";
    case Errc::kRefused:
      return "refused";
    case Errc::kPeerFailure:
      return "peer_failure";
    case Errc::kTruncated:
      return "truncated";
    case Errc::kCancelled:
      return "cancelled";
    case Errc::kClosed:
      return "closed";
    case Errc::kTimedOut:
      return "timed_out";
    case Errc::kUcx:
      return "ucx";
  }
  return "ucx";
}

std::string Error::what() const {
  return std::string(to_string(code)) + ": " + message;
}

std::string_view to_string(ProgressMode mode) {
  switch (mode) {
    case ProgressMode::kThread:
      return "thread";
    case ProgressMode::kEventFd:
      return "eventfd";
    case ProgressMode::kPolling:
      return "polling";
  }
  return "thread";
}

Result<ProgressMode> parse_progress_mode(std::string_view name) {
  if (name == "thread") return ProgressMode::kThread;
  if (name == "eventfd") return ProgressMode::kEventFd;
  if (name == "polling") return ProgressMode::kPolling;
  return tl::unexpected(
      Error{Errc::kInvalidArgument,
            "progress mode '" + std::string(name) + "' is not one of thread, eventfd, polling"});
}

namespace detail {

Errc errc_of(ucs_status_t status) {
  switch (status) {
    case UCS_ERR_CANCELED:
      return Errc::kCancelled;
    case UCS_ERR_MESSAGE_TRUNCATED:
      return Errc::kTruncated;
    case UCS_ERR_CONNECTION_RESET:
    case UCS_ERR_ENDPOINT_TIMEOUT:
    case UCS_ERR_IO_ERROR:
      return Errc::kPeerFailure;
    case UCS_ERR_UNREACHABLE:
    case UCS_ERR_REJECTED:
      return Errc::kRefused;
    case UCS_ERR_TIMED_OUT:
      return Errc::kTimedOut;
    case UCS_ERR_INVALID_ADDR:
    case UCS_ERR_BUSY:
      return Errc::kAddress;
    case UCS_ERR_INVALID_PARAM:
      return Errc::kInvalidArgument;
    default:
      return Errc::kUcx;
  }
}

Error ucx_error(ucs_status_t status, std::string_view who) {
  return Error{errc_of(status), std::string(who) + ": " + ucs_status_string(status),
               static_cast<int>(status)};
}

// ---- requests --------------------------------------------------------------------

namespace {

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kRecycle = false;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kRecycle = false;
#else
constexpr bool kRecycle = true;
#endif
#else
constexpr bool kRecycle = true;
#endif

// A per-thread stack of freed blocks of one size. A block freed on another thread than
// the one that made it (a completion on the progress thread) joins that thread's stack:
// blocks are plain memory from operator new, so any thread may reuse or free them.
class BlockCache {
 public:
  ~BlockCache() {
    for (void* b : blocks_)
      ::operator delete(b);
  }
  void* get(std::size_t bytes) {
    if (bytes == size_ && !blocks_.empty()) {
      void* b = blocks_.back();
      blocks_.pop_back();
      return b;
    }
    return ::operator new(bytes);
  }
  void put(void* b, std::size_t bytes) {
    if (size_ == 0) size_ = bytes;
    if (bytes == size_ && blocks_.size() < kMax) {
      blocks_.push_back(b);
    } else {
      ::operator delete(b);
    }
  }

 private:
  static constexpr std::size_t kMax = 256;  // at most a few tens of KiB per thread
  std::size_t size_ = 0;
  std::vector<void*> blocks_;
};

template <class T>
struct Recycling {
  using value_type = T;
  Recycling() = default;
  template <class U>
  Recycling(const Recycling<U>&) {}
  T* allocate(std::size_t n) {
    static_assert(alignof(T) <= __STDCPP_DEFAULT_NEW_ALIGNMENT__);
    return static_cast<T*>(cache().get(n * sizeof(T)));
  }
  void deallocate(T* p, std::size_t n) { cache().put(p, n * sizeof(T)); }
  template <class U>
  bool operator==(const Recycling<U>&) const {
    return true;
  }

 private:
  static BlockCache& cache() {
    thread_local BlockCache c;
    return c;
  }
};

}  // namespace

std::shared_ptr<RequestState> new_request_state(std::shared_ptr<NodeImpl> node, Kind kind,
                                                Callback cb) {
  if constexpr (kRecycle) {
    return std::allocate_shared<RequestState>(Recycling<RequestState>{}, std::move(node), kind,
                                              std::move(cb));
  } else {
    return std::make_shared<RequestState>(std::move(node), kind, std::move(cb));
  }
}

void PendingList::add(std::shared_ptr<RequestState> st) {
  RequestState* raw = st.get();
  raw->pending_prev = nullptr;
  raw->pending_next = head_;
  if (head_) head_->pending_prev = raw;
  head_ = raw;
  raw->pending_self = std::move(st);
}

std::shared_ptr<RequestState> PendingList::remove(RequestState* raw) {
  if (!raw->pending_self) return nullptr;
  if (raw->pending_prev) {
    raw->pending_prev->pending_next = raw->pending_next;
  } else {
    head_ = raw->pending_next;
  }
  if (raw->pending_next) raw->pending_next->pending_prev = raw->pending_prev;
  raw->pending_prev = raw->pending_next = nullptr;
  return std::move(raw->pending_self);
}

std::vector<std::shared_ptr<RequestState>> PendingList::of_kinds(
    std::initializer_list<Kind> kinds) const {
  std::vector<std::shared_ptr<RequestState>> out;
  for (RequestState* p = head_; p; p = p->pending_next)
    if (std::find(kinds.begin(), kinds.end(), p->kind) != kinds.end())
      out.push_back(p->pending_self);
  return out;
}

std::vector<std::shared_ptr<RequestState>> PendingList::take_all() {
  std::vector<std::shared_ptr<RequestState>> out;
  while (head_)
    out.push_back(remove(head_));
  return out;
}

RequestState::~RequestState() {
  if (ucx) ucp_request_free(ucx);
}

void RequestState::complete(Result<Completion> r) {
  {
    std::lock_guard lock(m);
    if (done.load(std::memory_order_relaxed)) return;
    if (!r && fail_as && r.error().code == Errc::kCancelled) r = tl::unexpected(*fail_as);
    // Every error names what failed; one without a message would be a bug here, so it
    // says so rather than reaching the caller empty.
    if (!r && r.error().message.empty()) {
      r.error().message = describe() + ": failed without a reason (a wire bug: please report)";
    }
    result = std::move(r);
    done.store(true, std::memory_order_release);
  }
  cv.notify_all();
  if (callback) callback(result);
}

std::string RequestState::describe() const {
  auto e = ep.lock();
  const std::string peer = e ? "peer " + e->peer : node->name();
  switch (kind) {
    case Kind::kSend:
      return "send to " + peer;
    case Kind::kRecv:
      return "receive on " + node->name();
    case Kind::kFlush:
      return (e ? "flush of " : "flush on ") + peer;
    case Kind::kClose:
      return "close of the endpoint to " + peer;
    case Kind::kConnect:
      return "connect of " + node->name();
    case Kind::kInternal:
      return "welcome to " + peer;
  }
  return "operation on " + node->name();
}

Error RequestState::failure(ucs_status_t status) const {
  return ucx_error(status, describe());
}

std::shared_ptr<RequestState> RequestState::claim(void* user) {
  auto* raw = static_cast<RequestState*>(user);
  return raw->node->untrack(raw);
}

void RequestState::attach(void* request) {
  bool cancel_now;
  {
    std::lock_guard lock(m);
    ucx = request;
    cancel_now = cancel_requested && !done.load(std::memory_order_acquire);
  }
  if (cancel_now) cancel();
}

void RequestState::cancel(std::optional<Error> reason) {
  {
    std::lock_guard lock(m);
    if (done.load(std::memory_order_acquire)) return;
    if (reason && !fail_as) fail_as = std::move(reason);
    if (!ucx) {
      cancel_requested = true;  // attach() cancels once the handle is known
      return;
    }
  }
  // ucp_request_cancel on a request that UCX has completed but whose callback has not run
  // yet trips UCX's assertion (tag_match.c: !(req->flags & COMPLETED)), and a thread that
  // is not progressing cannot tell. Only the progress context can: there a completion and
  // its callback happen together. Elsewhere the cancel is handed to it.
  if (!node->in_progress_context()) {
    node->defer([self = shared_from_this()] { self->cancel(); });
    node->kick();
    return;
  }
  void* request;
  {
    std::lock_guard lock(m);
    if (done.load(std::memory_order_acquire)) return;
    request = ucx;
  }
  // UCX may run the completion callback from inside ucp_request_cancel.
  ucp_request_cancel(node->worker.get(), request);
}

}  // namespace detail

Request::Request() = default;
Request::~Request() = default;
Request::Request(Request&&) noexcept = default;
Request& Request::operator=(Request&&) noexcept = default;
Request::Request(std::shared_ptr<detail::RequestState> state) : state_(std::move(state)) {}

bool Request::done() const {
  return state_ && state_->done.load(std::memory_order_acquire);
}

Result<Completion> Request::wait() {
  return wait_for(std::chrono::nanoseconds::max());
}

Result<Completion> Request::wait_for(std::chrono::nanoseconds timeout) {
  if (!state_) return tl::unexpected(Error{Errc::kInvalidArgument, "empty request"});
  auto& st = *state_;
  auto& node = *st.node;
  const bool forever = timeout == std::chrono::nanoseconds::max();
  const auto deadline = forever ? std::chrono::steady_clock::time_point::max()
                                : std::chrono::steady_clock::now() + timeout;
  auto timed_out = [&] {
    return Error{Errc::kTimedOut,
                 "request still pending after " + std::to_string(timeout.count() / 1000) + " us"};
  };
  if (node.options.progress == ProgressMode::kThread && !node.on_progress_thread()) {
    std::unique_lock lock(st.m);
    auto is_done = [&] { return st.done.load(std::memory_order_acquire); };
    if (forever) {
      st.cv.wait(lock, is_done);
    } else if (!st.cv.wait_until(lock, deadline, is_done)) {
      return tl::unexpected(timed_out());
    }
    return st.result;
  }
  // The clock is read only every kClockEvery polls, and never without a deadline: on a VM
  // a clock read can cost more than a progress call, and this loop is the latency path.
  constexpr unsigned kClockEvery = 64;
  for (unsigned polls = 0; !st.done.load(std::memory_order_acquire); ++polls) {
    bool any = node.options.progress == ProgressMode::kEventFd ? node.progress()
                                                               : node.progress_once(&st.done);
    if (st.done.load(std::memory_order_acquire)) break;
    const bool idle = !any && node.options.progress == ProgressMode::kEventFd;
    if (!forever && (idle || polls % kClockEvery == 0) &&
        std::chrono::steady_clock::now() >= deadline) {
      return tl::unexpected(timed_out());
    }
    if (idle) node.wait_fd(50);
  }
  std::lock_guard lock(st.m);
  if (!st.done) return tl::unexpected(Error{Errc::kClosed, "node closed while waiting"});
  return st.result;
}

void Request::cancel() {
  if (state_) state_->cancel();
}
}  // namespace vx::wire
