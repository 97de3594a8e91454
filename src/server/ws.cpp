// The two WebSocket channels of docs/protocol.md. Each socket lives on its own strand (the
// listener accepts onto one), has one writer, and a queue: the state channel's never
// drops a message (a client that stops reading is disconnected past 4096 queued), the
// pixel channel holds at most one frame (the session renders the next only when it is out).
#include <fmt/format.h>

#include <deque>
#include <random>

#include "core/json_text.hpp"
#include "core/log.hpp"
#include "pipeline/pipeline.hpp"
#include "server/server_impl.hpp"

namespace vx::server {
namespace {

std::string random_id() {
  std::random_device rd;
  return fmt::format("{:08x}{:08x}", rd(), rd());
}

// The text messages a channel has sent that its client has not read yet, written one at a
// time by send_text(). A client that stops reading is disconnected (1008) past 4096 of them
// or 8 MiB, so that it cannot make the server hold unbounded memory.
struct Outbox {
  static constexpr std::size_t kMaxMessages = 4096, kMaxBytes = 8u << 20;
  std::deque<std::pair<std::string, bool>> queue;  // text, and whether it may be dropped
  std::size_t bytes = 0;

  // Drops the oldest droppable message waiting (never the one being written).
  void drop_oldest_droppable() {
    for (auto it = queue.size() > 1 ? std::next(queue.begin()) : queue.end(); it != queue.end();
         ++it)
      if (it->second) {
        bytes -= it->first.size();
        queue.erase(it);
        return;
      }
  }
};

template <class Socket>
void write_next(const std::shared_ptr<Socket>& self);

// Queues `text` on `self` (a socket with `ws_`, `outbox_` and `closing_`) and writes it
// when its turn comes; `channel` names it in the log when the client is disconnected.
template <class Socket>
void send_text(const std::shared_ptr<Socket>& self, std::string text, bool droppable,
               const char* channel) {
  auto& box = self->outbox_;
  if (self->closing_) return;
  if (box.queue.size() >= Outbox::kMaxMessages || box.bytes >= Outbox::kMaxBytes) {
    self->closing_ = true;
    VX_LOG(warn, "ws.slow_client", "channel={} queued={} bytes={} action=disconnect", channel,
           box.queue.size(), box.bytes);
    self->ws_.async_close(websocket::close_code::policy_error, [self](beast::error_code) {});
    return;
  }
  box.bytes += text.size();
  box.queue.emplace_back(std::move(text), droppable);
  if (box.queue.size() == 1) write_next(self);
}

template <class Socket>
void write_next(const std::shared_ptr<Socket>& self) {
  self->ws_.text(true);
  self->ws_.async_write(net::buffer(self->outbox_.queue.front().first),
                        [self](beast::error_code ec, std::size_t) {
                          auto& box = self->outbox_;
                          box.bytes -= box.queue.front().first.size();
                          box.queue.pop_front();
                          if (ec) {
                            self->closing_ = true;
                            return;
                          }
                          if (!box.queue.empty()) write_next(self);
                        });
}

class StateSocket : public Closable, public std::enable_shared_from_this<StateSocket> {
 public:
  StateSocket(std::shared_ptr<Context> ctx, tcp::socket socket)
      : ctx_(std::move(ctx)), ws_(std::move(socket)), timer_(ws_.get_executor()) {}

  ~StateSocket() override {
    ctx_->clients--;
    if (!id_.empty()) {
      std::lock_guard lock(ctx_->mutex);
      ctx_->sessions.erase(id_);
    }
    if (session_) session_->close();
  }

  void run(http::request<http::string_body> req) {
    ctx_->clients++;
    ws_.set_option(websocket::stream_base::timeout{std::chrono::seconds(30),
                                                   std::chrono::seconds(600), false});
    ws_.set_option(websocket::stream_base::decorator(
        [](websocket::response_type& r) { r.set(http::field::server, "voxcast"); }));
    // Messages over max_message_bytes get a too_large reply; a message this large closes
    // the connection (1009) before it is buffered.
    ws_.read_message_max(std::max<std::size_t>(ctx_->options.max_message_bytes * 16, 1 << 20));
    ws_.async_accept(req, beast::bind_front_handler(&StateSocket::on_accept, shared_from_this()));
  }

