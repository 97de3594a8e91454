// Histograms and percentiles of the layer panel (render/histogram.hpp).
#include "render/histogram.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <vector>

namespace vx::render {
namespace {

TEST(Histogram, CountsEveryValueInEqualBins) {
  std::vector<double> v;
  for (int i = 0; i <= 100; ++i)
    v.push_back(i);
  const auto h = make_histogram(v, 4);
  EXPECT_EQ(h.lo, 0);
  EXPECT_EQ(h.hi, 100);
  EXPECT_EQ(h.samples, 101u);
  // [0, 25), [25, 50), [50, 75), [75, 100]: the top value falls in the last bin.
  EXPECT_EQ(h.counts, (std::vector<std::uint64_t>{25, 25, 25, 26}));
}

TEST(Histogram, SkipsNanAndHandlesConstantAndEmpty) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const auto h = make_histogram(std::vector<double>{nan, 7, 7, nan, 7}, 8);
  EXPECT_EQ(h.samples, 3u);
  EXPECT_EQ(h.lo, 7);
  EXPECT_EQ(h.hi, 7);
  EXPECT_EQ(h.counts[0], 3u);
  EXPECT_EQ(std::accumulate(h.counts.begin(), h.counts.end(), std::uint64_t(0)), 3u);

  const auto e = make_histogram(std::vector<double>{nan}, 3);
  EXPECT_EQ(e.samples, 0u);
  EXPECT_EQ(e.counts, (std::vector<std::uint64_t>{0, 0, 0}));

  // At least one bin whatever is asked for; infinities land in the end bins.
  const double inf = std::numeric_limits<double>::infinity();
  const auto w = make_histogram(std::vector<double>{-inf, 0, inf}, 0);
  EXPECT_EQ(w.counts.size(), 1u);
  EXPECT_EQ(w.samples, 3u);
  const auto x = make_histogram(std::vector<double>{-1e308, 1e308}, 2);
  EXPECT_EQ(x.counts, (std::vector<std::uint64_t>{1, 1}));
}

TEST(Histogram, PercentilesAreRanksOfTheSortedValues) {
  std::vector<double> v(1001);
  std::iota(v.begin(), v.end(), 0.0);
  std::shuffle(v.begin(), v.end(), std::mt19937(7));
  EXPECT_EQ(percentile(v, 0), 0);
  EXPECT_EQ(percentile(v, 100), 1000);
  EXPECT_EQ(percentile(v, 50), 500);
  EXPECT_EQ(percentile(v, 0.5), 5);
  EXPECT_EQ(percentile(v, 99.5), 995);
  // Out of range and NaN clamp; nothing to rank is 0.
  EXPECT_EQ(percentile(v, 250), 1000);
  EXPECT_EQ(percentile(v, -3), 0);
  EXPECT_EQ(percentile(v, std::nan("")), 0);
  std::vector<double> none;
  EXPECT_EQ(percentile(none, 50), 0);
  // Few values: rank floor(q * (n - 1)).
  std::vector<double> two{10, 20};
  EXPECT_EQ(percentile(two, 99.5), 10);
  EXPECT_EQ(percentile(two, 100), 20);
}

}  // namespace
}  // namespace vx::render
