#include "render/timeline.hpp"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace vx::render {

namespace {

constexpr double kDeg = std::numbers::pi / 180;

Quaternion mul(const Quaternion& a, const Quaternion& b) {
  return {a[0] * b[0] - a[1] * b[1] - a[2] * b[2] - a[3] * b[3],
          a[0] * b[1] + a[1] * b[0] + a[2] * b[3] - a[3] * b[2],
          a[0] * b[2] - a[1] * b[3] + a[2] * b[0] + a[3] * b[1],
          a[0] * b[3] + a[1] * b[2] - a[2] * b[1] + a[3] * b[0]};
}

// Rotation by `deg` about axis 0 = x, 1 = y, 2 = z of a right-handed xyz frame.
Quaternion axis_rotation(int axis, double deg) {
  Quaternion q{std::cos(deg * kDeg / 2), 0, 0, 0};
  q[std::size_t(axis) + 1] = std::sin(deg * kDeg / 2);
  return q;
}

double lerp(double a, double b, double u) {
  return a + (b - a) * u;
}

template <std::size_t N>
std::array<double, N> lerp(const std::array<double, N>& a, const std::array<double, N>& b,
                           double u) {
  std::array<double, N> out{};
  for (std::size_t i = 0; i < N; ++i)
    out[i] = lerp(a[i], b[i], u);
  return out;
}

}  // namespace

std::string_view to_string(Easing e) {
  return e == Easing::kLinear ? "linear" : "ease-in-out";
}

double ease(Easing e, double u) {
  u = std::clamp(u, 0.0, 1.0);
  if (e == Easing::kLinear) return u;
  return u * u * (3 - 2 * u);  // smoothstep: zero speed at both ends
}

Quaternion angles_to_quaternion(const std::array<double, 3>& a) {
  // The same rotation as camera.cpp's matrix: scipy's extrinsic 'yzx', Rx(a2) Rz(a1) Ry(a0).
  return mul(axis_rotation(0, a[2]), mul(axis_rotation(2, a[1]), axis_rotation(1, a[0])));
}

std::array<double, 3> quaternion_to_angles(const Quaternion& q) {
  const double w = q[0], x = q[1], y = q[2], z = q[3];
  // The rotation matrix of q.
  const double m00 = 1 - 2 * (y * y + z * z), m01 = 2 * (x * y - w * z), m02 = 2 * (x * z + w * y);
  const double m10 = 2 * (x * y + w * z), m11 = 1 - 2 * (x * x + z * z), m12 = 2 * (y * z - w * x);
  const double m21 = 2 * (y * z + w * x);
  // M = Rx(c) Rz(b) Ry(a): M01 = -sin b, (M00, M02) = cos b (cos a, sin a),
  // (M11, M21) = cos b (cos c, sin c).
  // b from atan2 rather than asin: precise near +-90 degrees too.
  const double cb = std::hypot(m00, m02);
  const double b = std::atan2(-m01, cb);
  double a = 0, c = 0;
  if (cb > 1e-9) {
    a = std::atan2(m02, m00);
    c = std::atan2(m21, m11);
  } else if (-m01 > 0) {  // gimbal lock: only c - a is defined; a = 0
    c = std::atan2(-m12, m10);
  } else {  // only c + a is defined; a = 0
    c = std::atan2(-m12, -m10);
  }
  return {a / kDeg, b / kDeg, c / kDeg};
}

Quaternion slerp(const Quaternion& a, const Quaternion& b_in, double u) {
  Quaternion b = b_in;
  double d = a[0] * b[0] + a[1] * b[1] + a[2] * b[2] + a[3] * b[3];
  if (d < 0) {  // q and -q are the same rotation: take the one on a's side (shorter arc)
    for (auto& v : b)
      v = -v;
    d = -d;
  }
  Quaternion out{};
  if (d > 1 - 1e-9) {
    for (std::size_t i = 0; i < 4; ++i)
      out[i] = lerp(a[i], b[i], u);
  } else {
    const double theta = std::acos(std::min(1.0, d)), s = std::sin(theta);
    const double wa = std::sin((1 - u) * theta) / s, wb = std::sin(u * theta) / s;
    for (std::size_t i = 0; i < 4; ++i)
      out[i] = wa * a[i] + wb * b[i];
  }
  const double n = std::sqrt(out[0] * out[0] + out[1] * out[1] + out[2] * out[2] + out[3] * out[3]);
  for (auto& v : out)
    v /= n;
  return out;
}

