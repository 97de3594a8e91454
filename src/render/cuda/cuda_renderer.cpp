// The CUDA backend: executes the render plan (render/plan.hpp) on the device. 3D layers
// (mip, minip, attenuated_mip, average, translucent, iso; orthographic and perspective) are
// ray cast through the shared device brick pool, with per-brick empty-space skipping and
// early ray termination. 2D layers: the slice's voxels over the plan's chunks are packed on
// the host (rows of the pinned chunks, no conversion) and uploaded, then sampled per pixel
// through the shared axis maps (render/slice_sampling.hpp), nearest or bilinear, with the
// coarser fallback level where chunks are missing, and blended in every mode. The frame is
// composited in float on the device and stored there as RGBA8, I420 or NV12 (BT.709) by the
// shared colour functions, then downloaded once.
#include <cuda_runtime_api.h>

#include <mutex>
#include <vector>

#include "core/log.hpp"
#include "render/cuda/brick_pool.hpp"
#include "render/cuda/device.hpp"
#include "render/cuda/launch.hpp"
#include "render/cuda_backend.hpp"
#include "render/slice_pack.hpp"

namespace vx::render {
namespace {

using cuda::check;

cuda::RayMode ray_mode(Mode m) {
  switch (m) {
    case Mode::kMip:
      return cuda::RayMode::kMip;
    case Mode::kMinip:
      return cuda::RayMode::kMinip;
    case Mode::kAttenuatedMip:
      return cuda::RayMode::kAttenuatedMip;
    case Mode::kAverage:
      return cuda::RayMode::kAverage;
    case Mode::kTranslucent:
      return cuda::RayMode::kTranslucent;
    case Mode::kIso:
      break;
  }
  return cuda::RayMode::kIso;
}

cuda::FrameFormat frame_format(PixelFormat f) {
  return f == PixelFormat::kRgba8  ? cuda::FrameFormat::kRgba8
         : f == PixelFormat::kI420 ? cuda::FrameFormat::kI420
                                   : cuda::FrameFormat::kNV12;
}

// Per layer: the device tables of one frame.
struct LayerBuffers {
  cuda::DeviceBuffer bricks, empty, lut;
};

// A 2D layer's slice (or its fallback) on the device, and its packing on the host.
struct SliceBuffers {
  PackedSlice host;
  cuda::DeviceBuffer voxels, tables;
};

class CudaRenderer final : public Renderer {
 public:
  CudaRenderer(std::shared_ptr<cuda::BrickPool> pool, cuda::Stream stream)
      : pool_(std::move(pool)), stream_(std::move(stream)), cpu_(make_cpu_renderer()) {}

  const char* name() const override { return "cuda"; }

  void recycle(Frame&& frame) override { frames_.release(std::move(frame.pixels)); }

  Result<Frame> render(const Scene& scene, const RenderInputs& in,
                       const RenderOptions& opt) override {
    // Sort-last compositing combines the CPU path's intermediate images (docs/cluster.md):
    // a part of an MPI render draws on the CPU.
    if (opt.compositor) return cpu_->render(scene, in, opt);
    // One frame at a time per renderer (its stream and device buffers); sessions have their own.
    std::lock_guard lock(mutex_);
    VX_ASSIGN(const RenderPlan plan, make_plan(scene, in, opt, stats_));
    Frame frame;
    describe_frame(plan, frame);
    const int W = plan.width, H = plan.height;
    const std::size_t plane = std::size_t(W) * std::size_t(H);
    VX_TRY(acc_.reserve(3 * plane * sizeof(float)));
    const std::size_t out_bytes = image_bytes(plan.format, W, H);
    VX_TRY(out_.reserve(out_bytes));
    const cudaStream_t s = stream_.get();
    VX_TRY(check(cuda::launch_clear(acc_.get<float>(), W, H, float(plan.background[0]),
                                    float(plan.background[1]), float(plan.background[2]), s),
                 "clear kernel"));
    std::vector<cuda::BrickKey> pinned;
    // Bricks stay pinned until the frame is done (or failed).
    struct Unpin {
      cuda::BrickPool& pool;
      std::vector<cuda::BrickKey>& keys;
      ~Unpin() {
        for (const auto& k : keys)
          pool.release(k);
      }
    } unpin{*pool_, pinned};
    const Projection proj(scene.camera, W, H);
    layers_.resize(plan.layers.size());
    slices_.resize(2 * plan.layers.size());
    for (std::size_t i = 0; i < plan.layers.size(); ++i) {
      if (opt.cancel && opt.cancel->load()) break;
      if (const auto& slice = plan.layers[i].slice) {
        VX_TRY(draw_slice(*slice, W, H, slices_[2 * i], slices_[2 * i + 1]));
        continue;
      }
      if (!plan.layers[i].volume) continue;
      const auto& source = in.data.sources.at(std::size_t(scene.layers[i].source));
      VX_TRY(draw_volume(proj, *plan.layers[i].volume,
                         in.sources.at(std::size_t(scene.layers[i].source)),
                         source.chunk_bytes(plan.layers[i].level), W, H, layers_[i], pinned));
    }
    VX_TRY(check(cuda::launch_store(acc_.get<float>(), W, H, frame_format(plan.format),
                                    out_.get<std::uint8_t>(), s),
                 "store kernel"));
    frame.pixels = frames_.acquire(out_bytes);
    // The one download of the frame (NV12/I420 for the encoder, or RGBA).
    VX_TRY(check(
        cudaMemcpyAsync(frame.pixels.data(), out_.get(), out_bytes, cudaMemcpyDeviceToHost, s),
        "cudaMemcpyAsync (frame)"));
    VX_TRY(stream_.sync());
    if (opt.cancel && opt.cancel->load()) {
      recycle(std::move(frame));
      return fail(ErrorCode::kCancelled, "the frame was cancelled");
    }
    return frame;
  }

