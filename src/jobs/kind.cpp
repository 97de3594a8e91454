#include "jobs/kind.hpp"

#include <cmath>
#include <filesystem>

namespace vx::jobs {

namespace {

std::string_view type_name(Param::Type t) {
  switch (t) {
    case Param::Type::kInteger:
      return "integer";
    case Param::Type::kNumber:
      return "number";
    case Param::Type::kString:
      return "string";
    case Param::Type::kObject:
      return "object";
    case Param::Type::kNumberPair:
      return "array";
  }
  return "";
}

std::string range_text(const Param& p) {
  const bool lo = std::isfinite(p.min), hi = std::isfinite(p.max);
  if (lo && hi) return fmt::format(" in {}..{}", p.min, p.max);
  if (lo) return fmt::format(" of at least {}", p.min);
  if (hi) return fmt::format(" of at most {}", p.max);
  return "";
}

Status check_one(const Param& p, const json& v) {
  const auto bad = [&](std::string_view what) {
    return fail(ErrorCode::kInvalidArgument, "field 'params.{}': expected {}", p.name, what);
  };
  switch (p.type) {
    case Param::Type::kInteger: {
      if (!v.is_number_integer() || v.get<double>() < p.min || v.get<double>() > p.max)
        return bad("an integer" + range_text(p));
      return {};
    }
    case Param::Type::kNumber:
      if (!v.is_number() || !std::isfinite(v.get<double>()) || v.get<double>() < p.min ||
          v.get<double>() > p.max)
        return bad("a number" + range_text(p));
      return {};
    case Param::Type::kString: {
      if (!v.is_string()) return bad("a string");
      if (p.choices.empty()) return {};
      for (const auto& c : p.choices)
        if (v.get<std::string>() == c) return {};
      std::string list;
      for (const auto& c : p.choices)
        list += (list.empty() ? "" : ", ") + c;
      return bad("one of " + list);
    }
    case Param::Type::kObject:
      if (!v.is_object()) return bad("an object");
      return {};
    case Param::Type::kNumberPair:
      if (!(v.is_array() && v.size() == 2 && v[0].is_number() && v[1].is_number()))
        return bad("[first, last]");
      for (const auto& x : v) {
        // Finite and in range (1e308 - -1e308 made the steps between them NaN).
        const double d = x.get<double>();
        if (!std::isfinite(d) || d < p.min || d > p.max)
          return fail(ErrorCode::kInvalidArgument, "field 'params.{}': {} is not in {}..{}", p.name,
                      x.dump(), p.min, p.max);
      }
      return {};
  }
  return {};
}

// A job context for run_local: progress to a callback, files into a folder.
class LocalContext final : public JobContext {
 public:
  LocalContext(std::string dir, std::function<void(std::uint64_t, std::uint64_t)> fn,
               const std::atomic<bool>* cancel)
      : dir_(std::move(dir)), fn_(std::move(fn)), cancel_(cancel) {}
  void progress(std::uint64_t done, std::uint64_t total) override {
    if (fn_) fn_(done, total);
  }
  const std::atomic<bool>& cancelled() const override { return cancel_ ? *cancel_ : never_; }
  const std::string& dir() const override { return dir_; }

 private:
  std::string dir_;
  std::function<void(std::uint64_t, std::uint64_t)> fn_;
  const std::atomic<bool>* cancel_;
  std::atomic<bool> never_{false};
};

}  // namespace

Param nodes_param() {
  return {"nodes",
          Param::Type::kInteger,
          "Cluster nodes to spread the job over (voxcast serve --jobs-backend slurm; 1 otherwise)",
          1,
          1,
          kMaxJobNodes};
}

json params_schema(const std::vector<Param>& spec) {
  json props = json::object();
  json required = json::array();
  for (const auto& p : spec) {
    json s = {{"type", type_name(p.type)}, {"description", p.description}};
    json& bounded = p.type == Param::Type::kNumberPair ? s["items"] : s;  // a pair's are per item
    if (p.type == Param::Type::kNumberPair) {
      bounded = {{"type", "number"}};
      s["minItems"] = s["maxItems"] = 2;
    }
    if (std::isfinite(p.min)) bounded["minimum"] = p.min;
    if (std::isfinite(p.max)) bounded["maximum"] = p.max;
    if (!p.choices.empty()) s["enum"] = p.choices;
    if (!p.fallback.is_null()) s["default"] = p.fallback;
    props[p.name] = std::move(s);
    if (p.required) required.push_back(p.name);
  }
  json schema = {{"$schema", "https://json-schema.org/draft/2020-12/schema"},
                 {"type", "object"},
                 {"properties", props},
                 {"additionalProperties", false}};
  if (!required.empty()) schema["required"] = required;
  return schema;
}

Status check_params(const json& params, const std::vector<Param>& spec) {
  if (!params.is_object())
    return fail(ErrorCode::kInvalidArgument, "field 'params': expected an object");
  for (const auto& item : params.items()) {
    const std::string k = item.key();
    const auto it =
        std::find_if(spec.begin(), spec.end(), [&](const Param& p) { return p.name == k; });
    if (it == spec.end()) {
      std::string known;
      for (const auto& p : spec)
        known += (known.empty() ? "" : ", ") + p.name;
      return fail(ErrorCode::kInvalidArgument, "field 'params.{}': unknown ({})", k, known);
    }
    VX_TRY(check_one(*it, item.value()));
  }
  for (const auto& p : spec)
    if (p.required && !params.contains(p.name))
      return fail(ErrorCode::kInvalidArgument, "field 'params.{}': required", p.name);
  return {};
}

json describe_kinds(const Kinds& kinds) {
  json list = json::array();
  for (const auto& [name, k] : kinds)
    list.push_back({{"name", name}, {"description", k->description()}, {"schema", k->schema()}});
  return {{"kinds", list}};
}

Result<std::vector<std::string>> run_local(
    const JobKind& kind, const json& params, const std::string& dir,
    std::function<void(std::uint64_t, std::uint64_t)> on_progress,
    const std::atomic<bool>* cancel) {
  VX_TRY(kind.validate(params));
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return fail(ErrorCode::kIo, "{}: cannot create: {}", dir, ec.message());
  LocalContext ctx(dir, std::move(on_progress), cancel);
  return kind.run(params, ctx);
}

Kinds builtin_kinds(DatasetLookup datasets, std::string component_js,
                    render::Compositor* compositor) {
  Kinds kinds;
  for (auto k : {make_orbit_kind(datasets, std::move(component_js), compositor),
                 make_movie_kind(datasets, compositor)})
    kinds[k->name()] = std::move(k);
  return kinds;
}

}  // namespace vx::jobs
