// _voxcast_wire: the pybind11 core under voxcast.wire (python/voxcast/wire.py).
//
// Completions never take the GIL. A UCX callback (progress thread) pushes (id, result)
// onto a Notifier and writes its eventfd only when the queue was empty, so the asyncio
// loop wakes once per batch and drain() hands it every completion at once. Operations
// that complete while being posted return their result directly, without the notifier.
//
// Buffers are held as Py_buffer views (no copy) from post to completion; views are only
// released with the GIL held (in drain() or on the posting call).
#include <Python.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <variant>

#include "wire/wire.hpp"

namespace py = pybind11;
namespace w = vx::wire;

namespace {

// One completion (or server event) handed to Python: (id, kind, ok, tag, nbytes, code, message).
struct Done {
  uint64_t id = 0;
  int kind = 0;  // 0 operation, 1 accepted endpoint, 2 endpoint gone
  bool ok = true;
  uint64_t tag = 0;
  size_t length = 0;
  std::string code;
  std::string message;
};

Done from_result(uint64_t id, const w::Result<w::Completion>& r) {
  Done d;
  d.id = id;
  if (r) {
    d.tag = r->tag;
    d.length = r->length;
  } else {
    d.ok = false;
    d.code = std::string(w::to_string(r.error().code));
    d.message = r.error().message;
  }
  return d;
}

class Notifier {
 public:
  Notifier() : fd_(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
    if (fd_ < 0) throw std::runtime_error("eventfd failed");
  }
  ~Notifier() { ::close(fd_); }
  int fd() const { return fd_; }
  void push(Done d) {
    bool was_empty;
    {
      std::lock_guard lock(m_);
      was_empty = q_.empty();
      q_.push_back(std::move(d));
    }
    ++pushes_;
    // The loop thread itself progressing (eventfd mode) drains right after: no wake-up.
    if (was_empty && draining_thread_ != std::this_thread::get_id()) {
      ++wakes_;
      uint64_t one = 1;
      (void)!write(fd_, &one, sizeof one);
    }
  }
  std::vector<Done> take() {
    uint64_t v;
    (void)!read(fd_, &v, sizeof v);  // clear first: a push after this writes again
    std::vector<Done> out;
    std::lock_guard lock(m_);
    out.swap(q_);
    return out;
  }
  // Set while the loop thread runs progress() and drains straight after.
  void set_draining_thread(std::thread::id id) { draining_thread_ = id; }
  uint64_t wakes() const { return wakes_.load(); }
  uint64_t pushes() const { return pushes_.load(); }

 private:
  int fd_;
  std::mutex m_;
  std::vector<Done> q_;
  std::atomic<uint64_t> wakes_{0}, pushes_{0};
  std::atomic<std::thread::id> draining_thread_{};
};

// A Py_buffer held for the life of one operation.
class View {
 public:
  View(py::handle obj, bool writable) {
    int flags = PyBUF_ANY_CONTIGUOUS | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj.ptr(), &view_, flags) != 0) {
      PyErr_Clear();
      throw py::type_error(writable ? "the buffer must be writable and contiguous (a bytearray "
                                      "or a NumPy array, not bytes)"
                                    : "the buffer must support the buffer protocol and be "
                                      "contiguous (bytes, bytearray, NumPy array)");
    }
    held_ = true;
  }
  ~View() {
    if (held_) PyBuffer_Release(&view_);
  }
  View(const View&) = delete;
  View& operator=(const View&) = delete;
  std::span<std::byte> bytes() { return {static_cast<std::byte*>(view_.buf), size_t(view_.len)}; }
  uint64_t address() const { return reinterpret_cast<uintptr_t>(view_.buf); }

 private:
  Py_buffer view_{};
  bool held_ = false;
};

// State shared by a posted operation and its callback: who completes it. The callback
// either finds the poster still posting (it leaves the result here and the poster returns
// it) or finds it gone (it pushes the result to the notifier). Both under `m`: the result
// must be written before the poster can see it.
struct Slot {
  std::mutex m;
  bool posted = false;  // the poster has returned: completions go to the notifier
  std::optional<w::Result<w::Completion>> inline_result;
};

