// Orbits: a grid of views of a dataset, yaw across (columns) and pitch down (rows), rendered
// at final quality and packed into sprite sheets that the <voxcast-orbit> web component
// (web/voxcast-orbit.js) turns back into an object one can turn. The format of orbit.json
// is in docs/orbit.md.
#pragma once

#include <atomic>
#include <functional>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "render/renderer.hpp"

namespace vx::jobs {

// The most pixels one orbit holds (sheets are in memory until written): 256 Mpx, 1 GiB of
// RGBA; 30x30 at 512 px is 225 Mpx.
constexpr std::uint64_t kMaxOrbitPixels = 256ull << 20;

struct OrbitOptions {
  int columns = 30, rows = 30;
  double yaw_min = -60, yaw_max = 60;      // degrees, first and last column
  double pitch_min = -45, pitch_max = 45;  // degrees, first and last row
  int size = 256;                          // tile width and height, pixels
  std::string format = "webp";             // "webp" or "jpeg"
  int quality = 85;                        // 100 with webp: lossless
  int max_sheet = 4096;                    // sheet side limit, pixels
  // The browser component, inlined into index.html (empty: index.html says it is missing).
  std::string component_js;
  std::string renderer = "auto";  // auto, cpu or cuda (render/select.hpp)
  // Sort-last over MPI (src/cluster): the views render one after another, each split over
  // the ranks; every rank runs the same orbit, and only rank 0's pictures are whole.
  render::Compositor* compositor = nullptr;
};

struct OrbitProgress {
  std::function<void(int done, int total)> on_view;  // from render threads
  const std::atomic<bool>* cancel = nullptr;         // checked before each view
};

struct OrbitResult {
  int views = 0;
  double seconds = 0;
  std::vector<std::string> files;  // written, relative to the directory
  std::uint64_t bytes = 0;
};

// The camera angles of view (row, column): the base view's angles plus yaw on the second
// angle and pitch on the third (napari's convention: with the default (0, 0, 90), yaw turns
// the volume about the screen's vertical axis and pitch about its horizontal one).
std::array<double, 3> orbit_angles(const render::Scene& base, double yaw, double pitch);
// Yaw of column c and pitch of row r.
double orbit_yaw(const OrbitOptions& o, int column);
double orbit_pitch(const OrbitOptions& o, int row);

// The base scene for an orbit of `data`: 3D, size x size, the zoom that keeps the whole
// volume in the frame at every angle (its bounding sphere fits).
render::Scene orbit_scene(const render::SceneData& data, int size);

// Renders every view of `base` (3D) into `dir` (created): sheets, orbit.json, index.html.
// Views render in parallel through the shared cache. A cancel leaves the files written
// so far and returns kCancelled.
Result<OrbitResult> render_orbit(const render::Scene& base, const render::RenderInputs& inputs,
                                 const OrbitOptions& options, const std::string& dir,
                                 const OrbitProgress& progress = {});

}  // namespace vx::jobs
