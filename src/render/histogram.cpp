#include "render/histogram.hpp"

#include <algorithm>
#include <cmath>

namespace vx::render {

Histogram make_histogram(std::span<const double> values, int bins) {
  Histogram h;
  h.counts.assign(std::size_t(std::max(1, bins)), 0);
  bool first = true;
  for (const double v : values) {
    if (std::isnan(v)) continue;
    if (first) {
      h.lo = h.hi = v;
      first = false;
    }
    h.lo = std::min(h.lo, v);
    h.hi = std::max(h.hi, v);
  }
  if (first) return h;
  const auto n = h.counts.size();
  const double width = h.hi - h.lo;
  // Infinite values or a range wider than a double holds: everything counts in the end bins.
  const double scale = width > 0 && std::isfinite(width) ? double(n) / width : 0;
  for (const double v : values) {
    if (std::isnan(v)) continue;
    std::size_t b = 0;
    if (scale > 0) {
      const double x = (v - h.lo) * scale;
      b = x >= double(n) ? n - 1 : x > 0 ? std::size_t(x) : 0;
    } else if (v == h.hi && h.hi != h.lo) {
      b = n - 1;
    }
    ++h.counts[b];
    ++h.samples;
  }
  return h;
}

double percentile(std::vector<double>& values, double q) {
  if (values.empty()) return 0;
  q = std::clamp(std::isnan(q) ? 0.0 : q, 0.0, 100.0);
  const auto rank = std::size_t(q / 100 * double(values.size() - 1));
  auto it = values.begin() + std::ptrdiff_t(std::min(rank, values.size() - 1));
  std::nth_element(values.begin(), it, values.end());
  return *it;
}

}  // namespace vx::render