class Core {
 public:
  static std::unique_ptr<Core> server(const std::string& host, uint16_t port, w::Options o) {
    auto core = std::unique_ptr<Core>(new Core());
    Core* self = core.get();
    auto s = w::Server::listen(
        host, port, o,
        [self](w::Endpoint ep) {
          {
            std::lock_guard lock(self->eps_m_);
            self->eps_[ep.id()] = ep;
          }
          Done d;
          d.kind = 1;
          d.id = ep.id();
          d.message = ep.peer();
          self->notifier_.push(std::move(d));
        },
        [self](w::Endpoint ep, const w::Error& e) {
          Done d;
          d.kind = 2;
          d.id = ep.id();
          d.ok = false;
          d.code = std::string(w::to_string(e.code));
          d.message = e.message;
          self->notifier_.push(std::move(d));
        });
    if (!s) throw_error(s.error());
    core->node_ = std::make_unique<w::Server>(std::move(*s));
    core->server_ = static_cast<w::Server*>(core->node_.get());
    return core;
  }
  static std::unique_ptr<Core> client(w::Options o) {
    auto c = w::Client::create(o);
    if (!c) throw_error(c.error());
    auto core = std::unique_ptr<Core>(new Core());
    core->node_ = std::make_unique<w::Client>(std::move(*c));
    core->client_ = static_cast<w::Client*>(core->node_.get());
    return core;
  }
  ~Core() {
    if (node_) {
      py::gil_scoped_release release;
      (void)node_->close(true);
    }
  }

  [[noreturn]] static void throw_error(const w::Error& e) {
    // voxcast.wire maps (code, message) to its exception classes.
    throw py::value_error(std::string(w::to_string(e.code)) + "\x1f" + e.message);
  }

  int fd() const { return notifier_.fd(); }
  int event_fd() const { return node_->event_fd(); }
  std::string mode() const { return std::string(w::to_string(node_->progress_mode())); }
  std::string transports() const { return node_->transports(); }
  uint16_t port() const { return server_ ? server_->port() : 0; }
  uint32_t id() const { return client_ ? client_->id() : 0; }

