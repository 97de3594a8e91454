#include "stream/session.hpp"

#include <chrono>
#include <cstring>

#include "core/log.hpp"
#include "render/select.hpp"
#include "stream/view_tools.hpp"

namespace vx::stream {

namespace {

template <class T>
void put(std::uint8_t* out, std::size_t at, T v) {
  for (std::size_t i = 0; i < sizeof(T); ++i)
    out[at + i] = std::uint8_t(std::uint64_t(v) >> (8 * i));  // little-endian on any host
}
template <class T>
T get(const std::uint8_t* in, std::size_t at) {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < sizeof(T); ++i)
    v |= std::uint64_t(in[at + i]) << (8 * i);
  return T(v);
}

std::uint32_t micros(Clock::duration d) {
  return std::uint32_t(std::chrono::duration_cast<std::chrono::microseconds>(d).count());
}

}  // namespace

double scene_cost(const render::Scene& scene) {
  const double mp = double(scene.canvas.width) * double(scene.canvas.height) / 1e6;
  double layers = 0;
  for (const auto& l : scene.layers)
    if (l.visible) layers += scene.dims.ndisplay == 3 ? kVolumeCost : 1;
  return mp * layers;
}

void write_header(const FrameHeader& h, std::uint8_t* out) {
  std::memcpy(out, "VXF1", 4);
  put<std::uint16_t>(out, 4, 1);
  put(out, 6, h.codec);
  put(out, 7, h.flags);
  put(out, 8, h.frame_seq);
  put(out, 12, h.state_seq);
  put(out, 16, h.width);
  put(out, 18, h.height);
  put(out, 20, h.render_us);
  put(out, 24, h.encode_us);
  put(out, 28, h.server_us);
  put(out, 32, h.payload);
  put(out, 36, h.wall_us);
  put<std::uint32_t>(out, 44, 0);
}

Result<FrameHeader> read_header(const std::uint8_t* in, std::size_t size) {
  if (size < kHeaderBytes)
    return fail(ErrorCode::kCorrupt, "frame: {} bytes, shorter than the {}-byte header", size,
                kHeaderBytes);
  if (std::memcmp(in, "VXF1", 4) != 0) return fail(ErrorCode::kCorrupt, "frame: bad magic");
  if (get<std::uint16_t>(in, 4) != 1)
    return fail(ErrorCode::kUnsupported, "frame: header version {}", get<std::uint16_t>(in, 4));
  FrameHeader h;
  h.codec = in[6];
  h.flags = in[7];
  h.frame_seq = get<std::uint32_t>(in, 8);
  h.state_seq = get<std::uint32_t>(in, 12);
  h.width = get<std::uint16_t>(in, 16);
  h.height = get<std::uint16_t>(in, 18);
  h.render_us = get<std::uint32_t>(in, 20);
  h.encode_us = get<std::uint32_t>(in, 24);
  h.server_us = get<std::uint32_t>(in, 28);
  h.payload = get<std::uint32_t>(in, 32);
  h.wall_us = get<std::uint64_t>(in, 36);
  if (size != kHeaderBytes + h.payload)
    return fail(ErrorCode::kCorrupt, "frame: {} bytes but the header says {} + {}", size,
                kHeaderBytes, h.payload);
  return h;
}

namespace {

// The engine's backend, resolved at start: it opens (a device that went away since falls
// back to the CPU, logged).
std::unique_ptr<render::Renderer> make_session_renderer(const std::string& name) {
  auto r = render::make_renderer(name);
  if (r) return std::move(r->renderer);
  VX_LOG(warn, "renderer.fallback", "from={} to=cpu reason={}", name, log_quote(r.error().message));
  return render::make_cpu_renderer();
}

}  // namespace

