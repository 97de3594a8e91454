// A planned 3D layer handed to the slice pass: the dense brick box with pointers and empty
// flags, and the look with the tables the pass derives.
#include "render/cpu/volume.hpp"

#include "render/cpu/volume_impl.hpp"

namespace vx::render::cpu {

Result<std::unique_ptr<RowDrawer>> draw_volume(const Projection& proj, const VolumePlan& plan,
                                               const std::atomic<bool>* cancel) {
  Look look;
  static_cast<LayerLook&>(look) = plan.look;
  look.cancel = cancel;
  look.sort_last = plan.sort_last ? &*plan.sort_last : nullptr;
  Bricks bricks;
  bricks.lo = plan.blo;
  bricks.dim = plan.bdim;
  const auto nb = std::size_t(bricks.dim[0] * bricks.dim[1] * bricks.dim[2]);
  bricks.ptr.assign(nb, nullptr);
  bricks.empty.assign(nb, 1);  // bricks the view does not need read as empty
  for (const auto& b : plan.bricks) {
    if (!b.pin) continue;
    const auto f = bricks.flat(b.pos[0], b.pos[1], b.pos[2]);
    bricks.ptr[f] = b.pin.bytes().data();
    bricks.empty[f] = b.empty;
  }
  auto drawer = slice_and_warp(proj, plan.g, std::move(bricks), std::move(look), plan.box_lo,
                               plan.box_hi, plan.density);
  if (plan.sort_last && !plan.sort_last->status)
    return tl::unexpected(plan.sort_last->status.error());
  return drawer;
}

}  // namespace vx::render::cpu
