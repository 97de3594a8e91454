#include "render/partition.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace vx::render {
namespace {

constexpr float kOpaque = 0.99f;  // the CPU renderer's translucent rays stop here

double box_weight(const BrickBox& b, const Grid3& grid, std::span<const double> w) {
  if (b.empty()) return 0;
  if (w.empty()) return double(b.count());
  double sum = 0;
  for (auto i0 = b.lo[0]; i0 < b.hi[0]; ++i0)
    for (auto i1 = b.lo[1]; i1 < b.hi[1]; ++i1)
      for (auto i2 = b.lo[2]; i2 < b.hi[2]; ++i2)
        sum += w[std::size_t((i0 * grid[1] + i1) * grid[2] + i2)];
  return sum;
}

}  // namespace

KdPartition KdPartition::split(const Grid3& grid, int parts, std::span<const double> weights) {
  if (parts < 1) throw std::invalid_argument("KdPartition: parts < 1");
  if (!weights.empty() && weights.size() != std::size_t(grid[0] * grid[1] * grid[2]))
    throw std::invalid_argument("KdPartition: one weight per brick");
  KdPartition p;
  p.boxes_.resize(std::size_t(parts));
  p.build(BrickBox{{0, 0, 0}, grid}, 0, parts, grid, weights);
  return p;
}

int KdPartition::build(const BrickBox& box, int first, int parts, const Grid3& grid,
                       std::span<const double> weights) {
  const int id = int(nodes_.size());
  nodes_.emplace_back();
  if (parts == 1) {
    nodes_[std::size_t(id)].part = first;
    boxes_[std::size_t(first)] = box;
    return id;
  }
  const int nlow = parts / 2;
  // The longest axis that can be cut; none: the high side gets the box, the low side nothing.
  int axis = -1;
  std::int64_t longest = 1;
  for (int d = 0; d < 3; ++d) {
    const auto ext = box.hi[std::size_t(d)] - box.lo[std::size_t(d)];
    if (ext > longest) longest = ext, axis = d;
  }
  std::int64_t plane = box.lo[0];
  int ax = 0;
  if (axis >= 0) {
    ax = axis;
    const auto A = std::size_t(axis);
    const double total = box_weight(box, grid, weights);
    const double want = total * double(nlow) / double(parts);
    // Slab weights along the axis, then the cut nearest the wanted share (at least one
    // slab per side, so both sides get bricks).
    std::vector<double> slab;
    for (auto x = box.lo[A]; x < box.hi[A]; ++x) {
      BrickBox s = box;
      s.lo[A] = x;
      s.hi[A] = x + 1;
      slab.push_back(box_weight(s, grid, weights));
    }
    double acc = 0, best = 1e300;
    plane = box.lo[A] + 1;
    for (std::size_t i = 0; i + 1 < slab.size(); ++i) {
      acc += slab[i];
      // Ties (all-empty slabs) go to the even split by count.
      const double err =
          std::abs(acc - want) +
          1e-9 * std::abs(double(i + 1) - double(slab.size()) * nlow / double(parts));
      if (err < best) best = err, plane = box.lo[A] + std::int64_t(i) + 1;
    }
  } else {
    plane = box.lo[0];  // low side empty
  }
  BrickBox low = box, high = box;
  low.hi[std::size_t(ax)] = plane;
  high.lo[std::size_t(ax)] = plane;
  if (axis < 0) low.hi = low.lo;  // nothing to cut: an empty box
  const int l = build(low, first, nlow, grid, weights);
  const int h = build(high, first + nlow, parts - nlow, grid, weights);
  auto& n = nodes_[std::size_t(id)];
  n.axis = ax;
  n.plane = plane;
  n.low = l;
  n.high = h;
  return id;
}

void KdPartition::walk(int node, const std::array<double, 3>& dir, const std::array<double, 3>* eye,
                       std::vector<int>& out) const {
  const auto& n = nodes_[std::size_t(node)];
  if (n.axis < 0) {
    out.push_back(n.part);
    return;
  }
  const auto A = std::size_t(n.axis);
  // Rays meet the low side first when they run up the axis (orthographic) or start below
  // the plane (perspective).
  const bool low_first = eye ? (*eye)[A] < double(n.plane) : dir[A] >= 0;
  walk(low_first ? n.low : n.high, dir, eye, out);
  walk(low_first ? n.high : n.low, dir, eye, out);
}

std::vector<int> KdPartition::order(const std::array<double, 3>& dir,
                                    const std::array<double, 3>* eye) const {
  std::vector<int> out;
  if (!nodes_.empty()) walk(0, dir, eye, out);
  return out;
}

int partial_channels(PartialOp op) {
  switch (op) {
    case PartialOp::kMax:
    case PartialOp::kMin:
      return 1;
    case PartialOp::kSum:
    case PartialOp::kAttenuated:
      return 2;
    case PartialOp::kOver:
      break;
  }
  return 4;
}

void composite_partial(PartialOp op, const float* f, const float* b, float* o, std::size_t n) {
  switch (op) {
    case PartialOp::kMax:
      for (std::size_t i = 0; i < n; ++i)
        o[i] = f[i] >= b[i] ? f[i] : b[i];
      return;
    case PartialOp::kMin:
      for (std::size_t i = 0; i < n; ++i)  // NaN: no sample on that side
        o[i] = b[i] != b[i] || f[i] <= b[i] ? f[i] : b[i];
      return;
    case PartialOp::kSum:
      for (std::size_t i = 0; i < 2 * n; ++i)
        o[i] = f[i] + b[i];
      return;
    case PartialOp::kAttenuated:
      for (std::size_t i = 0; i < n; ++i) {
        const float vf = f[2 * i], tf = f[2 * i + 1], vb = b[2 * i] * tf, tb = b[2 * i + 1];
        o[2 * i] = vf >= vb ? vf : vb;
        o[2 * i + 1] = tf * tb;
      }
      return;
    case PartialOp::kOver:
      for (std::size_t i = 0; i < n; ++i) {
        const float* F = f + 4 * i;
        const float* B = b + 4 * i;
        float* O = o + 4 * i;
        // A ray that is opaque in front stops there, as it does in one process.
        const float t = F[3] >= kOpaque ? 0.f : 1 - F[3];
        const float r[4] = {F[0] + t * B[0], F[1] + t * B[1], F[2] + t * B[2], F[3] + t * B[3]};
        O[0] = r[0], O[1] = r[1], O[2] = r[2], O[3] = r[3];
      }
      return;
  }
}

}  // namespace vx::render