Result<std::shared_ptr<Session>> Session::create(Engine& engine, int dataset,
                                                 const std::vector<codec::Codec>& codecs) {
  if (dataset < 0 || dataset >= int(engine.datasets.size()))
    return fail(ErrorCode::kInvalidArgument, "field 'dataset': {} is not one of 0..{}", dataset,
                int(engine.datasets.size()) - 1);
  const auto& scene = engine.defaults[std::size_t(dataset)];
  std::string why;
  for (const auto c : codecs) {
    // Probe at the default canvas: the codec works here, and which backend it gets.
    auto probe = codec::make_encoder(
        c, codec::EncoderOptions{scene.canvas.width & ~1, scene.canvas.height & ~1});
    if (!probe) {
      why += fmt::format("{}{}: {}", why.empty() ? "" : "; ", codec::codec_name(c),
                         probe.error().message);
      continue;
    }
    std::shared_ptr<Session> s(new Session(engine, dataset, c));
    if (s->fetch_)
      s->fetch_->set_listener([weak = std::weak_ptr<Session>(s)](bool) {
        if (auto self = weak.lock()) self->on_fetch();
      });
    s->encoder_name_ = std::string(probe->encoder->name());
    s->fallback_ = probe->fallback;
    return s;
  }
  return fail(ErrorCode::kUnsupported, "no codec of the ones asked for works here ({})",
              why.empty() ? "none asked for" : why);
}

Session::Session(Engine& engine, int dataset, codec::Codec codec)
    : engine_(engine),
      dataset_(dataset),
      codec_(codec),
      scene_(engine.defaults[std::size_t(dataset)]),
      renderer_(make_session_renderer(engine.renderer)) {
  if (engine.cache) fetch_ = std::make_unique<data::FetchSet>(*engine.cache);
}

Session::~Session() {
  cancel_ = true;
  if (fetch_) fetch_->clear();
}

std::string Session::encoder_name() const {
  std::lock_guard lock(mutex_);
  return encoder_name_;
}
std::string Session::encoder_fallback() const {
  std::lock_guard lock(mutex_);
  return fallback_;
}

json Session::scene_json() const {
  std::lock_guard lock(mutex_);
  return scene_json_locked();
}

Result<json> Session::update(std::uint64_t seq, const json& patch, bool interactive) {
  std::lock_guard lock(mutex_);
  if (seq <= state_seq_)
    return fail(ErrorCode::kInvalidArgument, "field 'seq': {} is not greater than {}", seq,
                state_seq_);
  VX_ASSIGN(const json resolved, resolve_patch(patch, scene_));
  VX_ASSIGN(auto next, render::apply_patch(scene_, resolved, inputs_locked().data));
  VX_TRY(check_scene_locked(next));
  display_new_derived_layers_locked(resolved, next);
  state_seq_ = seq;
  set_scene_locked(std::move(next), interactive);
  return scene_json_locked();
}

Status Session::check_scene_locked(const render::Scene& next) const {
  // A slice past the end would draw black and look like missing data: refuse it, naming
  // the axis and the range, as `voxcast render` does.
  VX_TRY(render::check_slices_in_range(next, inputs_locked().data));
  if (next.canvas.width > engine_.max_width || next.canvas.height > engine_.max_height)
    return fail(ErrorCode::kUnsupported, "field 'canvas': {}x{} is over the streaming limit {}x{}",
                next.canvas.width, next.canvas.height, engine_.max_width, engine_.max_height);
  if (codec_ == codec::Codec::kH264 && (next.canvas.width % 2 || next.canvas.height % 2))
    return fail(ErrorCode::kUnsupported, "field 'canvas': {}x{} is odd; H.264 needs even sizes",
                next.canvas.width, next.canvas.height);
  // What one frame may cost, so that one client cannot starve the others.
  const auto visible = std::count_if(next.layers.begin(), next.layers.end(),
                                     [](const render::Layer& l) { return l.visible; });
  if (visible > engine_.max_layers)
    return fail(ErrorCode::kUnsupported,
                "field 'layers': {} visible layers are over the limit of {} (--max-layers)",
                visible, engine_.max_layers);
  // Hidden layers cost no rendering, but every ack carries them: at most 4 x --max-layers
  // (or as many as the data's own default scene has).
  const auto max_total =
      std::max<std::size_t>(4 * std::size_t(std::max(0, engine_.max_layers)),
                            engine_.defaults[std::size_t(dataset_)].layers.size());
  if (next.layers.size() > max_total)
    return fail(ErrorCode::kUnsupported,
                "field 'layers': {} layers are over the limit of {} (4 x --max-layers), hidden "
                "ones included",
                next.layers.size(), max_total);
  if (const double cost = scene_cost(next); cost > engine_.max_scene_cost)
    return fail(ErrorCode::kUnsupported,
                "field 'layers': the scene costs {:.0f} (canvas megapixels x visible layers, a 3D "
                "layer counting {:.0f}), over the limit of {:.0f} (--max-scene-cost)",
                cost, kVolumeCost, engine_.max_scene_cost);
  return {};
}

