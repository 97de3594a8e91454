// richardson_lucy: Richardson-Lucy deconvolution (skimage.restoration.richardson_lucy with
// clip=False) with a Gaussian PSF (sigma per axis in physical units) or a PSF read from a
// small .npy file, by FFT convolution (FFTW, single precision). Output float32.
//
// Boundary: 'reflect' like the other built-ins (docs/pipelines.md, "Halo correctness"): each
// iteration convolves the estimate extended by reflection, so a chunk needs the halo
// min(2 r n, 3 r) (r the PSF's radius, n iterations), past which the influence of a voxel
// has decayed below float32 precision in practice, not exactly (2 r n would be exact).
#include <fftw3.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <list>

#include "data/file_io.hpp"
#include "data/mapped_array.hpp"
#include "pipeline/kernels.hpp"

namespace vx::pipeline::builtin {
namespace {

constexpr std::uint64_t kMaxPsfFileBytes = 1 << 20;
constexpr std::int64_t kMaxPsfSide = 63;
constexpr std::size_t kMaxPlans = 16;
// An upper estimate of what one cached pair of FFTW_ESTIMATE plans holds (twiddle tables and
// FFTW's own buffers for chunk-sized transforms): load() charges kMaxPlans of these (4 MiB).
constexpr std::uint64_t kPlanBytes = 256 << 10;

// FFTW's planner is not thread-safe (execution is): plans are made and destroyed under this.
std::mutex& planner_mutex() {
  static std::mutex m;
  return m;
}

struct FftwFree {
  void operator()(void* p) const { fftwf_free(p); }
};
template <class T>
using FftwBuf = std::unique_ptr<T[], FftwFree>;
template <class T>
FftwBuf<T> fftw_buffer(std::size_t n) {
  auto* p = static_cast<T*>(fftwf_malloc(sizeof(T) * std::max<std::size_t>(n, 1)));
  if (!p) throw std::bad_alloc();
  return FftwBuf<T>(p);
}

// The smallest n' >= n whose factors are 2, 3, 5 and 7 (FFTW's fast sizes).
std::int64_t fast_size(std::int64_t n) {
  for (;; ++n) {
    auto m = n;
    for (std::int64_t f : {2, 3, 5, 7})
      while (m % f == 0)
        m /= f;
    if (m == 1) return n;
  }
}

std::int64_t complex_count(const Ext3& n) {
  return n[0] * n[1] * (n[2] / 2 + 1);
}

// A forward (r2c) and inverse (c2r) plan for one transform size, shared by every chunk of
// that size (fftwf_execute_dft_* on the chunk's own buffers, all from fftwf_malloc).
struct Plans {
  fftwf_plan fwd = nullptr, inv = nullptr;
  Plans() = default;
  Plans(const Plans&) = delete;
  Plans& operator=(const Plans&) = delete;
  ~Plans() {
    std::lock_guard lock(planner_mutex());
    if (fwd) fftwf_destroy_plan(fwd);
    if (inv) fftwf_destroy_plan(inv);
  }
};

class PlanCache {
 public:
  std::shared_ptr<const Plans> get(const Ext3& n) {
    std::lock_guard lock(mutex_);
    for (auto it = items_.begin(); it != items_.end(); ++it)
      if (it->first == n) {
        items_.splice(items_.begin(), items_, it);
        return it->second;
      }
    auto p = std::make_shared<Plans>();
    {
      std::lock_guard plan_lock(planner_mutex());
      auto real = fftw_buffer<float>(std::size_t(n[0] * n[1] * n[2]));
      auto spec = fftw_buffer<fftwf_complex>(std::size_t(complex_count(n)));
      const int dims[3] = {int(n[0]), int(n[1]), int(n[2])};
      p->fwd = fftwf_plan_dft_r2c(3, dims, real.get(), spec.get(), FFTW_ESTIMATE);
      p->inv = fftwf_plan_dft_c2r(3, dims, spec.get(), real.get(), FFTW_ESTIMATE);
    }
    if (!p->fwd || !p->inv) return nullptr;
    items_.emplace_front(n, p);
    if (items_.size() > kMaxPlans) items_.pop_back();  // in-flight users keep theirs alive
    return p;
  }
  void clear() {
    std::lock_guard lock(mutex_);
    items_.clear();
  }

