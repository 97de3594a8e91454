// The "orbit" job kind: params -> render_orbit() (docs/orbit.md, docs/protocol.md "Jobs").
#include "jobs/kind.hpp"
#include "jobs/orbit.hpp"
#include "render/select.hpp"
#include "stream/view_sources.hpp"

namespace vx::jobs {

namespace {

class OrbitKind final : public JobKind {
 public:
  OrbitKind(DatasetLookup datasets, std::string component_js, render::Compositor* compositor)
      : datasets_(std::move(datasets)),
        component_js_(std::move(component_js)),
        compositor_(compositor) {
    using T = Param::Type;
    params_ = {
        {"dataset", T::kInteger, "Index of the dataset (GET /api/v1/datasets)", 0, 0, 1000},
        {"view", T::kObject, "Scene JSON patch on the dataset's default 3D view (canvas ignored)"},
        {"columns", T::kInteger, "Yaw steps", 30, 1, 100},
        {"rows", T::kInteger, "Pitch steps", 30, 1, 100},
        {"size", T::kInteger, "Tile side, pixels", 256, 16, 1024},
        {"format", T::kString, "Sheet image format", "webp", -INFINITY, INFINITY, {"webp", "jpeg"}},
        {"quality", T::kInteger, "1..100 (webp 100: lossless)", 85, 1, 100},
        {"yaw", T::kNumberPair, "First and last yaw, degrees", json::array({-60, 60}), -720, 720},
        {"pitch", T::kNumberPair, "First and last pitch, degrees", json::array({-45, 45}), -90, 90},
        nodes_param(),
        {"renderer",
         T::kString,
         "Renderer backend (docs/gpu.md)",
         "auto",
         -INFINITY,
         INFINITY,
         {"auto", "cpu", "cuda"}},
    };
  }
  std::string name() const override { return "orbit"; }
  std::string description() const override {
    return "A yaw x pitch grid of 3D views packed into sprite sheets, with orbit.json and a "
           "self-contained index.html (<voxcast-orbit>)";
  }
  const std::vector<Param>& params() const override { return params_; }

  Result<json> validate(const json& p) const override {
    VX_TRY(check_params(p, params_));
    const double views = double(p.value("columns", 30)) * double(p.value("rows", 30));
    const double side = double(p.value("size", 256));
    if (views * side * side > double(kMaxOrbitPixels))
      return fail(ErrorCode::kInvalidArgument,
                  "field 'params.size': {} views of {}x{} px is over the {} Mpx an orbit may hold",
                  views, side, side, kMaxOrbitPixels >> 20);
    if (p.value("renderer", std::string("auto")) == "cuda")
      if (auto ok = render::cuda_renderer_available(); !ok)
        return fail(ErrorCode::kInvalidArgument,
                    "field 'params.renderer': renderer 'cuda' is not available here: {}",
                    ok.error().message);
    VX_ASSIGN(auto d, datasets_(p.value("dataset", 0)));
    std::unique_ptr<stream::ViewSources> sources;
    VX_TRY(base_scene(d, p, sources));  // the view applies to the dataset
    return d.brief;
  }

  Result<std::vector<std::string>> run(const json& p, JobContext& job) const override {
    VX_ASSIGN(auto d, datasets_(p.value("dataset", 0)));
    std::unique_ptr<stream::ViewSources> sources;  // the view's derived layers, for the run
    VX_ASSIGN(auto scene, base_scene(d, p, sources));
    OrbitOptions o;
    o.columns = p.value("columns", 30);
    o.rows = p.value("rows", 30);
    o.size = p.value("size", 256);
    o.format = p.value("format", std::string("webp"));
    o.quality = p.value("quality", 85);
    if (p.contains("yaw")) o.yaw_min = p["yaw"].at(0), o.yaw_max = p["yaw"].at(1);
    if (p.contains("pitch")) o.pitch_min = p["pitch"].at(0), o.pitch_max = p["pitch"].at(1);
    o.component_js = component_js_;
    o.renderer = p.value("renderer", std::string("auto"));
    o.compositor = compositor_;
    OrbitProgress progress;
    progress.cancel = &job.cancelled();
    progress.on_view = [&job](int done, int total) {
      job.progress(std::uint64_t(done), std::uint64_t(total));
    };
    job.progress(0, std::uint64_t(o.columns) * std::uint64_t(o.rows));  // the total, at once
    VX_ASSIGN(auto result, render_orbit(scene, d.inputs, o, job.dir(), progress));
    return result.files;
  }

 private:
  // The dataset's defaults framed for an orbit, its `view` patch on top. Derived layers
  // (pipelines) in the view resolve as in `voxcast render` view files, their sources made
  // in d.inputs by `sources` (where the dataset comes with pipelines: a server's).
  static Result<render::Scene> base_scene(Dataset& d, const json& p,
                                          std::unique_ptr<stream::ViewSources>& sources) {
    const auto& sd = d.inputs.data;
    if (sd.axis_names().size() < 3)
      return fail(ErrorCode::kInvalidArgument,
                  "field 'params.dataset': an orbit needs three spatial axes");
    auto scene = orbit_scene(sd, p.value("size", 256));
    for (std::size_t i = 0; i < scene.layers.size() && i < d.defaults.layers.size(); ++i)
      scene.layers[i].contrast_limits = d.defaults.layers[i].contrast_limits;
    if (p.contains("view")) {
      auto view = p["view"];
      if (view.is_object()) view.erase("canvas");  // the tile size decides
      if (d.pipelines && view.is_object()) {
        sources = std::make_unique<stream::ViewSources>(*d.pipelines);
        if (auto st = sources->resolve(view, d.inputs); !st)
          return tl::unexpected(with_context(st.error(), "field 'params.view'"));
      }
      auto patched = render::apply_patch(scene, view, d.inputs.data);
      if (!patched) return tl::unexpected(with_context(patched.error(), "field 'params.view'"));
      scene = std::move(*patched);
    }
    return scene;
  }

  DatasetLookup datasets_;
  std::string component_js_;
  render::Compositor* compositor_ = nullptr;
  std::vector<Param> params_;
};

}  // namespace

std::shared_ptr<const JobKind> make_orbit_kind(DatasetLookup datasets, std::string component_js,
                                               render::Compositor* compositor) {
  return std::make_shared<OrbitKind>(std::move(datasets), std::move(component_js), compositor);
}

}  // namespace vx::jobs
