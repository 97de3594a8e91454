// The CPU backend. 2D: the slice at dims.point through the two displayed axes, sampled per
// pixel straight from the pinned chunks of the level that matches the zoom (no copy of the
// data), through separable index maps (nearest or bilinear), mapped through contrast, gamma
// and colormap by one lookup table per layer, composited in float one row at a time for all
// layers, parallel over rows with oneTBB.
#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <mutex>

#include "render/cpu/common.hpp"
#include "render/cpu/volume.hpp"
#include "render/fetch.hpp"
#include "render/renderer.hpp"

namespace vx::render {

void rgb_to_ycbcr709(float r, float g, float b, float& y, float& cb, float& cr) {
  const float luma = 0.2126f * r + 0.7152f * g + 0.0722f * b;
  y = 16.f + 219.f * luma;
  cb = 128.f + 224.f * (b - luma) / 1.8556f;
  cr = 128.f + 224.f * (r - luma) / 1.5748f;
}

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

using cpu::kLut;
using cpu::map_axes;

// One sampled screen axis: per pixel, the chunk (column or row of the chunk grid) and the
// element offset inside it of the sample and of its linear neighbour, and the weight.
struct AxisSamples {
  std::vector<std::int32_t> c0, c1;  // chunk index in the box's grid
  std::vector<std::int64_t> o0, o1;  // element offset inside the chunk
  std::vector<float> f;              // weight of the second sample (linear)
  std::vector<std::int32_t> rel;     // first sample's index relative to the box's first voxel
  std::vector<std::uint8_t> inside;
};

AxisSamples sample_axis(int pixels, double center, double zoom, double t, double s, std::int64_t n,
                        std::int64_t chunk, std::int64_t stride, std::int64_t first_chunk,
                        bool linear) {
  AxisSamples a;
  for (auto* v : {&a.c0, &a.c1})
    v->resize(std::size_t(pixels));
  for (auto* v : {&a.o0, &a.o1})
    v->resize(std::size_t(pixels));
  a.f.resize(std::size_t(pixels));
  a.rel.resize(std::size_t(pixels));
  a.inside.resize(std::size_t(pixels));
  for (int p = 0; p < pixels; ++p) {
    const double u =
        (center + (p + 0.5 - pixels / 2.0) / zoom - t) / s;  // voxel centres at integers
    const bool in = u > -0.5 && u < double(n) - 0.5;
    std::int64_t i0, i1;
    float f = 0;
    if (linear) {
      const double uc = std::clamp(u, 0.0, double(n - 1));
      i0 = std::int64_t(std::floor(uc));
      i1 = std::min<std::int64_t>(i0 + 1, n - 1);
      f = float(uc - double(i0));
    } else {
      i0 = i1 = std::clamp<std::int64_t>(std::int64_t(std::floor(u + 0.5)), 0, n - 1);
    }
    const auto idx = std::size_t(p);
    a.inside[idx] = in;
    a.f[idx] = f;
    a.c0[idx] = std::int32_t(i0 / chunk - first_chunk);
    a.c1[idx] = std::int32_t(i1 / chunk - first_chunk);
    a.o0[idx] = (i0 % chunk) * stride;
    a.o1[idx] = (i1 % chunk) * stride;
    a.rel[idx] = std::int32_t(i0 - first_chunk * chunk);
  }
  return a;
}

// Everything a row pass needs to draw one layer: pinned chunks and per-axis sample maps.
struct LayerPlan {
  data::DType dtype = data::DType::kUInt8;
  std::vector<data::ChunkPin> pins;      // keeps the chunks resident while drawing
  std::vector<const std::byte*> chunks;  // grid gy x gx over the visible box
  int gx = 0;
  std::int64_t chunk_x = 1, stride_x = 1;  // chunk size and element stride along x
  std::int64_t base = 0;                   // element offset of the slice (and channel)
  AxisSamples ys, xs;
  bool linear = true;
  bool any_fraction = true;  // some sample falls between voxel centres
  std::vector<float> lut;    // kLut x R, G, B planes, contrast/gamma/colormap folded in
  float lo = 0, scale = 1, alpha = 1;
  Blending blend = Blending::kTranslucent;
  bool complete = true;                 // every chunk of the view is pinned
  std::size_t pending = 0;              // chunks asked for, on their way
  std::vector<std::string> failed;      // chunks that could not be read
  std::unique_ptr<LayerPlan> fallback;  // coarser, complete: drawn where chunks are missing
};

// How draw_row uses the per-row mask of drawn pixels: record them (a plan with a fallback),
// skip them (the fallback), or ignore it.
enum class Mask { kIgnore, kRecord, kSkip };

// Composites one layer into one row of the float RGB accumulator, in two steps. First the
// voxel line under the row: the (one or two, for bilinear) source rows across the box,
// interpolated along y, read chunk by chunk in contiguous runs (vectorizable). Then per
// pixel: at most two loads from that line, the lookup table, the blend.
template <class T, Blending kBlend, bool kLinear>
void draw_row(const LayerPlan& p, int py, int width, float* acc, std::vector<float>& line,
              Mask mask, std::uint8_t* drawn) {
  const auto y = std::size_t(py);
  const float fy = p.ys.f[y];
  line.resize(std::size_t(p.gx) * std::size_t(p.chunk_x) + 1);
  for (int cx = 0; cx < p.gx; ++cx) {
    const std::byte* ca = p.chunks[std::size_t(p.ys.c0[y] * p.gx + cx)];
    const std::byte* cb = p.chunks[std::size_t(p.ys.c1[y] * p.gx + cx)];
    float* dst = line.data() + std::size_t(cx) * std::size_t(p.chunk_x);
    const std::int64_t n = p.chunk_x, s = p.stride_x;
    if (!ca || !cb) {  // not cached yet (progressive): nothing to draw from here
      std::fill(dst, dst + n, std::numeric_limits<float>::quiet_NaN());
      continue;
    }
    const T* a = reinterpret_cast<const T*>(ca) + p.base + p.ys.o0[y];
    const T* b = reinterpret_cast<const T*>(cb) + p.base + p.ys.o1[y];
    if (s == 1) {
      if (kLinear && fy != 0) {
        for (std::int64_t k = 0; k < n; ++k)
          dst[k] = float(a[k]) + fy * (float(b[k]) - float(a[k]));
      } else {
        for (std::int64_t k = 0; k < n; ++k)
          dst[k] = float(a[k]);
      }
    } else {
      for (std::int64_t k = 0; k < n; ++k)
        dst[k] =
            kLinear ? float(a[k * s]) + fy * (float(b[k * s]) - float(a[k * s])) : float(a[k * s]);
    }
  }
  line[std::size_t(p.gx) * std::size_t(p.chunk_x)] =
      line[std::size_t(p.gx) * std::size_t(p.chunk_x) - 1];
  const float top_q = float(kLut - 1), lo = p.lo, scale = p.scale, alpha = p.alpha;
  const std::int32_t* rel = p.xs.rel.data();
  const float* fx = p.xs.f.data();
  const std::uint8_t* inside = p.xs.inside.data();
  const float* lut = p.lut.data();
  const float* l = line.data();
  if (mask == Mask::kIgnore) {
    // Branch-free: pixels outside the data or on NaN get weight 0.
    for (int px = 0; px < width; ++px) {
      float v = l[rel[px]];
      if constexpr (kLinear) v += fx[px] * (l[rel[px] + 1] - v);
      const bool ok = (inside[px] != 0) & (v == v);
      const int q = int(std::min(top_q, std::max(0.f, (v - lo) * scale)) + 0.5f);  // NaN: 0
      const float w = ok ? alpha : 0.f;
      for (int k = 0; k < 3; ++k) {  // planar rows and table
        const float c = lut[k * kLut + q];
        float& o = acc[k * width + px];
        if constexpr (kBlend == Blending::kAdditive)
          o += w * c;
        else if constexpr (kBlend == Blending::kTranslucent)
          o += w * (c - o);
        else if constexpr (kBlend == Blending::kOpaque)
          o = ok ? c : o;
        else
          o = ok ? std::min(o, 1 - w * (1 - c)) : o;
      }
    }
    return;
  }
  for (int px = 0; px < width; ++px) {
    if (!inside[px] || (mask == Mask::kSkip && drawn[px])) continue;
    float v = l[rel[px]];
    if constexpr (kLinear) v += fx[px] * (l[rel[px] + 1] - v);
    if (v != v) continue;  // NaN: no data here (or a chunk still on its way)
    if (mask == Mask::kRecord) drawn[px] = 1;
    const int q = int(std::clamp((v - lo) * scale, 0.f, top_q) + 0.5f);
    for (int k = 0; k < 3; ++k) {
      const float c = lut[k * kLut + q];
      float& o = acc[k * width + px];
      if constexpr (kBlend == Blending::kAdditive)
        o += alpha * c;
      else if constexpr (kBlend == Blending::kTranslucent)
        o += alpha * (c - o);
      else if constexpr (kBlend == Blending::kOpaque)
        o = c;
      else
        o = std::min(o, 1 - alpha * (1 - c));
    }
  }
}

template <class T>
void draw_row_typed(const LayerPlan& p, int py, int width, float* acc, Mask mask,
                    std::uint8_t* drawn) {
  thread_local std::vector<float> line;  // per worker thread, reused across rows
  // Bilinear only where it changes anything: pixels on voxel centres need one sample.
  const bool linear = p.linear && p.any_fraction;
  auto go = [&]<Blending B>() {
    if (linear)
      draw_row<T, B, true>(p, py, width, acc, line, mask, drawn);
    else
      draw_row<T, B, false>(p, py, width, acc, line, mask, drawn);
  };
  switch (p.blend) {
    case Blending::kAdditive:
      return go.template operator()<Blending::kAdditive>();
    case Blending::kTranslucent:
      return go.template operator()<Blending::kTranslucent>();
    case Blending::kOpaque:
      return go.template operator()<Blending::kOpaque>();
    case Blending::kMinimum:
      return go.template operator()<Blending::kMinimum>();
  }
}

void draw_row_one(const LayerPlan& p, int py, int width, float* acc, Mask mask,
                  std::uint8_t* drawn) {
  cpu::with_dtype(p.dtype, [&]<class T>() { draw_row_typed<T>(p, py, width, acc, mask, drawn); });
}

// Draws a layer into a row: where its chunks are missing, its fallback (coarser) plan.
void draw_row_any(const LayerPlan& p, int py, int width, float* acc,
                  std::vector<std::uint8_t>& drawn) {
  const bool fine = p.ys.inside[std::size_t(py)] != 0;
  if (!p.fallback) {
    if (fine) draw_row_one(p, py, width, acc, Mask::kIgnore, nullptr);
    return;
  }
  drawn.assign(std::size_t(width), 0);
  if (fine) draw_row_one(p, py, width, acc, Mask::kRecord, drawn.data());
  if (p.fallback->ys.inside[std::size_t(py)])
    draw_row_one(*p.fallback, py, width, acc, Mask::kSkip, drawn.data());
}

// Writes rows 2*pair and 2*pair+1 (float RGB in [0, 1], one after the other in `rows`) as
// Y, and their 2x2-averaged chroma, into an I420 or NV12 image.
void store_420(const float* rows, int W, int H, int pair, PixelFormat format, std::uint8_t* out) {
  const std::size_t luma = std::size_t(W) * std::size_t(H);
  const auto plane = std::size_t(W);
  // Luma of both rows, then chroma of each 2x2 block from its mean colour (the transform
  // is affine, so that equals the mean of the four pixels' chroma). Planar in, planar out:
  // loops the compiler vectorizes.
  for (std::size_t r = 0; r < 2; ++r) {
    const float* R = rows + r * 3 * plane;
    const float *G = R + plane, *B = G + plane;
    std::uint8_t* y = out + (std::size_t(2 * pair) + r) * plane;
    for (std::size_t px = 0; px < plane; ++px)
      y[px] =
          std::uint8_t(16.f + 219.f * (0.2126f * R[px] + 0.7152f * G[px] + 0.0722f * B[px]) + 0.5f);
  }
  const float *Ra = rows, *Ga = Ra + plane, *Ba = Ga + plane;
  const float *Rb = Ba + plane, *Gb = Rb + plane, *Bb = Gb + plane;
  const std::size_t half = plane / 2, row0 = std::size_t(pair) * half;
  std::uint8_t* u = out + luma + row0;
  std::uint8_t* v = out + luma + luma / 4 + row0;
  std::uint8_t* uv = out + luma + 2 * row0;
  for (std::size_t c = 0; c < half; ++c) {
    const float r = 0.25f * (Ra[2 * c] + Ra[2 * c + 1] + Rb[2 * c] + Rb[2 * c + 1]);
    const float g = 0.25f * (Ga[2 * c] + Ga[2 * c + 1] + Gb[2 * c] + Gb[2 * c + 1]);
    const float b = 0.25f * (Ba[2 * c] + Ba[2 * c + 1] + Bb[2 * c] + Bb[2 * c + 1]);
    const float l = 0.2126f * r + 0.7152f * g + 0.0722f * b;
    const auto cb = std::uint8_t(128.f + 224.f * (b - l) / 1.8556f + 0.5f);
    const auto cr = std::uint8_t(128.f + 224.f * (r - l) / 1.5748f + 0.5f);
    if (format == PixelFormat::kI420) {
      u[c] = cb;
      v[c] = cr;
    } else {
      uv[2 * c] = cb;
      uv[2 * c + 1] = cr;
    }
  }
}

class CpuRenderer final : public Renderer {
 public:
  const char* name() const override { return "cpu"; }