 private:
  std::mutex mutex_;
  std::list<std::pair<Ext3, std::shared_ptr<const Plans>>> items_;  // most recent first
};

// The PSF as a (z, y, x) block of odd sides, normalized to sum 1.
struct Psf {
  std::vector<float> w;
  Ext3 shape{1, 1, 1};
  Ext3 radius() const { return {shape[0] / 2, shape[1] / 2, shape[2] / 2}; }
};

// Reads and checks a PSF file: a .npy of 2 or 3 axes, odd sides <= kMaxPsfSide, finite,
// non-negative, sum > 0. Errors name the field, the file and the rule it breaks, never what
// the file holds (its size, shape, type or values): a server reads files its clients name.
Result<Psf> read_psf_file(const std::string& path) {
  constexpr std::string_view f = "params.psf_file";
  std::error_code ec;
  // A NUL would end the name the system opens before ".npy" ("/etc/passwd\0.npy").
  if (std::any_of(path.begin(), path.end(), [](char c) { return (unsigned char)c < 0x20; }))
    return fail(ErrorCode::kInvalidArgument, "{}: a file name has no control characters", f);
  if (!path.ends_with(".npy"))
    return fail(ErrorCode::kInvalidArgument, "{}: '{}' is not a .npy file", f, path);
  if (!std::filesystem::is_regular_file(path, ec))
    return fail(ErrorCode::kInvalidArgument, "{}: '{}' is not a readable file", f, path);
  const auto size = std::filesystem::file_size(path, ec);
  if (ec || size > kMaxPsfFileBytes)
    return fail(ErrorCode::kInvalidArgument,
                "{}: '{}' is too large (a PSF file has at most {} bytes)", f, path,
                kMaxPsfFileBytes);
  VX_ASSIGN(auto bytes, data::read_file(path));
  auto h = data::parse_npy_header(std::span<const std::byte>(bytes.data(), bytes.size()), path);
  if (!h) return fail(ErrorCode::kInvalidArgument, "{}: '{}' is not a valid .npy file", f, path);
  const auto& lay = h->layout;
  if (lay.bytes_needed() > bytes.size())
    return fail(ErrorCode::kInvalidArgument, "{}: '{}' is truncated", f, path);
  if (lay.big_endian || (lay.dtype != data::DType::kFloat32 && lay.dtype != data::DType::kFloat64))
    return fail(ErrorCode::kInvalidArgument,
                "{}: '{}' must hold little-endian float32 or float64 values", f, path);
  const int nd = int(lay.shape.size());
  if (nd < 2 || nd > 3)
    return fail(ErrorCode::kInvalidArgument, "{}: '{}' does not have 2 or 3 axes", f, path);
  Psf psf;
  for (int a = 0; a < nd; ++a) {
    const auto s = lay.shape[std::size_t(a)];
    if (s < 1 || s % 2 == 0 || s > kMaxPsfSide)
      return fail(ErrorCode::kInvalidArgument,
                  "{}: '{}' needs each side odd, 1..{} (so that the PSF has a centre)", f, path,
                  kMaxPsfSide);
    psf.shape[std::size_t(3 - nd + a)] = s;
  }
  psf.w.resize(std::size_t(psf.shape[0] * psf.shape[1] * psf.shape[2]));
  std::vector<std::int64_t> stride(3, 0);
  for (int a = 0; a < nd; ++a)
    stride[std::size_t(3 - nd + a)] = lay.strides[std::size_t(a)];
  double sum = 0;
  std::size_t i = 0;
  for (std::int64_t z = 0; z < psf.shape[0]; ++z)
    for (std::int64_t y = 0; y < psf.shape[1]; ++y)
      for (std::int64_t x = 0; x < psf.shape[2]; ++x, ++i) {
        const auto* p = bytes.data() + lay.offset + z * stride[0] + y * stride[1] + x * stride[2];
        double v;
        if (lay.dtype == data::DType::kFloat32) {
          float fv;
          std::memcpy(&fv, p, 4);
          v = fv;
        } else {
          std::memcpy(&v, p, 8);
        }
        if (!std::isfinite(v) || v < 0)
          return fail(ErrorCode::kInvalidArgument,
                      "{}: '{}' holds a value that is not finite and non-negative", f, path);
        psf.w[i] = float(v);
        sum += v;
      }
  if (!(sum > 0))
    return fail(ErrorCode::kInvalidArgument, "{}: '{}' sums to 0 (a PSF needs sum > 0)", f, path);
  for (auto& v : psf.w)
    v = float(v / sum);
  return psf;
}

// The PSF of these parameters at this level: the file's (prepared as "_psf") or a Gaussian.
Psf psf_of(const json& p, const LevelContext& lc) {
  Psf psf;
  if (p.contains("_psf")) {
    for (std::size_t a = 0; a < 3; ++a)
      psf.shape[a] = p["_psf_shape"][a].get<std::int64_t>();
    psf.w = p["_psf"].get<std::vector<float>>();
    // The file is sampled on level-0 voxels: at a coarser level, the same PSF on its voxels.
    psf.w = resample_kernel(psf.w, psf.shape, lc.downsample);
    if (lc.spatial_dims == 2 && psf.shape[0] > 1) {  // a 3D PSF on 2D data: its centre plane
      const auto plane = psf.shape[1] * psf.shape[2];
      std::vector<float> mid(psf.w.begin() + psf.shape[0] / 2 * plane,
                             psf.w.begin() + (psf.shape[0] / 2 + 1) * plane);
      double s = 0;
      for (float v : mid)
        s += v;
      for (auto& v : mid)
        v = s > 0 ? float(v / s) : 0.0f;
      psf.w = std::move(mid);
      psf.shape[0] = 1;
    }
    return psf;
  }
  const auto s = to_voxels(*per_axis(p["sigma"], lc.spatial_dims, "sigma"), lc);
  const double t = p["truncate"].get<double>();
  std::array<std::vector<float>, 3> k;
  for (std::size_t a = 0; a < 3; ++a) {
    k[a] = s[a] > 1e-15 ? gaussian_kernel(s[a], t) : std::vector<float>{1.0f};
    psf.shape[a] = std::int64_t(k[a].size());
  }
  psf.w.reserve(std::size_t(psf.shape[0] * psf.shape[1] * psf.shape[2]));
  for (float wz : k[0])
    for (float wy : k[1])
      for (float wx : k[2])
        psf.w.push_back(wz * wy * wx);
  return psf;
}

Ext3 rl_halo(const Ext3& r, std::int64_t iterations) {
  Ext3 h{};
  for (std::size_t a = 0; a < 3; ++a)
    h[a] = std::min(2 * r[a] * iterations, 3 * r[a]);
  return h;
}

// One FFT convolution of a block with a PSF, both reflect-extended: the scratch of a chunk.
class Convolver {
 public:
  Convolver(const Ext3& block, const Psf& psf, std::shared_ptr<const Plans> plans)
      : b_(block), r_(psf.radius()), plans_(std::move(plans)) {
    for (std::size_t a = 0; a < 3; ++a)
      n_[a] = fast_size(b_[a] + 2 * r_[a]);
    total_ = n_[0] * n_[1] * n_[2];
    real_ = fftw_buffer<float>(std::size_t(total_));
    spec_ = fftw_buffer<fftwf_complex>(std::size_t(complex_count(n_)));
    k_ = fftw_buffer<fftwf_complex>(std::size_t(complex_count(n_)));
    km_ = fftw_buffer<fftwf_complex>(std::size_t(complex_count(n_)));
    for (std::size_t a = 0; a < 3; ++a)  // block position of each padded position
      for (std::int64_t p = 0; p < b_[a] + 2 * r_[a]; ++p)
        src_[a].push_back(reflect_index(p - r_[a], b_[a]));
    place_psf(psf, false, k_.get());
    place_psf(psf, true, km_.get());
  }
  static Ext3 transform_size(const Ext3& block, const Psf& psf) {
    const auto r = psf.radius();
    return {fast_size(block[0] + 2 * r[0]), fast_size(block[1] + 2 * r[1]),
            fast_size(block[2] + 2 * r[2])};
  }