  void shutdown() override {
    net::post(ws_.get_executor(), [self = shared_from_this()] {
      self->closing_ = true;
      self->timer_.cancel();
      self->ws_.async_close(websocket::close_code::going_away, [self](beast::error_code) {});
    });
  }

 private:
  template <class S>
  friend void send_text(const std::shared_ptr<S>&, std::string, bool, const char*);
  template <class S>
  friend void write_next(const std::shared_ptr<S>&);

  void on_accept(beast::error_code ec) {
    if (ec) return;
    ctx_->add_socket(shared_from_this());
    read();
    tick();
  }

  void read() {
    ws_.async_read(buffer_, beast::bind_front_handler(&StateSocket::on_read, shared_from_this()));
  }

  void on_read(beast::error_code ec, std::size_t) {
    if (ec) {
      closing_ = true;
      timer_.cancel();
      return;
    }
    std::string text = beast::buffers_to_string(buffer_.data());
    buffer_.consume(buffer_.size());
    try {
      handle(text);
    } catch (const json::exception& e) {  // a field of the wrong type that slipped through
      error(nullptr, "bad_message", fmt::format("a field has the wrong type: {}", e.what()));
    }
    if (!closing_) read();
  }

  void error(const json& seq, std::string_view code, const std::string& message) {
    send({{"type", "error"}, {"seq", seq}, {"code", code}, {"message", message}});
  }

  void handle(const std::string& text) {
    if (text.size() > ctx_->options.max_message_bytes)
      return error(nullptr, "too_large",
                   fmt::format("message of {} bytes, over max_message_bytes ({})", text.size(),
                               ctx_->options.max_message_bytes));
    // Rate: at most max_messages_per_s in any second.
    const auto now = std::chrono::steady_clock::now();
    while (!recent_.empty() && now - recent_.front() > std::chrono::seconds(1))
      recent_.pop_front();
    if (int(recent_.size()) >= ctx_->options.max_messages_per_s) {
      json reply = {{"type", "error"},
                    {"seq", nullptr},
                    {"code", "rate_limited"},
                    {"message", fmt::format("over max_messages_per_s ({}); message not applied",
                                            ctx_->options.max_messages_per_s)}};
      // A probe or histogram's id comes back, so a client waiting for its answer hears.
      const json m = parse_untrusted_json(text);
      if (m.is_object() && m.contains("id")) reply["id"] = m["id"];
      return send(reply);
    }
    recent_.push_back(now);
    const json msg = parse_untrusted_json(text);
    if (msg.is_discarded() || !msg.is_object())
      return error(nullptr, "bad_json",
                   "a message must be one JSON object, nested at most 64 levels deep");
    const json seq = msg.contains("seq") ? msg["seq"] : json(nullptr);
    if (!msg.contains("type") || !msg["type"].is_string())
      return error(seq, "bad_message", "field 'type': missing or not a string");
    const std::string type = msg["type"];
    if (type == "hello") return hello(msg);
    // Everything else, ping included, comes after hello (docs/protocol.md, bad_message).
    if (!session_) return error(seq, "bad_message", fmt::format("'{}' before 'hello'", type));
    if (type == "ping") return send({{"type", "pong"}, {"t", msg.value("t", json(nullptr))}});
    if (type == "keyframe.request") {
      session_->request_keyframe();
      return send({{"type", "ack"}, {"seq", seq}});
    }
    if (type == "state.update") return update(msg);
    if (type == "probe" || type == "histogram") return view_tool(type, msg);
    if (type == "timeline.play") return play(msg);
    if (type == "timeline.pause") {
      const bool was = session_->play_state().playing;
      return play_state(session_->pause(), was ? "paused" : "idle");
    }
    error(seq, "bad_message",
          fmt::format("field 'type': '{}' is not one of hello, state.update, keyframe.request, "
                      "ping, probe, histogram, timeline.play, timeline.pause",
                      type));
  }