void Session::set_scene_locked(render::Scene next, bool interactive) {
  // A final or refining frame of the old view is no use now: stop it. An interactive frame
  // is cheap and shows the motion, so it finishes.
  if (rendering_ && !render_interactive_) cancel_ = true;
  refine_delay_ = std::chrono::milliseconds(25);
  scene_ = std::move(next);
  state_time_ = Clock::now();
  if (dirty_) ++stats_.skipped;  // the previous state never reached the screen
  dirty_ = false;                // this update is the cause now
  mark_dirty();
  if (interactive) {
    // A moving camera: cheap frames now, the final one once it has been still for 150 ms.
    constexpr auto kSettle = std::chrono::milliseconds(150);
    interactive_until_ = state_time_ + kSettle;
    if (engine_.after)
      engine_.after(kSettle + std::chrono::milliseconds(5), [weak = weak_from_this()] {
        if (auto self = weak.lock()) {
          std::lock_guard l(self->mutex_);
          if (Clock::now() >= self->interactive_until_) {
            self->mark_dirty();
            self->schedule();
          }
        }
      });
  } else {
    interactive_until_ = {};
  }
  schedule();
}

Result<json> Session::probe(const json& request) const {
  render::Scene scene;
  if (!engine_.cache) return fail(ErrorCode::kUnsupported, "this session has no data cache");
  render::RenderInputs in{engine_.cache, {}, {}};
  {
    std::lock_guard lock(mutex_);
    scene = scene_;
    in = inputs_locked();
  }
  return stream::probe(scene, in, request);
}

Result<json> Session::histogram(const json& request) const {
  render::Scene scene;
  std::vector<int> drawn;
  if (!engine_.cache) return fail(ErrorCode::kUnsupported, "this session has no data cache");
  render::RenderInputs in{engine_.cache, {}, {}};
  {
    std::lock_guard lock(mutex_);
    scene = scene_;
    in = inputs_locked();
    if (drawn_levels_.size() == scene_.layers.size()) drawn = drawn_levels_;
  }
  return stream::histogram(scene, in, drawn, request);
}

void Session::request_keyframe() {
  std::lock_guard lock(mutex_);
  force_key_ = true;
  mark_dirty();
  schedule();
}

void Session::mark_dirty(bool refine) {
  if (!dirty_) {
    cause_time_ = Clock::now();
    refine_only_ = refine;
  } else {
    refine_only_ &= refine;
  }
  dirty_ = true;
}

void Session::on_fetch() {
  std::lock_guard lock(mutex_);
  // Nothing to improve on a final frame (late arrivals of chunks the view dropped).
  if (closed_ || (!rendering_ && !last_refining_)) return;
  // The last chunk in: the final frame now. Otherwise a refining frame on a growing delay.
  if (fetch_->pending() == 0 || !engine_.after) {
    mark_dirty(true);
    schedule();
    return;
  }
  if (refine_armed_) return;
  refine_armed_ = true;
  const auto delay = refine_delay_;
  refine_delay_ = std::min(refine_delay_ * 2, std::chrono::milliseconds(400));
  engine_.after(delay, [weak = weak_from_this()] {
    if (auto self = weak.lock()) {
      std::lock_guard l(self->mutex_);
      self->refine_armed_ = false;
      if (!self->rendering_ && !self->last_refining_) return;
      self->mark_dirty(true);
      self->schedule();
    }
  });
}

std::vector<Warning> Session::take_warnings() {
  std::lock_guard lock(mutex_);
  return std::exchange(warnings_, {});
}