  // out[q] = sum_d K[d] in[q - d] (mirror: K[-d]), `in` reflected past the block's edges.
  // `apply(q, value)` receives every block position in C order.
  template <class F>
  void convolve(const float* in, bool mirror, F&& apply) {
    std::fill_n(real_.get(), total_, 0.0f);
    for (std::size_t z = 0; z < src_[0].size(); ++z)
      for (std::size_t y = 0; y < src_[1].size(); ++y) {
        const float* row = in + (src_[0][z] * b_[1] + src_[1][y]) * b_[2];
        float* dst = real_.get() + (std::int64_t(z) * n_[1] + std::int64_t(y)) * n_[2];
        for (std::size_t x = 0; x < src_[2].size(); ++x)
          dst[x] = row[src_[2][x]];
      }
    fftwf_execute_dft_r2c(plans_->fwd, real_.get(), spec_.get());
    const fftwf_complex* k = mirror ? km_.get() : k_.get();
    const auto nc = complex_count(n_);
    for (std::int64_t i = 0; i < nc; ++i) {
      const float re = spec_[i][0] * k[i][0] - spec_[i][1] * k[i][1];
      const float im = spec_[i][0] * k[i][1] + spec_[i][1] * k[i][0];
      spec_[i][0] = re;
      spec_[i][1] = im;
    }
    fftwf_execute_dft_c2r(plans_->inv, spec_.get(), real_.get());
    const float scale = 1.0f / float(total_);
    std::int64_t q = 0;
    for (std::int64_t z = 0; z < b_[0]; ++z)
      for (std::int64_t y = 0; y < b_[1]; ++y) {
        const float* row = real_.get() + ((z + r_[0]) * n_[1] + y + r_[1]) * n_[2] + r_[2];
        for (std::int64_t x = 0; x < b_[2]; ++x, ++q)
          apply(q, row[x] * scale);
      }
  }

