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
#include "render/kernels/color.hpp"
#include "render/kernels/composite.hpp"
#include "render/kernels/sample.hpp"
#include "render/kernels/transfer.hpp"
#include "render/plan.hpp"
#include "render/slice_sampling.hpp"

namespace vx::render {

void rgb_to_ycbcr709(float r, float g, float b, float& y, float& cb, float& cr) {
  kernels::rgb_to_ycbcr709(r, g, b, y, cb, cr);
}

namespace {

// Everything a row pass needs to draw one planned 2D layer (render/plan.hpp): the chunks'
// bytes (the plan keeps them pinned) and per-axis sample maps.
struct LayerPlan {
  data::DType dtype = data::DType::kUInt8;
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
  std::unique_ptr<LayerPlan> fallback;  // coarser, complete: drawn where chunks are missing

  explicit LayerPlan(const SlicePlan& p)
      : dtype(p.dtype),
        gx(p.gx),
        chunk_x(p.x.chunk),
        stride_x(p.x.stride),
        base(p.base),
        ys(sample_axis(p.y, p.linear)),
        xs(sample_axis(p.x, p.linear)),
        linear(p.linear),
        lut(p.lut.rgb),
        lo(p.lut.lo),
        scale(p.lut.scale),
        alpha(p.alpha),
        blend(p.blend) {
    for (const auto& pin : p.pins)
      chunks.push_back(pin ? pin.bytes().data() : nullptr);
    any_fraction = render::any_fraction(ys) || render::any_fraction(xs);
    if (p.fallback) fallback = std::make_unique<LayerPlan>(*p.fallback);
  }
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
          dst[k] = kernels::lerp(float(a[k]), float(b[k]), fy);
      } else {
        for (std::int64_t k = 0; k < n; ++k)
          dst[k] = float(a[k]);
      }
    } else {
      for (std::int64_t k = 0; k < n; ++k)
        dst[k] = kLinear ? kernels::lerp(float(a[k * s]), float(b[k * s]), fy) : float(a[k * s]);
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
      if constexpr (kLinear) v = kernels::lerp(v, l[rel[px] + 1], fx[px]);
      const bool ok = (inside[px] != 0) & (v == v);
      const int q = kernels::table_index(v, lo, scale, top_q);  // NaN: 0
      const float w = ok ? alpha : 0.f;
      for (int k = 0; k < 3; ++k) {  // planar rows and table
        float& o = acc[k * width + px];
        o = kernels::blend_2d<cpu::blend_of(kBlend)>(o, lut[k * kLut + q], w, ok);
      }
    }
    return;
  }
  for (int px = 0; px < width; ++px) {
    if (!inside[px] || (mask == Mask::kSkip && drawn[px])) continue;
    float v = l[rel[px]];
    if constexpr (kLinear) v = kernels::lerp(v, l[rel[px] + 1], fx[px]);
    if (v != v) continue;  // NaN: no data here (or a chunk still on its way)
    if (mask == Mask::kRecord) drawn[px] = 1;
    const int q = kernels::table_index(v, lo, scale, top_q);
    for (int k = 0; k < 3; ++k) {
      float& o = acc[k * width + px];
      o = kernels::blend_2d<cpu::blend_of(kBlend)>(o, lut[k * kLut + q], alpha, true);
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
  with_dtype(p.dtype, [&]<class T>() { draw_row_typed<T>(p, py, width, acc, mask, drawn); });
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
      y[px] = kernels::y_byte(R[px], G[px], B[px]);
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
    std::uint8_t cb, cr;
    kernels::chroma_bytes(r, g, b, cb, cr);
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

  void recycle(Frame&& frame) override { pool_.release(std::move(frame.pixels)); }

  Result<Frame> render(const Scene& scene, const RenderInputs& in,
                       const RenderOptions& opt) override {
    VX_ASSIGN(const RenderPlan plan, make_plan(scene, in, opt, stats_));
    const int W = plan.width, H = plan.height;
    Frame frame;
    std::vector<LayerPlan> plans;
    std::vector<std::unique_ptr<cpu::RowDrawer>> volumes;
    std::vector<bool> drawn(plan.layers.size(), true);
    const Projection proj(scene.camera, W, H);
    for (std::size_t i = 0; i < plan.layers.size(); ++i) {
      const auto& lp = plan.layers[i];
      if (lp.volume) {
        VX_ASSIGN(auto drawer, cpu::draw_volume(proj, *lp.volume, opt.cancel));
        drawn[i] = drawer != nullptr;
        if (drawer) volumes.push_back(std::move(drawer));
      }
      if (lp.slice) plans.emplace_back(*lp.slice);
    }
    describe_frame(plan, frame, drawn);
    // One pass over the rows for all layers: accumulate rows in float, then store them in
    // the requested format. Rows go in pairs, so that 4:2:0 chroma averages 2x2 pixels.
    const bool yuv = opt.format != PixelFormat::kRgba8;
    frame.pixels = pool_.acquire(image_bytes(opt.format, W, H));  // every byte is written below
    const auto& bg = plan.background;
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
                  rgb8[i] = kernels::unorm8(row[i]);
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
  BrickStats stats_;
  FramePool pool_{2};  // pixel buffers of recycled frames
};

}  // namespace

std::unique_ptr<Renderer> make_cpu_renderer() {
  return std::make_unique<CpuRenderer>();
}

}  // namespace vx::render
