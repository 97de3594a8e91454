#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "data/downsample.hpp"

namespace vx::data {
namespace {

// Naive reference: each output voxel is the mean of the (up to 2x2x2) input voxels it covers.
template <class T>
std::vector<double> reference(const std::vector<T>& in, std::int64_t c, std::int64_t z,
                              std::int64_t y, std::int64_t x) {
  const auto oz = (z + 1) / 2, oy = (y + 1) / 2, ox = (x + 1) / 2;
  std::vector<double> out;
  for (std::int64_t k = 0; k < c; ++k)
    for (std::int64_t a = 0; a < oz; ++a)
      for (std::int64_t b = 0; b < oy; ++b)
        for (std::int64_t d = 0; d < ox; ++d) {
          double sum = 0;
          int n = 0;
          for (std::int64_t i = 2 * a; i < std::min(2 * a + 2, z); ++i)
            for (std::int64_t j = 2 * b; j < std::min(2 * b + 2, y); ++j)
              for (std::int64_t l = 2 * d; l < std::min(2 * d + 2, x); ++l) {
                sum += double(in[std::size_t(((k * z + i) * y + j) * x + l)]);
                ++n;
              }
          out.push_back(sum / n);
        }
  return out;
}

TEST(Downsample, MatchesTheMeanOfEachBlockWithOddEdgesAndKeepsChannels) {
  const std::int64_t c = 2, z = 5, y = 7, x = 4;  // odd z and y: edge blocks are partial
  std::mt19937 rng(3);
  std::vector<std::uint16_t> in(std::size_t(c * z * y * x));
  for (auto& v : in)
    v = std::uint16_t(rng() % 65536);
  const std::vector<std::int64_t> cshape = {1 + 1, 4, 4, 4};  // larger than the result: padded
  std::vector<std::uint16_t> chunk(std::size_t(2 * 4 * 4 * 4), 7);
  downsample_2x_mean(DType::kUInt16, std::as_bytes(std::span(in)), {c, z, y, x},
                     {false, true, true, true}, std::as_writable_bytes(std::span(chunk)), cshape);
  const auto ref = reference(in, c, z, y, x);
  std::size_t r = 0;
  for (std::int64_t k = 0; k < 2; ++k)
    for (std::int64_t a = 0; a < 4; ++a)
      for (std::int64_t b = 0; b < 4; ++b)
        for (std::int64_t d = 0; d < 4; ++d) {
          const auto v = chunk[std::size_t(((k * 4 + a) * 4 + b) * 4 + d)];
          if (a < 3 && b < 4 && d < 2) {
            EXPECT_EQ(v, std::uint16_t(std::floor(ref[r++] + 0.5))) << k << a << b << d;
          } else {
            EXPECT_EQ(v, 7) << "outside the result the chunk keeps its fill";
          }
        }
  EXPECT_EQ(r, ref.size());
}

TEST(Downsample, FloatsAreAveragedNotRounded) {
  std::vector<float> in = {1.0f, 2.0f, 4.0f, 8.0f};  // 2x2 (y, x)
  std::vector<float> out(1, -1.0f);
  downsample_2x_mean(DType::kFloat32, std::as_bytes(std::span(in)), {2, 2}, {true, true},
                     std::as_writable_bytes(std::span(out)), {1, 1});
  EXPECT_FLOAT_EQ(out[0], 3.75f);
}

}  // namespace
}  // namespace vx::data
