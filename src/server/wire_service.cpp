// WireService: requests are small JSON messages; every request gets a JSON reply header
// and, when it succeeds with data, one payload message sent straight from the buffer the
// data was assembled in (no further copy). A bad request gets an error reply; the
// connection stays up.
#include "server/wire_service.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>

#include "core/json_text.hpp"
#include "core/log.hpp"
#include "core/paths.hpp"
#include "data/info_json.hpp"
#include "render/renderer.hpp"
#include "render/scene.hpp"
#include "wire/wire.hpp"

namespace vx::server {

using json = nlohmann::json;

// A reply's payload, counted against the in-flight budget until it is released (when its
// send has completed, or when it is dropped unsent).
struct Payload {
  std::vector<std::uint8_t> data;  // uint8_t: a rendered frame's pixels move in as they are
  std::atomic<std::uint64_t>* inflight = nullptr;
  std::uint64_t counted = 0;
  ~Payload() {
    if (inflight) inflight->fetch_sub(counted);
  }
};
using PayloadPtr = std::shared_ptr<Payload>;

struct WireService::Impl {
  std::uint64_t budget = 0;
  std::atomic<std::uint64_t> inflight{0};
  // Counts `bytes` against the budget; `fill` also allocates them.
  Result<PayloadPtr> allocate(std::uint64_t bytes, bool fill = true);

  data::ChunkCache* cache = nullptr;
  std::vector<data::SourceId> datasets;
  render::SceneData scene_data;
  std::optional<wire::Server> server;
  std::thread thread;  // receives requests and queues them
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> requests{0}, discarded{0}, discarded_bytes{0};
  std::chrono::steady_clock::time_point last_discard_log{};
  // A message of another kind than a request: counted, logged at most once a second.
  // Counts a message read and dropped (`tag` unknown when UCX truncated it without one) and
  // logs at most once a second.
  void discard(std::optional<std::uint64_t> tag, std::uint64_t bytes);

  // Workers, each with its own renderer, serve the queue: a slow frame does not hold up
  // other clients' reads. Bounded: beyond kMaxQueued waiting requests a request gets "busy".
  struct Job {
    uint32_t client, seq;
    std::string text;
  };
  static constexpr size_t kMaxQueued = 64;
  std::vector<std::thread> workers;
  std::mutex qm;
  std::condition_variable qcv;
  std::deque<Job> queue;
  void work();
  void enqueue(uint32_t client, uint32_t seq, std::string text);

  // With a token set, the first request of each connection must carry it (field `token`):
  // the verdict per client id, kept until the connection leaves. Only run()'s thread
  // touches it.
  std::string token;
  std::map<uint32_t, bool> admitted;
  // Whether `client` may be served, deciding on its first request (`text`, or nullptr for a
  // request too large to read).
  bool admit(uint32_t client, const std::string* text);

