// The listener, HTTP sessions (static files, REST routes, upgrades) and the server's life:
// start, serve until SIGINT/SIGTERM, close every connection, return. Follows the shape of
// Beast's advanced server example: one object per connection on a strand, limits and
// timeouts set at start.
#include <fmt/format.h>

#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "core/log.hpp"
#include "core/paths.hpp"
#include "core/version.hpp"
#include "data/info_json.hpp"
#include "server/server_impl.hpp"
#include "server/wire_service.hpp"

namespace vx::server {

void Context::add_socket(const std::shared_ptr<Closable>& s) {
  std::lock_guard lock(mutex);
  std::erase_if(sockets, [](const auto& w) { return w.expired(); });
  sockets.push_back(s);
}

std::shared_ptr<stream::Session> Context::find_session(const std::string& id) {
  std::lock_guard lock(mutex);
  auto it = sessions.find(id);
  return it == sessions.end() ? nullptr : it->second.lock();
}

Allowance::Lease Allowance::take(std::uint64_t n) {
  auto used = state_->used.load();
  do {
    if (n > capacity_ || used > capacity_ - n) return nullptr;
  } while (!state_->used.compare_exchange_weak(used, used + n));
  // The lease points at the shared count (never read through it) and gives `n` back.
  return Lease(state_.get(), [state = state_, n](void*) { state->used -= n; });
}

http::response<http::string_body> overloaded(Context& ctx,
                                             const http::request<http::string_body>& req,
                                             std::string_view why) {
  ++ctx.answered_429;
  auto res = json_error(req, http::status::too_many_requests, "overloaded",
                        fmt::format("overloaded: {}; retry in 1 s", why));
  res.set(http::field::retry_after, "1");
  return res;
}

http::response<http::string_body> answers_full(Context& ctx,
                                               const http::request<http::string_body>& req) {
  return overloaded(ctx, req,
                    fmt::format("{} MiB of answers are waiting for their clients to read "
                                "them (--http-max-inflight-mb {})",
                                ctx.answer_bytes.used() >> 20, ctx.answer_bytes.capacity() >> 20));
}

json Context::limits() const {
  return {{"max_clients", options.max_clients},
          {"max_message_bytes", options.max_message_bytes},
          {"max_messages_per_s", options.max_messages_per_s},
          {"max_canvas", {options.max_width, options.max_height}},
          {"max_layers", options.max_layers},
          {"max_scene_cost", options.max_scene_cost}};
}

std::string percent_decode(std::string_view v, bool plus_is_space) {
  auto hex = [](char c) {
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
  };
  std::string out;
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (v[i] == '%' && i + 2 < v.size() && hex(v[i + 1]) >= 0 && hex(v[i + 2]) >= 0) {
      out.push_back(char(hex(v[i + 1]) * 16 + hex(v[i + 2])));
      i += 2;
    } else {
      out.push_back(plus_is_space && v[i] == '+' ? ' ' : v[i]);
    }
  }
  return out;
}

std::string query_param(std::string_view target, std::string_view key) {
  const auto q = target.find('?');
  if (q == std::string_view::npos) return {};
  std::string_view rest = target.substr(q + 1);
  while (!rest.empty()) {
    const auto amp = rest.find('&');
    const auto part = rest.substr(0, amp);
    const auto eq = part.find('=');
    if (part.substr(0, eq) == key) {
      if (eq == std::string_view::npos) return {};
      // Percent-decoding (tokens and session ids are URL-safe, but a client may encode).
      return percent_decode(part.substr(eq + 1), true);
    }
    if (amp == std::string_view::npos) break;
    rest = rest.substr(amp + 1);
  }
  return {};
}

