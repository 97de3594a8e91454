// Sort-last parallel rendering, the backend-neutral half: a k-d split of a level's brick grid
// over N parts (balanced by brick weights, e.g. non-empty bricks), the front-to-back order of
// the parts for a view, and the compositing operators for partial images. The transport (MPI,
// binary-swap) lives in src/cluster and plugs in through Compositor; the CPU renderer takes
// one in RenderOptions::compositor.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <vector>

#include "core/error.hpp"

namespace vx::render {

using Grid3 = std::array<std::int64_t, 3>;

// A half-open box of bricks, [lo, hi) on each axis (the displayed axes, camera order).
struct BrickBox {
  Grid3 lo{}, hi{};
  bool empty() const { return hi[0] <= lo[0] || hi[1] <= lo[1] || hi[2] <= lo[2]; }
  std::int64_t count() const {
    return empty() ? 0 : (hi[0] - lo[0]) * (hi[1] - lo[1]) * (hi[2] - lo[2]);
  }
  bool contains(const Grid3& b) const {
    for (std::size_t d = 0; d < 3; ++d)
      if (b[d] < lo[d] || b[d] >= hi[d]) return false;
    return true;
  }
};

class KdPartition {
 public:
  // Splits a grid of `grid` bricks over `parts` parts: each node gives floor(n/2) parts to
  // its low side and the rest to the high side, cut across its longest axis at the plane
  // that best matches that share of the weight. `weights` (one per brick, z-major, or empty
  // for all ones) count the work and memory of a brick: 1 for a brick with data, less for
  // one that is empty. With more parts than bricks some parts get an empty box.
  static KdPartition split(const Grid3& grid, int parts, std::span<const double> weights = {});

  int size() const { return int(boxes_.size()); }
  const BrickBox& box(int part) const { return boxes_.at(std::size_t(part)); }
  // The parts front to back for rays along `dir` (orthographic; brick or voxel axes, only
  // the signs matter) or, with `eye` (perspective), from an eye at that point in brick
  // units. Every straight ray meets the parts in this order.
  std::vector<int> order(const std::array<double, 3>& dir, const std::array<double, 3>* eye) const;

 private:
  struct Node {
    int axis = -1;            // -1: leaf
    std::int64_t plane = 0;   // low child holds bricks < plane
    int low = -1, high = -1;  // node indices
    int part = -1;            // leaf: the part
  };
  int build(const BrickBox& box, int first_part, int parts, const Grid3& grid,
            std::span<const double> weights);
  void walk(int node, const std::array<double, 3>& dir, const std::array<double, 3>* eye,
            std::vector<int>& out) const;
  std::vector<Node> nodes_;
  std::vector<BrickBox> boxes_;
};

// How two partial images of the same pixels combine, front over back. Pixels are
// `channels` floats each, interleaved.
enum class PartialOp {
  kMax,         // 1 channel: MIP value
  kMin,         // 1 channel: MinIP value, NaN = no sample
  kSum,         // any channels: average (sum, count)
  kAttenuated,  // 2 channels: attenuated MIP (value, transmittance): max(vf, tf * vb), tf * tb
  kOver,        // 4 channels: premultiplied RGBA (translucent; shaded iso hits, alpha 0 or 1)
};
int partial_channels(PartialOp op);

// out[i] = front[i] (op) back[i] for `pixels` pixels; out may alias front or back.
void composite_partial(PartialOp op, const float* front, const float* back, float* out,
                       std::size_t pixels);

// The transport of sort-last compositing across processes (src/cluster: MPI binary-swap).
// Every part calls composite() with the same op and pixel count, in the same order.
class Compositor {
 public:
  virtual ~Compositor() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // Composites `pixels` (this part's partial image) with every other part's, front to back
  // in `order` (a permutation of the parts). On return, part 0 holds the full composite
  // in `pixels`; the others hold nothing useful.
  virtual Status composite(PartialOp op, std::vector<float>& pixels,
                           std::span<const int> order) = 0;
};

}  // namespace vx::render
