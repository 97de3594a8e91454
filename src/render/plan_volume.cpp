// Planning a 3D layer (backend-neutral): the level (from the screen-space voxel footprint,
// within the memory budget), the bricks the view needs (the volume clipped to the view's
// frustum), fetching them (waiting, or drawing from a coarser cached level while they
// arrive), and their value ranges for empty-space skipping.
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "render/dtype.hpp"
#include "render/plan.hpp"

namespace vx::render {

std::array<float, 2> BrickStats::get(data::SourceId id, int level, const data::Index& index,
                                     const data::ChunkPin& pin, data::DType dtype) {
  const data::ChunkKey key{id, level, index};
  {
    std::lock_guard lock(mutex_);
    if (auto it = map_.find(key); it != map_.end()) return it->second;
  }
  std::array<float, 2> r{std::numeric_limits<float>::max(), std::numeric_limits<float>::lowest()};
  with_dtype(dtype, [&]<class T>() {
    const auto v = pin.as<T>();
    T lo = v.empty() ? T(0) : v[0], hi = lo;
    for (const T x : v) {  // vectorized min/max
      lo = x < lo ? x : lo;
      hi = x > hi ? x : hi;
    }
    r = {float(lo), float(hi)};
  });
  std::lock_guard lock(mutex_);
  if (map_.size() > 1'000'000) map_.clear();
  map_.emplace(key, r);
  return r;
}

namespace {

double dot(const Vec3& a, const Vec3& b) {
  return a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
}

// The layer's source at `level` through the displayed axes, or nullopt when the point on
// the other axes is outside the data.
std::optional<Geom> make_geom(const Scene& scene, const data::VolumeInfo& info, const AxisMap& axes,
                              const Layer& layer, int level) {
  const int n = int(axes.world_to_source.size());
  const auto& lv = info.levels[std::size_t(level)];
  const auto nd = lv.shape.size();
  std::vector<std::int64_t> stride(nd, 1);
  for (int d = int(nd) - 2; d >= 0; --d)
    stride[std::size_t(d)] = stride[std::size_t(d) + 1] * lv.chunks[std::size_t(d) + 1];
  Geom g;
  g.level = level;
  g.dtype = info.dtype;
  for (int k = 0; k < n; ++k) {
    const auto a = std::size_t(axes.world_to_source[std::size_t(k)]);
    const auto pos = std::find(scene.dims.order.end() - 3, scene.dims.order.end(), k);
    if (pos != scene.dims.order.end()) {
      const auto i = std::size_t(pos - (scene.dims.order.end() - 3));
      g.axis[i] = int(a);
      g.scale[i] = lv.scale[a];
      g.trans[i] = lv.translation[a];
      g.n[i] = lv.shape[a];
      g.chunk[i] = lv.chunks[a];
      g.stride[i] = stride[a];
      continue;
    }
    const auto idx = std::int64_t(
        std::llround((scene.dims.point[std::size_t(k)] - lv.translation[a]) / lv.scale[a]));
    if (idx < 0 || idx >= lv.shape[a]) return std::nullopt;
    g.fixed[a] = idx / lv.chunks[a];
    g.base += (idx % lv.chunks[a]) * stride[a];
  }
  if (axes.channel_axis >= 0) {
    const auto a = std::size_t(axes.channel_axis);
    g.fixed[a] = layer.channel / lv.chunks[a];
    g.base += (layer.channel % lv.chunks[a]) * stride[a];
  }
  return g;
}

// The bounding box, in voxel coordinates, of the part of the volume the camera sees (the
// box clipped by the four sides of the view, widened by `margin` pixels, and, for
// perspective, by the plane in front of the eye): the box of the vertices of that convex
// polytope, found as the feasible intersections of its planes taken three at a time.
std::optional<std::pair<Vec3, Vec3>> visible_box(const Projection& proj, const Geom& g, int W,
                                                 int H, double margin) {
  struct Plane {
    Vec3 a;
    double b;  // a . p >= b, p in voxel coordinates
  };
  std::vector<Plane> planes;
  for (int i = 0; i < 3; ++i) {
    Vec3 e{};
    e[std::size_t(i)] = 1;
    planes.push_back({e, -0.5});
    e[std::size_t(i)] = -1;
    planes.push_back({e, -(double(g.n[std::size_t(i)]) - 0.5)});
  }
  // A world half-space a . w >= b becomes (a * scale) . p >= b - a . trans.
  auto add_world = [&](const Vec3& a, double b) {
    planes.push_back(
        {{a[0] * g.scale[0], a[1] * g.scale[1], a[2] * g.scale[2]}, b - dot(a, g.trans)});
  };
  const auto& B = proj.basis();
  const double hw = W / 2.0 + margin, hh = H / 2.0 + margin, z = proj.zoom();
  if (!proj.perspective()) {
    const auto& c = proj.center();
    for (double s : {1.0, -1.0}) {
      add_world({s * B.right[0], s * B.right[1], s * B.right[2]}, s * dot(c, B.right) - hw / z);
      add_world({s * B.up[0], s * B.up[1], s * B.up[2]}, s * dot(c, B.up) - hh / z);
    }
  } else {
    const auto& e = proj.eye();
    const double f = z * proj.distance();
    for (double s : {1.0, -1.0}) {
      Vec3 a, b;
      for (std::size_t k = 0; k < 3; ++k) {
        a[k] = hw * B.view[k] + s * f * B.right[k];
        b[k] = hh * B.view[k] + s * f * B.up[k];
      }
      add_world(a, dot(a, e));
      add_world(b, dot(b, e));
    }
    add_world(B.view, dot(B.view, e) + 1e-3 * proj.distance());
  }
  Vec3 lo{1e300, 1e300, 1e300}, hi{-1e300, -1e300, -1e300};
  bool any = false;
  const std::size_t np = planes.size();
  for (std::size_t i = 0; i < np; ++i)
    for (std::size_t j = i + 1; j < np; ++j)
      for (std::size_t k = j + 1; k < np; ++k) {
        const Vec3 &a = planes[i].a, &b = planes[j].a, &c = planes[k].a;
        const double det = a[0] * (b[1] * c[2] - b[2] * c[1]) - a[1] * (b[0] * c[2] - b[2] * c[0]) +
                           a[2] * (b[0] * c[1] - b[1] * c[0]);
        if (std::abs(det) < 1e-12) continue;
        // Cramer's rule for a . p = bi, b . p = bj, c . p = bk.
        const double r[3] = {planes[i].b, planes[j].b, planes[k].b};
        Vec3 p;
        for (int col = 0; col < 3; ++col) {
          double m[3][3] = {{a[0], a[1], a[2]}, {b[0], b[1], b[2]}, {c[0], c[1], c[2]}};
          for (int row = 0; row < 3; ++row)
            m[row][col] = r[row];
          p[std::size_t(col)] = (m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) -
                                 m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0]) +
                                 m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])) /
                                det;
        }
        bool inside = true;
        for (const auto& pl : planes)
          if (dot(pl.a, p) < pl.b - 1e-6 * (1 + std::abs(pl.b))) {
            inside = false;
            break;
          }
        if (!inside) continue;
        any = true;
        for (std::size_t d = 0; d < 3; ++d) {
          lo[d] = std::min(lo[d], p[d]);
          hi[d] = std::max(hi[d], p[d]);
        }
      }
  if (!any) return std::nullopt;
  return std::make_pair(lo, hi);
}