Scene interpolate(const Scene& a, const Scene& b, double u) {
  if (u <= 0) return a;
  if (u >= 1) return b;
  const bool late = u >= 0.5;
  Scene s = late ? b : a;  // every discrete field, switched at the midpoint
  s.canvas.background = lerp(a.canvas.background, b.canvas.background, u);
  s.camera.center = lerp(a.camera.center, b.camera.center, u);
  if (a.camera.zoom > 0 && b.camera.zoom > 0 && a.camera.zoom != b.camera.zoom)
    s.camera.zoom = std::exp(lerp(std::log(a.camera.zoom), std::log(b.camera.zoom), u));
  s.camera.perspective = lerp(a.camera.perspective, b.camera.perspective, u);
  if (a.camera.angles != b.camera.angles)
    s.camera.angles = quaternion_to_angles(
        slerp(angles_to_quaternion(a.camera.angles), angles_to_quaternion(b.camera.angles), u));
  if (a.dims.point.size() == b.dims.point.size())
    for (std::size_t i = 0; i < s.dims.point.size(); ++i)
      s.dims.point[i] = lerp(a.dims.point[i], b.dims.point[i], u);
  const std::size_t common = std::min(a.layers.size(), b.layers.size());
  for (std::size_t i = 0; i < common; ++i) {
    const Layer &la = a.layers[i], &lb = b.layers[i];
    Layer& l = s.layers[i];
    l.opacity = lerp(la.opacity, lb.opacity, u);
    l.contrast_limits = lerp(la.contrast_limits, lb.contrast_limits, u);
    l.gamma = lerp(la.gamma, lb.gamma, u);
    l.iso_threshold = lerp(la.iso_threshold, lb.iso_threshold, u);
    l.attenuation = lerp(la.attenuation, lb.attenuation, u);
  }
  return s;
}

namespace {

// The keyframes around t and the eased fraction between them; b is null at the ends.
struct Segment {
  const Keyframe* a = nullptr;
  const Keyframe* b = nullptr;
  double u = 0;
};

Segment segment_at(const Timeline& tl, double t) {
  const auto& k = tl.keyframes;
  if (t <= k.front().time) return {&k.front()};
  if (t >= k.back().time) return {&k.back()};
  // The first keyframe after t.
  const auto it = std::upper_bound(k.begin(), k.end(), t,
                                   [](double v, const Keyframe& f) { return v < f.time; });
  const Keyframe& next = *it;
  const Keyframe& prev = *(it - 1);
  const double u = (t - prev.time) / (next.time - prev.time);
  return {&prev, &next, ease(next.easing, u)};
}

}  // namespace

Scene scene_at(const Timeline& tl, double t) {
  const auto seg = segment_at(tl, t);
  return seg.b ? interpolate(seg.a->scene, seg.b->scene, seg.u) : seg.a->scene;
}

Result<Scene> scene_at(const Timeline& tl, double t, const SourceBlend& blend) {
  const auto seg = segment_at(tl, t);
  if (!seg.b) return seg.a->scene;
  Scene s = interpolate(seg.a->scene, seg.b->scene, seg.u);
  if (!blend || seg.u <= 0 || seg.u >= 1) return s;
  const auto &la = seg.a->scene.layers, &lb = seg.b->scene.layers;
  for (std::size_t i = 0; i < std::min(la.size(), lb.size()); ++i)
    if (la[i].source != lb[i].source) {
      VX_ASSIGN(s.layers[i].source, blend(la[i].source, lb[i].source, seg.u));
    }
  return s;
}

