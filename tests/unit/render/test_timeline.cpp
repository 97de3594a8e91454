#include <gtest/gtest.h>

#include <cmath>

#include "render/camera.hpp"
#include "render/timeline.hpp"

namespace vx::render {
namespace {

SceneData synthetic_data() {
  auto src = data::open_volume("synthetic:cells?shape=64x128x256");
  EXPECT_TRUE(src);
  return SceneData{{(*src)->info()}};
}

double norm(const Quaternion& q) {
  return std::sqrt(q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3]);
}

// The angle between the rotations of two unit quaternions, degrees.
double rotation_angle(const Quaternion& a, const Quaternion& b) {
  const double d = std::abs(a[0] * b[0] + a[1] * b[1] + a[2] * b[2] + a[3] * b[3]);
  return 2 * std::acos(std::min(1.0, d)) * 180 / M_PI;
}

void expect_same_rotation(const std::array<double, 3>& a, const std::array<double, 3>& b) {
  const auto ba = view_basis(a), bb = view_basis(b);
  for (int i = 0; i < 3; ++i) {
    EXPECT_NEAR(ba.view[std::size_t(i)], bb.view[std::size_t(i)], 1e-9);
    EXPECT_NEAR(ba.up[std::size_t(i)], bb.up[std::size_t(i)], 1e-9);
  }
}

Scene scene3d(const SceneData& data) {
  auto s = default_scene(data, 320, 240);
  s.dims.ndisplay = 3;
  return s;
}

TEST(Timeline, QuaternionsFollowNapariAngles) {
  // angles -> quaternion -> angles is the same rotation (the view basis of camera.hpp),
  // including at the gimbal-lock angles.
  for (const std::array<double, 3> a : {std::array<double, 3>{0, 0, 90},
                                        {10, 20, 30},
                                        {-40, 75, 160},
                                        {0, 90, 10},
                                        {30, -90, 45},
                                        {170, 10, -100}}) {
    const auto q = angles_to_quaternion(a);
    EXPECT_NEAR(norm(q), 1, 1e-12);
    expect_same_rotation(quaternion_to_angles(q), a);
  }
}

TEST(Timeline, SlerpStaysUnitAndTakesTheShortWay) {
  const auto a = angles_to_quaternion({0, 0, 90});
  const auto b = angles_to_quaternion({0, 350, 90});  // 10 degrees the other way round
  EXPECT_NEAR(rotation_angle(a, b), 10, 1e-9);
  for (int i = 0; i <= 20; ++i) {
    const double u = i / 20.0;
    const auto q = slerp(a, b, u);
    EXPECT_NEAR(norm(q), 1, 1e-12);
    // Along the short arc: u of the way from a, 1 - u from b (never past 180 degrees).
    EXPECT_NEAR(rotation_angle(a, q), 10 * u, 1e-6) << u;
    EXPECT_NEAR(rotation_angle(q, b), 10 * (1 - u), 1e-6) << u;
  }
  // Halfway is (0, -5, 90), not (0, 175, 90).
  expect_same_rotation(quaternion_to_angles(slerp(a, b, 0.5)), {0, -5, 90});
  // Also when the quaternions of the two ends have opposite signs.
  auto nb = b;
  for (auto& v : nb)
    v = -v;
  expect_same_rotation(quaternion_to_angles(slerp(a, nb, 0.5)), {0, -5, 90});
}

TEST(Timeline, EasingIsMonotonicWithFixedEnds) {
  for (auto e : {Easing::kLinear, Easing::kEaseInOut}) {
    EXPECT_EQ(ease(e, 0), 0);
    EXPECT_EQ(ease(e, 1), 1);
    double last = 0;
    for (int i = 1; i <= 1000; ++i) {
      const double v = ease(e, i / 1000.0);
      EXPECT_GE(v, last) << to_string(e) << " at " << i;
      last = v;
    }
  }
  EXPECT_LT(ease(Easing::kEaseInOut, 0.1), 0.1);  // slow start
  EXPECT_GT(ease(Easing::kEaseInOut, 0.9), 0.9);  // slow end
  EXPECT_DOUBLE_EQ(ease(Easing::kEaseInOut, 0.5), 0.5);
}

TEST(Timeline, EndpointsAreExactAndNumbersInterpolate) {
  const auto data = synthetic_data();
  auto a = scene3d(data);
  a.layers[0].contrast_limits = {0, 1000};
  a.layers[0].opacity = 1;
  a.layers[0].gamma = 1;
  a.layers[0].iso_threshold = 100;
  a.camera.zoom = 1;
  auto b = a;
  b.camera.center = {10, 20, 30};
  b.camera.zoom = 4;
  b.camera.angles = {0, 60, 90};
  b.dims.point[0] = a.dims.point[0] + 20;
  b.layers[0].contrast_limits = {100, 2000};
  b.layers[0].opacity = 0.5;
  b.layers[0].gamma = 2;
  b.layers[0].iso_threshold = 300;
  EXPECT_EQ(to_json(interpolate(a, b, 0)), to_json(a));
  EXPECT_EQ(to_json(interpolate(a, b, 1)), to_json(b));
  const auto m = interpolate(a, b, 0.25);
  for (std::size_t i = 0; i < 3; ++i)
    EXPECT_NEAR(m.camera.center[i],
                a.camera.center[i] + 0.25 * (b.camera.center[i] - a.camera.center[i]), 1e-9);
  EXPECT_NEAR(m.camera.zoom, std::sqrt(2.0), 1e-9);  // geometric: 1 -> 4, a quarter is 4^0.25
  expect_same_rotation(m.camera.angles, {0, 15, 90});
  EXPECT_NEAR(m.dims.point[0], a.dims.point[0] + 5, 1e-9);
  EXPECT_NEAR(m.layers[0].contrast_limits[0], 25, 1e-9);
  EXPECT_NEAR(m.layers[0].contrast_limits[1], 1250, 1e-9);
  EXPECT_NEAR(m.layers[0].opacity, 0.875, 1e-9);
  EXPECT_NEAR(m.layers[0].gamma, 1.25, 1e-9);
  EXPECT_NEAR(m.layers[0].iso_threshold, 150, 1e-9);
}

TEST(Timeline, DiscreteFieldsSwitchAtTheMidpoint) {
  const auto data = synthetic_data();
  auto a = scene3d(data);
  auto b = a;
  a.layers[0].colormap = "gray";
  b.layers[0].colormap = "viridis";
  a.layers[0].rendering = Rendering::kMip;
  b.layers[0].rendering = Rendering::kIso;
  b.layers[0].visible = false;
  b.dims.ndisplay = 2;
  for (double u : {0.01, 0.25, 0.4999}) {
    const auto s = interpolate(a, b, u);
    EXPECT_EQ(s.layers[0].colormap, "gray") << u;
    EXPECT_EQ(s.layers[0].rendering, Rendering::kMip) << u;
    EXPECT_TRUE(s.layers[0].visible) << u;
    EXPECT_EQ(s.dims.ndisplay, 3) << u;
  }
  for (double u : {0.5, 0.75, 0.99}) {
    const auto s = interpolate(a, b, u);
    EXPECT_EQ(s.layers[0].colormap, "viridis") << u;
    EXPECT_EQ(s.layers[0].rendering, Rendering::kIso) << u;
    EXPECT_FALSE(s.layers[0].visible) << u;
    EXPECT_EQ(s.dims.ndisplay, 2) << u;
  }
}

TEST(Timeline, ParsesPatchesAndEasesBetweenKeyframes) {
  const auto data = synthetic_data();
  const auto base = default_scene(data, 320, 240);
  const json doc = {
      {"keyframes",
       {{{"time", 1}, {"scene", {{"dims", {{"ndisplay", 3}}}, {"camera", {{"zoom", 1.0}}}}}},
        {{"time", 3}, {"patch", {{"camera", {{"zoom", 3.0}}}}}, {"easing", "ease-in-out"}},
        {{"time", 4}}}}};
  auto tl = parse_timeline(doc, base, data);
  ASSERT_TRUE(tl) << tl.error().message;
  ASSERT_EQ(tl->keyframes.size(), 3u);
  EXPECT_EQ(tl->start(), 1);
  EXPECT_EQ(tl->duration(), 3);
  EXPECT_EQ(tl->keyframes[1].scene.dims.ndisplay, 3);  // the patch kept the previous scene
  EXPECT_EQ(tl->keyframes[2].scene.camera.zoom, 3);    // no scene, no patch: held
  EXPECT_EQ(scene_at(*tl, 0).camera.zoom, 1);          // clamped before the start
  EXPECT_EQ(scene_at(*tl, 1).camera.zoom, 1);
  EXPECT_EQ(scene_at(*tl, 3).camera.zoom, 3);
  EXPECT_EQ(scene_at(*tl, 3.5).camera.zoom, 3);
  // Ease-in-out: a quarter of the way in time is less than a quarter of the way (log zoom).
  const double quarter = std::log(scene_at(*tl, 1.5).camera.zoom) / std::log(3.0);
  EXPECT_GT(quarter, 0);
  EXPECT_LT(quarter, 0.25);
}

TEST(Timeline, BadTimelinesNameTheKeyframeAndField) {
  const auto data = synthetic_data();
  const auto base = default_scene(data, 320, 240);
  const auto error = [&](const json& doc) {
    auto tl = parse_timeline(doc, base, data, "T.json");
    EXPECT_FALSE(tl) << doc.dump();
    return tl ? std::string() : tl.error().message;
  };
  const auto has = [](const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
  };
  EXPECT_TRUE(has(error(json::object({{"keyframes", json::array()}})), "empty")) << "empty";
  EXPECT_TRUE(has(error(json::array()), "T.json"));
  {
    const auto e = error({{"keyframes", {{{"time", 2}}, {{"time", 1}}}}});
    EXPECT_TRUE(has(e, "keyframes[1].time") && has(e, "out of order")) << e;
  }
  {
    const auto e = error({{"keyframes", {{{"time", 0}}, {{"time", 0}}}}});
    EXPECT_TRUE(has(e, "keyframes[1].time")) << e;
  }
  {
    const auto e = error({{"keyframes", {{{"time", -1}}}}});
    EXPECT_TRUE(has(e, "keyframes[0].time")) << e;
  }
  {
    const auto e = error(
        {{"keyframes", {{{"time", 0}}, {{"time", 1}, {"patch", {{"camera", {{"zoom", "x"}}}}}}}}});
    EXPECT_TRUE(has(e, "keyframes[1].patch") && has(e, "camera.zoom")) << e;
  }
  {
    const auto e =
        error({{"keyframes", {{{"time", 0}, {"scene", {{"layers", {{{"colormap", "nope"}}}}}}}}}});
    EXPECT_TRUE(has(e, "keyframes[0].scene") && has(e, "colormap")) << e;
  }
  {
    const auto e = error({{"keyframes", {{{"time", 0}, {"easing", "bouncy"}}}}});
    EXPECT_TRUE(has(e, "keyframes[0].easing")) << e;
  }
  {
    const auto e = error(
        {{"keyframes", {{{"time", 0}, {"scene", json::object()}, {"patch", json::object()}}}}});
    EXPECT_TRUE(has(e, "keyframes[0]")) << e;
  }
  {
    const auto e = error({{"keyframes", {{{"time", 0}, {"when", 1}}}}});
    EXPECT_TRUE(has(e, "T.json: keyframes[0].when: unknown field")) << e;
  }
}

TEST(Timeline, HostsBlendTheSourcesOfLayersBetweenKeyframes) {
  // Two sources of the same data: a layer that moves from one to the other asks the host
  // for the source in between (derived layers: their live parameters), only strictly
  // between the keyframes, eased; keyframes that agree ask nothing; a hook rewrites each
  // keyframe's scene or patch before it applies, against the scene it patches.
  auto data = synthetic_data();
  data.sources.push_back(data.sources[0]);
  data.sources.push_back(data.sources[0]);
  std::vector<std::pair<std::string, int>> hooked;
  const KeyframeHook hook = [&](const json& doc, const Scene& prev, bool full) -> Result<json> {
    hooked.emplace_back(full ? "scene" : "patch", prev.layers.at(0).source);
    json out = doc;
    if (out.contains("layers") && out["layers"][0].contains("source") &&
        out["layers"][0]["source"] == "second")
      out["layers"][0]["source"] = 1;
    return out;
  };
  const json doc{{"keyframes",
                  {{{"time", 0}, {"scene", {{"layers", {{{"source", 0}}}}}}},
                   {{"time", 2}, {"patch", {{"layers", {{{"source", "second"}}}}}}},
                   {{"time", 3}, {"easing", "ease-in-out"}}}}};
  auto tl = parse_timeline(doc, default_scene(data), data, "timeline", hook);
  ASSERT_TRUE(tl) << tl.error().message;
  EXPECT_EQ(hooked, (std::vector<std::pair<std::string, int>>{{"scene", 0}, {"patch", 0}}));
  std::vector<std::array<double, 3>> asked;
  const SourceBlend blend = [&](int a, int b, double u) -> Result<int> {
    asked.push_back({double(a), double(b), u});
    return 2;
  };
  for (double t : {0.0, 2.0, 2.5, 3.0}) {  // ends of segments, and a hold (no change)
    auto s = scene_at(*tl, t, blend);
    ASSERT_TRUE(s);
    EXPECT_EQ(s->layers[0].source, t < 2 ? 0 : 1) << t;
  }
  EXPECT_TRUE(asked.empty());
  auto mid = scene_at(*tl, 0.5, blend);
  ASSERT_TRUE(mid);
  EXPECT_EQ(mid->layers[0].source, 2);
  ASSERT_EQ(asked.size(), 1u);
  EXPECT_EQ(asked[0][0], 0);
  EXPECT_EQ(asked[0][1], 1);
  EXPECT_DOUBLE_EQ(asked[0][2], 0.25);
  // Without a host the source switches at the midpoint, as before.
  EXPECT_EQ(scene_at(*tl, 0.9).layers[0].source, 0);
  EXPECT_EQ(scene_at(*tl, 1.1).layers[0].source, 1);
  // A host's error is the scene's.
  auto failed = scene_at(*tl, 1.0, [](int, int, double) -> Result<int> {
    return fail(ErrorCode::kUnsupported, "no room");
  });
  ASSERT_FALSE(failed);
  EXPECT_EQ(failed.error().message, "no room");
  // A hook's error names the keyframe and keeps its code.
  const KeyframeHook refuse = [](const json&, const Scene&, bool) -> Result<json> {
    return fail(ErrorCode::kUnsupported, "field 'layers[0].source': no pipelines here");
  };
  auto bad = parse_timeline(doc, default_scene(data), data, "timeline", refuse);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, ErrorCode::kUnsupported);
  EXPECT_EQ(bad.error().message,
            "timeline: keyframes[0].scene: field 'layers[0].source': no pipelines here");
}

}  // namespace
}  // namespace vx::render