std::string bearer_token(std::string_view authorization) {
  auto is_space = [](char c) { return c == ' ' || c == '\t'; };
  while (!authorization.empty() && is_space(authorization.front()))
    authorization.remove_prefix(1);
  constexpr std::string_view scheme = "bearer";
  if (authorization.size() <= scheme.size() || !is_space(authorization[scheme.size()])) return {};
  for (std::size_t i = 0; i < scheme.size(); ++i)  // the scheme is case-insensitive (RFC 7235)
    if (std::tolower(static_cast<unsigned char>(authorization[i])) != scheme[i]) return {};
  authorization.remove_prefix(scheme.size());
  while (!authorization.empty() && is_space(authorization.front()))
    authorization.remove_prefix(1);
  while (!authorization.empty() && is_space(authorization.back()))
    authorization.remove_suffix(1);
  return std::string(authorization);
}

bool authorized(const Context& ctx, const http::request<http::string_body>& req) {
  const auto& token = ctx.options.token;
  if (token.empty()) return true;
  // Both compared in constant time, and both always: the answer's timing says nothing.
  const bool by_query = constant_time_equal(query_param(req.target(), "token"), token);
  const bool by_header = constant_time_equal(bearer_token(req[http::field::authorization]), token);
  return by_query || by_header;
}

http::response<http::string_body> json_response(const http::request<http::string_body>& req,
                                                http::status status, const json& body) {
  http::response<http::string_body> res{status, req.version()};
  res.set(http::field::server, "voxcast");
  res.set(http::field::content_type, "application/json");
  res.set(http::field::cache_control, "no-store");
  res.keep_alive(req.keep_alive());
  res.body() = body.dump();
  res.prepare_payload();
  return res;
}

http::response<http::string_body> json_error(const http::request<http::string_body>& req,
                                             http::status status, std::string_view code,
                                             std::string_view message) {
  return json_response(req, status, json{{"error", {{"code", code}, {"message", message}}}});
}

namespace {

// A whole text file, or "" when it cannot be read.
std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string_view mime_type(const std::string& path) {
  const auto ext = std::filesystem::path(path).extension().string();
  if (ext == ".html") return "text/html; charset=utf-8";
  if (ext == ".js" || ext == ".mjs") return "text/javascript; charset=utf-8";
  if (ext == ".css") return "text/css; charset=utf-8";
  if (ext == ".json") return "application/json";
  if (ext == ".png") return "image/png";
  if (ext == ".svg") return "image/svg+xml";
  if (ext == ".webp") return "image/webp";
  if (ext == ".jpg" || ext == ".jpeg") return "image/jpeg";
  return "application/octet-stream";
}

class HttpSession : public std::enable_shared_from_this<HttpSession> {
 public:
  HttpSession(std::shared_ptr<Context> ctx, tcp::socket socket)
      : ctx_(std::move(ctx)), stream_(std::move(socket)) {}

  void run() {
    net::dispatch(stream_.get_executor(),
                  beast::bind_front_handler(&HttpSession::read, shared_from_this()));
  }

 private:
  void read() {
    parser_.emplace();
    parser_->header_limit(16 * 1024);
    parser_->body_limit(64 * 1024);
    stream_.expires_after(std::chrono::seconds(60));
    http::async_read(stream_, buffer_, *parser_,
                     beast::bind_front_handler(&HttpSession::on_read, shared_from_this()));
  }

