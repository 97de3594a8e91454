// tophat: background subtraction by white top-hat, input - opening(input) with a box of
// (2 radius + 1) voxels per spatial axis (scipy.ndimage.white_tophat(size=2 radius + 1),
// mode 'reflect'). Output has the input's dtype (never negative: the opening is <= input).
#include "pipeline/kernels.hpp"

namespace vx::pipeline::builtin {
namespace {

class TopHat final : public Pipeline {
 public:
  data::DType output_dtype(data::DType input, const json&) const override { return input; }
  Ext3 halo(const json& p, const LevelContext& lc) const override {
    const auto r = 2 * p["radius"].get<std::int64_t>();  // erosion, then dilation
    return {lc.spatial_dims == 2 ? 0 : r, r, r};
  }
  Status process(const json& p, const LevelContext& lc, const BlockView& in,
                 const BlockView& out) const override {
    const auto r = p["radius"].get<std::int64_t>();
    const Ext3 rr{lc.spatial_dims == 2 ? 0 : r, r, r};
    Block cur;
    BlockView v = in;
    for (bool maximum : {false, true})
      for (int a = 0; a < 3; ++a) {
        if (rr[std::size_t(a)] == 0) continue;
        cur = extremum_axis(v, a, rr[std::size_t(a)], maximum);
        v = cur.view();
      }
    crop_into(v, out);  // the opening
    Block centre(out.shape);
    crop_into(in, centre.view());
    for (std::int64_t i = 0; i < out.voxels(); ++i)
      out.data[i] = centre.data[std::size_t(i)] - out.data[i];
    return {};
  }
};

}  // namespace

void register_tophat(Registry& r) {
  Descriptor d{"tophat",
               "1.0",
               "Background subtraction: white top-hat (input - opening) with a box of "
               "2 radius + 1 voxels",
               {},
               [] { return std::make_unique<TopHat>(); }};
  d.schema.integer("radius", 5)
      .range(1, 32)
      .with_step(1)
      .describe("half the box size, in voxels; larger than the objects to keep");
  (void)r.add(std::move(d));
}

}  // namespace vx::pipeline::builtin
