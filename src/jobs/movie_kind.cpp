// The "movie" job kind: a keyframe timeline -> movie.mp4 or movie.webm (docs/movies.md).
#include "jobs/kind.hpp"
#include "jobs/movie.hpp"
#include "stream/view_sources.hpp"

namespace vx::jobs {

namespace {

class MovieKind final : public JobKind {
 public:
  MovieKind(DatasetLookup datasets, render::Compositor* compositor)
      : datasets_(std::move(datasets)), compositor_(compositor) {
    using T = Param::Type;
    const double inf = INFINITY;
    params_ = {
        {"dataset", T::kInteger, "Index of the dataset (GET /api/v1/datasets)", 0, 0, 1000},
        {"timeline",
         T::kObject,
         "The keyframe timeline (docs/movies.md)",
         nullptr,
         -inf,
         inf,
         {},
         true},
        {"fps", T::kInteger, "Frames per second", 30, kMinFps, kMaxFps},
        {"width", T::kInteger, "Frame width, pixels (even)", 1920, kMinMovieSide, kMaxMovieSide},
        {"height", T::kInteger, "Frame height, pixels (even)", 1080, kMinMovieSide, kMaxMovieSide},
        {"quality", T::kInteger,
         "x264 CRF scale: 0 (best) to 51; 18 is visually lossless (WebM maps it onto VP9's 0..63)",
         18, 0, codec::kMaxMovieQuality},
        {"format",
         T::kString,
         "mp4 (H.264, plays everywhere) or webm (VP9: smaller, slower to encode)",
         "mp4",
         -inf,
         inf,
         {"mp4", "webm"}},
        nodes_param(),
    };
  }
  std::string name() const override { return "movie"; }
  std::string description() const override {
    return "A movie of a keyframe timeline, every frame at final quality: H.264 in MP4 "
           "(movie.mp4) or VP9 in WebM (movie.webm)";
  }
  const std::vector<Param>& params() const override { return params_; }

  Result<json> validate(const json& p) const override {
    VX_TRY(check_params(p, params_));
    VX_ASSIGN(auto plan, prepare(p));
    return plan.dataset.brief;
  }

  Result<std::vector<std::string>> run(const json& p, JobContext& job) const override {
    VX_ASSIGN(auto plan, prepare(p));
    MovieProgress progress;
    progress.cancel = &job.cancelled();
    progress.on_frame = [&job](int done, int total) {
      job.progress(std::uint64_t(done), std::uint64_t(total));
    };
    job.progress(0, std::uint64_t(movie_frames(plan.timeline, plan.options.fps)));
    const std::string name = movie_file_name(plan.options.format);
    // Derived layers whose parameters move between keyframes: a source per frame, made here.
    FrameScene frame_scene;
    if (plan.sources)
      frame_scene = [&plan](double t) {
        return render::scene_at(plan.timeline, t, [&plan](int a, int b, double u) {
          return plan.sources->blend(a, b, u, plan.dataset.inputs);
        });
      };
    VX_TRY(render_movie(plan.timeline, plan.dataset.inputs, plan.options, job.dir() + "/" + name,
                        progress, frame_scene));
    return std::vector<std::string>{name};
  }

 private:
  struct Plan {
    Dataset dataset;
    render::Timeline timeline;
    MovieOptions options;
    // The derived layers' sources, made in dataset.inputs (null without pipelines).
    std::unique_ptr<stream::ViewSources> sources;
  };

  Result<Plan> prepare(const json& p) const {
    Plan plan;
    auto& o = plan.options;
    o.fps = p.value("fps", 30);
    o.width = p.value("width", 1920);
    o.height = p.value("height", 1080);
    o.quality = p.value("quality", 18);
    // check_params took only the listed choices.
    o.format = codec::movie_format_from_string(p.value("format", "mp4"))
                   .value_or(codec::MovieFormat::kMp4);
    o.compositor = compositor_;
    for (const auto& [name, v] : {std::pair{"width", o.width}, std::pair{"height", o.height}})
      if (v % 2)
        return fail(ErrorCode::kInvalidArgument,
                    "field 'params.{}': {} is odd (yuv420p needs even sizes)", name, v);
    VX_ASSIGN(plan.dataset, datasets_(p.value("dataset", 0)));
    const auto& sd = plan.dataset.inputs.data;
    // The dataset's default view framed for the movie's size, with its layers (contrast
    // estimated): what `voxcast render --size WxH` starts from too.
    auto base = render::default_scene(sd, o.width, o.height);
    if (base.layers.size() == plan.dataset.defaults.layers.size())
      base.layers = plan.dataset.defaults.layers;
    // Derived layers (pipelines) resolve as in `voxcast render` view files, keyframe by
    // keyframe: errors name the keyframe and the field.
    render::KeyframeHook hook;
    if (plan.dataset.pipelines) {
      plan.sources = std::make_unique<stream::ViewSources>(*plan.dataset.pipelines);
      hook = [&plan](const json& doc, const render::Scene& prev, bool full) {
        return plan.sources->resolve_keyframe(doc, prev, full, plan.dataset.inputs);
      };
    }
    VX_ASSIGN(plan.timeline,
              render::parse_timeline(p.at("timeline"), base, sd, "field 'params.timeline'", hook));
    if (auto st = check_movie(plan.timeline, o); !st)
      return tl::unexpected(with_context(st.error(), "field 'params'"));
    return plan;
  }

  DatasetLookup datasets_;
  render::Compositor* compositor_ = nullptr;
  std::vector<Param> params_;
};

}  // namespace

std::shared_ptr<const JobKind> make_movie_kind(DatasetLookup datasets,
                                               render::Compositor* compositor) {
  return std::make_shared<MovieKind>(std::move(datasets), compositor);
}

}  // namespace vx::jobs
