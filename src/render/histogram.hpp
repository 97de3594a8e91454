// Histograms and percentiles of sampled data values: the layer panel's histogram and
// auto-contrast (docs/protocol.md, `histogram`).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace vx::render {

struct Histogram {
  double lo = 0, hi = 0;              // the smallest and largest value counted
  std::vector<std::uint64_t> counts;  // `bins` equal bins over [lo, hi]; the last includes hi
  std::uint64_t samples = 0;          // values counted (NaN is never counted)
};

// The histogram of `values` (NaN skipped) in `bins` (>= 1) equal bins over their own range.
// No values: samples 0, counts all zero, lo = hi = 0. All values equal: everything in bin 0.
Histogram make_histogram(std::span<const double> values, int bins);

// The q-th percentile (q in [0, 100]) of `values` (NaN must have been left out), as the
// default contrast takes it: the element at rank floor(q / 100 * (n - 1)) in sorted order.
// Reorders `values`. Empty: 0.
double percentile(std::vector<double>& values, double q);

}  // namespace vx::render