  void on_read(beast::error_code ec, std::size_t) {
    head_ = false;
    if (ec == http::error::end_of_stream) return close();
    if (ec == http::error::body_limit || ec == http::error::header_limit) {
      http::request<http::string_body> req;
      return send(json_error(req, http::status::payload_too_large, "too_large",
                             "request over the limit (headers 16 KiB, body 64 KiB)"),
                  false);
    }
    // Malformed HTTP gets an answer (400) before the connection closes; a timeout, a reset
    // or a request cut short has nobody to answer.
    if (ec && &ec.category() == &http::make_error_code(http::error::bad_target).category() &&
        ec != http::error::partial_message && ec != http::error::need_more) {
      http::request<http::string_body> req;
      return send(json_error(req, http::status::bad_request, "bad_request",
                             fmt::format("malformed HTTP request: {}", ec.message())),
                  false);
    }
    if (ec) return;
    auto req = parser_->release();
    head_ = req.method() == http::verb::head;
    if (!authorized(*ctx_, req))
      return send(json_error(req, http::status::unauthorized, "unauthorized",
                             "this server needs its token: ?token=... or Authorization: Bearer"),
                  req.keep_alive());
    const std::string target(req.target());
    // Only origin-form targets ("/path?query"): "secret.txt", "*" or "http://host/x" are
    // not paths below anything this server has.
    if (target.empty() || target[0] != '/')
      return send(json_error(req, http::status::bad_request, "bad_request",
                             "the request target must be a path starting with '/'"),
                  false);
    const std::string path = target.substr(0, target.find('?'));
    if (websocket::is_upgrade(req)) return upgrade(std::move(req), path);
    if (path == "/api/v1/screenshot") return on_pool(std::move(req), screenshot_route);
    if (path == "/api/v1/region") return on_pool(std::move(req), region_route);
    try {
      if (auto res = jobs_route(*ctx_, req, path)) return send(std::move(*res), req.keep_alive());
      if (auto res = pipelines_route(*ctx_, req, path))
        return send(std::move(*res), req.keep_alive());
    } catch (const json::exception& e) {  // a field of the wrong type that slipped through
      return send(json_error(req, http::status::bad_request, "bad_request", e.what()),
                  req.keep_alive());
    }
    if (req.method() != http::verb::get && req.method() != http::verb::head)
      return send(json_error(req, http::status::method_not_allowed, "bad_method",
                             fmt::format("{} {}: only GET", req.method_string(), path)),
                  req.keep_alive());
    if (path == "/api/v1/health") {
      int sessions = 0;
      {
        std::lock_guard lock(ctx_->mutex);
        for (const auto& [id, w] : ctx_->sessions)
          sessions += !w.expired();
      }
      const auto up = std::chrono::duration<double>(std::chrono::steady_clock::now() - ctx_->start);
      const auto& rc = *ctx_->engine.counters;
      const auto cc = ctx_->engine.cache->counters();
      json wire = nullptr;
      if (const auto* w = ctx_->options.wire) {
        const auto wc = w->counters();
        wire = {{"port", w->port()},
                {"requests", wc.requests},
                {"discarded", wc.discarded},
                {"discarded_bytes", wc.discarded_bytes}};
      }
      return send_json(req, {{"status", "ok"},
                             {"version", kVersion},
                             {"sessions", sessions},
                             {"uptime_s", up.count()},
                             {"renderer",
                              {{"name", ctx_->engine.renderer},
                               {"fallback", ctx_->engine.renderer_fallback.empty()
                                                ? json(nullptr)
                                                : json(ctx_->engine.renderer_fallback)}}},
                             {"renders",
                              {{"running", rc.running.load()},
                               {"done", rc.done.load()},
                               {"cancelled", rc.cancelled.load()},
                               {"failed", rc.failed.load()}}},
                             {"cache",
                              {{"bytes", cc.bytes_cached},
                               {"budget_bytes", ctx_->engine.cache->budget_bytes()},
                               {"hits", cc.hits},
                               {"misses", cc.misses},
                               {"queued_reads", cc.queued},
                               {"cancelled_reads", cc.cancelled},
                               {"failed_reads", cc.errors},
                               {"retries", cc.retries},
                               {"failed_hits", cc.failed_hits},
                               {"sources", cc.sources}}},
                             {"http",
                              {{"screenshots", ctx_->screenshots.used()},
                               {"regions", ctx_->regions.used()},
                               {"answer_bytes", ctx_->answer_bytes.used()},
                               {"answer_budget_bytes", ctx_->answer_bytes.capacity()},
                               {"abandoned", ctx_->abandoned.load()},
                               {"overloaded", ctx_->answered_429.load()}}},
                             {"wire", std::move(wire)}});
    }
    if (path == "/api/v1/datasets") return send_json(req, {{"datasets", ctx_->datasets_full}});
    return send_file(req, path == "/" ? "/index.html" : path);
  }