  // A timeline preview (stream/playback.cpp): the server steps the scene; `timeline.state`
  // says where it is, and where it stopped, with the scene there.
  void play(const json& msg) {
    const json seq = msg.contains("seq") ? msg["seq"] : json(nullptr);
    std::optional<double> from;
    if (msg.contains("from") && !msg["from"].is_null()) {
      if (!msg["from"].is_number())
        return error(seq, "bad_message", "field 'from': expected seconds");
      from = msg["from"].get<double>();
    }
    const json loop = msg.value("loop", json(false));
    if (!loop.is_boolean())
      return error(seq, "bad_message", "field 'loop': expected true or false");
    const json speed = msg.value("speed", json(1));
    if (!speed.is_number()) return error(seq, "bad_message", "field 'speed': expected a number");
    auto st = session_->play(
        msg.value("timeline", json(nullptr)), from, loop.get<bool>(), speed.get<double>(),
        [weak = weak_from_this()](stream::Session::PlayState where, std::string why) {
          if (auto self = weak.lock())
            net::post(self->ws_.get_executor(), [self, where, why = std::move(why)] {
              if (!self->closing_)
                self->play_state(where, why.empty() ? "ended" : "error", why, "timeline.event");
            });
        });
    if (!st) {
      const auto code = st.error().code;
      return error(seq,
                   code == ErrorCode::kUnsupported       ? "unsupported"
                   : code == ErrorCode::kInvalidArgument ? "bad_message"
                                                         : "bad_patch",
                   st.error().message);
    }
    play_state(*st, "playing");
  }

  // `timeline.state` (the reply to timeline.play and timeline.pause) or `timeline.event`
  // (unasked: progress once a second, the end, a failed step).
  void play_state(const stream::Session::PlayState& st, std::string_view reason,
                  const std::string& message = {}, std::string_view type = "timeline.state") {
    json m = state_json(st, reason);
    m["type"] = type;
    if (!message.empty()) m["message"] = message;
    if (!st.playing) {
      // Where it stopped is this client's scene now (as an ack's would be).
      confirmed_ = session_->scene_json();
      m["scene"] = confirmed_;
    }
    send(m);
  }

  static json state_json(const stream::Session::PlayState& st, std::string_view reason) {
    return {{"playing", st.playing}, {"reason", reason},  {"t", st.t},      {"start", st.start},
            {"end", st.end},         {"speed", st.speed}, {"loop", st.loop}};
  }

  // probe and histogram: answered at once from memory (they never wait for a chunk), with
  // the client's `id` echoed so that it can match replies (docs/protocol.md).
  void view_tool(const std::string& type, const json& msg) {
    const json id = msg.value("id", json(nullptr));
    auto r = type == "probe" ? session_->probe(msg) : session_->histogram(msg);
    if (!r)
      return send(
          {{"type", "error"},
           {"seq", nullptr},
           {"id", id},
           {"code", r.error().code == ErrorCode::kInvalidArgument ? "bad_message" : "unsupported"},
           {"message", r.error().message}});
    json reply = {{"type", type}, {"id", id}};
    if (r->is_object())
      reply.update(*r);
    else
      reply["layers"] = std::move(*r);
    send(reply);
  }

