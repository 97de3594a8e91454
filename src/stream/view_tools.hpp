// What the web client's tools ask of the current view, answered from memory: the probe (the
// voxel under the cursor, per layer) and the histogram of each layer over what is on screen
// (with percentiles for auto-contrast). Both read only chunks that are in the cache, never
// wait and never start a read, so they cannot hold up a session (docs/protocol.md, `probe`
// and `histogram`).
#pragma once

#include <nlohmann/json.hpp>
#include <span>

#include "core/error.hpp"
#include "render/renderer.hpp"

namespace vx::stream {

using json = nlohmann::json;

// Limits of the histogram request.
inline constexpr int kMaxHistogramBins = 1024;
// Voxels sampled per request, at most (shared by its layers, each getting at least
// kHistogramMinSamples).
inline constexpr std::size_t kHistogramSamples = std::size_t(1) << 20;
inline constexpr std::size_t kHistogramMinSamples = std::size_t(1) << 12;
inline constexpr std::size_t kHistogramChunks = 4096;  // chunks looked at per layer, at most

// Answers a `probe` request: `pixel` [x, y] (canvas pixels of `scene`, continuous, y down) or
// `world` (one coordinate per world axis). Returns the reply's fields: `world` (the point, or
// null when it is not finite), and `layers`: for each visible layer, `layer`, `name`,
// `status` ("ok", "loading": no level of that voxel is in memory yet, "outside"), `voxel`
// (level-0 indices per world axis), `level` (the finest level in memory, the one `value`
// comes from) and `value` (null unless "ok"; NaN is null too). Errors name the field.
Result<json> probe(const render::Scene& scene, const render::RenderInputs& in, const json& request);

// Answers a `histogram` request: `layers` (indices, default all), `bins` (1..1024, default 64),
// `percentiles` ([low, high] in 0..100, default [0.5, 99.5]). For each layer: the values of
// the voxels on screen (2D: the visible part of the slice; 3D: the volume, sliced on the axes
// not displayed) at `drawn[layer]` (the level its last frame drew; < 0 or absent: the level
// that matches the zoom), or the finest coarser level that is all in memory; sampled on a
// regular grid to at most kHistogramSamples values per request (split between its layers).
// Returns the reply's `layers`.
Result<json> histogram(const render::Scene& scene, const render::RenderInputs& in,
                       std::span<const int> drawn, const json& request);

}  // namespace vx::stream