  // Posting returns (id, None) when pending, or (0, result tuple) when it completed at once.
  py::tuple send(uint32_t ep_id, py::handle buffer, uint64_t tag, bool sync) {
    auto ep = endpoint(ep_id);
    auto view = std::make_unique<View>(buffer, false);
    auto span = view->bytes();
    return post(sync, std::move(view), [&](w::Callback cb) {
      return ep.send(std::span<const std::byte>(span.data(), span.size()), tag, std::move(cb));
    });
  }
  py::tuple recv(py::handle buffer, uint64_t tag, uint64_t mask, bool sync) {
    auto view = std::make_unique<View>(buffer, true);
    auto span = view->bytes();
    return post(sync, std::move(view),
                [&](w::Callback cb) { return node_->recv(span, tag, mask, std::move(cb)); });
  }
  py::tuple flush(bool sync) {
    return post(sync, nullptr, [&](w::Callback cb) { return node_->flush(std::move(cb)); });
  }
  py::tuple flush_ep(uint32_t ep_id, bool sync) {
    auto ep = endpoint(ep_id);
    return post(sync, nullptr, [&](w::Callback cb) { return ep.flush(std::move(cb)); });
  }
  py::tuple close_ep(uint32_t ep_id, bool force, bool sync) {
    auto ep = endpoint(ep_id);
    {
      std::lock_guard lock(eps_m_);
      eps_.erase(ep_id);
    }
    return post(sync, nullptr, [&](w::Callback cb) { return ep.close(force, std::move(cb)); });
  }
  py::tuple connect(const std::string& host, uint16_t port, bool sync) {
    if (!client_) throw py::type_error("connect() is for clients");
    auto t =
        post(sync, nullptr, [&](w::Callback cb) { return client_->connect_async(host, port, cb); });
    return t;
  }
  // Cancels and waits (GIL released, at most a second) until the outcome is known, so
  // that once this returns a cancelled receive can no longer match a message. Its
  // completion still goes through the notifier like any other. Called on the loop thread,
  // the only one that erases ops_ (drain), so the request outlives the wait.
  void cancel(uint64_t id) {
    w::Request* request = nullptr;
    {
      std::lock_guard lock(ops_m_);
      if (auto it = ops_.find(id); it != ops_.end()) request = &it->second.request;
    }
    if (!request) return;
    py::gil_scoped_release release;
    request->cancel();
    (void)request->wait_for(std::chrono::seconds(1));
  }
  // Every completion and event since the last call; releases finished buffers.
  std::vector<py::tuple> drain() {
    std::vector<Done> done = notifier_.take();
    std::vector<py::tuple> out;
    out.reserve(done.size());
    std::vector<Op> finished;
    {
      std::lock_guard lock(ops_m_);
      for (auto& d : done) {
        if (d.kind != 0) continue;
        if (auto it = ops_.find(d.id); it != ops_.end()) {
          finished.push_back(std::move(it->second));
          ops_.erase(it);
        }
      }
    }
    for (auto& d : done)
      out.push_back(to_tuple(d));
    return out;  // `finished` releases its views here, with the GIL held
  }
  // Waits for up to `spin_us` until something completes and returns what completed:
  // kEventFd progresses UCX on the calling (loop) thread meanwhile; kThread (progress() is a
  // no-op there) watches the progress thread's queue, sparing the loop's wake-up. Spinning trades
  // CPU for the wake-up of an awaited reply that is about to arrive (bounded, only while awaiting).
  std::vector<py::tuple> progress_spin(double spin_us) {
    {
      py::gil_scoped_release release;
      notifier_.set_draining_thread(std::this_thread::get_id());
      const auto until =
          std::chrono::steady_clock::now() + std::chrono::nanoseconds(int64_t(spin_us * 1000));
      const auto before = notifier_.pushes();
      // Poll without arming the fd: each arm is system calls here and makes the peers
      // signal their next message (docs/benchmarks.md, "Arming once"). Arm once at the end,
      // before the loop may sleep.
      do {
        node_->poll();
      } while (notifier_.pushes() == before && std::chrono::steady_clock::now() < until);
      node_->progress();
      notifier_.set_draining_thread({});
    }
    return drain();
  }
  // kEventFd: progresses UCX on the calling (loop) thread and returns what completed.
  std::vector<py::tuple> progress_drain() {
    {
      py::gil_scoped_release release;
      notifier_.set_draining_thread(std::this_thread::get_id());
      node_->progress();
      notifier_.set_draining_thread({});
    }
    return drain();
  }
  void close(bool force) {
    py::gil_scoped_release release;
    auto s = node_->close(force);
    if (!s && s.error().code != w::Errc::kTimedOut) throw_error(s.error());
  }
  bool closed() const { return node_->closed(); }
  std::vector<std::pair<uint32_t, std::string>> endpoints() const {
    std::vector<std::pair<uint32_t, std::string>> out;
    if (server_) {
      // Only the endpoints this module can already reach: the server lists an endpoint
      // just before its accept callback (which adds it to eps_) runs on the progress
      // thread, and a Python caller that saw it in between got "not connected" from its
      // first send (aaccept returns what this lists).
      std::lock_guard lock(eps_m_);
      for (auto& ep : server_->endpoints())
        if (eps_.count(ep.id())) out.emplace_back(ep.id(), ep.peer());
    } else if (client_ && client_->endpoint()) {
      out.emplace_back(client_->id(), client_->endpoint().peer());
    }
    return out;
  }
  std::string endpoint_info(uint32_t ep_id) { return endpoint(ep_id).info(); }
  py::dict stats() const {
    py::dict d;
    d["wakes"] = notifier_.wakes();
    d["completions"] = notifier_.pushes();
    d["inline"] = inline_.load();
    d["arms"] = node_->arms();
    return d;
  }
  static uint64_t address_of(py::handle buffer) { return View(buffer, false).address(); }

 private:
  Core() = default;

  struct Op {
    w::Request request;  // empty while being posted
    std::unique_ptr<View> view;
  };

  static py::tuple to_tuple(const Done& d) {
    return py::make_tuple(d.id, d.kind, d.ok, d.tag, d.length, d.code, d.message);
  }

  w::Endpoint endpoint(uint32_t ep_id) {
    if (node_->closed()) {
      throw_error(w::Error{w::Errc::kClosed,
                           std::string(server_ ? "the server" : "the client") + " is closed"});
    }
    if (client_) {
      auto ep = client_->endpoint();
      if (!ep)
        throw_error(w::Error{w::Errc::kInvalidArgument,
                             "the client is not connected: await aconnect() first"});
      return ep;
    }
    std::lock_guard lock(eps_m_);
    auto it = eps_.find(ep_id);
    if (it == eps_.end()) {
      throw_error(w::Error{w::Errc::kClosed, "endpoint " + std::to_string(ep_id) +
                                                 " is not connected to this server (closed, "
                                                 "failed or never accepted)"});
    }
    return it->second;
  }

