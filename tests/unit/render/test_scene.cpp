#include <gtest/gtest.h>

#include <cmath>

#include "render/colormap.hpp"
#include "render/scene.hpp"

namespace vx::render {
namespace {

SceneData synthetic_data() {
  auto src = data::open_volume("synthetic:cells?shape=64x128x256");
  EXPECT_TRUE(src);
  return SceneData{{(*src)->info()}};
}

TEST(Colormap, TablesAndRamps) {
  auto gray = colormap_by_name("gray");
  ASSERT_TRUE(gray);
  EXPECT_EQ(gray->rgb[0], (std::array<std::uint8_t, 3>{0, 0, 0}));
  EXPECT_EQ(gray->rgb[255], (std::array<std::uint8_t, 3>{255, 255, 255}));
  auto viridis = colormap_by_name("viridis");
  ASSERT_TRUE(viridis);
  EXPECT_EQ(viridis->rgb[0], (std::array<std::uint8_t, 3>{68, 1, 84}));  // matplotlib's first entry
  EXPECT_EQ(viridis->rgb[255], (std::array<std::uint8_t, 3>{253, 231, 37}));  // and last
  auto orange = colormap_by_name("#FF8000");
  ASSERT_TRUE(orange);
  EXPECT_EQ(orange->rgb[255], (std::array<std::uint8_t, 3>{255, 128, 0}));
  EXPECT_EQ(orange->rgb[0], (std::array<std::uint8_t, 3>{0, 0, 0}));
  for (auto name : colormap_names())
    EXPECT_TRUE(colormap_by_name(name)) << name;
  auto bad = colormap_by_name("magnta");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("viridis"), std::string::npos) << bad.error().message;
  EXPECT_EQ(colormap_for_color({0, 255, 255}), "cyan");
  EXPECT_EQ(colormap_for_color({10, 20, 30}), "#0A141E");
}

TEST(Scene, DefaultsComeFromTheData) {
  const auto data = synthetic_data();
  const auto s = default_scene(data, 1000, 500);
  ASSERT_EQ(s.layers.size(), 2u);
  EXPECT_EQ(s.layers[0].name, "nuclei");
  EXPECT_EQ(s.layers[0].colormap, "cyan");
  EXPECT_EQ(s.layers[1].colormap, "magenta");
  EXPECT_EQ(s.layers[0].contrast_limits[0], 100);
  EXPECT_EQ(s.layers[0].blending, Blending::kAdditive);
  EXPECT_EQ(data.axis_names(), (std::vector<std::string>{"z", "y", "x"}));
  ASSERT_EQ(s.dims.point.size(), 3u);
  EXPECT_DOUBLE_EQ(s.dims.point[0], 31.5);  // middle of 0..63
  EXPECT_DOUBLE_EQ(s.camera.center[1], 63.5);
  EXPECT_DOUBLE_EQ(s.camera.center[2], 127.5);
  // 255 x 127 world units framed in 1000 x 500 pixels with a 5% margin: height limits.
  EXPECT_NEAR(s.camera.zoom, 0.95 * std::min(1000.0 / 255.0, 500.0 / 127.0), 1e-9);
}

// A czyx source with `channels` channels and no colours in its metadata (as a .npy).
SceneData plain_channels(int channels) {
  data::VolumeInfo info;
  info.axes = {{"c", data::AxisType::kChannel, ""},
               {"z", data::AxisType::kSpace, ""},
               {"y", data::AxisType::kSpace, ""},
               {"x", data::AxisType::kSpace, ""}};
  info.dtype = data::DType::kUInt16;
  data::Level lv;
  lv.shape = {channels, 4, 8, 8};
  lv.chunks = {1, 4, 8, 8};
  lv.scale = {1, 1, 1, 1};
  lv.translation = {0, 0, 0, 0};
  info.levels.push_back(lv);
  for (int c = 0; c < channels; ++c)
    info.channels.push_back({"channel", {}, {}, true});
  return SceneData{{info}};
}

std::vector<std::string> colormaps(const Scene& s) {
  std::vector<std::string> out;
  for (const auto& l : s.layers)
    out.push_back(l.colormap);
  return out;
}

TEST(Scene, ChannelsWithoutColoursGetNapariChannelColormaps) {
  using V = std::vector<std::string>;
  EXPECT_EQ(colormaps(default_scene(plain_channels(1))), V{"gray"});
  EXPECT_EQ(colormaps(default_scene(plain_channels(2))), (V{"magenta", "green"}));
  EXPECT_EQ(colormaps(default_scene(plain_channels(3))), (V{"cyan", "yellow", "magenta"}));
  EXPECT_EQ(colormaps(default_scene(plain_channels(7))),
            (V{"cyan", "yellow", "magenta", "red", "green", "blue", "cyan"}));
  // A colour in the metadata wins over the default for its channel only.
  auto data = plain_channels(2);
  data.sources[0].channels[1].color = std::array<std::uint8_t, 3>{255, 0, 0};
  EXPECT_EQ(colormaps(default_scene(data)), (V{"magenta", "red"}));
  for (const auto& l : default_scene(plain_channels(3)).layers)
    EXPECT_EQ(l.blending, Blending::kAdditive);
}

TEST(Scene, SlicesOutsideTheDataAreNamedErrors) {
  const auto data = synthetic_data();  // 64 x 128 x 256, scale 1
  auto s = default_scene(data, 100, 100);
  EXPECT_TRUE(check_slices_in_range(s, data));
  for (double z : {0.0, 63.0, -0.5, 63.5}) {
    s.dims.point[0] = z;
    EXPECT_TRUE(check_slices_in_range(s, data)) << z;
  }
  for (double z : {-0.6, 63.6, 64.0, 1e12, std::nan("")}) {
    s.dims.point[0] = z;
    auto st = check_slices_in_range(s, data);
    ASSERT_FALSE(st) << z;
    EXPECT_NE(st.error().message.find("dims.point[0]"), std::string::npos);
    EXPECT_NE(st.error().message.find("'z'"), std::string::npos);
    EXPECT_NE(st.error().message.find("0..63"), std::string::npos);
  }
  // Displayed axes are not slices: in 3D, z may be anywhere.
  s.dims.ndisplay = 3;
  s.dims.point[0] = 1e6;
  EXPECT_TRUE(check_slices_in_range(s, data));
  // With z displayed (order 1, 0, 2... the first axis in the order is the slice), y is checked.
  s.dims.ndisplay = 2;
  s.dims.order = {1, 0, 2};
  s.dims.point = {1e6, 200, 0};
  auto st = check_slices_in_range(s, data);
  ASSERT_FALSE(st);
  EXPECT_NE(st.error().message.find("'y'"), std::string::npos);
}

TEST(Scene, PatchesMergeAndRoundTrip) {
  const auto data = synthetic_data();
  const auto base = default_scene(data);
  auto same = apply_patch(base, to_json(base), data);
  ASSERT_TRUE(same) << same.error().what();
  EXPECT_EQ(to_json(*same), to_json(base));

  auto s = apply_patch(base, json::parse(R"({"camera": {"zoom": 2.5}, "dims": {"ndisplay": 3},
                                             "layers": [{}, {"colormap": "magma", "opacity": 0.5}]})"),
                       data);
  ASSERT_TRUE(s) << s.error().what();
  EXPECT_EQ(s->camera.zoom, 2.5);
  EXPECT_EQ(s->dims.ndisplay, 3);
  EXPECT_EQ(s->layers[0].colormap, "cyan");  // untouched
  EXPECT_EQ(s->layers[1].colormap, "magma");
  EXPECT_EQ(s->layers[1].opacity, 0.5);
  EXPECT_EQ(s->layers[1].name, "membranes");  // merged into the existing layer