// The bricks inside the visible box whose projection reaches the screen.
std::vector<I3> visible_bricks(const Projection& proj, const Geom& g, const Vec3& lo,
                               const Vec3& hi, int W, int H, double margin, I3& blo, I3& bhi) {
  for (std::size_t d = 0; d < 3; ++d) {
    const auto v0 = std::clamp<std::int64_t>(std::int64_t(std::floor(lo[d] + 0.5)), 0, g.n[d] - 1);
    const auto v1 = std::clamp<std::int64_t>(std::int64_t(std::ceil(hi[d] - 0.5)), 0, g.n[d] - 1);
    blo[d] = v0 / g.chunk[d];
    bhi[d] = v1 / g.chunk[d];
  }
  std::vector<I3> out;
  for (auto i0 = blo[0]; i0 <= bhi[0]; ++i0)
    for (auto i1 = blo[1]; i1 <= bhi[1]; ++i1)
      for (auto i2 = blo[2]; i2 <= bhi[2]; ++i2) {
        const I3 b{i0, i1, i2};
        double x0 = 1e300, x1 = -1e300, y0 = 1e300, y1 = -1e300;
        bool behind = false;
        for (int corner = 0; corner < 8; ++corner) {
          Vec3 v;
          for (std::size_t d = 0; d < 3; ++d)
            v[d] = double(((corner >> d) & 1) ? std::min(g.n[d], (b[d] + 1) * g.chunk[d])
                                              : b[d] * g.chunk[d]) -
                   0.5;
          double x, y, depth;
          proj.project(g.to_world(v), x, y, depth);
          if (proj.perspective() && depth <= 0) behind = true;
          x0 = std::min(x0, x), x1 = std::max(x1, x), y0 = std::min(y0, y), y1 = std::max(y1, y);
        }
        if (behind || (x1 >= -margin && x0 <= W + margin && y1 >= -margin && y0 <= H + margin))
          out.push_back(b);
      }
  return out;
}

