// Planning a 2D layer (backend-neutral): the level whose voxels match the zoom on the two
// displayed axes (within the memory budget), the chunk box the slice crosses, fetching it
// (waiting, or asking without waiting and prefetching the neighbours once the view is all
// here), and the mapping of screen pixels onto voxels along each displayed axis.
#include <algorithm>
#include <cmath>

#include "render/plan.hpp"

namespace vx::render {

// The level whose voxels match the zoom on the displayed axes.
// Memory is bounded as in 3D: when the chunks the view touches at that level, for every
// visible layer, would take more than half the cache budget, a coarser level draws it (a
// view that cannot fit would evict its own chunks while they arrive, and never finish).
Result<int> slice_level(const Scene& scene, const RenderInputs& in, const Layer& layer) {
  const auto world = in.data.axis_names();
  const int n = int(world.size());
  const auto& info = in.data.sources.at(std::size_t(layer.source));
  VX_ASSIGN(auto axes, map_axes(info, world));
  const int ay = axes.world_to_source[std::size_t(scene.dims.order[std::size_t(n - 2)])];
  const int ax = axes.world_to_source[std::size_t(scene.dims.order[std::size_t(n - 1)])];
  int level = choose_level(info, {ay, ax}, 1.0 / scene.camera.zoom);
  const auto layers = std::count_if(scene.layers.begin(), scene.layers.end(),
                                    [](const Layer& l) { return l.visible; });
  const double budget = 0.5 * double(in.cache->budget_bytes());
  for (; level + 1 < int(info.levels.size()); ++level) {
    const auto& lv = info.levels[std::size_t(level)];
    auto across = [&](int a, int pixels) {
      const double voxels = pixels / scene.camera.zoom / lv.scale[std::size_t(a)];
      const double all = double(lv.grid()[std::size_t(a)]);
      return std::min(all, std::ceil(voxels / double(lv.chunks[std::size_t(a)])) + 1);
    };
    const double bytes = across(ay, scene.canvas.height) * across(ax, scene.canvas.width) *
                         double(info.chunk_bytes(level)) * double(std::max<long>(1, layers));
    if (bytes <= budget) break;
  }
  return level;
}

// Plans one layer at `level`, or nullopt when the slice misses the data.
Result<std::optional<SlicePlan>> plan_slice_layer(const Scene& scene, const RenderInputs& in,
                                                  const Layer& layer, int level, Fetch fetch,
                                                  const RenderOptions& opt) {
  const int W = scene.canvas.width, H = scene.canvas.height;
  const auto world = in.data.axis_names();
  const int n = int(world.size());
  const int wy = scene.dims.order[std::size_t(n - 2)], wx = scene.dims.order[std::size_t(n - 1)];
  const double zoom = scene.camera.zoom;
  const auto& info = in.data.sources.at(std::size_t(layer.source));
  VX_ASSIGN(auto axes, map_axes(info, world));
  const int ay = axes.world_to_source[std::size_t(wy)], ax = axes.world_to_source[std::size_t(wx)];

  const auto& lv = info.levels[std::size_t(level)];
  const auto nd = lv.shape.size();
  std::vector<std::int64_t> stride(nd, 1);  // element strides inside a chunk
  for (int d = int(nd) - 2; d >= 0; --d)
    stride[std::size_t(d)] = stride[std::size_t(d) + 1] * lv.chunks[std::size_t(d) + 1];

  SlicePlan p;
  p.level = level;
  p.dtype = info.dtype;
  p.linear = layer.interpolation == Interpolation::kLinear;
  data::Index lo_chunk{}, hi_chunk{};  // the chunk box the view touches
  for (int k = 0; k < n; ++k) {
    const auto a = std::size_t(axes.world_to_source[std::size_t(k)]);
    const double t = lv.translation[a], s = lv.scale[a];
    if (k == wy || k == wx) {
      const int pixels = k == wy ? H : W;
      const double c = scene.camera.center[k == wy ? 1 : 2];
      const double u0 = (c + (0.5 - pixels / 2.0) / zoom - t) / s;
      const double u1 = (c + (pixels - 0.5 - pixels / 2.0) / zoom - t) / s;
      const auto lo = std::clamp<std::int64_t>(std::int64_t(std::floor(std::min(u0, u1))) - 1, 0,
                                               lv.shape[a] - 1);
      const auto hi = std::clamp<std::int64_t>(std::int64_t(std::ceil(std::max(u0, u1))) + 1, 0,
                                               lv.shape[a] - 1);
      lo_chunk[a] = lo / lv.chunks[a];
      hi_chunk[a] = hi / lv.chunks[a];
    } else {
      const auto idx = std::int64_t(std::llround((scene.dims.point[std::size_t(k)] - t) / s));
      if (idx < 0 || idx >= lv.shape[a])
        return std::optional<SlicePlan>{};  // the slice misses the data
      lo_chunk[a] = hi_chunk[a] = idx / lv.chunks[a];
      p.base += (idx % lv.chunks[a]) * stride[a];
    }
  }
  if (axes.channel_axis >= 0) {
    const auto a = std::size_t(axes.channel_axis);
    lo_chunk[a] = hi_chunk[a] = layer.channel / lv.chunks[a];
    p.base += (layer.channel % lv.chunks[a]) * stride[a];
  }
  const auto gy = hi_chunk[std::size_t(ay)] - lo_chunk[std::size_t(ay)] + 1;
  p.gx = int(hi_chunk[std::size_t(ax)] - lo_chunk[std::size_t(ax)] + 1);
  std::vector<data::Index> indices;
  for (std::int64_t cy = 0; cy < gy; ++cy)
    for (int cx = 0; cx < p.gx; ++cx) {
      data::Index idx = lo_chunk;
      idx[std::size_t(ay)] += cy;
      idx[std::size_t(ax)] += cx;
      indices.push_back(idx);
    }
  const auto id = in.sources.at(std::size_t(layer.source));
  // Distance of each chunk's centre from the screen's centre (0 centre, 1 corner), so that
  // reads start in the middle of the view.
  std::vector<double> centre;
  centre.reserve(indices.size());
  auto offset = [&](std::size_t a, int pixels, double c, std::int64_t i) {
    const double v = (double(i) + 0.5) * double(lv.chunks[a]);
    return (lv.translation[a] + lv.scale[a] * v - c) * zoom / (pixels / 2.0);
  };
  for (const auto& idx : indices) {
    const double dy = offset(std::size_t(ay), H, scene.camera.center[1], idx[std::size_t(ay)]);
    const double dx = offset(std::size_t(ax), W, scene.camera.center[2], idx[std::size_t(ax)]);
    centre.push_back(std::sqrt((dy * dy + dx * dx) / 2));
  }
  auto got = fetch_chunks(in, opt, id, level, indices, centre, fetch);
  if (fetch == Fetch::kRequest && got.pending == 0 && opt.fetch) {
    // The view is all here: read what a user looks at next, while the cores are free. The
    // ring of tiles around the view, then the chunk planes before and after the slice.
    std::vector<data::Index> more;
    std::vector<double> dist;
    const auto grid = lv.grid();
    const auto ya = std::size_t(ay), xa = std::size_t(ax);
    auto add = [&](data::Index idx, double d) {
      for (std::size_t a = 0; a < nd; ++a)
        if (idx[a] < 0 || idx[a] >= grid[a]) return;
      more.push_back(idx);
      dist.push_back(d);
    };
    for (auto cy = lo_chunk[ya] - 1; cy <= hi_chunk[ya] + 1; ++cy)
      for (auto cx = lo_chunk[xa] - 1; cx <= hi_chunk[xa] + 1; ++cx) {
        if (cy >= lo_chunk[ya] && cy <= hi_chunk[ya] && cx >= lo_chunk[xa] && cx <= hi_chunk[xa])
          continue;
        data::Index idx = lo_chunk;
        idx[ya] = cy;
        idx[xa] = cx;
        add(idx, 1.0);
      }
    const bool computed =
        dynamic_cast<const data::ComputedSource*>(&in.cache->source(id)) != nullptr;
    for (int k = 0; k < n; ++k) {
      const auto a = std::size_t(axes.world_to_source[std::size_t(k)]);
      if (k == wy || k == wx) continue;
      // A computed source in one-plane chunks (a derived layer in a 2D view): the planes
      // around are computed when the view steps there, one plane each; computing both ahead
      // would triple the work of every parameter change (docs/benchmarks.md, "Live
      // parameter change"). Stored data is still read ahead.
      if (lv.chunks[a] == 1 && computed) continue;
      for (const int step : {1, -1})
        for (std::size_t i = 0; i < indices.size(); ++i) {
          data::Index idx = indices[i];
          idx[a] += step;
          add(idx, 1.0 + centre[i]);
        }
    }
    prefetch_chunks(in, opt, id, level, more, dist, in.cache->budget_bytes() / 8);
  }
  p.complete = got.complete();
  p.pins = std::move(got.pins);
  p.pending = got.pending;
  p.failed = std::move(got.failed);
  auto axis = [&](std::size_t a, int pixels, double center) {
    return SliceAxis{pixels,      center,       zoom,      lv.translation[a], lv.scale[a],
                     lv.shape[a], lv.chunks[a], stride[a], lo_chunk[a]};
  };
  p.gy = int(gy);
  p.y = axis(std::size_t(ay), H, scene.camera.center[1]);
  p.x = axis(std::size_t(ax), W, scene.camera.center[2]);
  VX_ASSIGN(p.lut, make_lut(layer));
  p.alpha = float(layer.opacity);
  p.blend = layer.blending;
  return std::optional<SlicePlan>(std::move(p));
}

}  // namespace vx::render