  void hello(const json& msg) {
    const json seq = msg.contains("seq") ? msg["seq"] : json(nullptr);
    if (session_) return error(seq, "bad_message", "'hello' twice");
    const json dataset = msg.value("dataset", json(0));
    if (!dataset.is_number_integer() || dataset.get<std::int64_t>() < 0 ||
        dataset.get<std::int64_t>() > 1'000'000)
      return error(seq, "bad_message", "field 'dataset': expected a dataset index");
    if (msg.contains("client") && !msg["client"].is_string())
      return error(seq, "bad_message", "field 'client': expected a string");
    std::vector<codec::Codec> codecs;
    const json names = msg.value("codecs", json::array({"h264", "jpeg"}));
    if (!names.is_array()) return error(seq, "bad_message", "field 'codecs': expected a list");
    for (const auto& n : names) {
      if (n == "h264") codecs.push_back(codec::Codec::kH264);
      if (n == "jpeg") codecs.push_back(codec::Codec::kJpeg);
    }
    if (codecs.empty())
      return error(seq, "unsupported",
                   fmt::format("field 'codecs': {} has none of h264, jpeg", names.dump()));
    auto s = stream::Session::create(ctx_->engine, dataset.get<int>(), codecs);
    if (!s)
      return error(seq,
                   s.error().code == ErrorCode::kInvalidArgument ? "bad_message" : "unsupported",
                   s.error().message);
    session_ = std::move(*s);
    id_ = random_id();
    {
      std::lock_guard lock(ctx_->mutex);
      ctx_->sessions[id_] = session_;
    }
    confirmed_ = session_->scene_json();
    const auto fallback = session_->encoder_fallback();
    VX_LOG(info, "session.open", "session={} dataset={} codec={} encoder={} client={}", id_,
           dataset.get<int>(), codec::codec_name(session_->codec()), session_->encoder_name(),
           log_quote(msg.value("client", std::string())));
    send({{"type", "welcome"},
          {"session", id_},
          {"protocol", 1},
          {"codec", codec::codec_name(session_->codec())},
          {"encoder", session_->encoder_name()},
          {"fallback", fallback.empty() ? json(nullptr) : json(fallback)},
          {"renderer", ctx_->engine.renderer},
          {"renderer_fallback", ctx_->engine.renderer_fallback.empty()
                                    ? json(nullptr)
                                    : json(ctx_->engine.renderer_fallback)},
          {"scene", confirmed_},
          {"dataset", dataset.get<int>()},
          {"datasets", ctx_->datasets_brief},
          {"limits", ctx_->limits()}});
  }

  void update(const json& msg) {
    const json seq = msg.contains("seq") ? msg["seq"] : json(nullptr);
    if (!seq.is_number_integer() || seq.get<std::int64_t>() <= 0)
      return error(seq, "bad_message", "field 'seq': expected a positive integer");
    if (!msg.contains("patch") || !msg["patch"].is_object())
      return error(seq, "bad_message", "field 'patch': expected an object");
    const json interactive = msg.value("interactive", json(false));
    if (!interactive.is_boolean())
      return error(seq, "bad_message", "field 'interactive': expected true or false");
    // The client takes the view back from a preview: it stops where it is, and the patch
    // applies to that scene (the ack says so; its changes are against the scene the client
    // last heard of, so they include what the preview moved).
    std::optional<stream::Session::PlayState> stopped;
    if (session_->play_state().playing) stopped = session_->pause();
    auto scene = session_->update(seq.get<std::uint64_t>(), msg["patch"], interactive.get<bool>());
    if (!scene) {
      const auto& m = scene.error().message;
      const char* code = m.rfind("field 'seq'", 0) == 0                  ? "bad_seq"
                         : scene.error().code == ErrorCode::kUnsupported ? "unsupported"
                                                                         : "bad_patch";
      error(seq, code, m);
      // The preview stopped all the same: say where.
      if (stopped) play_state(*stopped, "state.update", {}, "timeline.event");
      return;
    }
    // What changed, not the whole scene (a scene of many layers is large, and a dragging
    // client sends 60 updates a second): each top-level member that differs, whole.
    json changes = json::object();
    for (auto& [key, value] : scene->items())
      if (!confirmed_.contains(key) || confirmed_[key] != value) changes[key] = value;
    confirmed_ = std::move(*scene);
    json ack = {{"type", "ack"}, {"seq", seq}, {"changes", std::move(changes)}};
    if (stopped) ack["timeline"] = state_json(*stopped, "state.update");
    send(ack);
  }

  void tick() {
    timer_.expires_after(std::chrono::seconds(1));
    timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
      if (ec || self->closing_) return;
      if (self->session_) {
        if (const auto st = self->session_->play_state(); st.playing)
          self->play_state(st, "playing", {}, "timeline.event");
        for (auto& w : self->session_->take_warnings())
          self->send({{"type", "warning"}, {"code", w.code}, {"message", w.message}});
        const auto st = self->session_->take_stats();
        if (st.frames > 0)
          self->send({{"type", "stats"},
                      {"frames", st.frames},
                      {"fps", st.frames},
                      {"kbps", double(st.bytes) * 8 / 1000},
                      {"render_ms", st.render_ms / double(st.frames)},
                      {"encode_ms", st.encode_ms / double(st.frames)},
                      {"skipped", st.skipped}});
      }
      self->tick();
    });
  }

