// Format openers behind open_volume() (private to src/data).
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "data/data.hpp"
#include "data/json_util.hpp"

namespace vx::data {

using SourcePtr = std::shared_ptr<VolumeSource>;

Result<SourcePtr> open_zarr(const std::string& path);
Result<SourcePtr> open_npy(const std::string& path);
Result<SourcePtr> open_tiff(const std::string& path);
Result<SourcePtr> open_nifti(const std::string& path);
Result<SourcePtr> open_png(const std::string& path);
// Decodes a PNG from an open stream (open_png's work, and the fuzz target's entry point):
// `name` names it in errors; an image that needs more than `max_bytes` decoded is refused.
Result<SourcePtr> read_png(std::FILE* file, const std::string& name, std::uint64_t max_bytes);
Result<SourcePtr> open_synthetic(std::string_view spec);

// Channels of an image's samples: 3 or 4 (rgb) are red, green, blue with the type's full range
// as their window; 1 or 2 gray; the 2nd or 4th (alpha) a hidden channel "alpha".
std::vector<Channel> colour_channels(int samples, bool rgb, DType dtype);

// Axes guessed for plain arrays: 2 -> yx, 3 -> zyx, 4 -> czyx, 5 -> tczyx; 1 -> x.
std::vector<Axis> default_axes(int ndim);
// One channel per index of the channel axis (or one), named "channel N".
std::vector<Channel> default_channels(const std::vector<Axis>& axes,
                                      const std::vector<std::int64_t>& shape);

// A copy of OME attributes with misspelt keys read as the key they miss (one warning for each
// unknown key) and a warning for each dataset without its coordinateTransformations.
json repair_ome(const json& attrs, const std::string& file, std::vector<MetadataWarning>& out);
// An axis type outside space/time/channel (read as the nearest when close, e.g. "chanel"),
// and a unit outside the OME-NGFF lists (read as its NGFF name when known, e.g. "um"): each
// with a warning.
AxisType checked_axis_type(const std::string& type, const Where& w,
                           std::vector<MetadataWarning>& out);
std::string checked_axis_unit(const std::string& unit, AxisType type, const Where& w,
                              std::vector<MetadataWarning>& out);
// Warns about levels whose spatial scale decreases or does not match their shape.
void check_ome_levels(VolumeInfo& info, const std::string& file);

// Parses OME-NGFF "multiscales" (v0.4 or v0.5, taken from a .zattrs or attributes.ome) and
// "omero" into `info`; dataset paths are returned for the caller to open as arrays.
Status parse_ome(const json& attrs, const std::string& file, VolumeInfo& info,
                 std::vector<std::string>& dataset_paths);
// Applies the per-dataset coordinateTransformations (after the arrays are known).
Status apply_ome_transforms(const json& attrs, const std::string& file, VolumeInfo& info);

}  // namespace vx::data
