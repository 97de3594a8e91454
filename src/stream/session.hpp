// A streaming session: one client's scene, rendered on demand and encoded into a
// latest-wins pixel channel (docs/protocol.md).
//
//   state update -> apply the patch (validated) -> mark dirty -> a render job on the shared
//   pool (at most one per session) -> encode -> hand to the pixel sink -> the sink says when
//   the socket has written it -> render again if the scene changed meanwhile.
//
// A frame is rendered only when the previous one has left, so a slow client gets fewer
// frames, each of the latest scene, and costs nothing extra; H.264 frames are never dropped
// after encoding. Frames are drawn without waiting for chunks: the session's fetch set asks
// for what the view needs (coarse first, centre first; what the view no longer needs is
// cancelled) and missing ones come from a coarser level (the frame is marked refining).
// Refining frames are paced: the next one after 25 ms, then 50, 100, ... up to 400 ms, so
// the cores load and decode instead of redrawing; the final frame follows as soon as the
// last chunk is in. Chunks that fail are drawn without, flagged (kDegraded) and reported once
// (take_warnings()); they cause no more frames.
//
// Render jobs go to the shared pool by class: interactive frames first, then final frames,
// then refining ones; one job per session at a time, so sessions take turns. A running
// final or refining render is cancelled when the view changes, the pixel channel leaves or
// the session closes (the renderer checks between rows and slabs).
// No Asio here: the server supplies the sink and a timer.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "codec/encoder.hpp"
#include "core/error.hpp"
#include "core/thread_pool.hpp"
#include "data/chunk_cache.hpp"
#include "data/fetch_set.hpp"
#include "render/renderer.hpp"
#include "render/timeline.hpp"
#include "stream/layer_sources.hpp"

namespace vx::pipeline {
class Manager;
}

namespace vx::stream {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

// The 48-byte little-endian header before every frame's payload (docs/protocol.md).
constexpr std::size_t kHeaderBytes = 48;
enum FrameFlags : std::uint8_t { kKeyframe = 1, kRefining = 2, kInteractive = 4, kDegraded = 8 };
struct FrameHeader {
  std::uint8_t codec = 0;
  std::uint8_t flags = 0;
  std::uint32_t frame_seq = 0;
  std::uint32_t state_seq = 0;
  std::uint16_t width = 0, height = 0;
  std::uint32_t render_us = 0, encode_us = 0, server_us = 0, payload = 0;
  std::uint64_t wall_us = 0;
};
void write_header(const FrameHeader& h, std::uint8_t* out);
Result<FrameHeader> read_header(const std::uint8_t* in, std::size_t size);

// Render jobs of all sessions, for /api/v1/health.
struct RenderCounters {
  std::atomic<std::uint64_t> running{0}, done{0}, cancelled{0}, failed{0};
};

// Derived sources (a pipeline on an input) made for scenes, shared by every session of an
// engine: the same pipeline with the same parameters on the same input is one source, so
// its computed chunks are cached once (docs/pipelines.md). An entry lives while something
// holds its handle: a session's source slot, a frame being rendered (RenderInputs::keep), a
// derived source made from it. The last holder to let go removes the source from the cache,
// its chunks with it, so a knob turned for days does not grow the server.
class DerivedCatalog : public std::enable_shared_from_this<DerivedCatalog> {
 public:
  struct Entry {
    std::shared_ptr<const data::VolumeSource> source;
    data::SourceId id = 0;
    std::shared_ptr<const Entry> input;  // the derived source this one reads (a chain)
  };
  using Handle = std::shared_ptr<const Entry>;
  using Make = std::function<Result<std::shared_ptr<const data::VolumeSource>>()>;

  // The live entry under `key` ("INPUT_ID|NAME|PARAMS[|z1]"), or a new one: `make()`'s
  // source added to `cache` (which must outlive the handles), holding `input` (null when the
  // input is a dataset). Made by make_shared only (weak_from_this).
  Result<Handle> get(const std::string& key, data::ChunkCache& cache, Handle input,
                     const Make& make);
  std::size_t size() const;  // live entries