  // sync: waits with the GIL released and returns the result; nothing goes through the
  // notifier (the loop may be draining it on another thread).
  template <class PostFn>
  py::tuple post(bool sync, std::unique_ptr<View> view, PostFn&& fn) {
    if (sync) {
      w::Result<w::Completion> result;
      {
        py::gil_scoped_release release;
        result = fn(w::Callback{}).wait();
      }
      return py::make_tuple(uint64_t{0}, to_tuple(from_result(0, result)));  // view released
    }
    const uint64_t id = next_id_.fetch_add(1) + 1;
    auto slot = std::make_shared<Slot>();
    Notifier* notifier = &notifier_;
    w::Callback cb = [slot, notifier, id](const w::Result<w::Completion>& r) {
      {
        std::lock_guard lock(slot->m);
        if (!slot->posted) {
          slot->inline_result = r;  // the poster returns it
          return;
        }
      }
      notifier->push(from_result(id, r));
    };
    // The buffer's view is registered before posting, so that whatever completes it
    // later (drain) finds it and releases it; never before the completion.
    {
      std::lock_guard lock(ops_m_);
      ops_.emplace(id, Op{w::Request{}, std::move(view)});
    }
    w::Request request;
    {
      py::gil_scoped_release release;
      request = fn(std::move(cb));
    }
    std::optional<w::Result<w::Completion>> result;
    {
      std::lock_guard lock(slot->m);
      if (slot->inline_result) {
        result = std::move(slot->inline_result);
      } else {
        slot->posted = true;
      }
    }
    std::unique_ptr<View> done_view;  // released after ops_m_, with the GIL held
    {
      std::lock_guard lock(ops_m_);
      auto it = ops_.find(id);
      if (it != ops_.end()) {
        if (result) {
          done_view = std::move(it->second.view);
          ops_.erase(it);
        } else {
          it->second.request = std::move(request);
        }
      }
    }
    if (result) {
      ++inline_;
      return py::make_tuple(uint64_t{0}, to_tuple(from_result(0, *result)));
    }
    return py::make_tuple(id, py::none());
  }

  Notifier notifier_;
  std::unique_ptr<w::Node> node_;
  w::Server* server_ = nullptr;
  w::Client* client_ = nullptr;
  mutable std::mutex eps_m_;
  std::unordered_map<uint32_t, w::Endpoint> eps_;
  std::mutex ops_m_;
  std::unordered_map<uint64_t, Op> ops_;
  std::atomic<uint64_t> next_id_{0};
  std::atomic<uint64_t> inline_{0};
};

w::Options make_options(const std::string& tls, const std::string& mode, double connect_timeout) {
  w::Options o;
  o.transports = tls;
  auto m = w::parse_progress_mode(mode);
  if (!m) Core::throw_error(m.error());
  o.progress = *m;
  o.connect_timeout = std::chrono::milliseconds(int64_t(connect_timeout * 1000));
  return o;
}

}  // namespace

PYBIND11_MODULE(_voxcast_wire, m) {
  m.doc() = "voxcast.wire core (UCX tagged messaging); use voxcast.wire instead";
  py::class_<Core>(m, "Core")
      .def_static(
          "server",
          [](const std::string& host, uint16_t port, const std::string& tls,
             const std::string& mode) {
            return Core::server(host, port, make_options(tls, mode, 5.0));
          },
          py::arg("host"), py::arg("port"), py::arg("tls") = "", py::arg("mode") = "thread")
      .def_static(
          "client",
          [](const std::string& tls, const std::string& mode, double timeout) {
            return Core::client(make_options(tls, mode, timeout));
          },
          py::arg("tls") = "", py::arg("mode") = "thread", py::arg("connect_timeout") = 5.0)
      .def_property_readonly("fd", &Core::fd)
      .def_property_readonly("event_fd", &Core::event_fd)
      .def_property_readonly("mode", &Core::mode)
      .def_property_readonly("transports", &Core::transports)
      .def_property_readonly("port", &Core::port)
      .def_property_readonly("id", &Core::id)
      .def_property_readonly("closed", &Core::closed)
      .def("send", &Core::send)
      .def("recv", &Core::recv)
      .def("flush", &Core::flush)
      .def("flush_ep", &Core::flush_ep)
      .def("close_ep", &Core::close_ep)
      .def("connect", &Core::connect)
      .def("cancel", &Core::cancel)
      .def("drain", &Core::drain)
      .def("progress_drain", &Core::progress_drain)
      .def("progress_spin", &Core::progress_spin)
      .def("close", &Core::close, py::arg("force") = false)
      .def("endpoints", &Core::endpoints)
      .def("endpoint_info", &Core::endpoint_info)
      .def("stats", &Core::stats);
  m.def("address_of", &Core::address_of, "The address of a buffer's first byte (for tests).");
}
