// Endpoints: sends, flushes, closes, peer failure, and closing a whole node.
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "wire/detail.hpp"

namespace vx::wire {
namespace detail {

EndpointImpl::~EndpointImpl() {
  // Normally released by close(); a handle that never was is released with force.
  if (ep) {
    ucp_request_param_t p{};
    p.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS;
    p.flags = UCP_EP_CLOSE_FLAG_FORCE;
    auto r = ucp_ep_close_nbx(ep, &p);
    if (UCS_PTR_IS_PTR(r)) {
      while (ucp_request_check_status(r) == UCS_INPROGRESS)
        ucp_worker_progress(node->worker.get());
      ucp_request_free(r);
    }
  }
}

Error EndpointImpl::closed_error() const {
  if (failed.load(std::memory_order_acquire) && error) return *error;
  return Error{Errc::kClosed, "endpoint to " + peer + " is closed"};
}

// Completion of sends, flushes and closes on one endpoint.
void ep_op_done(void* request, ucs_status_t status, void* user) {
  (void)request;
  auto st = RequestState::claim(user);
  if (!st) return;
  if (status == UCS_OK) {
    st->complete(st->expect);
    return;
  }
  auto ep = st->ep.lock();
  if (ep && ep->failed.load(std::memory_order_acquire) && ep->error) {
    st->complete(tl::unexpected(*ep->error));
  } else if (status == UCS_ERR_CANCELED && st->kind != Kind::kClose) {
    st->complete(tl::unexpected(
        Error{Errc::kClosed, "endpoint to " + (ep ? ep->peer : std::string("?")) + " was closed",
              static_cast<int>(status)}));
  } else {
    st->complete(tl::unexpected(st->failure(status)));
  }
}

Request NodeImpl::release_endpoint(const std::shared_ptr<EndpointImpl>& ep, bool force,
                                   Callback cb) {
  auto st = make_request(Kind::kClose, std::move(cb));
  st->ep = ep;
  st->keep = ep;  // UCX may still call the error handler with ep as its argument
  ucp_ep_h handle;
  {
    std::lock_guard lock(ep->m);
    handle = std::exchange(ep->ep, nullptr);
    if (ep->state != EpState::kFailed) ep->state = EpState::kClosed;
  }
  {
    std::lock_guard lock(mu);
    std::erase(endpoints, ep);
    std::erase(live, ep);
  }
  if (!handle) {  // closing twice is a no-op
    st->complete(Completion{});
    return Request(std::move(st));
  }
  track(st);
  ucp_request_param_t p{};
  p.op_attr_mask =
      UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA | UCP_OP_ATTR_FIELD_FLAGS;
  p.cb.send = ep_op_done;
  p.user_data = st.get();
  p.flags = force ? UCP_EP_CLOSE_FLAG_FORCE : 0;
  auto r = ucp_ep_close_nbx(handle, &p);
  return finish_post(std::move(st), r, {});
}

void NodeImpl::endpoint_failed(EndpointImpl* raw, ucs_status_t status) {
  // Runs inside ucp_worker_progress (UCX's lock held): only record, then defer.
  std::shared_ptr<EndpointImpl> ep;
  {
    std::lock_guard lock(mu);
    for (auto& e : live) {
      if (e.get() == raw) ep = e;
    }
    if (client_ep.get() == raw) ep = client_ep;
  }
  if (!ep || ep->failed.load()) return;
  const bool welcomed = server || client_id.load() != 0;
  // A server refuses a client whose UCX settings differ (accept()); the client only sees
  // the connection go away, so it says what to check.
  const bool reset = status == UCS_ERR_REJECTED || status == UCS_ERR_CONNECTION_RESET ||
                     status == UCS_ERR_UNREACHABLE;
  Error err = welcomed ? ucx_error(status, "peer " + ep->peer)
                       : Error{Errc::kRefused,
                               "cannot connect to " + ep->peer + ": " + ucs_status_string(status) +
                                   (reset ? " (is it a voxcast wire server of the same version, "
                                            "with the same UCX_MAX_RNDV_LANES and shm/tcp "
                                            "choice? a server refuses clients that differ)"
                                          : ""),
                               static_cast<int>(status)};
  if (welcomed) err.code = Errc::kPeerFailure;
  ep->error = err;
  ep->failed.store(true, std::memory_order_release);
  defer([this, ep, err, welcomed] {
    {
      std::lock_guard lock(ep->m);
      ep->state = EpState::kFailed;
    }
    (void)release_endpoint(ep, true);
    if (!server) {
      // A client's receives can only come from its one peer: fail those posted so far,
      // and (peer_lost, set in the same critical section) every one posted later.
      std::vector<std::shared_ptr<RequestState>> recvs;
      {
        std::lock_guard lock(mu);
        if (welcomed && !peer_lost) peer_lost = err;
        recvs = pending.of_kinds({Kind::kRecv, Kind::kConnect});
      }
      for (auto& st : recvs)
        st->cancel(err);
    } else if (on_disconnect) {
      on_disconnect(Endpoint(ep), err);
    }
  });
}

Status NodeImpl::close(bool force) {
  std::lock_guard close_lock(close_mutex);
  if (closed.load()) return {};
  if ((thread.joinable() && on_progress_thread()) || in_callback()) {
    return tl::unexpected(Error{Errc::kInvalidArgument,
                                "close() called from a completion callback; call it from "
                                "another thread"});
  }
  closed = true;
  listener.reset();
  std::vector<std::shared_ptr<EndpointImpl>> eps;
  {
    std::lock_guard lock(mu);
    eps = live;
    if (client_ep && std::find(eps.begin(), eps.end(), client_ep) == eps.end()) {
      eps.push_back(client_ep);
    }
  }
  std::vector<Request> closes;
  for (auto& ep : eps)
    closes.push_back(release_endpoint(ep, force));
  {
    std::vector<std::shared_ptr<RequestState>> recvs;
    {
      std::lock_guard lock(mu);
      recvs = pending.of_kinds({Kind::kRecv, Kind::kConnect});
    }
    for (auto& st : recvs)
      st->cancel(Error{Errc::kClosed, st->describe() + ": the node was closed"});
  }
  // Let UCX finish: graceful closes flush first; forced ones complete quickly.
  Status status;
  const auto limit = force ? std::chrono::milliseconds(1000) : options.close_timeout;
  const auto deadline = std::chrono::steady_clock::now() + limit;
  for (;;) {
    bool empty;
    {
      std::lock_guard lock(mu);
      empty = pending.empty();
    }
    if (empty) break;
    if (std::chrono::steady_clock::now() >= deadline) {
      status = tl::unexpected(Error{Errc::kTimedOut, "close: operations still pending after " +
                                                         std::to_string(limit.count()) + " ms"});
      break;
    }
    if (thread.joinable()) {
      ucp_worker_signal(worker.get());
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    } else {
      progress_once();
    }
  }
  stop = true;
  if (thread.joinable()) {
    ucp_worker_signal(worker.get());
    thread.join();
  }
  // Whatever UCX never completed is failed here, which also breaks the reference
  // cycles (state -> node -> pending -> state).
  std::vector<std::shared_ptr<RequestState>> left;
  std::vector<std::function<void()>> work;
  {
    std::lock_guard lock(mu);
    left = pending.take_all();
    work.swap(deferred);
    endpoints.clear();
    live.clear();
  }
  for (auto& st : left)
    st->complete(
        tl::unexpected(Error{Errc::kClosed, st->describe() + ": closed before it completed"}));
  client_ep.reset();
  connect_request.reset();
  on_accept = nullptr;
  on_disconnect = nullptr;
  return status;
}

}  // namespace detail

// ---- Endpoint --------------------------------------------------------------------

Endpoint::Endpoint(std::shared_ptr<detail::EndpointImpl> impl) : impl_(std::move(impl)) {}

uint32_t Endpoint::id() const {
  return impl_ ? impl_->id : 0;
}
std::string Endpoint::peer() const {
  return impl_ ? impl_->peer : std::string();
}
bool Endpoint::connected() const {
  if (!impl_) return false;
  std::lock_guard lock(impl_->m);
  return impl_->ep != nullptr && impl_->state == detail::EpState::kOpen;
}

std::string Endpoint::info() const {
  if (!impl_) return {};
  std::lock_guard lock(impl_->m);
  if (!impl_->ep) return {};
  char* text = nullptr;
  size_t size = 0;
  FILE* f = open_memstream(&text, &size);
  if (!f) return {};
  ucp_ep_print_info(impl_->ep, f);
  std::fclose(f);
  std::string out(text, size);
  std::free(text);
  return out;
}

Request Endpoint::send(std::span<const std::byte> data, uint64_t tag, Callback cb) {
  auto& node = *impl_->node;
  auto st = node.make_request(detail::Kind::kSend, std::move(cb));
  st->ep = impl_;
  st->expect = Completion{tag, data.size()};
  ucs_status_ptr_t r;
  {
    std::lock_guard lock(impl_->m);
    if (!impl_->ep || impl_->state != detail::EpState::kOpen) {
      return detail::NodeImpl::failed(std::move(st), impl_->closed_error());
    }
    node.track(st);
    ucp_request_param_t p{};
    p.op_attr_mask =
        UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA | UCP_OP_ATTR_FIELD_DATATYPE;
    p.cb.send = detail::ep_op_done;
    p.user_data = st.get();
    p.datatype = ucp_dt_make_contig(1);
    r = ucp_tag_send_nbx(impl_->ep, data.data(), data.size(), tag, &p);
  }
  if (UCS_PTR_IS_ERR(r) && impl_->failed.load()) {
    node.untrack(st.get());
    return detail::NodeImpl::failed(std::move(st), impl_->closed_error());
  }
  auto expect = st->expect;
  return node.finish_post(std::move(st), r, expect);
}

Request Endpoint::flush(Callback cb) {
  auto& node = *impl_->node;
  auto st = node.make_request(detail::Kind::kFlush, std::move(cb));
  st->ep = impl_;
  ucs_status_ptr_t r;
  {
    std::lock_guard lock(impl_->m);
    if (!impl_->ep || impl_->state != detail::EpState::kOpen) {
      return detail::NodeImpl::failed(std::move(st), impl_->closed_error());
    }
    node.track(st);
    ucp_request_param_t p{};
    p.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA;
    p.cb.send = detail::ep_op_done;
    p.user_data = st.get();
    r = ucp_ep_flush_nbx(impl_->ep, &p);
  }
  return node.finish_post(std::move(st), r, {});
}

Request Endpoint::close(bool force, Callback cb) {
  return impl_->node->release_endpoint(impl_, force, std::move(cb));
}

}  // namespace vx::wire