  void recycle(Frame&& frame) override {
    std::lock_guard lock(spare_mutex_);
    if (spare_.size() < 2) spare_.push_back(std::move(frame.pixels));
  }

  Result<Frame> render(const Scene& scene, const RenderInputs& in,
                       const RenderOptions& opt) override {
    const int W = scene.canvas.width, H = scene.canvas.height;
    Frame frame;
    frame.width = W;
    frame.height = H;
    std::vector<LayerPlan> plans;
    std::vector<std::unique_ptr<cpu::RowDrawer>> volumes;
    const bool volume = scene.dims.ndisplay == 3;
    frame.interactive = volume && opt.interactive;
    for (const auto& layer : scene.layers) {
      if (volume) {
        if (!layer.visible) {
          frame.levels.push_back(-1);
          continue;
        }
        VX_ASSIGN(auto vl, cpu::render_volume_layer(scene, in, layer, opt, stats_));
        if (!vl || !vl->drawer) {
          frame.levels.push_back(vl ? vl->level : -1);
          continue;
        }
        frame.levels.push_back(vl->level);
        frame.refining |= vl->refining;
        frame.failed.insert(frame.failed.end(), vl->failed.begin(), vl->failed.end());
        frame.bricks += vl->bricks;
        frame.bricks_drawn += vl->bricks_drawn;
        volumes.push_back(std::move(vl->drawer));
        continue;
      }
      if (!layer.visible) {
        frame.levels.push_back(-1);
        continue;
      }
      VX_ASSIGN(const int level, layer_level(scene, in, layer));
      frame.levels.push_back(level);
      VX_ASSIGN(auto plan, plan_layer(scene, in, layer, level,
                                      opt.wait ? Fetch::kWait : Fetch::kRequest, opt));
      if (!plan) continue;  // the slice misses the data
      if (!plan->complete) {
        // The finest coarser level that is all in memory stands in for the missing chunks;
        // failing that, the coarsest level, requested now (it is small).
        const int levels = int(in.data.sources[std::size_t(layer.source)].levels.size());
        for (int l = level + 1; l < levels && !plan->fallback; ++l) {
          const bool last = l == levels - 1;
          VX_ASSIGN(auto fb, plan_layer(scene, in, layer, l,
                                        last ? Fetch::kRequest : Fetch::kCachedOnly, opt));
          if (fb && (fb->complete || last))
            plan->fallback = std::make_unique<LayerPlan>(std::move(*fb));
        }
      }
      // Refining while something is on its way; chunks that failed will not come.
      frame.refining |= plan->pending > 0 || (plan->fallback && plan->fallback->pending > 0);
      for (auto* q : {&*plan, plan->fallback.get()})
        if (q) frame.failed.insert(frame.failed.end(), q->failed.begin(), q->failed.end());
      plans.push_back(std::move(*plan));
    }
    // One pass over the rows for all layers: accumulate rows in float, then store them in
    // the requested format. Rows go in pairs, so that 4:2:0 chroma averages 2x2 pixels.
    frame.format = opt.format;
    const bool yuv = opt.format != PixelFormat::kRgba8;
    if (yuv && (W % 2 || H % 2))
      return fail(ErrorCode::kInvalidArgument,
                  "field 'canvas': {}x{} is odd; 4:2:0 video needs even sizes", W, H);
    const std::size_t luma = std::size_t(W) * std::size_t(H);
    {
      std::lock_guard lock(spare_mutex_);
      if (!spare_.empty()) {
        frame.pixels = std::move(spare_.back());
        spare_.pop_back();
      }
    }
    frame.pixels.resize(yuv ? luma + luma / 2 : luma * 4);  // every byte is written below
    const auto& bg = scene.canvas.background;
    const int step = yuv ? 2 : 1;
    tbb::parallel_for(
        tbb::blocked_range<int>(0, H / step, 4), [&](const tbb::blocked_range<int>& pairs) {
          std::vector<float> acc(std::size_t(W) * 3 * std::size_t(step));
          std::vector<std::uint8_t> drawn, rgb8;
          for (int pr = pairs.begin(); pr < pairs.end(); ++pr) {
            if (opt.cancel && opt.cancel->load(std::memory_order_relaxed)) return;
            for (int r = 0; r < step; ++r) {
              const int py = pr * step + r;
              float* row = acc.data() + std::size_t(r) * std::size_t(W) * 3;
              const std::size_t n3 = std::size_t(W) * 3;
              for (std::size_t k = 0; k < 3; ++k)
                std::fill(row + k * std::size_t(W), row + (k + 1) * std::size_t(W), float(bg[k]));
              for (const auto& p : plans)
                draw_row_any(p, py, W, row, drawn);
              for (const auto& v : volumes)
                v->draw_row(py, W, row);
              if (yuv) {
                for (std::size_t i = 0; i < n3; ++i)
                  row[i] = std::clamp(row[i], 0.f, 1.f);
              } else {
                // Simple loops the compiler vectorizes: float -> byte, then planes -> RGBA.
                rgb8.resize(n3);
                for (std::size_t i = 0; i < n3; ++i)
                  rgb8[i] = std::uint8_t(std::min(std::max(row[i], 0.f), 1.f) * 255.f + 0.5f);
                std::uint8_t* out = frame.pixels.data() + std::size_t(py) * std::size_t(W) * 4;
                const std::uint8_t *r8 = rgb8.data(), *g8 = r8 + W, *b8 = g8 + W;
                for (int px = 0; px < W; ++px) {
                  out[px * 4 + 0] = r8[px];
                  out[px * 4 + 1] = g8[px];
                  out[px * 4 + 2] = b8[px];
                  out[px * 4 + 3] = 255;
                }
              }
            }
            if (yuv) store_420(acc.data(), W, H, pr, opt.format, frame.pixels.data());
          }
        });
    if (opt.cancel && opt.cancel->load()) {
      recycle(std::move(frame));
      return fail(ErrorCode::kCancelled, "the frame was cancelled");
    }
    return frame;
  }

