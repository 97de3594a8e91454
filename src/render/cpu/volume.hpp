// 3D views on the CPU: one layer of a scene with dims.ndisplay == 3, rendered by object-order
// slice compositing (shear-warp). Rays are grouped by the volume axis most aligned with the
// view (the principal axis); the volume is walked slice by slice along it, front to back,
// and each slice is resampled into an intermediate image on the plane of the first slice.
// With an orthographic camera that resampling is a pure translation per slice, so its
// bilinear weights are constant across the slice and the inner loops are contiguous and
// vectorized; a perspective camera adds a per-slice scale. The intermediate image is then
// warped onto the screen while the row pass composites the layers.
//
// Empty-space skipping: the plan (render/plan.hpp) gives every brick its min and max and
// says which cannot change the result (below the contrast floor for mip, attenuated_mip and
// translucent, below the threshold for iso); slice rows that cross only those are skipped,
// and rays that are opaque (translucent) or have hit the surface (iso) stop.
#pragma once

#include <memory>

#include "render/cpu/common.hpp"
#include "render/plan.hpp"

namespace vx::render::cpu {

// Draws a planned 3D layer: slices its bricks into an intermediate image and returns the
// drawer that warps it onto the screen, or null when the view meets no slice of it (or,
// sort-last, on parts other than 0). The plan's pins must outlive the drawer. Errors: the
// sort-last compositing failed (a part died, a timeout).
Result<std::unique_ptr<RowDrawer>> draw_volume(const Projection& proj, const VolumePlan& plan,
                                               const std::atomic<bool>* cancel);

}  // namespace vx::render::cpu
