// Sort-last parallel rendering, the planning half (backend-neutral): the k-d split of a
// level's bricks over the parts, balanced by which bricks hold data, and the bricks each part
// reads. Every part plans the same view and computes the same split.
#include <algorithm>
#include <cmath>
#include <limits>

#include "render/dtype.hpp"
#include "render/plan.hpp"

namespace vx::render {

// Sort-last balance: the weight of each brick of `fine` (z-major over its whole grid): 1
// where the coarsest level shows data that can change the picture (above `floor`), 0.05
// elsewhere. Every rank computes the same from the same few chunks; empty when the
// coarsest level is not small or cannot be read (then bricks count equally).
std::vector<double> brick_weights(const RenderInputs& in, const RenderOptions& opt,
                                  data::SourceId id, const Geom& fine, const Geom& coarse,
                                  float floor) {
  I3 grid{}, cgrid{};
  std::int64_t voxels = 1;
  for (std::size_t d = 0; d < 3; ++d) {
    grid[d] = (fine.n[d] + fine.chunk[d] - 1) / fine.chunk[d];
    cgrid[d] = (coarse.n[d] + coarse.chunk[d] - 1) / coarse.chunk[d];
    voxels *= coarse.n[d];
  }
  if (voxels > (std::int64_t(1) << 24)) return {};
  std::vector<data::Index> idx;
  for (std::int64_t i0 = 0; i0 < cgrid[0]; ++i0)
    for (std::int64_t i1 = 0; i1 < cgrid[1]; ++i1)
      for (std::int64_t i2 = 0; i2 < cgrid[2]; ++i2) {
        data::Index x = coarse.fixed;
        const I3 b{i0, i1, i2};
        for (std::size_t d = 0; d < 3; ++d)
          x[std::size_t(coarse.axis[d])] = b[d];
        idx.push_back(x);
      }
  const std::vector<double> centre(idx.size(), 0.0);
  RenderOptions wait = opt;
  wait.compositor = nullptr;
  auto got = fetch_chunks(in, wait, id, coarse.level, idx, centre, Fetch::kWait);
  if (!got.complete()) return {};
  std::vector<double> w(std::size_t(grid[0] * grid[1] * grid[2]), 0.05);
  with_dtype(coarse.dtype, [&]<class T>() {
    for (std::int64_t v0 = 0; v0 < coarse.n[0]; ++v0)
      for (std::int64_t v1 = 0; v1 < coarse.n[1]; ++v1)
        for (std::int64_t v2 = 0; v2 < coarse.n[2]; ++v2) {
          const I3 v{v0, v1, v2};
          std::int64_t off = coarse.base;
          for (std::size_t d = 0; d < 3; ++d)
            off += (v[d] % coarse.chunk[d]) * coarse.stride[d];
          const auto c =
              std::size_t(((v0 / coarse.chunk[0]) * cgrid[1] + v1 / coarse.chunk[1]) * cgrid[2] +
                          v2 / coarse.chunk[2]);
          if (!(float(got.pins[c].as<T>()[std::size_t(off)]) > floor)) continue;
          // The fine bricks under this coarse voxel.
          const Vec3 lo = fine.to_voxel(coarse.to_world({v0 - 0.5, v1 - 0.5, v2 - 0.5}));
          const Vec3 hi = fine.to_voxel(coarse.to_world({v0 + 0.5, v1 + 0.5, v2 + 0.5}));
          I3 b0{}, b1{};
          for (std::size_t d = 0; d < 3; ++d) {
            const double a = std::min(lo[d], hi[d]), z = std::max(lo[d], hi[d]);
            b0[d] = std::clamp<std::int64_t>(std::int64_t(std::floor(a)) / fine.chunk[d], 0,
                                             grid[d] - 1);
            b1[d] = std::clamp<std::int64_t>(std::int64_t(std::floor(z)) / fine.chunk[d], 0,
                                             grid[d] - 1);
          }
          for (auto i0 = b0[0]; i0 <= b1[0]; ++i0)
            for (auto i1 = b0[1]; i1 <= b1[1]; ++i1)
              for (auto i2 = b0[2]; i2 <= b1[2]; ++i2)
                w[std::size_t((i0 * grid[1] + i1) * grid[2] + i2)] = 1;
        }
  });
  return w;
}

SortLast make_sort_last(Compositor& compositor, const Projection& proj, const Geom& g, bool iso,
                        std::span<const double> weights, std::vector<I3>& bricks) {
  SortLast sl;
  sl.compositor = &compositor;
  Grid3 grid{};
  for (std::size_t d = 0; d < 3; ++d) {
    sl.chunk[d] = g.chunk[d];
    grid[d] = (g.n[d] + g.chunk[d] - 1) / g.chunk[d];
  }
  sl.partition = KdPartition::split(grid, compositor.size(), weights);
  const auto& box = sl.partition.box(compositor.rank());
  for (std::size_t d = 0; d < 3; ++d) {
    const double inf = std::numeric_limits<double>::infinity();
    sl.lo[d] = box.lo[d] <= 0 ? -inf : double(box.lo[d] * g.chunk[d]);
    sl.hi[d] = box.hi[d] >= grid[d] ? inf : double(box.hi[d] * g.chunk[d]);
  }
  // The bricks this part reads: its box, and one brick beyond it where its samples reach:
  // the bilinear neighbour (+1 voxel) across the rows and columns of the slices; for iso,
  // every side (the previous sample of a crossing, and the gradient for shading).
  Vec3 o, dir;
  proj.ray(proj.width() / 2.0, proj.height() / 2.0, o, dir);
  const Vec3 dv = g.dir_to_voxel(dir);
  const auto c =
      std::size_t(std::max_element(dv.begin(), dv.end(),
                                   [](double x, double y) { return std::abs(x) < std::abs(y); }) -
                  dv.begin());
  BrickBox reads = box;
  if (!box.empty())
    for (std::size_t d = 0; d < 3; ++d) {
      if (iso) --reads.lo[d];
      if (iso || d != c) ++reads.hi[d];
    }
  else
    reads = {};
  std::erase_if(bricks, [&](const I3& b) { return !reads.contains(b); });
  return sl;
}

}  // namespace vx::render