Result<Timeline> parse_timeline(const json& doc, const Scene& base, const SceneData& data,
                                const std::string& where, const KeyframeHook& hook) {
  const auto bad = [&](const std::string& field, const std::string& what) {
    return make_error(ErrorCode::kInvalidArgument, fmt::format("{}: {}{}", where, field, what));
  };
  if (!doc.is_object()) return bad("", "expected an object {\"keyframes\": [...]}");
  for (const auto& [k, v] : doc.items())
    if (k != "keyframes" && k != "version")
      return bad("field '" + k + "'", ": unknown (keyframes, version)");
  if (doc.contains("version") && doc["version"] != 1)
    return bad("field 'version'", ": only version 1 is known");
  if (!doc.contains("keyframes") || !doc["keyframes"].is_array())
    return bad("field 'keyframes'", ": expected an array of keyframes");
  const auto& list = doc["keyframes"];
  if (list.empty()) return bad("field 'keyframes'", ": the timeline is empty (no keyframes)");
  if (list.size() > std::size_t(kMaxKeyframes))
    return bad("field 'keyframes'",
               fmt::format(": {} keyframes, over the cap of {}", list.size(), kMaxKeyframes));
  Timeline tl;
  for (std::size_t i = 0; i < list.size(); ++i) {
    const auto& kf = list[i];
    const std::string at = fmt::format("keyframes[{}]", i);
    if (!kf.is_object()) return bad(at, ": expected an object {\"time\", \"scene\" or \"patch\"}");
    for (const auto& [k, v] : kf.items())
      if (k != "time" && k != "scene" && k != "patch" && k != "easing")
        return bad(at + "." + k, ": unknown field (time, scene, patch, easing)");
    Keyframe out;
    if (!kf.contains("time") || !kf["time"].is_number() || !std::isfinite(kf["time"].get<double>()))
      return bad(at + ".time", ": expected a number of seconds");
    out.time = kf["time"].get<double>();
    if (out.time < 0 || out.time > kMaxTimelineSeconds)
      return bad(at + ".time",
                 fmt::format(": {} is outside [0, {}] seconds", out.time, kMaxTimelineSeconds));
    if (!tl.keyframes.empty() && out.time <= tl.keyframes.back().time)
      return bad(at + ".time",
                 fmt::format(": {} is not after keyframes[{}].time {} (keyframes out of order)",
                             out.time, i - 1, tl.keyframes.back().time));
    if (kf.contains("easing")) {
      if (kf["easing"] == "linear")
        out.easing = Easing::kLinear;
      else if (kf["easing"] == "ease-in-out")
        out.easing = Easing::kEaseInOut;
      else
        return bad(at + ".easing",
                   fmt::format(": {} is not one of linear, ease-in-out", kf["easing"].dump()));
    }
    if (kf.contains("scene") && kf.contains("patch"))
      return bad(at, ": either \"scene\" (a full scene) or \"patch\" (on the previous one)");
    const Scene& prev = tl.keyframes.empty() ? base : tl.keyframes.back().scene;
    if (kf.contains("scene") || kf.contains("patch")) {
      const bool full = kf.contains("scene");
      json patch = full ? kf["scene"] : kf["patch"];
      if (hook) {
        auto r = hook(patch, full ? base : prev, full);
        if (!r)  // the hook's code: say "unsupported" stays so
          return make_error(r.error().code,
                            fmt::format("{}: {}{}{}", where, at,
                                        full ? ".scene: " : ".patch: ", r.error().message));
        patch = std::move(*r);
      }
      auto s = apply_patch(full ? base : prev, patch, data);
      if (!s) return bad(at + (full ? ".scene: " : ".patch: "), s.error().message);
      if (auto st = check_slices_in_range(*s, data); !st)
        return bad(at + (full ? ".scene: " : ".patch: "), st.error().message);
      out.scene = std::move(*s);
    } else {
      out.scene = prev;
    }
    tl.keyframes.push_back(std::move(out));
  }
  return tl;
}

}  // namespace vx::render
