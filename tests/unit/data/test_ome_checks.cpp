// OME-NGFF metadata that is wrong but usable opens with one warning per problem, naming the
// file and the JSON path; what cannot be used is still an error.
#include <gtest/gtest.h>

#include "data/formats.hpp"

namespace vx::data {
namespace {

json good_attrs() {
  return json::parse(R"({"multiscales": [{"version": "0.4",
    "axes": [{"name": "c", "type": "channel"}, {"name": "z", "type": "space", "unit": "micrometer"},
             {"name": "y", "type": "space", "unit": "micrometer"},
             {"name": "x", "type": "space", "unit": "micrometer"}],
    "datasets": [
      {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1, 2, 0.5, 0.5]}]},
      {"path": "1", "coordinateTransformations": [{"type": "scale", "scale": [1, 4, 1, 1]}]}]}],
    "omero": {"channels": [{"label": "a", "color": "FF00FF", "window": {"start": 0, "end": 10}}]}})");
}

// parse_ome + levels of the given shapes + transforms + level checks, as open_ome_group does.
Result<VolumeInfo> open_attrs(const json& raw, std::vector<std::vector<std::int64_t>> shapes = {
                                                   {1, 8, 64, 64}, {1, 4, 32, 32}}) {
  VolumeInfo info;
  const json attrs = repair_ome(raw, "x/.zattrs", info.warnings);
  std::vector<std::string> paths;
  VX_TRY(parse_ome(attrs, "x/.zattrs", info, paths));
  for (std::size_t i = 0; i < paths.size(); ++i) {
    Level lv;
    lv.shape = shapes.at(i);
    info.levels.push_back(lv);
  }
  VX_TRY(apply_ome_transforms(attrs, "x/.zattrs", info));
  check_ome_levels(info, "x/.zattrs");
  return info;
}

std::vector<std::string> fields(const VolumeInfo& info) {
  std::vector<std::string> out;
  for (const auto& w : info.warnings) {
    EXPECT_EQ(w.file, "x/.zattrs");
    out.push_back(w.field);
  }
  return out;
}

using S = std::vector<std::string>;

TEST(OmeChecks, GoodMetadataHasNoWarnings) {
  auto info = open_attrs(good_attrs());
  ASSERT_TRUE(info) << info.error().what();
  EXPECT_EQ(fields(*info), S{});
}

TEST(OmeChecks, AMisspeltTransformKeyIsReadWithOneWarning) {
  auto a = good_attrs();
  auto& d1 = a["multiscales"][0]["datasets"][1];
  d1["coordinateTransformation"] = d1["coordinateTransformations"];
  d1.erase("coordinateTransformations");
  auto info = open_attrs(a);
  ASSERT_TRUE(info) << info.error().what();
  // One problem, one warning: the scale is still read (no cascade of level warnings).
  EXPECT_EQ(fields(*info), S{"multiscales[0].datasets[1].coordinateTransformation"});
  EXPECT_NE(info->warnings[0].message.find("read as 'coordinateTransformations'"),
            std::string::npos);
  EXPECT_EQ(info->levels[1].scale, (std::vector<double>{1, 4, 1, 1}));
}

TEST(OmeChecks, AMissingTransformAndUnknownKeysWarn) {
  auto a = good_attrs();
  a["multiscales"][0]["datasets"][1].erase("coordinateTransformations");
  a["multiscales"][0]["frobnicate"] = 1;
  a["multiscales"][0]["axes"][1]["colour"] = "red";
  auto info = open_attrs(a);
  ASSERT_TRUE(info) << info.error().what();
  // Level 1 falls back to scale 1: then its z scale is also below level 0's 2.
  EXPECT_EQ(fields(*info), (S{"multiscales[0].frobnicate", "multiscales[0].axes[1].colour",
                              "multiscales[0].datasets[1]",
                              "multiscales[0].datasets[1].coordinateTransformations"}));
}