 private:
  mutable std::mutex mutex_;
  std::map<std::string, std::weak_ptr<const Entry>> by_key_;
};

// What the sessions of one server share.
struct Engine {
  data::ChunkCache* cache = nullptr;
  std::vector<data::SourceId> ids;         // one per dataset
  std::vector<data::VolumeInfo> datasets;  // their descriptions
  std::vector<render::Scene> defaults;     // the default scene of each dataset
  PriorityPool* pool = nullptr;            // render jobs
  // Runs `fn` once after `delay` (the server's timers); must not run it inline.
  std::function<void(std::chrono::milliseconds, std::function<void()>)> after;
  int max_width = 3840, max_height = 2160;
  // Scene cost limits: visible layers, and canvas megapixels x layers with a 3D layer
  // counting kVolumeCost (a scene over either is refused, naming the limit).
  int max_layers = 16;
  double max_scene_cost = 128;
  std::shared_ptr<RenderCounters> counters = std::make_shared<RenderCounters>();
  // Layers whose source is {"pipeline", "input", "params"}; none without a manager.
  pipeline::Manager* pipelines = nullptr;
  std::shared_ptr<DerivedCatalog> derived = std::make_shared<DerivedCatalog>();
  // The renderer backend of every session ("cpu" or "cuda", resolved by render::
  // make_renderer at start) and why a better one is not used (empty: none better).
  std::string renderer = "cpu";
  std::string renderer_fallback;
  // Frames split over MPI ranks (`mpirun voxcast serve`, docs/cluster.md): when set, 3D
  // frames of a dataset's own layers (no derived sources) are drawn through it, with the
  // session's renderer and the dataset's index, instead of by the renderer alone.
  render::SplitFrame split_frame;
};

// Render-pool priorities of the session's jobs.
inline constexpr int kRenderInteractive = 30, kRenderFinal = 20, kRenderRefining = 10;
// How much more a 3D layer costs than a 2D one, in the scene cost.
inline constexpr double kVolumeCost = 8;
// The cost of a scene (megapixels x layers, a visible 3D layer counting kVolumeCost).
double scene_cost(const render::Scene& scene);

// A problem the client should hear of on the state channel (docs/protocol.md `warning`).
struct Warning {
  std::string code;  // "chunk_failed"
  std::string message;
};

struct SessionStats {
  std::uint64_t frames = 0, bytes = 0, skipped = 0;
  double render_ms = 0, encode_ms = 0;  // sums over `frames`
};

// One encoded frame, header included, shared with the socket that writes it.
using FrameBytes = std::shared_ptr<const std::vector<std::uint8_t>>;

class Session : public std::enable_shared_from_this<Session> {
 public:
  // A session on `dataset`, encoding with the first codec of `codecs` that works.
  static Result<std::shared_ptr<Session>> create(Engine& engine, int dataset,
                                                 const std::vector<codec::Codec>& codecs);
  ~Session();

  codec::Codec codec() const { return codec_; }
  std::string encoder_name() const;
  std::string encoder_fallback() const;
  json scene_json() const;
  int dataset() const { return dataset_; }

  // Applies a state update; on success returns the scene after it. `seq` must grow.
  Result<json> update(std::uint64_t seq, const json& patch, bool interactive);
  void request_keyframe();

  // Timeline preview (stream/playback.cpp, docs/protocol.md `timeline.play`): the server
  // steps this session's scene along a keyframe timeline at its real speed (times `speed`),
  // interactive frames while it plays and a final one where it stops. Every keyframe is
  // checked first as a state update would be (errors name the keyframe and field).
  // `on_stop` runs once, on a timer thread and outside the session's lock, when it stops
  // by itself: at the end (empty message) or because a step failed (the reason), with the
  // state where it stopped.
  struct PlayState {
    bool playing = false;
    double t = 0, start = 0, end = 0, speed = 1;
    bool loop = false;
  };
  Result<PlayState> play(const json& timeline, std::optional<double> from, bool loop, double speed,
                         std::function<void(PlayState, std::string)> on_stop);
  // Stops a preview where it is (a final frame of that scene). No-op when none plays.
  PlayState pause();
  PlayState play_state() const;

  // The view tools of stream/view_tools.hpp on this session's current scene, from memory
  // only (never waiting for a chunk): the `probe` and `histogram` replies' fields.
  Result<json> probe(const json& request) const;
  Result<json> histogram(const json& request) const;

  // The pixel channel. `send` takes one frame; the socket calls written() once it is out.
  // A new sink replaces the old one and gets a keyframe first. attach() returns the sink's
  // generation: detach() and written() from a replaced sink are ignored.
  // `replaced` runs (once, outside the session's lock) when a newer sink takes over.
  std::uint64_t attach(std::function<void(FrameBytes)> send,
                       std::function<void()> replaced = nullptr);
  void detach(std::uint64_t generation);
  void written(std::uint64_t generation);
  // Stops rendering for good (the server is going away).
  void close();

  SessionStats take_stats();
  // Warnings since the last call (each failed chunk once), for the state channel.
  std::vector<Warning> take_warnings();

