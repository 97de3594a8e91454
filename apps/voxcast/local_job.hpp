// What the commands that run a job kind here (`job`, `movie`, `orbit`) share: the dataset
// opened as the server would offer it, a progress bar over the job, and the job's field names
// turned back into the command's option names in errors.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "commands.hpp"
#include "core/error.hpp"
#include "core/resources.hpp"
#include "jobs/kind.hpp"

namespace vx::data {
class ChunkCache;
}

namespace vx::app {

// A dataset for a local job: its cache, and the jobs::Dataset that reads through it.
struct LocalDataset {
  std::shared_ptr<data::ChunkCache> cache;
  jobs::Dataset dataset;
  jobs::DatasetLookup lookup() const;  // index 0 is this one; others name 'params.dataset'
};
// Opens DATA with its default scene (at w x h when given, else the default canvas), the
// contrast estimated (warnings logged). The cache charges `budget` when given (derived layers
// charge it too: see ViewSources).
Result<LocalDataset> open_local_dataset(const std::string& data, const GlobalOptions& g, int w = 0,
                                        int h = 0, Budget* budget = nullptr);

// The <voxcast-orbit> component inlined into an orbit's index.html (empty when missing).
std::string orbit_component_js();

// "WxH" -> (w, h), or nullopt.
std::optional<std::pair<int, int>> parse_size(const std::string& text);

// Runs the job with a progress bar ("LABEL ... UNIT"); returns its files. `total`, when
// given, gets the job's last total of units (frames, views).
Result<std::vector<std::string>> run_with_progress(const jobs::JobKind& kind,
                                                   const jobs::json& params, const std::string& dir,
                                                   const std::string& label,
                                                   const std::string& unit, bool quiet,
                                                   std::uint64_t* total = nullptr);

// A job error as the command says it: a leading "field 'params.X'" becomes the option named
// for X in `names` (pairs of field and option, e.g. {"params.size", "--size"}); invalid
// arguments are usage errors (exit 2), the rest runtime errors (exit 1).
int job_error(const Error& e, const std::vector<std::pair<std::string, std::string>>& names);

}  // namespace vx::app
