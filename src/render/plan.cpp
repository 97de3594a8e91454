// The frame's plan: per layer, the 2D or 3D planning (plan_slice.cpp, plan_volume.cpp), the
// coarser stand-in while finer chunks arrive, and what the frame reports about them.
#include "render/plan.hpp"

#include <algorithm>
#include <cmath>

#include "render/colormap.hpp"

namespace vx::render {

int choose_level(const data::VolumeInfo& info, const std::vector<int>& display_axes,
                 double world_per_pixel) {
  int best = 0;
  for (int l = 0; l < int(info.levels.size()); ++l) {
    double s = 1e300;
    for (int a : display_axes)
      s = std::min(s, info.levels[std::size_t(l)].scale[std::size_t(a)]);
    if (s <= world_per_pixel * 1.0001) best = l;
  }
  return best;
}

Result<AxisMap> map_axes(const data::VolumeInfo& info, const std::vector<std::string>& world) {
  AxisMap m;
  for (std::size_t d = 0; d < info.axes.size(); ++d)
    if (info.axes[d].type == data::AxisType::kChannel) m.channel_axis = int(d);
  for (const auto& name : world) {
    const int a = info.axis_index(name);
    if (a < 0)
      return fail(ErrorCode::kInvalidArgument, "{}: has no axis '{}' of the scene's world",
                  info.location, name);
    m.world_to_source.push_back(a);
  }
  return m;
}

Result<Lut> make_lut(const Layer& layer) {
  VX_ASSIGN(auto cmap, colormap_by_name(layer.colormap));
  Lut lut;
  lut.rgb.resize(std::size_t(kLut) * 3);
  for (int q = 0; q < kLut; ++q) {
    const double t = double(q) / (kLut - 1);
    const double v = layer.gamma == 1 ? t : std::pow(t, layer.gamma);
    const auto& c = cmap.rgb[std::size_t(std::lround(v * 255))];
    for (int k = 0; k < 3; ++k)
      lut.rgb[std::size_t(k) * kLut + std::size_t(q)] = float(c[std::size_t(k)]) / 255.f;
  }
  lut.lo = float(layer.contrast_limits[0]);
  lut.scale = float(kLut - 1) / float(layer.contrast_limits[1] - layer.contrast_limits[0]);
  return lut;
}

namespace {

// A 2D layer at its level, with the coarser stand-in where its chunks are missing.
Result<LayerPlan> plan_slice(const Scene& scene, const RenderInputs& in, const Layer& layer,
                             const RenderOptions& opt) {
  LayerPlan out;
  VX_ASSIGN(out.level, slice_level(scene, in, layer));
  const int level = out.level;
  VX_ASSIGN(auto plan, plan_slice_layer(scene, in, layer, level,
                                        opt.wait ? Fetch::kWait : Fetch::kRequest, opt));
  if (!plan) return out;  // the slice misses the data
  if (!plan->complete) {
    // The finest coarser level that is all in memory stands in for the missing chunks;
    // failing that, the coarsest level, requested now (it is small).
    const int levels = int(in.data.sources[std::size_t(layer.source)].levels.size());
    for (int l = level + 1; l < levels && !plan->fallback; ++l) {
      const bool last = l == levels - 1;
      VX_ASSIGN(auto fb, plan_slice_layer(scene, in, layer, l,
                                          last ? Fetch::kRequest : Fetch::kCachedOnly, opt));
      if (fb && (fb->complete || last))
        plan->fallback = std::make_unique<SlicePlan>(std::move(*fb));
    }
  }
  out.slice = std::move(plan);
  return out;
}

}  // namespace

Result<RenderPlan> make_plan(const Scene& scene, const RenderInputs& in, const RenderOptions& opt,
                             BrickStats& stats) {
  RenderPlan plan;
  plan.width = scene.canvas.width;
  plan.height = scene.canvas.height;
  plan.background = scene.canvas.background;
  plan.format = opt.format;
  plan.volume = scene.dims.ndisplay == 3;
  plan.interactive = plan.volume && opt.interactive;
  plan.cancel = opt.cancel;
  for (const auto& layer : scene.layers) {
    LayerPlan lp;
    if (!layer.visible) {
      plan.layers.push_back(std::move(lp));
      continue;
    }
    if (plan.volume) {
      VX_ASSIGN(lp.volume, plan_volume_layer(scene, in, layer, opt, stats));
      if (lp.volume) lp.level = lp.volume->g.level;
    } else {
      VX_ASSIGN(lp, plan_slice(scene, in, layer, opt));
    }
    plan.layers.push_back(std::move(lp));
  }
  const int W = plan.width, H = plan.height;
  if (opt.format != PixelFormat::kRgba8 && (W % 2 || H % 2))
    return fail(ErrorCode::kInvalidArgument,
                "field 'canvas': {}x{} is odd; 4:2:0 video needs even sizes", W, H);
  return plan;
}

void describe_frame(const RenderPlan& plan, Frame& frame, const std::vector<bool>& drawn) {
  frame.width = plan.width;
  frame.height = plan.height;
  frame.format = plan.format;
  frame.interactive = plan.interactive;
  for (std::size_t i = 0; i < plan.layers.size(); ++i) {
    const auto& lp = plan.layers[i];
    frame.levels.push_back(lp.level);
    if (lp.volume && (drawn.empty() || drawn[i])) {
      const auto& v = *lp.volume;
      frame.refining |= v.refining;
      frame.failed.insert(frame.failed.end(), v.failed.begin(), v.failed.end());
      frame.bricks += v.bricks_in;
      frame.bricks_drawn += v.bricks_drawn;
    }
    if (lp.slice) {
      const auto& p = *lp.slice;
      // Refining while something is on its way; chunks that failed will not come.
      frame.refining |= p.pending > 0 || (p.fallback && p.fallback->pending > 0);
      for (const SlicePlan* q : {&p, static_cast<const SlicePlan*>(p.fallback.get())})
        if (q) frame.failed.insert(frame.failed.end(), q->failed.begin(), q->failed.end());
    }
  }
}

}  // namespace vx::render