std::uint64_t Session::attach(std::function<void(FrameBytes)> send,
                              std::function<void()> replaced) {
  std::function<void()> previous;
  std::uint64_t generation;
  {
    std::lock_guard lock(mutex_);
    previous = std::exchange(replaced_, std::move(replaced));
    sink_ = std::move(send);
    in_flight_ = false;
    force_key_ = true;
    dirty_ = false;  // a new cause: the channel joining
    mark_dirty();
    generation = ++sink_generation_;
    schedule();
  }
  if (previous) previous();
  return generation;
}

void Session::detach(std::uint64_t generation) {
  std::lock_guard lock(mutex_);
  if (generation != sink_generation_) return;
  sink_ = nullptr;
  in_flight_ = false;
  cancel_ = true;  // nobody to show it to: stop rendering and loading
  if (fetch_) fetch_->clear();
}

void Session::written(std::uint64_t generation) {
  std::lock_guard lock(mutex_);
  if (generation != sink_generation_) return;
  in_flight_ = false;
  schedule();
}

void Session::close() {
  std::lock_guard lock(mutex_);
  closed_ = true;
  sink_ = nullptr;
  cancel_ = true;
  if (fetch_) fetch_->clear();
}

SessionStats Session::take_stats() {
  std::lock_guard lock(mutex_);
  return std::exchange(stats_, SessionStats{});
}

void Session::schedule() {
  if (closed_ || rendering_ || in_flight_ || !dirty_ || !sink_ || !engine_.pool) return;
  rendering_ = true;
  const int priority = Clock::now() < interactive_until_ ? kRenderInteractive
                       : refine_only_                    ? kRenderRefining
                                                         : kRenderFinal;
  engine_.pool->submit(priority, [weak = weak_from_this()] {
    if (auto self = weak.lock()) self->render_job();
  });
}