  // Never dropped: a client that stops reading is disconnected instead (Outbox).
  void send(const json& j) { send_text(shared_from_this(), j.dump(), false, "state"); }

  std::shared_ptr<Context> ctx_;
  websocket::stream<beast::tcp_stream> ws_;
  net::steady_timer timer_;
  beast::flat_buffer buffer_;
  Outbox outbox_;
  json confirmed_;  // the scene as this client last heard it (welcome, then acks)
  std::deque<std::chrono::steady_clock::time_point> recent_;
  std::shared_ptr<stream::Session> session_;
  std::string id_;
  bool closing_ = false;
};

class PixelSocket : public Closable, public std::enable_shared_from_this<PixelSocket> {
 public:
  PixelSocket(std::shared_ptr<Context> ctx, tcp::socket socket,
              std::shared_ptr<stream::Session> session)
      : ctx_(std::move(ctx)), ws_(std::move(socket)), session_(std::move(session)) {}

  ~PixelSocket() override { session_->detach(generation_); }

  void run(http::request<http::string_body> req) {
    ws_.set_option(websocket::stream_base::timeout::suggested(beast::role_type::server));
    ws_.set_option(websocket::stream_base::decorator(
        [](websocket::response_type& r) { r.set(http::field::server, "voxcast"); }));
    ws_.read_message_max(64 * 1024);  // clients send nothing; whatever they send is dropped
    ws_.async_accept(req, beast::bind_front_handler(&PixelSocket::on_accept, shared_from_this()));
  }

  void shutdown() override {
    net::post(ws_.get_executor(), [self = shared_from_this()] {
      self->closing_ = true;
      self->ws_.async_close(websocket::close_code::going_away, [self](beast::error_code) {});
    });
  }

 private:
  void on_accept(beast::error_code ec) {
    if (ec) return;
    ctx_->add_socket(shared_from_this());
    ws_.binary(true);
    generation_ = session_->attach(
        [weak = weak_from_this()](stream::FrameBytes f) {
          if (auto self = weak.lock())
            net::post(self->ws_.get_executor(), [self, f = std::move(f)] { self->write(f); });
        },
        [weak = weak_from_this()] {  // a newer pixel channel took over: close this one
          if (auto self = weak.lock())
            net::post(self->ws_.get_executor(), [self] {
              if (self->closing_) return;
              self->closing_ = true;
              self->ws_.async_close(websocket::close_code::normal, [self](beast::error_code) {});
            });
        });
    read();
  }

  void read() {
    ws_.async_read(buffer_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
      self->buffer_.consume(self->buffer_.size());
      if (ec) {
        self->closing_ = true;
        self->session_->detach(self->generation_);
        return;
      }
      self->read();
    });
  }

  void write(const stream::FrameBytes& f) {
    if (closing_) return;
    ws_.async_write(net::buffer(*f),
                    [self = shared_from_this(), f](beast::error_code ec, std::size_t) {
                      if (ec) {
                        self->closing_ = true;
                        self->session_->detach(self->generation_);
                        return;
                      }
                      self->session_->written(self->generation_);
                    });
  }

  std::shared_ptr<Context> ctx_;
  websocket::stream<beast::tcp_stream> ws_;
  std::shared_ptr<stream::Session> session_;
  beast::flat_buffer buffer_;
  std::uint64_t generation_ = 0;
  bool closing_ = false;
};

// /ws/events: job changes pushed as they happen ({"type": "job", "job": {...}}), after a
// first {"type": "jobs", "jobs": [...]} with the current list. Progress can come many times a
// second per job; a client that falls 256 messages behind loses the oldest progress
// messages of running jobs (never a state change: queued/running/succeeded/...); one that
// stops reading is disconnected past 4096 queued messages or 8 MiB.
class EventSocket : public Closable, public std::enable_shared_from_this<EventSocket> {
 public:
  EventSocket(std::shared_ptr<Context> ctx, tcp::socket socket)
      : ctx_(std::move(ctx)), ws_(std::move(socket)) {}
  ~EventSocket() override {
    if (ctx_->jobs && token_) ctx_->jobs->unsubscribe(token_);
  }

