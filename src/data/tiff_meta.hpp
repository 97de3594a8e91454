// Calibration and display metadata of TIFF files (private to src/data): ImageJ's
// ImageDescription with the X/YResolution tags, and OME-XML. Parsing never fails: what cannot
// be used is left at its default with a warning.
#pragma once

#include <array>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "data/data.hpp"

namespace vx::data {

struct TiffCalibration {
  std::string kind;                      // "imagej", "ome", "resolution" or "" (none found)
  std::array<double, 3> scale{1, 1, 1};  // z, y, x: physical size of one voxel
  std::array<std::string, 3> unit;       // z, y, x: NGFF unit names, "" when uncalibrated
  std::optional<std::array<double, 2>> display_range;  // ImageJ min=, max=
  // How pages map to channels, z and time (ImageJ hyperstacks, OME-XML Size*/DimensionOrder):
  // sizes (0 when the metadata does not say) and the order of the page axes, fastest first.
  std::int64_t channels = 0, slices = 0, frames = 0;
  std::string order = "czt";
  double frame_interval = 0;  // seconds between time points (ImageJ finterval), 0 unknown
  std::vector<MetadataWarning> warnings;
};

// The resolution tags as libtiff reports them: pixels per resolution unit (0 when absent),
// and ResolutionUnit (1 none, 2 inch, 3 centimeter).
struct TiffResolution {
  double x = 0, y = 0;
  int unit = 2;
};

// ImageJ: "ImageJ=1.53t\nimages=10\nslices=10\nunit=micron\nspacing=2.0\nmin=0\nmax=4095\n".
// x/y come from the resolution tags (1 / pixels per unit), z from `spacing`.
TiffCalibration parse_imagej_description(std::string_view description, const TiffResolution& res,
                                         const std::string& file);

// OME-XML: the first Image's Pixels element, PhysicalSizeX/Y/Z and their units (µm when
// absent, as the OME schema says).
TiffCalibration parse_ome_xml(std::string_view xml, const std::string& file);

// Dispatches on the description's content (OME-XML, ImageJ), else the resolution tags when
// their unit is the centimetre (an inch is left alone: it is the DPI of image editors).
TiffCalibration read_tiff_calibration(std::string_view description, const TiffResolution& res,
                                      const std::string& file);

}  // namespace vx::data
