// Physical units: the OME-NGFF unit names and the spellings other formats use (private).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace vx::data {

// The unit names OME-NGFF (0.4, 0.5) lists for space and for time axes ("micrometer",
// "second", ...).
bool is_ngff_space_unit(std::string_view unit);
bool is_ngff_time_unit(std::string_view unit);

// A length unit as ImageJ, OME-XML and others spell it ("µm" in UTF-8 or Latin-1, the
// escaped "\u00B5m", "um", "micron", "microns", "nm", "Å", "mm", "cm", "m", "inch", or an
// NGFF name) as its NGFF name; "" for "pixel"/"pixels" (uncalibrated); nullopt when unknown.
std::optional<std::string> ngff_length_unit(std::string_view spelling);
// Likewise for time ("s", "sec", "ms", "µs", "min", "h", NGFF names).
std::optional<std::string> ngff_time_unit(std::string_view spelling);

}  // namespace vx::data