 private:
  // Packs and uploads one slice plan (the host copies stay until the next frame, after this
  // one's stream is synchronized); its view on the device.
  Result<kernels::SliceView> upload_slice(const SlicePlan& p, SliceBuffers& buf) {
    const cudaStream_t s = stream_.get();
    pack_slice(p, buf.host);
    const auto& vox = buf.host.voxels;
    const auto& tab = buf.host.tables;
    VX_TRY(buf.voxels.reserve(vox.size()));
    VX_TRY(buf.tables.reserve(tab.size()));
    VX_TRY(
        check(cudaMemcpyAsync(buf.voxels.get(), vox.data(), vox.size(), cudaMemcpyHostToDevice, s),
              "cudaMemcpyAsync (slice voxels)"));
    VX_TRY(
        check(cudaMemcpyAsync(buf.tables.get(), tab.data(), tab.size(), cudaMemcpyHostToDevice, s),
              "cudaMemcpyAsync (slice tables)"));
    return buf.host.view(buf.voxels.get(), buf.tables.get());
  }

  Status draw_slice(const SlicePlan& p, int W, int H, SliceBuffers& fine, SliceBuffers& coarse) {
    VX_ASSIGN(const kernels::SliceView a, upload_slice(p, fine));
    kernels::SliceView b{};
    if (p.fallback) {
      VX_ASSIGN(b, upload_slice(*p.fallback, coarse));
    }
    return check(
        cuda::launch_slice(a, p.fallback ? &b : nullptr, W, H, acc_.get<float>(), stream_.get()),
        "slice kernel");
  }

