#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "core/log.hpp"
#include "core/paths.hpp"

namespace vx {
namespace {

namespace fs = std::filesystem;

class ResolveInside : public ::testing::Test {
 protected:
  void SetUp() override {
    base_ = fs::temp_directory_path() /
            ("vx-paths-" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) + "-" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(base_);
    root_ = base_ / "root";
    fs::create_directories(root_ / "sub");
    std::ofstream(root_ / "a.txt") << "a";
    std::ofstream(root_ / "sub" / "b.txt") << "b";
    std::ofstream(base_ / "secret.txt") << "secret";
    std::ofstream(base_ / "rootsecret.txt") << "secret";
    fs::create_directories(base_ / "root-sibling");
    fs::create_symlink(base_ / "secret.txt", root_ / "link-out");
    fs::create_symlink(base_, root_ / "dir-out");
    fs::create_symlink(root_ / "a.txt", root_ / "link-in");
  }
  void TearDown() override { fs::remove_all(base_); }
  fs::path base_, root_;
};

TEST_F(ResolveInside, AcceptsNamesBelowTheRoot) {
  const auto canon = fs::canonical(root_);
  for (const auto& [name, want] : std::vector<std::pair<std::string, fs::path>>{
           {"a.txt", canon / "a.txt"},
           {"sub/b.txt", canon / "sub" / "b.txt"},
           {"sub/../a.txt", canon / "a.txt"},
           {"./a.txt", canon / "a.txt"},
           {"missing.txt", canon / "missing.txt"},  // need not exist
           {"link-in", canon / "a.txt"},            // a link that stays inside
       }) {
    auto r = resolve_inside(root_, name);
    ASSERT_TRUE(r) << name << ": " << r.error().message;
    EXPECT_EQ(*r, want) << name;
  }
}

TEST_F(ResolveInside, RefusesEveryWayOut) {
  for (const std::string& name : std::vector<std::string>{
           "", "..", "../secret.txt", "sub/../../secret.txt", "/etc/passwd",
           (base_ / "secret.txt").string(), "link-out", "dir-out/secret.txt", "..\\secret.txt",
           std::string("a.txt\0x", 7), ".", "sub/..", "../root-sibling/x", "../rootsecret.txt",
           "dir-out/rootsecret.txt"}) {
    auto r = resolve_inside(root_, name);
    EXPECT_FALSE(r) << "'" << name << "' resolved to " << (r ? r->string() : "");
  }
}

TEST_F(ResolveInside, WorksWithARelativeOrTrailingSlashRoot) {
  auto r = resolve_inside(root_.string() + "/", "a.txt");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(*r, fs::canonical(root_ / "a.txt"));
  EXPECT_FALSE(resolve_inside(root_.string() + "/", "../secret.txt"));
}

TEST(ConstantTimeEqual, ComparesWholeStrings) {
  EXPECT_TRUE(constant_time_equal("secret-token", "secret-token"));
  EXPECT_TRUE(constant_time_equal("", ""));
  EXPECT_FALSE(constant_time_equal("secret-token", "secret-tokeN"));
  EXPECT_FALSE(constant_time_equal("secret-token", "secret-token2"));
  EXPECT_FALSE(constant_time_equal("secret-token2", "secret-token"));
  EXPECT_FALSE(constant_time_equal("", "x"));
  EXPECT_FALSE(constant_time_equal("x", ""));
}

TEST(LogQuote, ControlCharactersCannotForgeALine) {
  EXPECT_EQ(log_quote("plain"), "plain");
  EXPECT_EQ(log_quote("a b"), "\"a b\"");
  EXPECT_EQ(log_quote("x\nts=now level=error event=forged"),
            "\"x\\nts=now level=error event=forged\"");
  EXPECT_EQ(log_quote("a\rb"), "\"a\\rb\"");
  EXPECT_EQ(log_quote(std::string_view("a\x1b[31mb", 7)), "\"a\\x1b[31mb\"");
  EXPECT_EQ(log_quote("q\"\\"), "\"q\\\"\\\\\"");
  EXPECT_EQ(log_quote(""), "\"\"");
  for (const auto* s : {"a\nb", "a\rb", "\x7f", "tab\there"})
    EXPECT_EQ(log_quote(s).find_first_of("\n\r\x7f\t"), std::string::npos) << s;
}

TEST(DatasetNames, LastComponentSyntheticWithoutOptionsAndDistinct) {
  EXPECT_EQ(dataset_names({"/scratch/brain.ome.zarr/", "synthetic:cells?shape=8x8x8", "a.tif"}),
            (std::vector<std::string>{"brain.ome.zarr", "synthetic:cells", "a.tif"}));
  EXPECT_EQ(dataset_names({"/x/a/img.tif", "/x/b/img.tif"}),
            (std::vector<std::string>{"a/img.tif", "b/img.tif"}));
  EXPECT_EQ(dataset_names({"synthetic:cells?shape=8x8x8", "synthetic:cells?shape=16x16x16"}),
            (std::vector<std::string>{"synthetic:cells", "synthetic:cells #2"}));
}

TEST(DefaultDataDir, PerDatasetsUnderXdgStateHome) {
  ::setenv("XDG_STATE_HOME", "/tmp/vx-state", 1);
  const auto a = default_data_dir({"/data/a.tif"});
  const auto a2 = default_data_dir({"/data/a.tif"});
  const auto b = default_data_dir({"/data/b.tif"});
  const auto ab = default_data_dir({"/data/a.tif", "/data/b.tif"});
  ::unsetenv("XDG_STATE_HOME");
  EXPECT_EQ(a, a2);
  EXPECT_NE(a, b);
  EXPECT_NE(a, ab);
  EXPECT_EQ(a.parent_path(), fs::path("/tmp/vx-state/voxcast"));
  EXPECT_EQ(a.filename().string().rfind("a.tif-", 0), 0u) << a;
  const auto odd = default_data_dir({"/data/we ird/../x y?.tif"});
  EXPECT_EQ(odd.filename().string().find_first_of(" ?/"), std::string::npos) << odd;
}

}  // namespace
}  // namespace vx
