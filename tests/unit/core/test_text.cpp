#include <gtest/gtest.h>

#include <algorithm>

#include "core/json_text.hpp"
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

TEST(JsonText, DepthCountsBracketsOutsideStringsAndStopsPastTheLimit) {
  EXPECT_EQ(vx::json_depth("1"), 0);
  EXPECT_EQ(vx::json_depth(R"({"a": [1, {"b": []}]})"), 4);
  EXPECT_EQ(vx::json_depth(R"({"a": "[[[[\"{{{"})"), 1);  // brackets and escaped quotes in strings
  EXPECT_EQ(vx::json_depth(R"(["\\", [[]]])"), 3);        // an escaped backslash ends no string
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  EXPECT_EQ(vx::json_depth(deep, 10), 11);  // stops one past the limit
  EXPECT_EQ(vx::json_depth(deep, 1000000), 100000);
}

TEST(JsonText, UntrustedTextNestedTooDeeplyIsRefusedAndTheRestParses) {
  const auto at = [](int n) { return std::string(n, '[') + std::string(n, ']'); };
  EXPECT_FALSE(vx::parse_untrusted_json(at(vx::kMaxJsonDepth)).is_discarded());
  EXPECT_TRUE(vx::parse_untrusted_json(at(vx::kMaxJsonDepth + 1)).is_discarded());
  // Deep enough to overflow a stack when copied or destroyed: refused before it is built.
  EXPECT_TRUE(vx::parse_untrusted_json(at(1'000'000)).is_discarded());
  EXPECT_TRUE(vx::parse_untrusted_json("{\"a\": ").is_discarded());
  EXPECT_EQ(vx::parse_untrusted_json(R"({"type": "ping"})")["type"], "ping");
}