  void run(http::request<http::string_body> req) {
    ws_.set_option(websocket::stream_base::timeout::suggested(beast::role_type::server));
    ws_.read_message_max(64 * 1024);
    ws_.async_accept(req, beast::bind_front_handler(&EventSocket::on_accept, shared_from_this()));
  }

  void shutdown() override {
    net::post(ws_.get_executor(), [self = shared_from_this()] {
      self->closing_ = true;
      self->ws_.async_close(websocket::close_code::going_away, [self](beast::error_code) {});
    });
  }

 private:
  template <class S>
  friend void send_text(const std::shared_ptr<S>&, std::string, bool, const char*);
  template <class S>
  friend void write_next(const std::shared_ptr<S>&);

  void on_accept(beast::error_code ec) {
    if (ec || !ctx_->jobs) return;
    ctx_->add_socket(shared_from_this());
    if (auto* m = ctx_->options.pipelines) {
      // Pipeline status changes (docs/protocol.md, "/ws/events"); the list itself is
      // GET /api/v1/pipelines. Subscribed before the first message goes out, so that a
      // client that saw it misses no change (they queue behind it on this executor).
      pipeline_events_ = m->subscribe([weak = weak_from_this()](const json& change) {
        if (auto self = weak.lock())
          net::post(self->ws_.get_executor(),
                    [self, msg = json{{"type", "pipeline"}, {"pipeline", change}}] {
                      self->send(msg, true);
                    });
      });
    }
    token_ = ctx_->jobs->subscribe([weak = weak_from_this()](const jobs::JobInfo& info) {
      if (auto self = weak.lock()) {
        const bool progress_only = info.state == jobs::JobState::kRunning && info.done > 0;
        json msg = {{"type", "job"}, {"job", info.to_json()}};
        net::post(self->ws_.get_executor(),
                  [self, msg = std::move(msg), progress_only, id = info.id, v = info.version] {
                    // Changes are reported from several threads: never let an older
                    // snapshot of a job overtake a newer one.
                    auto& last = self->versions_[id];
                    if (v < last) return;
                    last = v;
                    self->send(msg, !progress_only);
                  });
      }
    });
    json list = json::array();
    for (const auto& j : ctx_->jobs->list()) {
      list.push_back(j.to_json());
      versions_[j.id] = std::max(versions_[j.id], j.version);
    }
    send({{"type", "jobs"}, {"jobs", list}}, true);
    read();
  }

  void read() {
    ws_.async_read(buffer_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
      self->buffer_.consume(self->buffer_.size());
      if (ec) {
        self->closing_ = true;
        return;
      }
      self->read();
    });
  }

  // Past 256 waiting, the oldest progress message goes; changes of state are never dropped
  // (a client that stops reading is disconnected instead: Outbox).
  void send(const json& j, bool keep) {
    if (outbox_.queue.size() >= 256) {
      outbox_.drop_oldest_droppable();
      if (outbox_.queue.size() >= 256 && !keep) return;
    }
    send_text(shared_from_this(), j.dump(), !keep, "events");
  }

  std::shared_ptr<Context> ctx_;
  websocket::stream<beast::tcp_stream> ws_;
  beast::flat_buffer buffer_;
  Outbox outbox_;
  std::map<std::string, std::uint64_t> versions_;  // the newest snapshot sent, per job
  pipeline::Manager::Subscription pipeline_events_;
  std::uint64_t token_ = 0;
  bool closing_ = false;
};

}  // namespace

void start_event_socket(std::shared_ptr<Context> ctx, tcp::socket socket,
                        http::request<http::string_body> req) {
  std::make_shared<EventSocket>(std::move(ctx), std::move(socket))->run(std::move(req));
}

void start_state_socket(std::shared_ptr<Context> ctx, tcp::socket socket,
                        http::request<http::string_body> req) {
  std::make_shared<StateSocket>(std::move(ctx), std::move(socket))->run(std::move(req));
}

void start_pixel_socket(std::shared_ptr<Context> ctx, tcp::socket socket,
                        http::request<http::string_body> req,
                        std::shared_ptr<stream::Session> session) {
  std::make_shared<PixelSocket>(std::move(ctx), std::move(socket), std::move(session))
      ->run(std::move(req));
}

}  // namespace vx::server