  // Routes answered from the render pool: the answer comes back to this connection's strand.
  // Meanwhile the connection is watched: a client that leaves cancels the work for it.
  void on_pool(http::request<http::string_body> req,
               void (*route)(std::shared_ptr<Context>, PoolRequest)) {
    const bool keep = req.keep_alive();
    auto watch = std::make_shared<Watch>();
    ctx_->add_socket(watch);  // so that stopping the server cancels the work too
    if (ctx_->stopping) watch->shutdown();
    watch_for_leaving(watch);
    route(ctx_, PoolRequest{req,
                            [self = shared_from_this(), keep, watch](
                                http::response<http::string_body> res, Allowance::Lease hold) {
                              net::post(self->stream_.get_executor(),
                                        [self, keep, watch, hold = std::move(hold),
                                         res = std::move(res)]() mutable {
                                          watch->answered = true;
                                          res.keep_alive(keep);
                                          self->stream_.expires_after(std::chrono::seconds(60));
                                          self->send(std::move(res), keep, std::move(hold));
                                        });
                            },
                            std::shared_ptr<const std::atomic<bool>>(watch, &watch->left)});
  }

  // Whether the client of a request on the pool is still there.
  struct Watch : Closable {
    std::atomic<bool> left{false};
    bool answered = false;  // on the connection's strand
    void shutdown() override { left = true; }
  };

  // Waits for the connection to turn readable while the answer is being made: the end of
  // the stream or an error means the client left; bytes mean it is still there (a pipelined
  // request, read after this answer), and the watch ends.
  void watch_for_leaving(std::shared_ptr<Watch> watch) {
    stream_.socket().async_wait(tcp::socket::wait_read, [self = shared_from_this(),
                                                         watch](beast::error_code ec) {
      if (ec || watch->answered) return;
      char c;
      const auto n = ::recv(self->stream_.socket().native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
        watch->left = true;
    });
  }

  void upgrade(http::request<http::string_body> req, const std::string& path) {
    if (ctx_->stopping) return;
    // What Beast's handshake would refuse with a plain-text body, refused here in JSON
    // naming the header (RFC 6455 4.2.1: a 16-byte key in base64; version 13, else 426).
    const auto key = req[http::field::sec_websocket_key];
    if (key.size() != 24 || key.substr(22) != "==")
      return send(json_error(req, http::status::bad_request, "bad_request",
                             "WebSocket handshake: header 'Sec-WebSocket-Key' must be 16 bytes "
                             "in base64 (24 characters)"),
                  false);
    if (req[http::field::sec_websocket_version] != "13") {
      auto res = json_error(req, http::status::upgrade_required, "bad_request",
                            "WebSocket handshake: header 'Sec-WebSocket-Version' must be 13");
      res.set(http::field::sec_websocket_version, "13");
      return send(std::move(res), false);
    }
    if (path == "/ws/state") {
      if (ctx_->clients.load() >= ctx_->options.max_clients)
        return send(json_error(req, http::status::service_unavailable, "server_busy",
                               fmt::format("{} clients already (--max-clients)",
                                           ctx_->options.max_clients)),
                    false);
      stream_.expires_never();
      return start_state_socket(ctx_, stream_.release_socket(), std::move(req));
    }
    if (path == "/ws/events") {
      stream_.expires_never();
      return start_event_socket(ctx_, stream_.release_socket(), std::move(req));
    }
    if (path == "/ws/pixels") {
      const auto id = query_param(req.target(), "session");
      auto session = ctx_->find_session(id);
      if (!session)
        return send(json_error(req, http::status::not_found, "unknown_session",
                               fmt::format("no session '{}' (open /ws/state first)", id)),
                    false);
      stream_.expires_never();
      return start_pixel_socket(ctx_, stream_.release_socket(), std::move(req), std::move(session));
    }
    send(json_error(req, http::status::not_found, "not_found",
                    fmt::format("{}: no WebSocket here (/ws/state, /ws/pixels, /ws/events)", path)),
         false);
  }

  void send_json(const http::request<http::string_body>& req, const json& body) {
    send(json_response(req, http::status::ok, body), req.keep_alive());
  }

  void send_file(const http::request<http::string_body>& req, const std::string& path) {
    // Only regular files that resolve inside the web folder (after percent-decoding: no
    // "..", "%2e%2e", absolute names or links out), and no hidden files.
    std::string body;
    const std::string name = percent_decode(path.substr(1), false);
    const bool hidden = name.empty() || name[0] == '.' || name.find("/.") != std::string::npos;
    if (auto file = hidden ? Result<std::filesystem::path>(fail(ErrorCode::kInvalidArgument, ""))
                           : resolve_inside(ctx_->options.web_dir, name);
        file && std::filesystem::is_regular_file(*file)) {
      std::ifstream in(*file, std::ios::binary);
      if (in) {
        std::ostringstream ss;
        ss << in.rdbuf();
        body = ss.str();
      }
    }
    if (body.empty())
      return send(json_error(req, http::status::not_found, "not_found",
                             fmt::format("{}: no such file or route", path)),
                  req.keep_alive());
    http::response<http::string_body> res{http::status::ok, req.version()};
    res.set(http::field::server, "voxcast");
    res.set(http::field::content_type, mime_type(path));
    res.set(http::field::cache_control, "no-cache");
    res.keep_alive(req.keep_alive());
    res.body() = std::move(body);
    res.prepare_payload();
    send(std::move(res), req.keep_alive());
  }

  // Every answer goes out here: to a HEAD request, its headers alone (Content-Length as
  // a GET would have it, no body).
  // `hold` (what the answer's memory is counted against) goes once it is written.
  void send(http::response<http::string_body> res, bool keep_alive,
            Allowance::Lease hold = nullptr) {
    auto sp = std::make_shared<http::response<http::string_body>>(std::move(res));
    sp->keep_alive(keep_alive);
    if (head_) {
      const auto n = sp->body().size();
      sp->body().clear();
      sp->content_length(n);
    }
    http::async_write(stream_, *sp,
                      [self = shared_from_this(), sp, keep_alive, hold = std::move(hold)](
                          beast::error_code ec, std::size_t) {
                        if (ec || !keep_alive) return self->close();
                        self->read();
                      });
  }

  void close() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
  }

