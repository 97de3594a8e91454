#include <gtest/gtest.h>

#include <algorithm>

#include "core/text.hpp"
#include "core/version.hpp"

namespace vx {
namespace {

TEST(Text, EditDistanceAndClosestWord) {
  EXPECT_EQ(edit_distance("", ""), 0u);
  EXPECT_EQ(edit_distance("serv", "serve"), 1u);
  EXPECT_EQ(edit_distance("chanel", "channel"), 1u);
  EXPECT_EQ(edit_distance("Render", "render"), 0u);
  EXPECT_EQ(edit_distance("kitten", "sitting"), 3u);
  const std::vector<std::string> commands = {"info", "convert", "render", "serve", "demo"};
  EXPECT_EQ(closest_word("serv", commands), "serve");
  EXPECT_EQ(closest_word("rendr", commands), "render");
  EXPECT_EQ(closest_word("frobnicate", commands), "");
  EXPECT_EQ(closest_word("", commands), "");  // 4 edits from "info": too far
  EXPECT_EQ(closest_word("x", {}), "");
}

TEST(Version, IsTheProjectVersion) {
  const std::string v = kVersion;
  EXPECT_EQ(std::count(v.begin(), v.end(), '.'), 2) << v;
}

}  // namespace
}  // namespace vx
