// The scene: what a client looks at, in napari's vocabulary (canvas, camera, dims, layers).
// The view file of `voxcast render`, the state channel and the URL hash all carry it as
// JSON (DESIGN.md, "Scene JSON"). World coordinates are physical units from level 0 of
// source 0, axes in the data's order without the channel axis (channels are layers).
#pragma once

#include <array>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "data/data.hpp"

namespace vx::render {

using json = nlohmann::json;

enum class Blending { kTranslucent, kAdditive, kOpaque, kMinimum };
enum class Rendering { kMip, kMinip, kAttenuatedMip, kAverage, kTranslucent, kIso };
enum class Interpolation { kNearest, kLinear };

struct Canvas {
  int width = 1280;
  int height = 720;
  std::array<double, 3> background{0, 0, 0};  // RGB in [0, 1]
};

struct Camera {
  std::array<double, 3> center{0, 0, 0};   // world (z, y, x) of the displayed axes; 2D uses y, x
  double zoom = 1;                         // screen pixels per world unit
  std::array<double, 3> angles{0, 0, 90};  // Euler angles in degrees (napari's convention)
  double perspective = 0;                  // field of view in degrees; 0 is orthographic
};

struct Dims {
  int ndisplay = 2;
  std::vector<int> order;     // a permutation of the world axes; the last ndisplay are shown
  std::vector<double> point;  // world position on every axis (slices on the others)
};

struct Layer {
  std::string name;
  int source = 0;
  int channel = 0;
  bool visible = true;
  double opacity = 1;
  std::string colormap = "gray";
  std::array<double, 2> contrast_limits{0, 1};
  double gamma = 1;
  Blending blending = Blending::kTranslucent;
  Rendering rendering = Rendering::kMip;
  double iso_threshold = 0.5;  // data units; default scenes: halfway up the contrast limits
  double attenuation = 0.05;
  Interpolation interpolation = Interpolation::kLinear;
};

struct Scene {
  Canvas canvas;
  Camera camera;
  Dims dims;
  std::vector<Layer> layers;
};

// The data a scene is validated against: one VolumeInfo per source (source 0 defines the
// world axes).
struct SceneData {
  std::vector<data::VolumeInfo> sources;
  // World axes: the non-channel axes of source 0, with their level-0 extent.
  std::vector<std::string> axis_names() const;
  std::vector<std::array<double, 2>> world_extent() const;  // [first, last] voxel centres
  int channels(int source) const;
};

// The colormap napari gives channel `channel` of `channels` without a colour in the metadata:
// gray for one; magenta, green for two; cyan, yellow, magenta, red, green, blue (cycled) for
// more.
std::string default_channel_colormap(int channel, int channels);

// What napari would show: all channels of every source as layers (colours and windows from
// the metadata, else default_channel_colormap(); additive blending when there are several),
// the whole volume framed, the
// middle slice. Contrast without a metadata window uses the dtype's range until
// estimate_contrast() refines it.
Scene default_scene(const SceneData& data, int width = 1280, int height = 720);

json to_json(const Scene& scene);

// An error naming the axis when dims.point puts a slice (an axis not displayed) outside the
// data: beyond half a voxel past the first or last voxel centre of level 0.
Status check_slices_in_range(const Scene& scene, const SceneData& data);

// Reads a view file (scene JSON); a syntax error names the file and the position.
Result<json> read_scene_file(const std::string& path);

// Applies `patch` to `base` and validates the result against `data`. Objects merge as in
// JSON Merge Patch (RFC 7396; null deletes, i.e. restores the default). One extension:
// "layers" merges element by element, patch[i] into base layer i, so a client can change
// one property of one layer; layers past the array stay as they are, an element past the
// last layer adds one (fields default), and a null element removes that layer. Every
// invalid field is an error naming the field and the accepted values.
Result<Scene> apply_patch(const Scene& base, const json& patch, const SceneData& data);

std::string_view to_string(Blending b);
std::string_view to_string(Rendering r);
std::string_view to_string(Interpolation i);

}  // namespace vx::render
