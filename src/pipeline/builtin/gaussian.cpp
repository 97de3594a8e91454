// gaussian: scipy.ndimage.gaussian_filter with sigma in physical units (the data's scale),
// mode 'reflect', truncate 4 by default. Output float32.
#include "pipeline/kernels.hpp"

namespace vx::pipeline::builtin {
namespace {

class Gaussian final : public Pipeline {
 public:
  Ext3 halo(const json& p, const LevelContext& lc) const override {
    const auto s = to_voxels(*per_axis(p["sigma"], lc.spatial_dims, "sigma"), lc);
    const double t = p["truncate"].get<double>();
    return {gaussian_radius(s[0], t), gaussian_radius(s[1], t), gaussian_radius(s[2], t)};
  }
  Status process(const json& p, const LevelContext& lc, const BlockView& in,
                 const BlockView& out) const override {
    const auto s = to_voxels(*per_axis(p["sigma"], lc.spatial_dims, "sigma"), lc);
    gaussian_into(in, s, p["truncate"].get<double>(), out);
    return {};
  }
};

}  // namespace

void register_gaussian(Registry& r) {
  Descriptor d{"gaussian",
               "1.0",
               "Gaussian blur (scipy.ndimage.gaussian_filter), sigma in the data's units",
               {},
               [] { return std::make_unique<Gaussian>(); }};
  d.schema.number("sigma", 1.0)
      .range(0, 1000)
      .axes()
      .with_unit("physical")
      .with_step(0.1)
      .describe("standard deviation per spatial axis, in the data's physical units");
  d.schema.number("truncate", 4.0)
      .range(0.5, 10)
      .with_step(0.5)
      .describe("the kernel stops at truncate x sigma");
  (void)r.add(std::move(d));
}

}  // namespace vx::pipeline::builtin