 private:
  Session(Engine& engine, int dataset, codec::Codec codec);
  void schedule();  // needs mutex_ held
  void render_job();
  void on_fetch();  // a chunk of the fetch set arrived or failed (an I/O thread)

  Engine& engine_;
  const int dataset_;
  const codec::Codec codec_;
  mutable std::mutex mutex_;
  render::Scene scene_;
  std::uint64_t state_seq_ = 0;
  Clock::time_point state_time_ = Clock::now();
  Clock::time_point interactive_until_{};
  bool dirty_ = true, rendering_ = false, in_flight_ = false, force_key_ = true, closed_ = false;
  bool refine_only_ = false;         // dirty only because chunks arrived
  bool render_interactive_ = false;  // the running render is an interactive frame
  bool refine_armed_ = false;        // a paced refining frame is on its timer
  bool last_refining_ = true;        // the last frame drawn was refining
  std::chrono::milliseconds refine_delay_{25};
  std::atomic<bool> cancel_{false};  // the running render's cancel flag
  std::unique_ptr<data::FetchSet> fetch_;
  std::vector<Warning> warnings_;
  std::function<void(FrameBytes)> sink_;
  std::function<void()> replaced_;
  std::uint64_t sink_generation_ = 0;
  // When the event that made the scene dirty happened (a state update, a keyframe request,
  // a pixel channel joining, chunks arriving): the frame header's server time counts from it.
  Clock::time_point cause_time_ = Clock::now();
  void mark_dirty(bool refine = false);  // needs mutex_ held
  // Checks a scene as a state update would (limits, slices, cost) and makes it the view.
  Status check_scene_locked(const render::Scene& next) const;
  void set_scene_locked(render::Scene next, bool interactive);
  // The running preview, if any (stream/playback.cpp).
  struct Playback {
    render::Timeline timeline;
    double from = 0, speed = 1;
    bool loop = false;
    Clock::time_point started;
    std::uint64_t generation = 0;
    std::function<void(PlayState, std::string)> on_stop;
    bool blend_failed = false;  // a derived source could not be made: said once (logged)
  };
  std::optional<Playback> playback_;
  std::uint64_t playback_generation_ = 0;
  void playback_step(std::uint64_t generation);
  PlayState play_state_locked(Clock::time_point now) const;
  // The preview's scene at t: derived layers' live parameters interpolated (blend_source).
  render::Scene preview_scene_locked(double t);
  // Sources of this session: 0 is the dataset, then derived ones (stream/derived.cpp). The
  // helpers below need mutex_ held.
  struct LayerSource {
    json spec;  // {"pipeline", "input": session source index, "params"}
    // The source in two variants, kept registered while the slot names them: chunks as the
    // input's (3D views), and one plane deep (3D data: 2D views; else the same).
    DerivedCatalog::Handle thick, thin;
    std::uint64_t epoch = 0;  // the last update (derived_epoch_) that named it
  };
  std::vector<LayerSource> derived_;
  std::uint64_t derived_epoch_ = 0;  // bumped per resolution of layers (layer_sources)
  // A slot of derived_ that neither the scene (its layers and their inputs), the update being
  // resolved nor `input` (the new source's, and its chain) names, least recently named
  // first; none while a preview plays.
  std::optional<std::size_t> reusable_derived_slot_locked(int input);
  // The layers' sources (stream/layer_sources.hpp), derived ones made by make_derived.
  LayerSources layer_sources(const json& layers, std::span<const int> current);
  // Layers the patch adds whose source is derived and that name no contrast_limits: limits
  // estimated from their data (stream/derived.cpp).
  void display_new_derived_layers_locked(const json& patch, render::Scene& next) const;
  Result<int> make_derived(const std::string& name, int input, const json& params,
                           const std::string& field);
  // Derived specs -> session source indices; a derived layer's source merges into the one
  // it has in `against` (the scene the patch applies to).
  Result<json> resolve_patch(const json& patch, const render::Scene& against);
  json source_json(int index) const;  // the other way, inputs expanded
  // The source between sources a and b of a timeline at eased fraction u (render::
  // SourceBlend), for the preview: pipeline::interpolate_source in steps of 1/8.
  int blend_source(int a, int b, double u);
  json scene_json_locked() const;
  render::RenderInputs inputs_locked() const;
  std::unique_ptr<render::Renderer> renderer_;
  std::unique_ptr<codec::Encoder> encoder_;  // used by the render job only
  std::string encoder_name_, fallback_;
  int enc_w_ = 0, enc_h_ = 0;
  std::uint32_t frame_seq_ = 0;
  std::vector<int> drawn_levels_;  // the level each layer of the last frame was drawn from
  SessionStats stats_;
};

}  // namespace vx::stream
