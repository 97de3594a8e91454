// A VolumeInfo as JSON: what `voxcast info --json` prints and `/api/v1/datasets` serves.
#pragma once

#include <nlohmann/json.hpp>

#include "data/data.hpp"

namespace vx::data {

nlohmann::json info_to_json(const VolumeInfo& info);

}  // namespace vx::data
