// Keyframe timelines: a sequence of scenes reached at given times, and the scene at any time
// between them (docs/movies.md). Backend-neutral: pure scene math, no rendering.
//
// Interpolation between keyframes a and b at eased fraction u in [0, 1]:
//   numeric fields lerp: camera center, perspective, canvas background, dims point (when
//     both have the same axes), and per layer (index by index, when both have it)
//     opacity, contrast limits, gamma, iso threshold, attenuation; zoom is interpolated
//     geometrically (constant speed of magnification);
//   camera angles: quaternion slerp along the shorter arc between the two rotations, in
//     napari's convention (R = from_euler('yzx', angles), render/camera.hpp), then back to
//     angles;
//   discrete fields switch at the midpoint (u >= 0.5 takes b): canvas size, ndisplay, dims
//     order, the layer list itself (layers only one side has), and per layer colormap,
//     rendering, blending, interpolation, visibility, source, channel, name; a host may
//     blend the sources of layers instead (SourceBlend: derived layers' live parameters).
// At u = 0 the scene is exactly a, at u = 1 exactly b.
#pragma once

#include <array>
#include <functional>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "render/scene.hpp"

namespace vx::render {

enum class Easing { kLinear, kEaseInOut };
std::string_view to_string(Easing e);
// u in [0, 1] -> eased u in [0, 1]; monotonic, 0 -> 0, 1 -> 1.
double ease(Easing e, double u);

struct Keyframe {
  double time = 0;  // seconds from the start of the movie
  // How the segment that arrives at this keyframe (from the previous one) moves.
  Easing easing = Easing::kLinear;
  Scene scene;  // resolved: the full scene at this time
};

struct Timeline {
  std::vector<Keyframe> keyframes;  // at least one, times strictly increasing
  double start() const { return keyframes.front().time; }
  double end() const { return keyframes.back().time; }
  double duration() const { return end() - start(); }
};

// Limits of a timeline document.
constexpr int kMaxKeyframes = 1000;
constexpr double kMaxTimelineSeconds = 3600;

// Rewrites a keyframe's "scene" (full = true) or "patch" before it applies to `prev` (the
// scene it patches; the base scene for a full one): a host that has derived sources turns
// their specifications into source indices here (stream/view_sources.hpp). Errors are
// reported under the keyframe's name.
using KeyframeHook =
    std::function<Result<json>(const json& scene_or_patch, const Scene& prev, bool full)>;

// Parses and resolves a timeline document against `base` (the dataset's default scene) and
// `data`:
//   {"keyframes": [{"time": 0, "scene": {...}}, {"time": 2, "patch": {...},
//                   "easing": "ease-in-out"}, ...]}
// "scene" applies to `base`, "patch" (a merge patch, render::apply_patch) to the previous
// keyframe's resolved scene (to `base` for the first); neither: the previous scene again.
// Errors name the keyframe and field: "keyframes[2].patch: field 'camera.zoom': ...".
// `where` prefixes every error (e.g. "field 'params.timeline'").
// `data` is read at every keyframe, after `hook` (which may add sources to it).
Result<Timeline> parse_timeline(const json& doc, const Scene& base, const SceneData& data,
                                const std::string& where = "timeline",
                                const KeyframeHook& hook = {});

// The scene between a and b at (already eased) fraction u: see the header comment.
Scene interpolate(const Scene& a, const Scene& b, double u);

// The scene of the timeline at time t (clamped to its ends).
Scene scene_at(const Timeline& timeline, double t);

// A layer whose source differs between two keyframes switches at the midpoint, unless the
// host knows a path between the two: `blend(a, b, u)` gives the source to show at eased
// fraction u in (0, 1) (a derived source with its live parameters interpolated,
// pipeline/interpolate.hpp), which may be made for the purpose.
using SourceBlend = std::function<Result<int>(int a, int b, double u)>;
// scene_at() with the sources of layers blended (by index, layers both keyframes have).
Result<Scene> scene_at(const Timeline& timeline, double t, const SourceBlend& blend);

// Camera angles (napari's convention) <-> unit quaternion (w, x, y, z) of the same rotation.
using Quaternion = std::array<double, 4>;
Quaternion angles_to_quaternion(const std::array<double, 3>& angles_degrees);
std::array<double, 3> quaternion_to_angles(const Quaternion& q);
// Spherical linear interpolation along the shorter arc; unit length for unit inputs.
Quaternion slerp(const Quaternion& a, const Quaternion& b, double u);

}  // namespace vx::render
