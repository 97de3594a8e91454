// The k-d split of a brick grid over parts, the parts' visibility order, and the
// compositing operators of sort-last rendering (render/partition.hpp).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <numeric>
#include <random>

#include "render/partition.hpp"

namespace vx::render {
namespace {

// Every brick in exactly one box.
void expect_cover(const KdPartition& p, const Grid3& grid) {
  for (std::int64_t i0 = 0; i0 < grid[0]; ++i0)
    for (std::int64_t i1 = 0; i1 < grid[1]; ++i1)
      for (std::int64_t i2 = 0; i2 < grid[2]; ++i2) {
        int owners = 0;
        for (int k = 0; k < p.size(); ++k)
          owners += p.box(k).contains({i0, i1, i2});
        EXPECT_EQ(owners, 1) << "brick " << i0 << "," << i1 << "," << i2;
      }
}

TEST(KdPartition, CoversTheGridOnceForEveryPartCount) {
  const Grid3 grid{5, 7, 3};
  for (int n = 1; n <= 9; ++n) {
    const auto p = KdPartition::split(grid, n);
    ASSERT_EQ(p.size(), n);
    expect_cover(p, grid);
  }
}

TEST(KdPartition, BalancesBrickCounts) {
  const Grid3 grid{16, 16, 16};
  for (int n : {2, 4, 8}) {
    const auto p = KdPartition::split(grid, n);
    for (int k = 0; k < n; ++k)
      EXPECT_EQ(p.box(k).count(), 4096 / n) << "part " << k << " of " << n;
  }
  const auto three = KdPartition::split(grid, 3);
  for (int k = 0; k < 3; ++k)  // 1/3 of 4096 is 1365; slabs of 256 bricks or less
    EXPECT_NEAR(double(three.box(k).count()), 4096.0 / 3, 256.0) << "part " << k;
}

TEST(KdPartition, BalancesByWeightNotCount) {
  // Data only in the first quarter along z: a split by count would give part 1 nothing.
  const Grid3 grid{8, 4, 4};
  std::vector<double> w(8 * 4 * 4, 0.01);
  for (std::size_t i = 0; i < 2 * 16; ++i)
    w[i] = 1;
  const auto p = KdPartition::split(grid, 2, w);
  expect_cover(p, grid);
  auto weight = [&](const BrickBox& b) {
    double s = 0;
    for (auto i0 = b.lo[0]; i0 < b.hi[0]; ++i0)
      for (auto i1 = b.lo[1]; i1 < b.hi[1]; ++i1)
        for (auto i2 = b.lo[2]; i2 < b.hi[2]; ++i2)
          s += w[std::size_t((i0 * 4 + i1) * 4 + i2)];
    return s;
  };
  const double a = weight(p.box(0)), b = weight(p.box(1));
  EXPECT_NEAR(a / (a + b), 0.5, 0.15) << "weights " << a << " and " << b;
}

TEST(KdPartition, MorePartsThanBricksLeavesSomeEmpty) {
  const Grid3 grid{1, 2, 1};
  const auto p = KdPartition::split(grid, 4);
  expect_cover(p, grid);
  int empty = 0;
  for (int k = 0; k < 4; ++k)
    empty += p.box(k).empty();
  EXPECT_EQ(empty, 2);
  EXPECT_EQ(p.order({1, 1, 1}, nullptr).size(), 4u);
}

TEST(KdPartition, RejectsBadArguments) {
  EXPECT_THROW(KdPartition::split({2, 2, 2}, 0), std::invalid_argument);
  std::vector<double> w(3, 1.0);
  EXPECT_THROW(KdPartition::split({2, 2, 2}, 2, w), std::invalid_argument);
}

// The order is front to back: for random rays, the parts a ray meets come in that order.
TEST(KdPartition, OrderIsTheOrderRaysMeetTheParts) {
  const Grid3 grid{6, 5, 7};
  std::mt19937 rng(7);
  std::uniform_real_distribution<double> U(-1, 1);
  for (int n : {2, 3, 4, 5, 8}) {
    const auto p = KdPartition::split(grid, n);
    for (int trial = 0; trial < 40; ++trial) {
      const bool persp = trial % 2 == 1;
      std::array<double, 3> eye{U(rng) * 10 + 3, U(rng) * 10 + 2.5, U(rng) * 10 + 3.5};
      std::array<double, 3> dir{U(rng), U(rng), U(rng)};
      const auto order = p.order(dir, persp ? &eye : nullptr);
      std::vector<int> rank(static_cast<std::size_t>(n));
      for (int i = 0; i < n; ++i)
        rank[std::size_t(order[std::size_t(i)])] = i;
      // A ray: from the eye (perspective) or from far behind the grid (orthographic).
      std::array<double, 3> o = eye, d = dir;
      if (persp) {
        const std::array<double, 3> target{U(rng) * 3 + 3, U(rng) * 2.5 + 2.5, U(rng) * 3.5 + 3.5};
        for (std::size_t k = 0; k < 3; ++k)
          d[k] = target[k] - eye[k];
      } else {
        for (std::size_t k = 0; k < 3; ++k)
          o[k] = 3 + U(rng) * 3 - 40 * d[k];
      }
      int last = -1;
      for (double t = 0; t < 100; t += 0.01) {
        Grid3 b;
        bool in = true;
        for (std::size_t k = 0; k < 3; ++k) {
          const double x = o[k] + t * d[k];
          b[k] = std::int64_t(std::floor(x));
          in &= b[k] >= 0 && b[k] < grid[k];
        }
        if (!in) continue;
        for (int part = 0; part < n; ++part)
          if (p.box(part).contains(b)) {
            EXPECT_GE(rank[std::size_t(part)], last) << "n=" << n << " trial " << trial;
            last = rank[std::size_t(part)];
          }
      }
    }
  }
}

TEST(CompositePartial, Operators) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  float f1[] = {1, 5, nan, 2}, b1[] = {3, 2, 4, nan}, o1[4];
  composite_partial(PartialOp::kMax, f1, b1, o1, 2);
  EXPECT_EQ(o1[0], 3);
  EXPECT_EQ(o1[1], 5);
  composite_partial(PartialOp::kMin, f1, b1, o1, 4);
  EXPECT_EQ(o1[0], 1);
  EXPECT_EQ(o1[1], 2);
  EXPECT_EQ(o1[2], 4);  // NaN: no sample in front
  EXPECT_EQ(o1[3], 2);  // none behind
  float fs[] = {1, 2}, bs[] = {3, 4}, os[2];
  composite_partial(PartialOp::kSum, fs, bs, os, 1);
  EXPECT_EQ(os[0], 4);
  EXPECT_EQ(os[1], 6);
  // Attenuated: the back's value is dimmed by the front's transmittance.
  float fa[] = {0.2f, 0.5f}, ba[] = {0.8f, 0.5f}, oa[2];
  composite_partial(PartialOp::kAttenuated, fa, ba, oa, 1);
  EXPECT_FLOAT_EQ(oa[0], 0.4f);
  EXPECT_FLOAT_EQ(oa[1], 0.25f);
  // Over: premultiplied; an opaque front hides the back.
  float fo[] = {0.25f, 0, 0, 0.5f, 1, 0, 0, 1}, bo[] = {0, 0.5f, 0, 0.5f, 0, 1, 0, 1}, oo[8];
  composite_partial(PartialOp::kOver, fo, bo, oo, 2);
  EXPECT_FLOAT_EQ(oo[0], 0.25f);
  EXPECT_FLOAT_EQ(oo[1], 0.25f);
  EXPECT_FLOAT_EQ(oo[3], 0.75f);
  EXPECT_FLOAT_EQ(oo[4], 1);
  EXPECT_FLOAT_EQ(oo[5], 0);
}

// Over is associative: compositing runs of parts (as binary-swap does) gives the same as
// compositing one by one, front to back.
TEST(CompositePartial, OverIsAssociative) {
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> U(0, 0.6f);
  std::vector<std::array<float, 4>> px(5);
  for (auto& p : px) {
    p[3] = U(rng);
    for (int i = 0; i < 3; ++i)
      p[std::size_t(i)] = U(rng) * p[3];
  }
  std::array<float, 4> seq = px[0];
  for (std::size_t i = 1; i < 5; ++i)
    composite_partial(PartialOp::kOver, seq.data(), px[i].data(), seq.data(), 1);
  std::array<float, 4> a = px[0], b = px[2], c = px[4];
  composite_partial(PartialOp::kOver, a.data(), px[1].data(), a.data(), 1);
  composite_partial(PartialOp::kOver, b.data(), px[3].data(), b.data(), 1);
  composite_partial(PartialOp::kOver, a.data(), b.data(), a.data(), 1);
  composite_partial(PartialOp::kOver, a.data(), c.data(), a.data(), 1);
  for (std::size_t i = 0; i < 4; ++i)
    EXPECT_NEAR(a[i], seq[i], 1e-6);
}

}  // namespace
}  // namespace vx::render
