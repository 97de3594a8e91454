// Private to src/server: what the HTTP side and the WebSocket channels share.
#pragma once

#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast.hpp>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/thread_pool.hpp"
#include "jobs/queue.hpp"
#include "server/server.hpp"
#include "stream/session.hpp"

namespace vx::server {

namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using json = nlohmann::json;

// Something the server closes on shutdown (a WebSocket).
class Closable {
 public:
  virtual ~Closable() = default;
  virtual void shutdown() = 0;  // thread-safe: posts to its own strand
};

// POST /api/v1/screenshot's limits.
constexpr int kMinScreenshotSide = 16, kMaxScreenshotSide = 8192;
constexpr std::uint64_t kMaxScreenshotPixels = 32ull << 20;
constexpr int kMaxScreenshotsAtOnce = 2;
// POST /api/v1/region's: one region's bytes, and regions read at once (more get 429). They run
// on the render pool at final-frame priority: without a cap, twenty of them held other
// clients' first frames back by ten seconds.
constexpr std::uint64_t kMaxRegionBytes = 64ull << 20;
constexpr int kMaxRegionsAtOnce = 2;

// A bounded amount shared by requests (things at once, or bytes held): take() gives a lease
// that gives its share back when its last copy goes, or null when the rest is too small.
class Allowance {
 public:
  explicit Allowance(std::uint64_t capacity)
      : state_(std::make_shared<State>()), capacity_(capacity) {}
  using Lease = std::shared_ptr<void>;
  Lease take(std::uint64_t n = 1);
  std::uint64_t used() const { return state_->used.load(); }
  std::uint64_t capacity() const { return capacity_; }

 private:
  struct State {
    std::atomic<std::uint64_t> used{0};
  };
  std::shared_ptr<State> state_;  // the leases share it: they may outlive the allowance
  std::uint64_t capacity_;
};

struct Context {
  Context(ServerOptions o, net::io_context& io)
      : options(std::move(o)), ioc(io), answer_bytes(options.http_max_inflight_bytes) {}
  ServerOptions options;
  net::io_context& ioc;
  stream::Engine engine;
  json datasets_full = json::array();   // [{id, name, location, info}]
  json datasets_brief = json::array();  // [{id, name, location}]
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
  std::atomic<int> clients{0};
  jobs::JobQueue* jobs = nullptr;
  Allowance screenshots{kMaxScreenshotsAtOnce};  // rendering now (POST /api/v1/screenshot)
  Allowance regions{kMaxRegionsAtOnce};          // being read now (POST /api/v1/region)
  // Bytes of screenshot and region answers in memory: from the request's start until the
  // client has read its answer (--http-max-inflight-mb). Without it, clients that never
  // read held 64 MiB each for the 60 s a write may take.
  Allowance answer_bytes;
  std::atomic<std::uint64_t> abandoned{0};     // screenshots stopped: their client left
  std::atomic<std::uint64_t> answered_429{0};  // screenshot and region requests answered 429
  std::atomic<bool> stopping{false};

  std::mutex mutex;
  std::map<std::string, std::weak_ptr<stream::Session>> sessions;
  std::vector<std::weak_ptr<Closable>> sockets;

  void add_socket(const std::shared_ptr<Closable>& s);
  std::shared_ptr<stream::Session> find_session(const std::string& id);
  json limits() const;
};

// Percent-decodes a URL component ("%2e" -> "."; '+' -> ' ' in a query when asked).
std::string percent_decode(std::string_view v, bool plus_is_space);
// The credentials of an "Authorization: Bearer T" header (the scheme in any case), or "".
std::string bearer_token(std::string_view authorization);
// Query parameter `key` of a request target ("/ws/pixels?session=a&token=b"), or "".
std::string query_param(std::string_view target, std::string_view key);
// Whether the request carries the server's token (query `token` or `Authorization: Bearer`),
// compared in constant time.
bool authorized(const Context& ctx, const http::request<http::string_body>& req);

// A JSON response of `status` (not cached: answers describe live state).
http::response<http::string_body> json_response(const http::request<http::string_body>& req,
                                                http::status status, const json& body);

// A JSON error response: {"error": {"code": code, "message": message}}.
http::response<http::string_body> json_error(const http::request<http::string_body>& req,
                                             http::status status, std::string_view code,
                                             std::string_view message);

// The job routes (/api/v1/jobs...), or nullopt for other paths.
std::optional<http::response<http::string_body>> jobs_route(
    Context& ctx, const http::request<http::string_body>& req, const std::string& path);
// GET /api/v1/pipelines, POST /api/v1/pipelines/NAME/load|unload, GET /api/v1/resources,
// or nullopt for other paths.
std::optional<http::response<http::string_body>> pipelines_route(
    Context& ctx, const http::request<http::string_body>& req, const std::string& path);
// The server's datasets for job kinds (jobs::builtin_kinds), rendering through its cache.
jobs::DatasetLookup dataset_lookup(std::shared_ptr<Context> ctx);

// A request answered from the render pool (screenshot_route, region_route). `reply` is called
// once, from the network thread (errors) or a render thread (the answer); `hold` lives until
// the answer is written out or the connection ends. `left` turns true when the client goes
// away before its answer (or the server stops): work for it may stop.
using Reply = std::function<void(http::response<http::string_body>, Allowance::Lease hold)>;
struct PoolRequest {
  const http::request<http::string_body>& req;
  Reply reply;
  std::shared_ptr<const std::atomic<bool>> left;
};

// The 429 a request gets when `what` is full: the message says why, Retry-After says when.
// Counted in ctx.answered_429.
http::response<http::string_body> overloaded(Context& ctx,
                                             const http::request<http::string_body>& req,
                                             std::string_view why);

// The 429 for a request whose answer does not fit in what is left of ctx.answer_bytes.
http::response<http::string_body> answers_full(Context& ctx,
                                               const http::request<http::string_body>& req);

// POST /api/v1/screenshot: the route (its limits are above Context).
void screenshot_route(std::shared_ptr<Context> ctx, PoolRequest r);

// POST /api/v1/region: a raw box of one level (at most kMaxRegionBytes), like screenshot_route.
void region_route(std::shared_ptr<Context> ctx, PoolRequest r);

// Takes over an upgraded connection.
void start_state_socket(std::shared_ptr<Context> ctx, tcp::socket socket,
                        http::request<http::string_body> req);
void start_event_socket(std::shared_ptr<Context> ctx, tcp::socket socket,
                        http::request<http::string_body> req);
void start_pixel_socket(std::shared_ptr<Context> ctx, tcp::socket socket,
                        http::request<http::string_body> req,
                        std::shared_ptr<stream::Session> session);

}  // namespace vx::server
