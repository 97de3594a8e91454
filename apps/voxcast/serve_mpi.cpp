#include "serve_mpi.hpp"

#include <fmt/format.h>

#include <csignal>
#include <nlohmann/json.hpp>

#include "core/log.hpp"
#include "render/scene.hpp"

namespace vx::app {

namespace {

using json = nlohmann::json;

// A follower has no clients to wait for: it waits for the next frame as long as the server
// is idle, and leaves with rank 0 (its stop message, or mpirun ending the job).
constexpr std::chrono::hours kIdle{24 * 365};

// What both sides draw a split frame with: the renderer's own options for the final
// picture, blocking reads (every rank's part is complete, so rank 0's "not refining" holds
// for all), and no cancel (a rank that left the collective would strand the others).
render::RenderOptions split_options(render::RenderOptions opt, cluster::World& world) {
  opt.compositor = &world;
  opt.wait = true;
  opt.fetch = nullptr;
  opt.cancel = nullptr;
  return opt;
}

}  // namespace

Result<render::Frame> FrameLeader::render(render::Renderer& renderer, int dataset,
                                          const render::Scene& scene,
                                          const render::RenderInputs& in,
                                          render::RenderOptions opt) {
  std::unique_lock lock(mutex_);
  if (broken_ || stopped_) {
    lock.unlock();
    return renderer.render(scene, in, opt);
  }
  std::string msg = json{
      {"dataset", dataset},
      {"scene", render::to_json(scene)},
      {"interactive", opt.interactive},
      {"format",
       int(opt.format)}}.dump();
  auto st = world_.broadcast(msg);
  auto frame = st ? renderer.render(scene, in, split_options(opt, world_))
                  : Result<render::Frame>(tl::unexpected(st.error()));
  ++frames_;
  if (!frame && frame.error().code != ErrorCode::kCancelled) {
    // An MPI error leaves the ranks in an unknown state: no more collectives. The job ends
    // with MPI_Abort when this process exits (cluster::World).
    broken_ = true;
    VX_LOG(error, "serve.cluster_failed", "frames={} error={} then=rank 0 draws every frame alone",
           frames_, log_quote(frame.error().message));
  }
  return frame;
}

void FrameLeader::stop() {
  std::lock_guard lock(mutex_);
  if (stopped_) return;
  stopped_ = true;
  if (broken_) return;
  std::string bye;  // empty: leave
  if (auto st = world_.broadcast(bye); !st)
    VX_LOG(warn, "serve.cluster_stop", "error={}", log_quote(st.error().message));
  VX_LOG(info, "serve.part", "rank=0 ranks={} frames={} bytes_sent={}", world_.size(), frames_,
         world_.counters().bytes_sent);
}

render::SplitFrame FrameLeader::as_split_frame() {
  return [this](render::Renderer& r, int dataset, const render::Scene& s,
                const render::RenderInputs& in,
                render::RenderOptions opt) { return render(r, dataset, s, in, opt); };
}

int follow_frames(cluster::World& world, data::ChunkCache& cache,
                  const std::vector<data::SourceId>& datasets) {
  // Ctrl-C or a SIGTERM from mpirun is rank 0's to act on: it stops the server and then
  // tells this rank to leave, so that every rank finalizes MPI together.
  std::signal(SIGINT, SIG_IGN);
  std::signal(SIGTERM, SIG_IGN);
  auto renderer = render::make_cpu_renderer();
  const auto misses_before = cache.counters().misses;
  std::uint64_t frames = 0;
  for (;;) {
    std::string msg;
    if (auto st = world.broadcast(msg, kIdle); !st) {
      VX_LOG(error, "serve.follow_failed", "rank={} error={}", world.rank(),
             log_quote(st.error().message));
      return 1;
    }
    if (msg.empty()) break;
    const auto j = json::parse(msg, nullptr, false);
    const int d = j.is_object() ? j.value("dataset", -1) : -1;
    if (d < 0 || d >= int(datasets.size()) || !j.contains("scene")) {
      VX_LOG(error, "serve.follow_failed", "rank={} error={}", world.rank(),
             log_quote(
                 fmt::format("a frame from rank 0 this rank cannot read ({} bytes)", msg.size())));
      return 1;
    }
    render::RenderInputs in{&cache,
                            {datasets[std::size_t(d)]},
                            render::SceneData{{cache.source(datasets[std::size_t(d)]).info()}}};
    // The whole scene as a patch on a base without layers: every field is rank 0's.
    auto base = render::default_scene(in.data);
    base.layers.clear();
    auto scene = render::apply_patch(base, j["scene"], in.data);
    if (!scene) {
      VX_LOG(error, "serve.follow_failed", "rank={} error={}", world.rank(),
             log_quote(scene.error().message));
      return 1;
    }
    render::RenderOptions opt;
    opt.interactive = j.value("interactive", false);
    const int format = j.value("format", 0);  // what the leader's encoder takes
    opt.format = format == int(render::PixelFormat::kI420)   ? render::PixelFormat::kI420
                 : format == int(render::PixelFormat::kNV12) ? render::PixelFormat::kNV12
                                                             : render::PixelFormat::kRgba8;
    auto frame = renderer->render(*scene, in, split_options(opt, world));
    if (!frame) {
      VX_LOG(error, "serve.follow_failed", "rank={} frame={} error={}", world.rank(), frames,
             log_quote(frame.error().message));
      return 1;
    }
    renderer->recycle(std::move(*frame));
    ++frames;
  }
  VX_LOG(info, "serve.part", "rank={} ranks={} frames={} chunks_read={} bytes_sent={}",
         world.rank(), world.size(), frames, cache.counters().misses - misses_before,
         world.counters().bytes_sent);
  return 0;
}

}  // namespace vx::app