 private:
  // The PSF centred on index 0 of the transform (circularly), mirrored or not, transformed.
  void place_psf(const Psf& psf, bool mirror, fftwf_complex* out) {
    std::fill_n(real_.get(), total_, 0.0f);
    std::size_t i = 0;
    for (std::int64_t z = 0; z < psf.shape[0]; ++z)
      for (std::int64_t y = 0; y < psf.shape[1]; ++y)
        for (std::int64_t x = 0; x < psf.shape[2]; ++x, ++i) {
          const Ext3 d{z - r_[0], y - r_[1], x - r_[2]};
          Ext3 at{};
          for (std::size_t a = 0; a < 3; ++a)
            at[a] = ((mirror ? -d[a] : d[a]) % n_[a] + n_[a]) % n_[a];
          real_[std::size_t((at[0] * n_[1] + at[1]) * n_[2] + at[2])] = psf.w[i];
        }
    fftwf_execute_dft_r2c(plans_->fwd, real_.get(), out);
  }

  Ext3 b_, r_, n_{};
  std::int64_t total_ = 0;
  std::shared_ptr<const Plans> plans_;
  FftwBuf<float> real_;
  FftwBuf<fftwf_complex> spec_, k_, km_;
  std::array<std::vector<std::int64_t>, 3> src_;
};

class RichardsonLucy final : public Pipeline {
 public:
  Result<std::uint64_t> load() override { return kMaxPlans * kPlanBytes; }
  void unload() override { plans_.clear(); }