  void run();
  void handle(uint32_t client, uint32_t seq, const std::string& text, render::Renderer& renderer);
  Result<json> read(const json& req, PayloadPtr& payload);
  Result<json> frame(const json& req, PayloadPtr& payload, render::Renderer& renderer);
  void reply(uint32_t client, uint32_t seq, json header, PayloadPtr payload);
};

namespace {

// The reply header of a failed request.
json error_header(ErrorCode code, std::string message) {
  return json{{"ok", false},
              {"error", {{"code", std::string(to_string(code))}, {"message", std::move(message)}}}};
}

json unauthorized_header() {
  return json{{"ok", false},
              {"error",
               {{"code", "unauthorized"},
                {"message",
                 "this server needs its token: a string field 'token' in the first request of "
                 "a connection (voxcast.wire_client(..., token=T))"}}}};
}

uint64_t make_tag(uint32_t client, uint64_t kind, uint32_t seq) {
  return (uint64_t{client} << 32) | (kind << 24) | (seq & 0xffffff);
}

Result<std::vector<int64_t>> int_array(const json& req, const char* field, size_t n) {
  auto it = req.find(field);
  if (it == req.end() || !it->is_array() || it->size() != n) {
    return fail(ErrorCode::kInvalidArgument, "field '{}': expected an array of {} integers", field,
                n);
  }
  std::vector<int64_t> out;
  for (const auto& v : *it) {
    if (!v.is_number_integer()) {
      return fail(ErrorCode::kInvalidArgument, "field '{}': expected integers", field);
    }
    out.push_back(v.get<int64_t>());
  }
  return out;
}

}  // namespace

Result<PayloadPtr> WireService::Impl::allocate(std::uint64_t bytes, bool fill) {
  const auto before = inflight.fetch_add(bytes);
  if (before + bytes > budget) {
    inflight.fetch_sub(bytes);
    return fail(ErrorCode::kBusy,
                "{} bytes of earlier replies are still being delivered and {} more would exceed "
                "the {} byte limit (--wire-max-inflight-mb): receive them, then retry",
                before, bytes, budget);
  }
  auto p = std::make_shared<Payload>();
  p->inflight = &inflight;
  p->counted = bytes;
  try {
    if (fill) p->data.resize(bytes);
  } catch (const std::bad_alloc&) {
    return fail(ErrorCode::kOutOfMemory, "cannot allocate {} bytes for the reply", bytes);
  }
  return p;
}

Result<json> WireService::Impl::read(const json& req, PayloadPtr& payload) {
  const int dataset = req.value("dataset", 0);
  if (dataset < 0 || size_t(dataset) >= datasets.size()) {
    return fail(ErrorCode::kInvalidArgument, "field 'dataset': {} is not in [0, {})", dataset,
                datasets.size());
  }
  const auto& info = scene_data.sources[size_t(dataset)];
  if (!req.contains("level") || !req["level"].is_number_integer()) {
    return fail(ErrorCode::kInvalidArgument, "field 'level': expected an integer");
  }
  const int level = req["level"].get<int>();
  if (level < 0 || size_t(level) >= info.levels.size()) {
    return fail(ErrorCode::kInvalidArgument, "field 'level': level {} does not exist (0 to {})",
                level, info.levels.size() - 1);
  }
  const auto& shape_l = info.levels[size_t(level)].shape;
  VX_ASSIGN(auto start, int_array(req, "start", shape_l.size()));
  VX_ASSIGN(auto shape, int_array(req, "shape", shape_l.size()));
  uint64_t voxels = 1;
  for (size_t d = 0; d < shape_l.size(); ++d) {
    if (start[d] < 0 || shape[d] <= 0 || start[d] + shape[d] > shape_l[d]) {
      return fail(ErrorCode::kInvalidArgument,
                  "box start {} shape {} is outside level {} of shape {} (axis {})",
                  json(start).dump(), json(shape).dump(), level, json(shape_l).dump(), d);
    }
    voxels *= uint64_t(shape[d]);
  }
  const uint64_t bytes = voxels * data::dtype_size(info.dtype);
  if (bytes > kWireMaxPayloadBytes) {
    return fail(ErrorCode::kInvalidArgument, "box of {} bytes exceeds the {} byte limit per read",
                bytes, kWireMaxPayloadBytes);
  }
  VX_ASSIGN(payload, allocate(bytes));
  VX_TRY(data::read_region(*cache, datasets[size_t(dataset)], level, start, shape,
                           std::as_writable_bytes(std::span(payload->data))));
  return json{
      {"ok", true}, {"dtype", data::dtype_name(info.dtype)}, {"shape", shape}, {"nbytes", bytes}};
}

Result<json> WireService::Impl::frame(const json& req, PayloadPtr& payload,
                                      render::Renderer& renderer) {
  json patch = req.value("scene", json::object());
  if (!patch.is_object()) {
    return fail(ErrorCode::kInvalidArgument, "field 'scene': expected a JSON object");
  }
  const auto& canvas = patch.contains("canvas") ? patch["canvas"] : json::object();
  const int w = canvas.is_object() ? canvas.value("width", 1280) : 1280;
  const int h = canvas.is_object() ? canvas.value("height", 720) : 720;
  if (w <= 0 || h <= 0 || w > 8192 || h > 8192) {
    return fail(ErrorCode::kInvalidArgument, "field 'scene.canvas': {}x{} is not in 1..8192", w, h);
  }
  VX_ASSIGN(payload, allocate(uint64_t(w) * uint64_t(h) * 4, /*fill=*/false));
  render::RenderInputs inputs{cache, datasets, scene_data};
  auto defaults = render::default_scene(scene_data, w, h);
  VX_TRY(render::estimate_contrast(defaults, inputs));
  VX_ASSIGN(auto scene, render::apply_patch(defaults, patch, scene_data));
  VX_ASSIGN(auto f, renderer.render(scene, inputs));
  const auto nbytes = f.pixels.size();
  payload->data = std::move(f.pixels);  // sent from the renderer's own buffer
  return json{{"ok", true},
              {"dtype", "uint8"},
              {"shape", {f.height, f.width, 4}},
              {"nbytes", nbytes},
              {"levels", f.levels}};
}

void WireService::Impl::reply(uint32_t client, uint32_t seq, json header, PayloadPtr payload) {
  wire::Endpoint ep;
  for (auto& e : server->endpoints()) {
    if (e.id() == client) ep = e;
  }
  if (!ep) return;  // the client left
  auto text = std::make_shared<std::string>(header.dump());
  ep.send(std::as_bytes(std::span(text->data(), text->size())), make_tag(client, kWireReply, seq),
          [text](const auto&) {});
  if (payload) {
    ep.send(std::as_bytes(std::span(payload->data)), make_tag(client, kWirePayload, seq),
            [payload](const wire::Result<wire::Completion>& r) {
              if (!r) VX_LOG(warn, "wire.send_failed", "error={}", log_quote(r.error().what()));
            });
  }
}

void WireService::Impl::handle(uint32_t client, uint32_t seq, const std::string& text,
                               render::Renderer& renderer) {
  PayloadPtr payload;
  Result<json> header = [&]() -> Result<json> {
    json req = parse_untrusted_json(text);
    if (req.is_discarded() || !req.is_object()) {
      return fail(ErrorCode::kInvalidArgument, "request is not a JSON object");
    }
    if (!req.contains("op") || !req["op"].is_string()) {
      return fail(ErrorCode::kInvalidArgument,
                  "field 'op': expected a string (one of info, read, frame)");
    }
    const std::string op = req["op"].get<std::string>();
    try {
      if (op == "info") {
        json list = json::array();
        for (const auto& v : scene_data.sources)
          list.push_back(data::info_to_json(v));
        return json{{"ok", true}, {"datasets", list}};
      }
      if (op == "read") return read(req, payload);
      if (op == "frame") return frame(req, payload, renderer);
    } catch (const json::exception& e) {  // a wrong-typed field deep in a scene
      return fail(ErrorCode::kInvalidArgument, "{}", e.what());
    }
    return fail(ErrorCode::kInvalidArgument, "field 'op': '{}' is not one of info, read, frame",
                op);
  }();
  if (!header) {
    payload.reset();
    header = error_header(header.error().code, header.error().message);
  }
  reply(client, seq, std::move(*header), std::move(payload));
}

bool WireService::Impl::admit(uint32_t client, const std::string* text) {
  if (token.empty()) return true;
  if (auto it = admitted.find(client); it != admitted.end()) return it->second;
  std::string given;
  if (text) {
    const json req = parse_untrusted_json(*text);
    if (req.is_object() && req.contains("token") && req["token"].is_string())
      given = req["token"].get<std::string>();
  }
  const bool ok = constant_time_equal(given, token);
  if (admitted.size() >= 1024) {  // forget connections that have left
    std::vector<uint32_t> live;
    for (auto& e : server->endpoints())
      live.push_back(e.id());
    std::erase_if(admitted, [&](const auto& kv) {
      return std::find(live.begin(), live.end(), kv.first) == live.end();
    });
  }
  admitted[client] = ok;
  if (!ok) VX_LOG(warn, "wire.unauthorized", "client={}", client);
  return ok;
}

void WireService::Impl::discard(std::optional<std::uint64_t> tag, std::uint64_t bytes) {
  const auto n = ++discarded;
  discarded_bytes += bytes;
  const auto now = std::chrono::steady_clock::now();
  if (now - last_discard_log < std::chrono::seconds(1)) return;
  last_discard_log = now;
  if (tag)
    VX_LOG(warn, "wire.discarded",
           "client={} kind={} bytes={} total={} why=\"only requests (kind 1) are read; other "
           "kinds are dropped\"",
           std::uint32_t(*tag >> 32), (*tag >> 24) & 0xff, bytes, n);
  else
    VX_LOG(warn, "wire.discarded",
           "client=unknown kind=unknown bytes={} total={} why=\"larger than the receive buffer, "
           "and UCX did not say its tag\"",
           bytes, n);
}

void WireService::Impl::run() {
  // Room for 16x the limit, so that an oversized request (up to 1 MiB) is still received
  // whole and answered with an error naming the limit.
  std::vector<std::byte> buf(kWireMaxRequestBytes * 16);
  while (!stop.load()) {
    // Every message, not only requests (mask 0): a message nobody receives stays in UCX's
    // unexpected queue for good, holding its memory, and every receive posted on a mask walks
    // that queue. A client sending other kinds (200,000 small messages: 820 MB held and
    // requests 200x slower, before) now only costs the reads that drop them.
    auto r = server->recv(buf, 0, 0);
    wire::Result<wire::Completion> got;
    for (;;) {
      got = r.wait_for(std::chrono::milliseconds(200));
      if (got || got.error().code != wire::Errc::kTimedOut || stop.load()) break;
    }
    if (!got) {
      if (got.error().code == wire::Errc::kTimedOut) {
        r.cancel();
        (void)r.wait();
        break;
      }
      if (got.error().code == wire::Errc::kClosed) break;
      if (got.error().code == wire::Errc::kTruncated && got.error().tag != 0) {
        // Too large: the message was consumed; a request's client still gets its reply.
        if (((got.error().tag >> 24) & 0xff) != kWireRequest) {
          discard(got.error().tag, buf.size());
          continue;
        }
        ++requests;
        const auto client = uint32_t(got.error().tag >> 32);
        const auto seq = uint32_t(got.error().tag & 0xffffff);
        if (!admit(client, nullptr)) {
          reply(client, seq, unauthorized_header(), nullptr);
          continue;
        }
        reply(client, seq,
              error_header(ErrorCode::kInvalidArgument,
                           fmt::format("request larger than {} bytes", kWireMaxRequestBytes)),
              nullptr);
        continue;
      }
      // Truncated without its tag (UCX does not report it for a rendezvous message): read
      // and dropped, of a kind nobody knows.
      if (got.error().code == wire::Errc::kTruncated) {
        discard(std::nullopt, buf.size());
        continue;
      }
      VX_LOG(warn, "wire.bad_request", "error={}", log_quote(got.error().what()));
      continue;
    }
    if (((got->tag >> 24) & 0xff) != kWireRequest) {
      discard(got->tag, got->length);
      continue;
    }
    ++requests;
    const auto client = uint32_t(got->tag >> 32);
    const auto seq = uint32_t(got->tag & 0xffffff);
    if (got->length > kWireMaxRequestBytes) {
      reply(client, seq,
            admit(client, nullptr)
                ? error_header(ErrorCode::kInvalidArgument,
                               fmt::format("request of {} bytes is larger than {} bytes",
                                           got->length, kWireMaxRequestBytes))
                : unauthorized_header(),
            nullptr);
      continue;
    }
    std::string text(reinterpret_cast<const char*>(buf.data()), got->length);
    if (!admit(client, &text)) {
      reply(client, seq, unauthorized_header(), nullptr);
      continue;
    }
    enqueue(client, seq, std::move(text));
  }
}

void WireService::Impl::enqueue(uint32_t client, uint32_t seq, std::string text) {
  {
    std::lock_guard lock(qm);
    if (queue.size() < kMaxQueued) {
      queue.push_back(Job{client, seq, std::move(text)});
      qcv.notify_one();
      return;
    }
  }
  reply(client, seq,
        error_header(ErrorCode::kBusy,
                     fmt::format("{} requests are waiting already: retry later", kMaxQueued)),
        nullptr);
}

void WireService::Impl::work() {
  auto renderer = render::make_cpu_renderer();
  for (;;) {
    Job job;
    {
      std::unique_lock lock(qm);
      qcv.wait(lock, [&] { return stop.load() || !queue.empty(); });
      if (stop.load()) return;
      job = std::move(queue.front());
      queue.pop_front();
    }
    handle(job.client, job.seq, job.text, *renderer);
  }
}

Result<std::unique_ptr<WireService>> WireService::start(const WireServiceOptions& options,
                                                        data::ChunkCache& cache,
                                                        std::vector<data::SourceId> datasets) {
  auto impl = std::make_unique<Impl>();
  impl->budget = options.max_inflight_bytes;
  impl->token = options.token;
  impl->cache = &cache;
  impl->datasets = std::move(datasets);
  for (auto id : impl->datasets)
    impl->scene_data.sources.push_back(cache.source(id).info());
  wire::Options wo;
  wo.transports = options.transports;
  auto s = wire::Server::listen(options.host, options.port, wo);
  if (!s)
    return fail(ErrorCode::kIo, "--wire {}:{}: {}", options.host, options.port, s.error().what());
  impl->server.emplace(std::move(*s));
  Impl* raw = impl.get();
  impl->thread = std::thread([raw] { raw->run(); });
  for (int i = 0; i < std::max(1, options.workers); ++i) {
    impl->workers.emplace_back([raw] { raw->work(); });
  }
  return std::unique_ptr<WireService>(new WireService(std::move(impl)));
}

WireService::WireService(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

WireService::~WireService() {
  impl_->stop = true;
  if (impl_->thread.joinable()) impl_->thread.join();
  {
    std::lock_guard lock(impl_->qm);
    impl_->qcv.notify_all();
  }
  for (auto& w : impl_->workers)
    w.join();
  (void)impl_->server->close(true);
}

unsigned short WireService::port() const {
  return impl_->server->port();
}
std::string WireService::transports() const {
  return impl_->server->transports();
}
WireService::Counters WireService::counters() const {
  return {impl_->requests.load(), impl_->discarded.load(), impl_->discarded_bytes.load()};
}

}  // namespace vx::server