 private:
  // Plans one layer, or nullopt when it draws nothing (hidden, or the slice misses the data).
  // The level whose voxels match the zoom on the displayed axes.
  // Memory is bounded as in 3D: when the chunks the view touches at that level, for every
  // visible layer, would take more than half the cache budget, a coarser level draws it (a
  // view that cannot fit would evict its own chunks while they arrive, and never finish).
  static Result<int> layer_level(const Scene& scene, const RenderInputs& in, const Layer& layer) {
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
  static Result<std::optional<LayerPlan>> plan_layer(const Scene& scene, const RenderInputs& in,
                                                     const Layer& layer, int level, Fetch fetch,
                                                     const RenderOptions& opt) {
    const int W = scene.canvas.width, H = scene.canvas.height;
    const auto world = in.data.axis_names();
    const int n = int(world.size());
    const int wy = scene.dims.order[std::size_t(n - 2)], wx = scene.dims.order[std::size_t(n - 1)];
    const double zoom = scene.camera.zoom;
    const auto& info = in.data.sources.at(std::size_t(layer.source));
    VX_ASSIGN(auto axes, map_axes(info, world));
    const int ay = axes.world_to_source[std::size_t(wy)],
              ax = axes.world_to_source[std::size_t(wx)];

    const auto& lv = info.levels[std::size_t(level)];
    const auto nd = lv.shape.size();
    std::vector<std::int64_t> stride(nd, 1);  // element strides inside a chunk
    for (int d = int(nd) - 2; d >= 0; --d)
      stride[std::size_t(d)] = stride[std::size_t(d) + 1] * lv.chunks[std::size_t(d) + 1];

    LayerPlan p;
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
          return std::optional<LayerPlan>{};  // the slice misses the data
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
    p.chunk_x = lv.chunks[std::size_t(ax)];
    p.stride_x = stride[std::size_t(ax)];
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
      for (int k = 0; k < n; ++k) {
        const auto a = std::size_t(axes.world_to_source[std::size_t(k)]);
        if (k == wy || k == wx) continue;
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
    for (const auto& pin : p.pins)
      p.chunks.push_back(pin ? pin.bytes().data() : nullptr);
    p.ys = sample_axis(H, scene.camera.center[1], zoom, lv.translation[std::size_t(ay)],
                       lv.scale[std::size_t(ay)], lv.shape[std::size_t(ay)],
                       lv.chunks[std::size_t(ay)], stride[std::size_t(ay)],
                       lo_chunk[std::size_t(ay)], p.linear);
    p.xs = sample_axis(W, scene.camera.center[2], zoom, lv.translation[std::size_t(ax)],
                       lv.scale[std::size_t(ax)], lv.shape[std::size_t(ax)],
                       lv.chunks[std::size_t(ax)], stride[std::size_t(ax)],
                       lo_chunk[std::size_t(ax)], p.linear);
    auto fractional = [](const std::vector<float>& f) {
      return std::any_of(f.begin(), f.end(), [](float v) { return v > 1e-4f && v < 1 - 1e-4f; });
    };
    p.any_fraction = fractional(p.ys.f) || fractional(p.xs.f);
    VX_ASSIGN(auto lut, cpu::make_lut(layer));
    p.lut = std::move(lut.rgb);
    p.lo = lut.lo;
    p.scale = lut.scale;
    p.alpha = float(layer.opacity);
    p.blend = layer.blending;
    return std::optional<LayerPlan>(std::move(p));
  }

  cpu::BrickStats stats_;
  std::mutex spare_mutex_;
  std::vector<std::vector<std::uint8_t>> spare_;  // pixel buffers of recycled frames
};

}  // namespace

std::unique_ptr<Renderer> make_cpu_renderer() {
  return std::make_unique<CpuRenderer>();
}

}  // namespace vx::render