  Result<json> prepare(const json& params, data::DType, int, const LevelReader&) const override {
    const auto path = params["psf_file"].get<std::string>();
    if (path.empty()) return params;
    VX_ASSIGN(auto psf, read_psf_file(path));
    json out = params;
    out["_psf"] = psf.w;
    out["_psf_shape"] = psf.shape;
    return out;
  }

  Ext3 halo(const json& p, const LevelContext& lc) const override {
    return rl_halo(psf_of(p, lc).radius(), p["iterations"].get<std::int64_t>());
  }

  std::uint64_t scratch_bytes(const json&, const Ext3& in) const override {
    // The halo is at least 2 r, so the reflect-padded block is at most 1.5 x the input.
    std::uint64_t n = 1, nc = 1;
    for (std::size_t a = 0; a < 3; ++a) {
      const auto s = fast_size(in[a] + in[a] / 2);
      n *= std::uint64_t(s);
      nc *= a == 2 ? std::uint64_t(s / 2 + 1) : std::uint64_t(s);
    }
    return std::uint64_t(in[0] * in[1] * in[2]) * 2 * sizeof(float) + n * sizeof(float) +
           3 * nc * sizeof(fftwf_complex);
  }

  Status process(const json& p, const LevelContext& lc, const BlockView& in,
                 const BlockView& out) const override {
    const auto psf = psf_of(p, lc);
    if (lc.spatial_dims == 2 && psf.shape[0] != 1)
      return fail(ErrorCode::kInvalidArgument, "params.psf_file: a 3D PSF on 2D data");
    auto plans = plans_.get(Convolver::transform_size(in.shape, psf));
    if (!plans) return fail(ErrorCode::kInternal, "FFTW could not plan a transform");
    Convolver conv(in.shape, psf, std::move(plans));
    Block est(in.shape), rel(in.shape);
    std::fill_n(est.data.get(), in.voxels(), 0.5f);  // skimage's first estimate
    const auto iterations = p["iterations"].get<std::int64_t>();
    for (std::int64_t it = 0; it < iterations; ++it) {
      conv.convolve(est.data.get(), false, [&](std::int64_t q, float c) {
        rel.data[std::size_t(q)] = in.data[q] / (c + 1e-12f);
      });
      conv.convolve(rel.data.get(), true,
                    [&](std::int64_t q, float c) { est.data[std::size_t(q)] *= c; });
    }
    crop_into(est.view(), out);
    return {};
  }

 private:
  mutable PlanCache plans_;
};

}  // namespace

void register_richardson_lucy(Registry& r) {
  Descriptor d{"richardson_lucy",
               "1.0",
               "Richardson-Lucy deconvolution (skimage.restoration.richardson_lucy, clip=False) "
               "with a Gaussian PSF or one read from a .npy file",
               {},
               [] { return std::make_unique<RichardsonLucy>(); }};
  d.schema.integer("iterations", 10)
      .range(1, 100)
      .with_step(1)
      .describe("Richardson-Lucy iterations");
  d.schema.number("sigma", 1.0)
      .range(0, 50)
      .axes()
      .with_unit("physical")
      .with_step(0.1)
      .describe("the Gaussian PSF's standard deviation per spatial axis, in physical units");
  d.schema.number("truncate", 4.0)
      .range(0.5, 10)
      .with_step(0.5)
      .describe("the Gaussian PSF stops at truncate x sigma");
  d.schema.string("psf_file", "")
      .describe(
          "a .npy PSF (2 or 3 axes, odd sides <= 63, level-0 voxels, <= 1 MiB) replacing the "
          "Gaussian; normalized to sum 1");
  (void)r.add(std::move(d));
}

}  // namespace vx::pipeline::builtin