Mode mode_of_impl(Rendering r) {
  switch (r) {
    case Rendering::kMip:
      return Mode::kMip;
    case Rendering::kMinip:
      return Mode::kMinip;
    case Rendering::kAttenuatedMip:
      return Mode::kAttenuatedMip;
    case Rendering::kAverage:
      return Mode::kAverage;
    case Rendering::kTranslucent:
      return Mode::kTranslucent;
    case Rendering::kIso:
      break;
  }
  return Mode::kIso;
}

struct Planned {
  Geom g;
  Vec3 lo, hi;
  std::vector<I3> bricks;
  I3 blo, bhi;
};

std::optional<Planned> plan_level(const Scene& scene, const Projection& proj,
                                  const data::VolumeInfo& info, const AxisMap& axes,
                                  const Layer& layer, int level) {
  auto g = make_geom(scene, info, axes, layer, level);
  if (!g) return std::nullopt;
  const int W = scene.canvas.width, H = scene.canvas.height;
  // Rays read up to a voxel beyond their pixel (bilinear neighbours): widen the view by that.
  const double margin = 2 + scene.camera.zoom * std::max({g->scale[0], g->scale[1], g->scale[2]});
  const auto box = visible_box(proj, *g, W, H, margin);
  Planned p{*g, {}, {}, {}, {}, {}};
  if (!box) return p;
  p.lo = box->first;
  p.hi = box->second;
  p.bricks = visible_bricks(proj, *g, p.lo, p.hi, W, H, margin, p.blo, p.bhi);
  return p;
}

}  // namespace

Mode mode_of(Rendering r) {
  return mode_of_impl(r);
}

bool brick_empty(const LayerLook& look, const std::array<float, 2>& range) {
  switch (look.mode) {
    case Mode::kMip:
    case Mode::kAttenuatedMip:
    case Mode::kTranslucent:
      return range[1] <= look.lo;
    case Mode::kIso:
      return range[1] < look.iso;
    default:
      return false;
  }
}

Result<LayerLook> make_look(const Layer& layer) {
  LayerLook look;
  look.mode = mode_of(layer.rendering);
  look.linear = layer.interpolation == Interpolation::kLinear;
  VX_ASSIGN(look.lut, make_lut(layer));
  look.lo = float(layer.contrast_limits[0]);
  look.hi = float(layer.contrast_limits[1]);
  look.iso = float(layer.iso_threshold);
  look.attenuation = float(layer.attenuation);
  look.opacity = float(layer.opacity);
  look.blending = layer.blending;
  return look;
}