  std::shared_ptr<Context> ctx_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  bool head_ = false;  // the request being answered is a HEAD
};

class Listener : public std::enable_shared_from_this<Listener> {
 public:
  Listener(std::shared_ptr<Context> ctx, tcp::acceptor acceptor)
      : ctx_(std::move(ctx)), acceptor_(std::move(acceptor)), retry_(acceptor_.get_executor()) {}
  void run() { accept(); }
  void stop() {
    net::post(acceptor_.get_executor(), [self = shared_from_this()] {
      beast::error_code ec;
      self->acceptor_.close(ec);
      self->retry_.cancel();
    });
  }

 private:
  // Each connection is accepted into a socket of its own strand, kept (and reused after a
  // failed accept) until a connection lands in it.
  void accept() {
    if (!peer_) peer_.emplace(net::make_strand(ctx_->ioc));
    acceptor_.async_accept(*peer_,
                           beast::bind_front_handler(&Listener::on_accept, shared_from_this()));
  }
  void on_accept(beast::error_code ec) {
    if (!acceptor_.is_open()) return;
    if (ec) {
      // Out of file descriptors (EMFILE, ENFILE) or another failure that accepting again at
      // once would only repeat: the connection stays in the backlog. Retrying without a pause
      // spun a core and starved every other connection; wait, and say why (once a second).
      const auto now = std::chrono::steady_clock::now();
      if (now - last_error_log_ >= std::chrono::seconds(1)) {
        last_error_log_ = now;
        VX_LOG(warn, "serve.accept_failed", "error={} retry_ms=100", log_quote(ec.message()));
      }
      retry_.expires_after(std::chrono::milliseconds(100));
      retry_.async_wait([self = shared_from_this()](beast::error_code) {
        if (self->acceptor_.is_open()) self->accept();
      });
      return;
    }
    tcp::socket socket(std::move(*peer_));
    peer_.reset();
    socket.set_option(tcp::no_delay(true), ec);
    std::make_shared<HttpSession>(ctx_, std::move(socket))->run();
    accept();
  }
  std::shared_ptr<Context> ctx_;
  tcp::acceptor acceptor_;
  net::steady_timer retry_;
  std::optional<net::basic_stream_socket<tcp, net::strand<net::io_context::executor_type>>> peer_;
  std::chrono::steady_clock::time_point last_error_log_{};
};

// Stops the io_context once every WebSocket has closed, or after 2 s.
struct Drain : std::enable_shared_from_this<Drain> {
  Drain(net::io_context& io, std::shared_ptr<Context> c) : ioc(io), timer(io), ctx(std::move(c)) {}
  void run() {
    bool live = false;
    {
      std::lock_guard lock(ctx->mutex);
      for (auto& w : ctx->sockets)
        live |= !w.expired();
    }
    if (!live || std::chrono::steady_clock::now() >= deadline) return ioc.stop();
    timer.expires_after(std::chrono::milliseconds(20));
    timer.async_wait([self = shared_from_this()](beast::error_code) { self->run(); });
  }
  net::io_context& ioc;
  net::steady_timer timer;
  std::shared_ptr<Context> ctx;
  std::chrono::steady_clock::time_point deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(2);
};

}  // namespace

