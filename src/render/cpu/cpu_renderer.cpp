// The CPU backend. 2D: the slice at dims.point through the two displayed axes, sampled per
// pixel (separable index maps, nearest or bilinear) from the level that matches the zoom,
// mapped through contrast, gamma and colormap by one lookup table per layer, composited in
// float, parallel over rows with oneTBB.
#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>

#include "render/colormap.hpp"
#include "render/renderer.hpp"

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

namespace {

constexpr int kLut = 4096;

// The source axes (indices into VolumeInfo::axes) of each world axis, and the channel axis.
struct AxisMap {
  std::vector<int> world_to_source;
  int channel_axis = -1;
};

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

template <class T>
void to_float(const std::byte* src, float* dst, std::size_t n) {
  const T* s = reinterpret_cast<const T*>(src);
  for (std::size_t i = 0; i < n; ++i)
    dst[i] = float(s[i]);
}

void plane_to_float(data::DType t, const std::byte* src, float* dst, std::size_t n) {
  using data::DType;
  switch (t) {
    case DType::kUInt8:
      return to_float<std::uint8_t>(src, dst, n);
    case DType::kInt8:
      return to_float<std::int8_t>(src, dst, n);
    case DType::kUInt16:
      return to_float<std::uint16_t>(src, dst, n);
    case DType::kInt16:
      return to_float<std::int16_t>(src, dst, n);
    case DType::kUInt32:
      return to_float<std::uint32_t>(src, dst, n);
    case DType::kInt32:
      return to_float<std::int32_t>(src, dst, n);
    case DType::kFloat32:
      return to_float<float>(src, dst, n);
    case DType::kFloat64:
      return to_float<double>(src, dst, n);
  }
}

// One sampled axis: for each screen position, the plane index (and weight of the next one).
struct Samples {
  std::vector<std::int32_t> i0;
  std::vector<float> f;  // bilinear weight of i0 + 1
  std::vector<std::uint8_t> inside;
};

Samples sample_axis(int pixels, double center, double zoom, double t, double s, std::int64_t box0,
                    std::int64_t box_n, std::int64_t full_n, bool linear) {
  Samples out;
  out.i0.resize(std::size_t(pixels));
  out.f.resize(std::size_t(pixels));
  out.inside.resize(std::size_t(pixels));
  for (int p = 0; p < pixels; ++p) {
    const double w = center + (p + 0.5 - pixels / 2.0) / zoom;
    const double u = (w - t) / s;  // voxel centres at integers
    const bool in = u > -0.5 && u < double(full_n) - 0.5;
    double local = u - double(box0);
    std::int32_t i;
    float f = 0;
    if (linear) {
      local = std::clamp(local, 0.0, double(box_n - 1));
      i = std::int32_t(std::floor(local));
      if (i >= box_n - 1) i = std::int32_t(std::max<std::int64_t>(box_n - 2, 0));
      f = box_n > 1 ? float(local - i) : 0.f;
    } else {
      i = std::int32_t(std::clamp<double>(std::floor(local + 0.5), 0, double(box_n - 1)));
    }
    out.i0[std::size_t(p)] = i;
    out.f[std::size_t(p)] = f;
    out.inside[std::size_t(p)] = in;
  }
  return out;
}

class CpuRenderer final : public Renderer {
 public:
  const char* name() const override { return "cpu"; }

