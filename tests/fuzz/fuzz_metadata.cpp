// libFuzzer target: every metadata parser of the data layer on arbitrary bytes.
// Whatever the input, a parser returns a value or an Error; it never crashes or leaks.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "data/formats.hpp"
#include "data/mapped_array.hpp"
#include "data/tiff_meta.hpp"
#include "data/zarr_meta.hpp"

using namespace vx::data;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto bytes = std::as_bytes(std::span(data, size));
  (void)parse_npy_header(bytes, "fuzz.npy");
  (void)parse_nifti_header(bytes, "fuzz.nii");
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)parse_imagej_description(text, TiffResolution{2, 0, 1}, "fuzz.tif");
  (void)parse_ome_xml(text, "fuzz.ome.tif");
  auto j = parse_json(text, "fuzz.json");
  if (!j) return 0;
  if (auto m = parse_zarray_v2(*j, ".zarray"); m) {
    std::vector<std::int64_t> idx(m->shape.size(), 1);
    (void)m->chunk_key(idx);
  }
  (void)parse_zarr_json_v3(*j, "zarr.json");
  VolumeInfo info;
  std::vector<std::string> paths;
  const json fixed = repair_ome(*j, ".zattrs", info.warnings);
  if (parse_ome(fixed, ".zattrs", info, paths)) {
    for (std::size_t i = 0; i < paths.size(); ++i) {
      Level lv;
      lv.shape.assign(info.axes.empty() ? 3 : info.axes.size(), 4);
      info.levels.push_back(lv);
    }
    if (info.axes.empty()) info.axes = default_axes(3);
    if (apply_ome_transforms(fixed, ".zattrs", info)) check_ome_levels(info, ".zattrs");
  }
  return 0;
}