std::string random_token() {
  std::random_device rd;
  std::string t;
  for (int i = 0; i < 24; ++i)
    t.push_back("abcdefghijklmnopqrstuvwxyz0123456789"[rd() % 36]);
  return t;
}

bool is_loopback(const std::string& host) {
  if (host == "localhost") return true;
  beast::error_code ec;
  const auto a = net::ip::make_address(host, ec);
  return !ec && a.is_loopback();
}

Status serve(const ServerOptions& options, data::ChunkCache& cache,
             const std::vector<data::SourceId>& datasets,
             const std::function<void(const std::string& url)>& on_ready) {
  VX_TRY(jobs::JobQueue::check_data_dir(options.data_dir));
  net::io_context ioc;
  auto ctx = std::make_shared<Context>(options, ioc);
  if (ctx->options.token.empty() && !is_loopback(options.host)) ctx->options.token = random_token();
  PriorityPool render_pool(std::max(2u, std::thread::hardware_concurrency()));
  auto& e = ctx->engine;
  e.cache = &cache;
  e.pool = &render_pool;
  e.max_width = options.max_width;
  e.max_height = options.max_height;
  e.max_layers = options.max_layers;
  e.max_scene_cost = options.max_scene_cost;
  e.pipelines = options.pipelines;
  e.renderer = options.renderer;
  e.renderer_fallback = options.renderer_fallback;
  e.split_frame = options.split_frame;
  for (std::size_t i = 0; i < datasets.size(); ++i) {
    const auto& info = cache.source(datasets[i]).info();
    e.ids.push_back(datasets[i]);
    e.datasets.push_back(info);
    render::RenderInputs in{&cache, {datasets[i]}, render::SceneData{{info}}};
    auto scene = render::default_scene(in.data);
    std::vector<std::string> warnings;
    if (auto st = render::estimate_contrast(scene, in, &warnings); !st)
      return tl::unexpected(st.error());
    for (const auto& w : warnings)
      VX_LOG(warn, "serve.contrast", "message={}", log_quote(w));
    e.defaults.push_back(std::move(scene));
  }
  std::vector<std::string> locations;
  for (const auto& info : e.datasets)
    locations.push_back(info.location);
  const auto names = dataset_names(locations);
  for (std::size_t i = 0; i < e.datasets.size(); ++i) {
    const auto& info = e.datasets[i];
    ctx->datasets_full.push_back({{"id", i},
                                  {"name", names[i]},
                                  {"location", info.location},
                                  {"info", data::info_to_json(info)}});
    ctx->datasets_brief.push_back({{"id", i}, {"name", names[i]}, {"location", info.location}});
  }
  VX_ASSIGN(auto backend, jobs::make_backend(options.jobs_backend));
  jobs::JobQueue job_queue(
      jobs::QueueOptions{options.data_dir, options.job_concurrency, options.max_jobs, backend},
      jobs::builtin_kinds(dataset_lookup(ctx), read_text(options.web_dir + "/voxcast-orbit.js")));
  ctx->jobs = &job_queue;
  e.after = [&ioc](std::chrono::milliseconds delay, std::function<void()> fn) {
    auto timer = std::make_shared<net::steady_timer>(ioc, delay);
    timer->async_wait([timer, fn = std::move(fn)](beast::error_code ec) {
      if (!ec) fn();
    });
  };

  beast::error_code ec;
  const auto address =
      net::ip::make_address(options.host == "localhost" ? "127.0.0.1" : options.host, ec);
  if (ec) return fail(ErrorCode::kInvalidArgument, "--host {}: {}", options.host, ec.message());
  tcp::acceptor acceptor(ioc);
  const tcp::endpoint ep{address, options.port};
  acceptor.open(ep.protocol(), ec);
  if (!ec) acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) acceptor.bind(ep, ec);
  if (!ec) acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec)
    return fail(ErrorCode::kIo, "cannot listen on {}:{}: {}", options.host, options.port,
                ec.message());
  const auto port = acceptor.local_endpoint().port();
  auto listener = std::make_shared<Listener>(ctx, std::move(acceptor));
  listener->run();

  net::signal_set signals(ioc, SIGINT, SIGTERM);
  signals.async_wait([&](beast::error_code, int sig) {
    VX_LOG(info, "serve.stopping", "signal={}", sig);
    ctx->stopping = true;
    listener->stop();
    std::vector<std::shared_ptr<Closable>> live;
    {
      std::lock_guard lock(ctx->mutex);
      for (auto& w : ctx->sockets)
        if (auto s = w.lock()) live.push_back(std::move(s));
      for (auto& [id, w] : ctx->sessions)
        if (auto s = w.lock()) s->close();
    }
    for (auto& s : live)
      s->shutdown();
    // Give the close handshakes up to 2 s, then stop whatever is left.
    std::make_shared<Drain>(ioc, ctx)->run();
  });

  const std::string host = address.is_v6() ? "[" + options.host + "]" : options.host;
  std::string url = fmt::format("http://{}:{}/", host, port);
  // The log never holds the token; only on_ready's URL (printed for the user) does.
  VX_LOG(info, "serve.listening", "url={} token={} datasets={}", url,
         ctx->options.token.empty() ? "none" : "required", datasets.size());
  if (!ctx->options.token.empty()) url += "?token=" + ctx->options.token;
  if (on_ready) on_ready(url);

  const unsigned n = options.threads ? options.threads : 2;
  std::vector<std::thread> threads;
  for (unsigned i = 1; i < n; ++i)
    threads.emplace_back([&ioc] { ioc.run(); });
  ioc.run();
  for (auto& t : threads)
    t.join();
  {
    std::lock_guard lock(ctx->mutex);
    for (auto& [id, w] : ctx->sessions)
      if (auto s = w.lock()) s->close();
  }
  ctx->jobs = nullptr;
  // Closing cancelled the renders in flight; they stop at their next check. Wait for them
  // (bounded) so the counts below say how each one ended.
  const auto drain_until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (e.counters->running.load() > 0 && std::chrono::steady_clock::now() < drain_until)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  if (const auto left = e.counters->running.load())
    VX_LOG(warn, "serve.renders_left", "running={} after=30s", left);
  VX_LOG(info, "serve.stopped", "renders_done={} renders_cancelled={}", e.counters->done.load(),
         e.counters->cancelled.load());
  return {};
}

}  // namespace vx::server
