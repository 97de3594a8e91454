// Timeline preview: the server steps a session's scene along a keyframe timeline
// (render/timeline.hpp) at its real speed, so the client sees the movie before it renders
// one (docs/protocol.md `timeline.play`, docs/movies.md).
//
// Each step sets the scene at the current time as an interactive state update would
// (cheap frames while it moves; the renderer draws the latest scene whenever the previous
// frame has left, so a slow client gets fewer frames, never late ones). Where it stops (the
// end, a pause, a state update from the client) the scene there is set as a still one and
// gets a final frame. The step timer holds the session weakly: a client that leaves
// mid-preview ends it.
#include <cmath>

#include "core/log.hpp"
#include "stream/session.hpp"

namespace vx::stream {

namespace {
// How often the scene is stepped: faster than any stream's frame rate, so every frame the
// session draws shows the scene of its moment.
constexpr auto kStep = std::chrono::milliseconds(16);
constexpr double kMaxSpeed = 16;
}  // namespace

Session::PlayState Session::play_state_locked(Clock::time_point now) const {
  PlayState st;
  if (!playback_) return st;
  const auto& p = *playback_;
  st.playing = true;
  st.start = p.timeline.start();
  st.end = p.timeline.end();
  st.speed = p.speed;
  st.loop = p.loop;
  const double elapsed = std::chrono::duration<double>(now - p.started).count() * p.speed;
  double t = p.from + elapsed;
  if (p.loop && st.end > st.start && t > st.end)
    t = st.start + std::fmod(t - st.start, st.end - st.start);
  st.t = std::min(t, st.end);
  return st;
}

render::Scene Session::preview_scene_locked(double t) {
  auto s = render::scene_at(playback_->timeline, t, [this](int a, int b, double u) -> Result<int> {
    return blend_source(a, b, u);
  });
  return s ? std::move(*s) : render::scene_at(playback_->timeline, t);
}

Session::PlayState Session::play_state() const {
  std::lock_guard lock(mutex_);
  return play_state_locked(Clock::now());
}

Result<Session::PlayState> Session::play(const json& timeline, std::optional<double> from,
                                         bool loop, double speed,
                                         std::function<void(PlayState, std::string)> on_stop) {
  if (!std::isfinite(speed) || speed <= 0 || speed > kMaxSpeed)
    return fail(ErrorCode::kInvalidArgument, "field 'speed': {} is not in (0, {}]", speed,
                kMaxSpeed);
  std::lock_guard lock(mutex_);
  if (closed_) return fail(ErrorCode::kUnsupported, "the session is closed");
  if (!timeline.is_object() || !timeline.contains("keyframes") || !timeline["keyframes"].is_array())
    return fail(ErrorCode::kInvalidArgument,
                "field 'timeline': expected {{\"keyframes\": [...]}} (docs/movies.md)");
  if (timeline["keyframes"].size() > std::size_t(render::kMaxKeyframes))
    return fail(ErrorCode::kInvalidArgument, "field 'timeline.keyframes': {} keyframes, over {}",
                timeline["keyframes"].size(), render::kMaxKeyframes);
  // Layers of a keyframe may name derived sources as a state update does; they resolve to
  // this session's sources keyframe by keyframe (a derived source is created once and
  // shared), a patch's merging into the source its layer has in the keyframe before.
  auto in = inputs_locked();
  const auto hook = [&](const json& doc, const render::Scene& prev, bool) -> Result<json> {
    auto r = resolve_patch(doc, prev);
    in.data = inputs_locked().data;  // with the sources it made
    return r;
  };
  VX_ASSIGN(auto tl, render::parse_timeline(timeline, engine_.defaults[std::size_t(dataset_)],
                                            in.data, "field 'timeline'", hook));
  // Between two keyframes discrete fields switch and numeric ones lerp, so a scene of the
  // timeline costs no more than its dearer end and its slices stay between the ends': the
  // keyframes are what needs checking.
  for (std::size_t i = 0; i < tl.keyframes.size(); ++i)
    if (auto st = check_scene_locked(tl.keyframes[i].scene); !st)
      return fail(st.error().code, "field 'timeline': keyframes[{}]: {}", i, st.error().message);
  const double t0 = from.value_or(tl.start());
  if (!std::isfinite(t0) || t0 < tl.start() || t0 > tl.end())
    return fail(ErrorCode::kInvalidArgument, "field 'from': {} is not in [{}, {}]", t0, tl.start(),
                tl.end());
  playback_ = Playback{std::move(tl),     t0, speed, loop, Clock::now(), ++playback_generation_,
                       std::move(on_stop)};
  VX_LOG(info, "session.preview", "keyframes={} from={} end={} speed={} loop={}",
         playback_->timeline.keyframes.size(), t0, playback_->timeline.end(), speed, loop);
  const auto state = play_state_locked(playback_->started);
  set_scene_locked(preview_scene_locked(state.t), true);
  if (engine_.after)
    engine_.after(kStep, [weak = weak_from_this(), g = playback_->generation] {
      if (auto self = weak.lock()) self->playback_step(g);
    });
  return state;
}

void Session::playback_step(std::uint64_t generation) {
  std::function<void(PlayState, std::string)> on_stop;
  std::string why;
  PlayState where;
  {
    std::lock_guard lock(mutex_);
    if (closed_ || !playback_ || playback_->generation != generation) return;
    const auto now = Clock::now();
    const auto st = play_state_locked(now);
    const bool ended = !st.loop && st.t >= st.end;
    auto scene = preview_scene_locked(st.t);
    if (auto ok = check_scene_locked(scene); !ok) {
      why = fmt::format("the timeline's scene at t={:.3f} s: {}", st.t, ok.error().message);
    } else {
      set_scene_locked(std::move(scene), !ended);
    }
    if (ended || !why.empty()) {
      where = st;
      where.playing = false;
      on_stop = std::move(playback_->on_stop);
      playback_.reset();
      if (!why.empty()) VX_LOG(warn, "session.preview_failed", "{}", why);
    } else if (engine_.after) {
      engine_.after(kStep, [weak = weak_from_this(), generation] {
        if (auto self = weak.lock()) self->playback_step(generation);
      });
    }
  }
  if (on_stop) on_stop(where, why);
}

Session::PlayState Session::pause() {
  std::lock_guard lock(mutex_);
  auto st = play_state_locked(Clock::now());
  if (!playback_) return st;
  // The scene of this moment, still: its final frame.
  set_scene_locked(preview_scene_locked(st.t), false);
  playback_.reset();
  st.playing = false;
  return st;
}

}  // namespace vx::stream