  // null restores the data's default; a shorter layer list leaves the other layers alone.
  auto r = apply_patch(
      *s, json::parse(R"({"camera": {"zoom": null}, "layers": [{"visible": false}]})"), data);
  ASSERT_TRUE(r) << r.error().what();
  EXPECT_EQ(r->camera.zoom, base.camera.zoom);
  ASSERT_EQ(r->layers.size(), 2u);
  EXPECT_FALSE(r->layers[0].visible);
  EXPECT_EQ(r->layers[1].colormap, "magma");
  // A null element removes that layer.
  auto d = apply_patch(*r, json::parse(R"({"layers": [null]})"), data);
  ASSERT_TRUE(d) << d.error().what();
  ASSERT_EQ(d->layers.size(), 1u);
  EXPECT_EQ(d->layers[0].name, "membranes");
}

TEST(Scene, EveryInvalidFieldIsNamedWithTheAcceptedValues) {
  const auto data = synthetic_data();
  const auto base = default_scene(data);
  struct Case {
    const char* patch;
    const char* field;
    const char* accepted;
  };
  const Case cases[] = {
      {R"({"camera": {"zom": 2}})", "camera.zom", "zoom"},
      {R"({"camera": {"zoom": 0}})", "camera.zoom", "(0"},
      {R"({"camera": {"zoom": "big"}})", "camera.zoom", "number"},
      {R"({"camera": {"center": [1]}})", "camera.center", "2 to 3"},
      {R"({"camera": {"perspective": 200}})", "camera.perspective", "179"},
      {R"({"canvas": {"width": 5}})", "canvas.width", "16"},
      {R"({"canvas": {"background": [0, 0, 2]}})", "canvas.background", "[0, 1]"},
      {R"({"dims": {"ndisplay": 4}})", "dims.ndisplay", "[2, 3]"},
      {R"({"dims": {"order": [0, 0, 1]}})", "dims.order", "permutation"},
      {R"({"dims": {"point": [1, 2]}})", "dims.point", "3 numbers"},
      {R"({"layers": [{"colormap": "magnta"}]})", "layers[0].colormap", "viridis"},
      {R"({"layers": [{"blending": "screen"}]})", "layers[0].blending", "additive"},
      {R"({"layers": [{"rendering": "dvr"}]})", "layers[0].rendering", "attenuated_mip"},
      {R"({"layers": [{"interpolation": "cubic"}]})", "layers[0].interpolation", "nearest"},
      {R"({"layers": [{"opacity": 1.5}]})", "layers[0].opacity", "[0, 1]"},
      {R"({"layers": [{"contrast_limits": [10, 5]}]})", "layers[0].contrast_limits", "below"},
      {R"({"layers": [{}, {"channel": 7}]})", "layers[1].channel", "[0, 1]"},
      {R"({"layers": [{"source": 1}]})", "layers[0].source", "[0, 0]"},
      {R"({"layers": [{"gamma": 0}]})", "layers[0].gamma", "(0"},
      {R"({"layers": {"0": {}}})", "layers", "array"},
      {R"({"layers": [5]})", "layers[0]", "object"},
      {R"({"colour": 1})", "colour", "canvas, camera, dims, layers"},
  };
  for (const auto& c : cases) {
    auto r = apply_patch(base, json::parse(c.patch), data);
    ASSERT_FALSE(r) << c.patch;
    EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
    EXPECT_NE(r.error().message.find(std::string("'") + c.field + "'"), std::string::npos)
        << r.error().message;
    EXPECT_NE(r.error().message.find(c.accepted), std::string::npos) << r.error().message;
  }
  EXPECT_FALSE(apply_patch(base, json::array(), data));
}

}  // namespace
}  // namespace vx::render