  Status draw_volume(const Projection& proj, const VolumePlan& v, data::SourceId id,
                     std::size_t chunk_bytes, int W, int H, LayerBuffers& buf,
                     std::vector<cuda::BrickKey>& pinned) {
    const cudaStream_t s = stream_.get();
    const auto& g = v.g;
    const auto nb = std::size_t(v.bdim[0] * v.bdim[1] * v.bdim[2]);
    std::vector<const float*> ptr(nb, nullptr);
    std::vector<std::uint8_t> empty(nb, 1);
    for (const auto& b : v.bricks) {
      if (!b.pin) continue;
      const auto f =
          std::size_t(((b.pos[0] - v.blo[0]) * v.bdim[1] + (b.pos[1] - v.blo[1])) * v.bdim[2] +
                      (b.pos[2] - v.blo[2]));
      empty[f] = b.empty;
      if (b.empty) continue;  // never read: not uploaded
      const cuda::BrickKey key{data::ChunkKey{id, g.level, b.index}, g.axis, g.base};
      VX_ASSIGN(ptr[f], pool_->acquire(key, b, g, chunk_bytes, staging_, s));
      pinned.push_back(key);
    }
    VX_TRY(buf.bricks.reserve(nb * sizeof(const float*)));
    VX_TRY(buf.empty.reserve(nb));
    VX_TRY(buf.lut.reserve(v.look.lut.rgb.size() * sizeof(float)));
    // Synchronous copies from pageable memory: the host vectors may go after each call.
    VX_TRY(check(cudaMemcpyAsync(buf.bricks.get(), ptr.data(), nb * sizeof(const float*),
                                 cudaMemcpyHostToDevice, s),
                 "cudaMemcpyAsync (brick table)"));
    VX_TRY(check(cudaMemcpyAsync(buf.empty.get(), empty.data(), nb, cudaMemcpyHostToDevice, s),
                 "cudaMemcpyAsync (empty flags)"));
    VX_TRY(check(cudaMemcpyAsync(buf.lut.get(), v.look.lut.rgb.data(),
                                 v.look.lut.rgb.size() * sizeof(float), cudaMemcpyHostToDevice, s),
                 "cudaMemcpyAsync (colour table)"));
    VX_TRY(stream_.sync());  // the host tables above are temporaries

    cuda::VolumeArgs a{};
    for (std::size_t d = 0; d < 3; ++d) {
      a.n[d] = int(g.n[d]);
      a.chunk[d] = int(g.chunk[d]);
      a.blo[d] = int(v.blo[d]);
      a.bdim[d] = int(v.bdim[d]);
    }
    a.bricks = buf.bricks.get<const float* const>();
    a.empty = buf.empty.get<const std::uint8_t>();
    // Rays through pixel centres, affine in (x, y): from three rays, in voxel coordinates.
    Vec3 o00, d00, o10, d10, o01, d01;
    proj.ray(0.5, 0.5, o00, d00);
    proj.ray(1.5, 0.5, o10, d10);
    proj.ray(0.5, 1.5, o01, d01);
    const Vec3 vo00 = g.to_voxel(o00), vo10 = g.to_voxel(o10), vo01 = g.to_voxel(o01);
    const Vec3 vd00 = g.dir_to_voxel(d00), vd10 = g.dir_to_voxel(d10), vd01 = g.dir_to_voxel(d01);
    for (std::size_t d = 0; d < 3; ++d) {
      a.o0[d] = vo00[d];
      a.ox[d] = vo10[d] - vo00[d];
      a.oy[d] = vo01[d] - vo00[d];
      a.d0[d] = vd00[d];
      a.dx[d] = vd10[d] - vd00[d];
      a.dy[d] = vd01[d] - vd00[d];
    }
    a.perspective = proj.perspective();
    if (a.perspective) {
      const Vec3 e = g.to_voxel(proj.eye());
      for (std::size_t d = 0; d < 3; ++d)
        a.eye[d] = e[d];
    }
    a.width = W;
    a.height = H;
    const auto& look = v.look;
    a.mode = ray_mode(look.mode);
    a.linear = look.linear;
    a.lo = look.lo;
    a.hi = look.hi;
    a.iso = look.iso;
    a.attenuation = look.attenuation;
    a.opacity = look.opacity;
    a.blend = int(look.blending);
    a.lut = buf.lut.get<const float>();
    a.lut_size = kLut;
    a.lut_lo = look.lut.lo;
    a.lut_scale = look.lut.scale;
    return check(cuda::launch_volume(a, acc_.get<float>(), s), "volume kernel");
  }

  std::shared_ptr<cuda::BrickPool> pool_;
  cuda::Stream stream_;  // this renderer's (session's) work; sessions do not wait on each other
  std::unique_ptr<Renderer> cpu_;
  BrickStats stats_;
  FramePool frames_{2};
  cuda::DeviceBuffer acc_, out_, staging_;
  std::vector<LayerBuffers> layers_;
  std::vector<SliceBuffers> slices_;  // per layer: its slice and its fallback's
  std::mutex mutex_;
};

}  // namespace

std::optional<BudgetSnapshot> cuda_device_budget() {
  return cuda::pool_budget();
}

Result<std::unique_ptr<Renderer>> open_cuda_renderer() {
  VX_TRY(check(cudaSetDevice(0), "cudaSetDevice"));
  VX_ASSIGN(auto pool, cuda::shared_brick_pool());
  VX_ASSIGN(auto stream, cuda::Stream::create());
  return std::unique_ptr<Renderer>(new CudaRenderer(std::move(pool), std::move(stream)));
}

}  // namespace vx::render
