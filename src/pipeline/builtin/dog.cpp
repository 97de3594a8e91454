// dog: difference of Gaussians, gaussian(low_sigma) - gaussian(high_sigma) (both as the
// gaussian pipeline: physical units, mode 'reflect'). Output float32.
#include "pipeline/kernels.hpp"

namespace vx::pipeline::builtin {
namespace {

class DifferenceOfGaussians final : public Pipeline {
 public:
  Ext3 halo(const json& p, const LevelContext& lc) const override {
    const auto s = to_voxels(*per_axis(p["high_sigma"], lc.spatial_dims, "high_sigma"), lc);
    const auto l = to_voxels(*per_axis(p["low_sigma"], lc.spatial_dims, "low_sigma"), lc);
    const double t = p["truncate"].get<double>();
    Ext3 h{};
    for (std::size_t a = 0; a < 3; ++a)
      h[a] = std::max(gaussian_radius(s[a], t), gaussian_radius(l[a], t));
    return h;
  }
  Status process(const json& p, const LevelContext& lc, const BlockView& in,
                 const BlockView& out) const override {
    const double t = p["truncate"].get<double>();
    const auto lo = to_voxels(*per_axis(p["low_sigma"], lc.spatial_dims, "low_sigma"), lc);
    const auto hi = to_voxels(*per_axis(p["high_sigma"], lc.spatial_dims, "high_sigma"), lc);
    gaussian_into(in, lo, t, out);
    Block b(out.shape);
    gaussian_into(in, hi, t, b.view());
    for (std::int64_t i = 0; i < out.voxels(); ++i)
      out.data[i] -= b.data[std::size_t(i)];
    return {};
  }
};

}  // namespace

void register_dog(Registry& r) {
  Descriptor d{
      "dog", "1.0", "Difference of Gaussians: gaussian(low_sigma) - gaussian(high_sigma)", {}, [] {
        return std::make_unique<DifferenceOfGaussians>();
      }};
  d.schema.number("low_sigma", 1.0).range(0, 1000).axes().with_unit("physical").with_step(0.1);
  d.schema.number("high_sigma", 2.0).range(0, 1000).axes().with_unit("physical").with_step(0.1);
  d.schema.number("truncate", 4.0).range(0.5, 10).with_step(0.5);
  (void)r.add(std::move(d));
}

}  // namespace vx::pipeline::builtin
