// median: scipy.ndimage.median_filter(size=2 * radius + 1) over the spatial axes (a box),
// mode 'reflect'. Output has the input's dtype (a median is one of the input values).
#include "pipeline/kernels.hpp"

namespace vx::pipeline::builtin {
namespace {

class Median final : public Pipeline {
 public:
  data::DType output_dtype(data::DType input, const json&) const override { return input; }
  Ext3 halo(const json& p, const LevelContext& lc) const override {
    const auto r = p["radius"].get<std::int64_t>();
    return {lc.spatial_dims == 2 ? 0 : r, r, r};
  }
  Status process(const json& p, const LevelContext& lc, const BlockView& in,
                 const BlockView& out) const override {
    median_into(in, halo(p, lc), out);
    return {};
  }
};

}  // namespace

void register_median(Registry& r) {
  Descriptor d{
      "median", "1.0", "Median over a box of (2 radius + 1) voxels per spatial axis", {}, [] {
        return std::make_unique<Median>();
      }};
  d.schema.integer("radius", 1).range(0, 8).with_step(1).describe("half the box size, in voxels");
  (void)r.add(std::move(d));
}

}  // namespace vx::pipeline::builtin