Result<std::optional<VolumePlan>> plan_volume_layer(const Scene& scene, const RenderInputs& in,
                                                    const Layer& layer, const RenderOptions& opt,
                                                    BrickStats& stats) {
  const auto& info = in.data.sources.at(std::size_t(layer.source));
  const auto id = in.sources.at(std::size_t(layer.source));
  VX_ASSIGN(const auto axes, map_axes(info, in.data.axis_names()));
  const Projection proj(scene.camera, scene.canvas.width, scene.canvas.height);
  const int last = int(info.levels.size()) - 1;
  std::vector<int> display;
  for (auto it = scene.dims.order.end() - 3; it != scene.dims.order.end(); ++it)
    display.push_back(axes.world_to_source[std::size_t(*it)]);
  const int wanted = choose_level(info, display, 1.0 / scene.camera.zoom);
  int level = opt.interactive ? std::min(wanted + 1, last) : wanted;
  // A moving camera gets half the rays per axis (and, above, half the slices).
  const double density = opt.interactive ? 0.5 : 1.0;
  // Memory is bounded: a level whose visible bricks would take more than half the cache
  // budget gives way to a coarser one.
  std::optional<Planned> plan;
  for (;; ++level) {
    plan = plan_level(scene, proj, info, axes, layer, level);
    if (!plan) return std::optional<VolumePlan>{};
    // Sort-last: each of the parts holds about its share of them.
    const double parts = opt.compositor ? double(opt.compositor->size()) : 1.0;
    const auto bytes = double(plan->bricks.size()) * double(info.chunk_bytes(level)) / parts;
    if (level == last || bytes <= 0.5 * double(in.cache->budget_bytes())) break;
  }
  if (plan->bricks.empty()) return std::optional<VolumePlan>{};

  auto indices = [&](const Planned& p) {
    std::vector<data::Index> out;
    for (const auto& b : p.bricks) {
      data::Index idx = p.g.fixed;
      for (std::size_t d = 0; d < 3; ++d)
        idx[std::size_t(p.g.axis[d])] = b[d];
      out.push_back(idx);
    }
    return out;
  };
  // Distance of each brick's projected centre from the screen's centre, for the read order.
  auto centres = [&](const Planned& p) {
    std::vector<double> out;
    const double hw = scene.canvas.width / 2.0, hh = scene.canvas.height / 2.0;
    for (const auto& b : p.bricks) {
      Vec3 v;
      for (std::size_t d = 0; d < 3; ++d)
        v[d] = (double(b[d]) + 0.5) * double(p.g.chunk[d]) - 0.5;
      double x, y, depth;
      proj.project(p.g.to_world(v), x, y, depth);
      const double dx = (x - hw) / hw, dy = (y - hh) / hh;
      out.push_back(std::sqrt((dx * dx + dy * dy) / 2));
    }
    return out;
  };
  VolumePlan result;
  if (opt.compositor) {
    // Every part plans the same view (above); from here on each reads only its bricks.
    if (!opt.wait)
      return fail(ErrorCode::kInvalidArgument,
                  "sort-last rendering draws final frames only (RenderOptions::wait)");
    // Balanced by bricks with data, as far as the coarsest level tells (MinIP and average
    // draw every brick: all count).
    std::vector<double> weights;
    const bool iso = layer.rendering == Rendering::kIso;
    if (layer.rendering != Rendering::kMinip && layer.rendering != Rendering::kAverage)
      if (auto coarse = make_geom(scene, info, axes, layer, last))
        weights = brick_weights(in, opt, id, plan->g, *coarse,
                                float(iso ? layer.iso_threshold : layer.contrast_limits[0]));
    result.sort_last = make_sort_last(*opt.compositor, proj, plan->g, iso, weights, plan->bricks);
  }
  auto got = fetch_chunks(in, opt, id, level, indices(*plan), centres(*plan),
                          opt.wait ? Fetch::kWait : Fetch::kRequest);
  const bool complete = got.complete();
  std::vector<data::ChunkPin> pins = std::move(got.pins);
  result.failed = std::move(got.failed);
  // Refining while bricks are on their way, at every level count (one level included).
  result.refining = got.pending > 0;
  if (!opt.wait && complete && !opt.interactive && level < last) {
    // All here: a moving camera draws one level coarser (interactive frames); have it ready.
    if (auto coarse = plan_level(scene, proj, info, axes, layer, level + 1))
      prefetch_chunks(in, opt, id, level + 1, indices(*coarse), centres(*coarse),
                      in.cache->budget_bytes() / 8);
  }
  if (!opt.wait && !complete) {
    // Not all here: the finest coarser level that is all in memory stands in; failing that,
    // the coarsest level, asked for now (it is a few chunks) and drawn as far as it is here.
    for (int l = level + 1; l <= last; ++l) {
      auto coarse = plan_level(scene, proj, info, axes, layer, l);
      if (!coarse) break;
      const auto cidx = indices(*coarse);
      auto cp = fetch_chunks(in, opt, id, l, cidx, centres(*coarse),
                             l == last ? Fetch::kRequest : Fetch::kCachedOnly);
      if (l < last && !cp.complete()) continue;
      if (l == last) {
        result.refining |= cp.pending > 0;
        // Coarse data that is not all here yet is worse than the partial fine level only
        // when the fine level has more of its bricks (the coarse ones come first).
        std::size_t have_fine = 0, have_coarse = 0;
        for (const auto& p : pins)
          have_fine += bool(p);
        for (const auto& p : cp.pins)
          have_coarse += bool(p);
        if (!cp.complete() &&
            double(have_fine) / double(std::max<std::size_t>(1, pins.size())) >
                double(have_coarse) / double(std::max<std::size_t>(1, cp.pins.size())))
          break;
      }
      plan = std::move(coarse);
      pins = std::move(cp.pins);
      result.failed.insert(result.failed.end(), cp.failed.begin(), cp.failed.end());
      result.refining = true;
      break;
    }
  }
  VX_ASSIGN(result.look, make_look(layer));
  result.g = plan->g;
  result.box_lo = plan->lo;
  result.box_hi = plan->hi;
  result.blo = plan->blo;
  for (std::size_t d = 0; d < 3; ++d)
    result.bdim[d] = plan->bhi[d] - plan->blo[d] + 1;
  result.density = density;
  result.bricks.resize(pins.size());
  tbb::parallel_for(std::size_t(0), pins.size(), [&](std::size_t i) {
    auto& b = result.bricks[i];
    b.pos = plan->bricks[i];
    b.index = plan->g.fixed;
    for (std::size_t d = 0; d < 3; ++d)
      b.index[std::size_t(plan->g.axis[d])] = b.pos[d];
    if (!pins[i]) return;
    b.range = stats.get(id, plan->g.level, b.index, pins[i], info.dtype);
    b.empty = brick_empty(result.look, b.range);
    b.pin = std::move(pins[i]);
  });
  for (const auto& b : result.bricks) {
    result.bricks_in += bool(b.pin);
    result.bricks_drawn += b.pin && !b.empty;
  }
  return std::optional<VolumePlan>(std::move(result));
}

}  // namespace vx::render
