#include "local_job.hpp"

#include <fmt/format.h>

#include <charconv>
#include <fstream>
#include <mutex>
#include <optional>
#include <sstream>

#include "core/log.hpp"
#include "core/progress.hpp"
#include "data/chunk_cache.hpp"

namespace vx::app {

jobs::DatasetLookup LocalDataset::lookup() const {
  return [d = dataset, cache = cache](int i) -> Result<jobs::Dataset> {
    if (i != 0)
      return fail(ErrorCode::kInvalidArgument, "field 'params.dataset': {} (there is one: 0)", i);
    return d;
  };
}

Result<LocalDataset> open_local_dataset(const std::string& data, const GlobalOptions& g, int w,
                                        int h, Budget* budget) {
  VX_ASSIGN(auto src, data::open_volume(data, g.open_options()));
  render::SceneData sd{{src->info()}};
  LocalDataset out;
  data::CacheOptions co{g.cache_bytes(), g.io_threads, 16};
  co.budget = budget;
  out.cache = std::make_shared<data::ChunkCache>(co);
  out.dataset.inputs = render::RenderInputs{out.cache.get(), {out.cache->add_source(src)}, sd};
  out.dataset.defaults = w > 0 ? render::default_scene(sd, w, h) : render::default_scene(sd);
  std::vector<std::string> warnings;
  VX_TRY(render::estimate_contrast(out.dataset.defaults, out.dataset.inputs, &warnings));
  for (const auto& msg : warnings)
    VX_LOG(warn, "data.contrast", "message={}", log_quote(msg));
  out.dataset.brief = {{"id", 0}, {"location", data}};
  return out;
}

std::string orbit_component_js() {
  std::ifstream js(std::string(VOXCAST_WEB_DIR) + "/voxcast-orbit.js");
  std::ostringstream ss;
  ss << js.rdbuf();
  return ss.str();
}

std::optional<std::pair<int, int>> parse_size(const std::string& text) {
  int w = 0, h = 0;
  const auto x = text.find('x');
  const char* s = text.data();
  if (x == std::string::npos || std::from_chars(s, s + x, w).ptr != s + x ||
      std::from_chars(s + x + 1, s + text.size(), h).ptr != s + text.size())
    return std::nullopt;
  return std::pair{w, h};
}

Result<std::vector<std::string>> run_with_progress(const jobs::JobKind& kind,
                                                   const jobs::json& params, const std::string& dir,
                                                   const std::string& label,
                                                   const std::string& unit, bool quiet,
                                                   std::uint64_t* total) {
  std::optional<ProgressBar> bar;
  std::uint64_t shown = 0;
  std::mutex mutex;  // progress comes from render threads
  auto files = jobs::run_local(kind, params, dir, [&](std::uint64_t done, std::uint64_t units) {
    std::lock_guard lock(mutex);
    if (total) *total = units;
    if (!bar) bar.emplace(label, units, unit, !quiet);
    if (done > shown) bar->add(done - shown);
    shown = std::max(shown, done);
  });
  bar.reset();
  return files;
}

int job_error(const Error& e, const std::vector<std::pair<std::string, std::string>>& names) {
  auto msg = e.message;
  for (const auto& [field, option] : names) {
    const auto from = "field '" + field + "'";
    if (msg.rfind(from, 0) == 0) {
      msg = option + msg.substr(from.size());
      break;
    }
  }
  if (e.code == ErrorCode::kInvalidArgument) return usage_error(msg);
  Error shown = e;
  shown.message = msg;
  return report(shown.what());
}

}  // namespace vx::app
