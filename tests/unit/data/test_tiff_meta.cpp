// TIFF calibration metadata: ImageJ descriptions, OME-XML and resolution tags, including
// malformed and hostile input (never an error: defaults with a warning).
#include <gtest/gtest.h>

#include "data/tiff_meta.hpp"
#include "data/units.hpp"

namespace vx::data {
namespace {

using A3 = std::array<double, 3>;
using U3 = std::array<std::string, 3>;

TEST(Units, SpellingsOfImageJAndOmeMapToNgffNames) {
  for (const char* s : {"um", "µm", "\xb5m", "\xce\xbcm", "\\u00B5m", "micron", "microns",
                        "micrometer", " Micron "})
    EXPECT_EQ(ngff_length_unit(s), "micrometer") << s;
  EXPECT_EQ(ngff_length_unit("nm"), "nanometer");
  EXPECT_EQ(ngff_length_unit("mm"), "millimeter");
  EXPECT_EQ(ngff_length_unit("Å"), "angstrom");
  EXPECT_EQ(ngff_length_unit("pixel"), "");
  EXPECT_EQ(ngff_length_unit("furlong"), std::nullopt);
  EXPECT_EQ(ngff_length_unit(""), std::nullopt);
  EXPECT_EQ(ngff_time_unit("ms"), "millisecond");
  EXPECT_EQ(ngff_time_unit("sec"), "second");
  EXPECT_TRUE(is_ngff_space_unit("micrometer"));
  EXPECT_FALSE(is_ngff_space_unit("micron"));
  EXPECT_FALSE(is_ngff_space_unit("second"));
  EXPECT_TRUE(is_ngff_time_unit("second"));
}

TEST(ImageJ, SpacingAndResolutionGiveTheScaleInMicrometres) {
  const auto c = parse_imagej_description(
      "ImageJ=1.53t\nimages=10\nslices=10\nunit=\\u00B5m\nspacing=2.0\nloop=false\n",
      TiffResolution{2.0, 2.0, 1}, "a.tif");
  EXPECT_EQ(c.kind, "imagej");
  EXPECT_EQ(c.scale, (A3{2, 0.5, 0.5}));
  EXPECT_EQ(c.unit, (U3{"micrometer", "micrometer", "micrometer"}));
  EXPECT_TRUE(c.warnings.empty());
  EXPECT_FALSE(c.display_range);
}

TEST(ImageJ, SeparateUnitsDisplayRangeAndCarriageReturns) {
  const auto c = parse_imagej_description(
      "ImageJ=1.53t\r\nunit=micron\r\nzunit=nm\r\nspacing=300\r\nmin=100\r\nmax=4000\r\n",
      TiffResolution{4.0, 0, 1}, "a.tif");
  EXPECT_EQ(c.scale, (A3{300, 0.25, 0.25}));  // YResolution absent: square pixels
  EXPECT_EQ(c.unit, (U3{"nanometer", "micrometer", "micrometer"}));
  ASSERT_TRUE(c.display_range);
  EXPECT_EQ(*c.display_range, (std::array<double, 2>{100, 4000}));
}

TEST(ImageJ, PixelUnitIsUncalibrated) {
  const auto c = parse_imagej_description("ImageJ=1.53t\nunit=pixel\nspacing=5\n",
                                          TiffResolution{2.0, 2.0, 1}, "a.tif");
  EXPECT_EQ(c.scale, (A3{1, 1, 1}));
  EXPECT_EQ(c.unit, (U3{"", "", ""}));
  EXPECT_TRUE(c.warnings.empty());
}

TEST(ImageJ, MalformedValuesWarnOncePerFieldAndKeepDefaults) {
  const auto c = parse_imagej_description(
      "ImageJ=1.53t\nunit=furlong\nspacing=abc\nmin=9\nmax=3\n=\n\n===\nnoequals\n",
      TiffResolution{0, 0, 1}, "bad.tif");
  EXPECT_EQ(c.scale, (A3{1, 1, 1}));
  EXPECT_EQ(c.unit, (U3{"", "", ""}));
  ASSERT_EQ(c.warnings.size(), 3u);
  EXPECT_EQ(c.warnings[0].file, "bad.tif");
  EXPECT_EQ(c.warnings[0].field, "ImageDescription: unit");
  EXPECT_NE(c.warnings[0].message.find("furlong"), std::string::npos);
  EXPECT_EQ(c.warnings[1].field, "ImageDescription: spacing");
  EXPECT_NE(c.warnings[1].message.find("abc"), std::string::npos);
  EXPECT_EQ(c.warnings[2].field, "ImageDescription: min/max");
  EXPECT_FALSE(c.display_range);
}

TEST(ImageJ, NonPositiveOrNonFiniteSizesWarn) {
  for (const char* spacing : {"0", "-2", "nan", "inf", "1e999"}) {
    const auto c = parse_imagej_description(std::string("ImageJ=1\nunit=um\nspacing=") + spacing,
                                            TiffResolution{0, 0, 1}, "a.tif");
    EXPECT_EQ(c.scale[0], 1) << spacing;
    EXPECT_EQ(c.warnings.size(), 1u) << spacing;
  }
  const auto c = parse_imagej_description("ImageJ=1\nunit=um\n", TiffResolution{-3, 0, 1}, "a.tif");
  EXPECT_EQ(c.scale, (A3{1, 1, 1}));
  ASSERT_EQ(c.warnings.size(), 1u);
  EXPECT_EQ(c.warnings[0].field, "ImageDescription: XResolution");
}

TEST(ImageJ, HyperstackSizesAndFrameInterval) {
  const auto c = parse_imagej_description(
      "ImageJ=1.53t\nimages=24\nchannels=2\nslices=4\nframes=3\nhyperstack=true\n"
      "finterval=0.5\n",
      TiffResolution{}, "h.tif");
  EXPECT_EQ(c.channels, 2);
  EXPECT_EQ(c.slices, 4);
  EXPECT_EQ(c.frames, 3);
  EXPECT_EQ(c.order, "czt");
  EXPECT_EQ(c.frame_interval, 0.5);
  EXPECT_TRUE(c.warnings.empty());
  const auto bad = parse_imagej_description(
      "ImageJ=1\nchannels=two\nslices=-4\nframes=1.5\nfinterval=0\n", TiffResolution{}, "h");
  EXPECT_EQ(bad.channels, 0);
  EXPECT_EQ(bad.slices, 0);
  EXPECT_EQ(bad.frames, 0);
  EXPECT_EQ(bad.warnings.size(), 4u);
}

TEST(OmeXml, SizesAndDimensionOrder) {
  const auto c = parse_ome_xml(
      R"(<OME><Image><Pixels DimensionOrder="XYCZT" SizeC="2" SizeZ="5" SizeT="1"/></Image></OME>)",
      "o.tif");
  EXPECT_EQ(c.order, "czt");
  EXPECT_EQ(c.channels, 2);
  EXPECT_EQ(c.slices, 5);
  const auto z = parse_ome_xml(R"(<Pixels DimensionOrder="XYZTC" SizeC="0"/>)", "o.tif");
  EXPECT_EQ(z.order, "ztc");
  ASSERT_EQ(z.warnings.size(), 1u);  // SizeC 0
  const auto bad = parse_ome_xml(R"(<Pixels DimensionOrder="XYZZT"/>)", "o.tif");
  EXPECT_EQ(bad.order, "czt");
  ASSERT_EQ(bad.warnings.size(), 1u);
  EXPECT_EQ(bad.warnings[0].field, "OME-XML: Pixels.DimensionOrder");
}

TEST(OmeXml, PhysicalSizesAndUnitsOfTheFirstPixels) {
  const auto c = parse_ome_xml(
      R"(<?xml version="1.0" encoding="UTF-8"?><OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06"><Image ID="Image:0"><Pixels ID="Pixels:0" DimensionOrder="XYCZT" Type="uint16" SizeX="8" SizeY="8" SizeC="1" SizeZ="4" SizeT="1" PhysicalSizeX="0.5" PhysicalSizeXUnit="&#181;m" PhysicalSizeY='0.5' PhysicalSizeZ="2.0" PhysicalSizeZUnit="nm"><Channel ID="Channel:0:0"/></Pixels></Image><Image><Pixels PhysicalSizeX="9"/></Image></OME>)",
      "a.ome.tif");
  EXPECT_EQ(c.kind, "ome");
  EXPECT_EQ(c.scale, (A3{2, 0.5, 0.5}));
  // Y has no unit attribute: the schema's default, the micrometre.
  EXPECT_EQ(c.unit, (U3{"nanometer", "micrometer", "micrometer"}));
  EXPECT_TRUE(c.warnings.empty());
}

TEST(OmeXml, NamespacePrefixesAndMissingSizes) {
  const auto c = parse_ome_xml(
      R"(<ome:OME xmlns:ome="x"><ome:Image><ome:Pixels PhysicalSizeX="0.25" PhysicalSizeXUnit="µm"/></ome:Image></ome:OME>)",
      "p.ome.tif");
  EXPECT_EQ(c.scale, (A3{1, 1, 0.25}));
  EXPECT_EQ(c.unit, (U3{"", "", "micrometer"}));
}

TEST(OmeXml, HostileAndBrokenXmlNeverFails) {
  for (const char* xml :
       {"", "<", "<OME><Pixels", "<OME><Pixels PhysicalSizeX=\"0.5", "<Pixels PhysicalSizeX=0.5>",
        "<Pixels =\"1\">", "<OME><Image/></OME>", "<Pixels PhysicalSizeX=\"&#99999999999;\"/>",
        "<Pixels PhysicalSizeX=\"&#x110000;\" PhysicalSizeY=\"&amp\"/>"}) {
    const auto c = parse_ome_xml(xml, "h.tif");
    EXPECT_EQ(c.scale, (A3{1, 1, 1})) << xml;
    EXPECT_FALSE(c.warnings.empty()) << xml;
  }
  const auto c = parse_ome_xml(
      R"(<Pixels PhysicalSizeX="-1" PhysicalSizeY="x" PhysicalSizeZ="2" PhysicalSizeZUnit="parsnip"/>)",
      "h.tif");
  EXPECT_EQ(c.scale, (A3{2, 1, 1}));
  ASSERT_EQ(c.warnings.size(), 3u);
  EXPECT_EQ(c.warnings[0].field, "OME-XML: Pixels.PhysicalSizeZUnit");  // z, y, x in order
  EXPECT_EQ(c.warnings[1].field, "OME-XML: Pixels.PhysicalSizeY");
  EXPECT_EQ(c.warnings[2].field, "OME-XML: Pixels.PhysicalSizeX");
}

TEST(TiffCalibration, DispatchOnTheDescriptionThenCentimetreResolution) {
  EXPECT_EQ(read_tiff_calibration("  <?xml version='1.0'?><OME/>", {}, "a").kind, "ome");
  EXPECT_EQ(read_tiff_calibration("ImageJ=1.5\n", {}, "a").kind, "imagej");
  // tifffile's shaped description and an inch DPI: uncalibrated.
  const auto plain = read_tiff_calibration(R"({"shape": [4, 8, 8]})", {300, 300, 2}, "a");
  EXPECT_EQ(plain.kind, "");
  EXPECT_EQ(plain.scale, (A3{1, 1, 1}));
  const auto cm = read_tiff_calibration("", {10000, 5000, 3}, "a");
  EXPECT_EQ(cm.kind, "resolution");
  EXPECT_EQ(cm.scale, (A3{1, 2, 1}));
  EXPECT_EQ(cm.unit[2], "micrometer");
}

}  // namespace
}  // namespace vx::data