TEST(OmeChecks, AxisTypesOutsideTheSpecWarnAndNearMissesAreRead) {
  auto a = good_attrs();
  a["multiscales"][0]["axes"][0]["type"] = "chanel";
  auto info = open_attrs(a);
  ASSERT_TRUE(info) << info.error().what();
  EXPECT_EQ(fields(*info), S{"multiscales[0].axes[0].type"});
  EXPECT_EQ(info->axes[0].type, AxisType::kChannel);
  EXPECT_NE(info->warnings[0].message.find("'chanel'"), std::string::npos);

  a["multiscales"][0]["axes"][0]["type"] = "wavelength";
  info = open_attrs(a);
  ASSERT_TRUE(info);
  EXPECT_EQ(info->axes[0].type, AxisType::kOther);
  EXPECT_EQ(fields(*info), S{"multiscales[0].axes[0].type"});

  a["multiscales"][0]["axes"][0]["type"] = 42;  // not a string: still an error
  EXPECT_FALSE(open_attrs(a));
}

TEST(OmeChecks, UnitsOutsideTheSpecWarnAndKnownSpellingsAreNormalized) {
  auto a = good_attrs();
  a["multiscales"][0]["axes"][1]["unit"] = "um";
  a["multiscales"][0]["axes"][2]["unit"] = "parsnip";
  a["multiscales"][0]["axes"][3]["unit"] = "second";  // a time unit on a space axis
  auto info = open_attrs(a);
  ASSERT_TRUE(info) << info.error().what();
  EXPECT_EQ(fields(*info), (S{"multiscales[0].axes[1].unit", "multiscales[0].axes[2].unit",
                              "multiscales[0].axes[3].unit"}));
  EXPECT_EQ(info->axes[1].unit, "micrometer");
  EXPECT_EQ(info->axes[2].unit, "parsnip");
}

TEST(OmeChecks, LevelsThatShrinkOrDisagreeWithTheirShapeWarn) {
  auto a = good_attrs();
  // Level 1 claims a finer z than level 0.
  a["multiscales"][0]["datasets"][1]["coordinateTransformations"][0]["scale"] = {1, 1, 1, 1};
  auto info = open_attrs(a);
  ASSERT_TRUE(info);
  ASSERT_EQ(fields(*info), S{"multiscales[0].datasets[1].coordinateTransformations"});
  EXPECT_NE(info->warnings[0].message.find("axis 'z'"), std::string::npos);
  EXPECT_NE(info->warnings[0].message.find("finest to the coarsest"), std::string::npos);

  // Level 1 says 4x coarser in y and x, but its shape is only 2x smaller.
  a = good_attrs();
  a["multiscales"][0]["datasets"][1]["coordinateTransformations"][0]["scale"] = {1, 4, 2, 2};
  info = open_attrs(a);
  ASSERT_TRUE(info);
  EXPECT_EQ(fields(*info), (S{"multiscales[0].datasets[1].coordinateTransformations",
                              "multiscales[0].datasets[1].coordinateTransformations"}));
  // An odd edge (65 -> 33 voxels) is within one coarse voxel: no warning.
  info = open_attrs(good_attrs(), {{1, 8, 65, 65}, {1, 4, 33, 33}});
  ASSERT_TRUE(info);
  EXPECT_EQ(fields(*info), S{});
}

TEST(OmeChecks, OmeroWindowsAndVersions) {
  auto a = good_attrs();
  a["omero"]["channels"][0]["window"] = {{"start", 10}, {"end", 10}};
  a["multiscales"][0]["version"] = "0.9";
  auto info = open_attrs(a);
  ASSERT_TRUE(info);
  EXPECT_EQ(fields(*info), (S{"multiscales[0].version", "omero.channels[0].window"}));
  EXPECT_FALSE(info->channels[0].window);  // estimated from the data instead
}

TEST(OmeChecks, HostileShapesOfJsonNeverCrash) {
  for (const char* text :
       {R"({"multiscales": 1})", R"({"multiscales": [1]})", R"({"multiscales": [{}]})",
        R"({"multiscales": [{"datasets": [1, null, {"coordinateTransformations": 3}]}]})",
        R"({"multiscales": [{"axes": [1, "x", {"colour": 1}], "datasets": {}}]})",
        R"({"multiscales": [{"coordinateTransformations": [1, {"typ": "scale"}]}]})"}) {
    std::vector<MetadataWarning> out;
    (void)repair_ome(json::parse(text), "h", out);
  }
}

}  // namespace
}  // namespace vx::data