void Session::render_job() {
  const auto counters = engine_.counters;
  counters->running++;
  struct Done {
    RenderCounters& c;
    ~Done() { c.running--; }
  } done{*counters};
  render::Scene scene;
  std::uint32_t state_seq;
  Clock::time_point since;
  bool key, interactive;
  std::uint64_t generation;
  render::RenderInputs in{engine_.cache, {}, {}};
  {
    std::lock_guard lock(mutex_);
    generation = sink_generation_;
    scene = scene_;
    in = inputs_locked();
    state_seq = std::uint32_t(state_seq_);
    since = cause_time_;
    key = force_key_;
    force_key_ = false;
    dirty_ = false;
    interactive = Clock::now() < interactive_until_;
    render_interactive_ = interactive;
    cancel_ = false;
  }
  auto fail_job = [&](const Error& e) {
    std::lock_guard lock(mutex_);
    rendering_ = false;
    force_key_ |= key;  // a keyframe still owed stays owed
    if (e.code == ErrorCode::kCancelled) {
      counters->cancelled++;
      // Stopped for a newer view (or nobody to show it to): render that one, if any.
      dirty_ = true;
      schedule();
      return;
    }
    counters->failed++;
    VX_LOG(warn, "stream.frame_failed", "error={}", log_quote(e.message));
    // The client still lacks this frame: try again in 200 ms (not in a busy loop).
    if (engine_.after)
      engine_.after(std::chrono::milliseconds(200), [weak = weak_from_this()] {
        if (auto self = weak.lock()) {
          std::lock_guard l(self->mutex_);
          self->mark_dirty();
          self->schedule();
        }
      });
  };
  const auto t0 = Clock::now();
  const int w = scene.canvas.width, h = scene.canvas.height;
  if (!encoder_ || enc_w_ != w || enc_h_ != h) {
    auto made = codec::make_encoder(codec_, codec::EncoderOptions{w, h});
    if (!made) return fail_job(made.error());
    encoder_ = std::move(made->encoder);
    enc_w_ = w;
    enc_h_ = h;
    key = true;  // a new stream starts with an IDR
    std::lock_guard lock(mutex_);
    encoder_name_ = std::string(encoder_->name());
    fallback_ = made->fallback;
  }
  render::RenderOptions opt;
  opt.format = encoder_->input_format();
  opt.wait = false;
  opt.interactive = interactive;
  opt.fetch = fetch_.get();
  opt.cancel = &cancel_;
  if (fetch_) fetch_->begin_round();
  const bool split = engine_.split_frame && scene.dims.ndisplay == 3 && in.sources.size() == 1;
  auto frame = split ? engine_.split_frame(*renderer_, dataset_, scene, in, opt)
                     : renderer_->render(scene, in, opt);
  if (fetch_ && frame) fetch_->end_round();  // cancels what this view no longer needs
  if (!frame) return fail_job(frame.error());
  if (fetch_)
    for (auto& f : fetch_->take_failures()) {
      const auto& info = engine_.datasets[std::size_t(dataset_)];
      std::string idx;
      for (int d = 0; d < info.ndim(); ++d)
        idx += fmt::format("{}{}", d ? "." : "", f.index[std::size_t(d)]);
      VX_LOG(warn, "stream.chunk_failed", "dataset={} level={} chunk={} error={}",
             log_quote(info.location), f.level, idx, log_quote(f.error.message));
      std::lock_guard lock(mutex_);
      if (warnings_.size() < 256)
        warnings_.push_back(
            {"chunk_failed",
             fmt::format("{} level {} chunk {} could not be read, drawn without it: "
                         "{}",
                         info.location, f.level, idx, f.error.message)});
    }
  const auto t1 = Clock::now();
  codec::Encoded enc;
  if (auto st = encoder_->encode(frame->pixels.data(), key, enc); !st) return fail_job(st.error());
  const auto t2 = Clock::now();
  const bool refining = frame->refining, reduced = frame->interactive;
  const bool degraded = !frame->failed.empty();
  {
    std::lock_guard lock(mutex_);
    drawn_levels_ = frame->levels;
  }
  counters->done++;
  renderer_->recycle(std::move(*frame));

  FrameHeader hdr;
  hdr.codec = std::uint8_t(codec_);
  hdr.flags = std::uint8_t((enc.keyframe ? kKeyframe : 0) | (refining ? kRefining : 0) |
                           (reduced ? kInteractive : 0) | (degraded ? kDegraded : 0));
  hdr.state_seq = state_seq;
  hdr.width = std::uint16_t(w);
  hdr.height = std::uint16_t(h);
  hdr.render_us = micros(t1 - t0);
  hdr.encode_us = micros(t2 - t1);
  hdr.payload = std::uint32_t(enc.data.size());
  auto bytes = std::make_shared<std::vector<std::uint8_t>>(kHeaderBytes + enc.data.size());
  std::memcpy(bytes->data() + kHeaderBytes, enc.data.data(), enc.data.size());
  std::function<void(FrameBytes)> sink;
  {
    std::lock_guard lock(mutex_);
    rendering_ = false;
    // A final frame already has every chunk that arrived while it was drawn: arrivals alone
    // (of chunks it no longer needed) are no reason to draw it again.
    if (!refining && dirty_ && refine_only_) dirty_ = false;
    last_refining_ = refining;
    if (!sink_ || closed_) return;  // nobody to send it to; attach() renders a keyframe
    if (generation != sink_generation_ && !enc.keyframe) {
      // A new pixel channel joined while this frame was drawn: its decoder needs a
      // keyframe first (attach() asked for one). Drop this P-frame and render again.
      force_key_ = true;
      mark_dirty();
      schedule();
      return;
    }
    hdr.frame_seq = ++frame_seq_;
    hdr.server_us = micros(Clock::now() - since);
    hdr.wall_us = std::uint64_t(std::chrono::duration_cast<std::chrono::microseconds>(
                                    std::chrono::system_clock::now().time_since_epoch())
                                    .count());
    write_header(hdr, bytes->data());
    in_flight_ = true;
    sink = sink_;
    ++stats_.frames;
    stats_.bytes += bytes->size();
    stats_.render_ms += double(hdr.render_us) / 1000;
    stats_.encode_ms += double(hdr.encode_us) / 1000;
  }
  sink(std::move(bytes));  // outside the lock: the socket may call written() at once
}

}  // namespace vx::stream