  Result<Frame> render(const Scene& scene, const RenderInputs& in) override {
    if (scene.dims.ndisplay != 2)
      return fail(ErrorCode::kUnsupported,
                  "field 'dims.ndisplay': 3D views are not in the CPU renderer yet (use 2)");
    const int W = scene.canvas.width, H = scene.canvas.height;
    Frame frame;
    frame.width = W;
    frame.height = H;
    std::vector<float> acc(std::size_t(W) * std::size_t(H) * 3);
    for (std::size_t i = 0; i < acc.size(); i += 3)
      for (int k = 0; k < 3; ++k)
        acc[i + std::size_t(k)] = float(scene.canvas.background[std::size_t(k)]);

    const auto world = in.data.axis_names();
    const int n = int(world.size());
    const int wy = scene.dims.order[std::size_t(n - 2)], wx = scene.dims.order[std::size_t(n - 1)];
    const double zoom = scene.camera.zoom;
    for (const auto& layer : scene.layers) {
      if (!layer.visible) {
        frame.levels.push_back(-1);
        continue;
      }
      const auto& info = in.data.sources.at(std::size_t(layer.source));
      VX_ASSIGN(auto axes, map_axes(info, world));
      const int ay = axes.world_to_source[std::size_t(wy)],
                ax = axes.world_to_source[std::size_t(wx)];
      const int level = choose_level(info, {ay, ax}, 1.0 / zoom);
      frame.levels.push_back(level);
      const auto& lv = info.levels[std::size_t(level)];
      // The box of the level this view touches: one index on slice axes, a range on y and x.
      std::vector<std::int64_t> start(lv.shape.size(), 0), count(lv.shape.size(), 1);
      bool empty = false;
      for (int k = 0; k < n; ++k) {
        const int a = axes.world_to_source[std::size_t(k)];
        const double t = lv.translation[std::size_t(a)], s = lv.scale[std::size_t(a)];
        if (k == wy || k == wx) {
          const int pixels = k == wy ? H : W;
          const double c = scene.camera.center[k == wy ? 1 : 2];
          const double u0 = (c + (0.5 - pixels / 2.0) / zoom - t) / s;
          const double u1 = (c + (pixels - 0.5 - pixels / 2.0) / zoom - t) / s;
          const auto lo = std::max<std::int64_t>(0, std::int64_t(std::floor(std::min(u0, u1))) - 1);
          const auto hi = std::min<std::int64_t>(lv.shape[std::size_t(a)],
                                                 std::int64_t(std::ceil(std::max(u0, u1))) + 2);
          if (hi <= lo) empty = true;
          start[std::size_t(a)] = lo;
          count[std::size_t(a)] = std::max<std::int64_t>(hi - lo, 1);
        } else {
          const auto idx = std::int64_t(std::llround((scene.dims.point[std::size_t(k)] - t) / s));
          if (idx < 0 || idx >= lv.shape[std::size_t(a)])
            empty = true;  // the slice misses the data
          start[std::size_t(a)] = idx;
        }
      }
      if (axes.channel_axis >= 0) start[std::size_t(axes.channel_axis)] = layer.channel;
      if (empty) continue;
      const std::size_t voxels = std::size_t(count[std::size_t(ay)] * count[std::size_t(ax)]);
      std::vector<std::byte> raw(voxels * data::dtype_size(info.dtype));
      VX_TRY(data::read_region(*in.cache, in.sources.at(std::size_t(layer.source)), level, start,
                               count, raw));
      std::vector<float> plane(voxels);
      plane_to_float(info.dtype, raw.data(), plane.data(), voxels);
      // Row/column strides of the plane in the region's C order (y may follow x in memory).
      const std::int64_t sy = ay < ax ? count[std::size_t(ax)] : 1;
      const std::int64_t sx = ay < ax ? 1 : count[std::size_t(ay)];

      const bool linear = layer.interpolation == Interpolation::kLinear;
      const auto ys = sample_axis(H, scene.camera.center[1], zoom, lv.translation[std::size_t(ay)],
                                  lv.scale[std::size_t(ay)], start[std::size_t(ay)],
                                  count[std::size_t(ay)], lv.shape[std::size_t(ay)], linear);
      const auto xs = sample_axis(W, scene.camera.center[2], zoom, lv.translation[std::size_t(ax)],
                                  lv.scale[std::size_t(ax)], start[std::size_t(ax)],
                                  count[std::size_t(ax)], lv.shape[std::size_t(ax)], linear);
      // value -> colour, with contrast, gamma and opacity folded in.
      VX_ASSIGN(auto cmap, colormap_by_name(layer.colormap));
      std::vector<float> lut(std::size_t(kLut) * 3);
      for (int q = 0; q < kLut; ++q) {
        const double v = std::pow(double(q) / (kLut - 1), layer.gamma);
        const auto& c = cmap.rgb[std::size_t(std::lround(v * 255))];
        for (int k = 0; k < 3; ++k)
          lut[std::size_t(q) * 3 + std::size_t(k)] = float(c[std::size_t(k)]) / 255.f;
      }
      const float lo = float(layer.contrast_limits[0]);
      const float scale =
          float(kLut - 1) / float(layer.contrast_limits[1] - layer.contrast_limits[0]);
      const float a = float(layer.opacity);
      const Blending blend = layer.blending;
      const std::int64_t ny = count[std::size_t(ay)], nx = count[std::size_t(ax)];
      tbb::parallel_for(
          tbb::blocked_range<int>(0, H, 16), [&](const tbb::blocked_range<int>& rows) {
            for (int py = rows.begin(); py < rows.end(); ++py) {
              if (!ys.inside[std::size_t(py)]) continue;
              const std::int64_t y0 = ys.i0[std::size_t(py)];
              const std::int64_t y1 = std::min<std::int64_t>(y0 + 1, ny - 1);
              const float fy = ys.f[std::size_t(py)];
              float* out = acc.data() + std::size_t(py) * std::size_t(W) * 3;
              for (int px = 0; px < W; ++px) {
                if (!xs.inside[std::size_t(px)]) continue;
                const std::int64_t x0 = xs.i0[std::size_t(px)];
                float v = plane[std::size_t(y0 * sy + x0 * sx)];
                if (linear) {
                  const std::int64_t x1 = std::min<std::int64_t>(x0 + 1, nx - 1);
                  const float fx = xs.f[std::size_t(px)];
                  const float top = v + fx * (plane[std::size_t(y0 * sy + x1 * sx)] - v);
                  const float y1v = plane[std::size_t(y1 * sy + x0 * sx)];
                  const float bot = y1v + fx * (plane[std::size_t(y1 * sy + x1 * sx)] - y1v);
                  v = top + fy * (bot - top);
                }
                if (std::isnan(v)) continue;
                const int q = int(std::clamp((v - lo) * scale, 0.f, float(kLut - 1)) + 0.5f);
                const float* c = lut.data() + std::size_t(q) * 3;
                float* o = out + std::size_t(px) * 3;
                for (int k = 0; k < 3; ++k) {
                  switch (blend) {
                    case Blending::kAdditive:
                      o[k] += a * c[k];
                      break;
                    case Blending::kTranslucent:
                      o[k] = o[k] * (1 - a) + a * c[k];
                      break;
                    case Blending::kOpaque:
                      o[k] = c[k];
                      break;
                    case Blending::kMinimum:
                      o[k] = std::min(o[k], 1 - a * (1 - c[k]));
                      break;
                  }
                }
              }
            }
          });
    }
    frame.rgba.resize(std::size_t(W) * std::size_t(H) * 4);
    for (std::size_t i = 0, j = 0; i < acc.size(); i += 3, j += 4) {
      for (int k = 0; k < 3; ++k)
        frame.rgba[j + std::size_t(k)] =
            std::uint8_t(std::clamp(acc[i + std::size_t(k)] * 255.f + 0.5f, 0.f, 255.f));
      frame.rgba[j + 3] = 255;
    }
    return frame;
  }
};

}  // namespace

std::unique_ptr<Renderer> make_cpu_renderer() {
  return std::make_unique<CpuRenderer>();
}

}  // namespace vx::render
