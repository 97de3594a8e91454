// Format openers behind open_volume() (private to src/data).
#pragma once

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
Result<SourcePtr> open_synthetic(std::string_view spec);

// Axes guessed for plain arrays: 2 -> yx, 3 -> zyx, 4 -> czyx, 5 -> tczyx; 1 -> x.
std::vector<Axis> default_axes(int ndim);
// One channel per index of the channel axis (or one), named "channel N".
std::vector<Channel> default_channels(const std::vector<Axis>& axes,
                                      const std::vector<std::int64_t>& shape);

// Parses OME-NGFF "multiscales" (v0.4 or v0.5, taken from a .zattrs or attributes.ome) and
// "omero" into `info`; dataset paths are returned for the caller to open as arrays.
Status parse_ome(const json& attrs, const std::string& file, VolumeInfo& info,
                 std::vector<std::string>& dataset_paths);
// Applies the per-dataset coordinateTransformations (after the arrays are known).
Status apply_ome_transforms(const json& attrs, const std::string& file, VolumeInfo& info);

}  // namespace vx::data
