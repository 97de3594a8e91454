// External pipelines: each computes in a worker process (a Python program using
// voxcast.pipeline) that the manifest names. process() sends the block with its halo to the
// worker and waits for the result (docs/pipelines.md, "Pipelines in Python").
#include <fmt/format.h>

#include <cstring>
#include <fstream>
#include <regex>
#include <set>
#include <stdexcept>

#include "core/log.hpp"
#include "pipeline/kernels.hpp"
#include "pipeline/worker_process.hpp"
#include "pipeline/workers.hpp"

namespace vx::pipeline {

namespace {

using detail::WorkerProcess;

// What a worker says of one pipeline beyond its schema.
struct External {
  std::string name, where;  // where: "pipeline 'p' (worker 'w')"
  json halo;                // [z, y, x], or "dynamic" (asked of the worker per parameters)
  std::string output_dtype = "float32";  // or "input"
  std::string error;                     // a malformed description
};

class ExternalPipeline final : public Pipeline {
 public:
  ExternalPipeline(std::shared_ptr<WorkerProcess> proc, External e, std::uint64_t share)
      : proc_(std::move(proc)), e_(std::move(e)), share_(share) {}
  ~ExternalPipeline() override { unload(); }

  Result<std::uint64_t> load() override {
    if (!e_.error.empty()) return make_error(ErrorCode::kFormat, e_.error);
    VX_TRY(proc_->acquire());
    loaded_ = true;
    return share_;
  }
  void unload() override {
    if (loaded_) proc_->release();
    loaded_ = false;
  }
  data::DType output_dtype(data::DType input, const json&) const override {
    if (e_.output_dtype == "input") return input;
    return data::parse_dtype_name(e_.output_dtype).value_or(data::DType::kFloat32);
  }
  std::uint64_t scratch_bytes(const json&, const Ext3&) const override { return 0; }
  std::string health() const override { return proc_->health(); }
  json details() const override { return proc_->details(); }

  Ext3 halo(const json& params, const LevelContext& lc) const override {
    json h = e_.halo;
    if (h == "dynamic") {
      auto r = proc_->call(request("halo", params, lc), {}, 0);
      if (!r) throw std::runtime_error(fmt::format("{}: {}", e_.where, r.error().message));
      h = r->header.value("halo", json());
    }
    Ext3 out{0, 0, 0};
    if (!h.is_array() || h.size() != 3)
      throw std::runtime_error(
          fmt::format("{}: halo must be 3 integers (got {})", e_.where, h.dump()));
    for (std::size_t a = 0; a < 3; ++a) {
      if (!h[a].is_number_integer() || h[a].get<std::int64_t>() < 0 ||
          h[a].get<std::int64_t>() > 1024)
        throw std::runtime_error(
            fmt::format("{}: halo must be 3 integers in 0..1024 (got {})", e_.where, h.dump()));
      out[a] = h[a].get<std::int64_t>();
    }
    if (lc.spatial_dims == 2) out[0] = 0;
    return out;
  }

  Status process(const json& params, const LevelContext& lc, const BlockView& in,
                 const BlockView& out) const override {
    json h = request("process", params, lc);
    h["shape"] = in.shape;
    h["dtype"] = "float32";
    h["halo"] = {(in.shape[0] - out.shape[0]) / 2, (in.shape[1] - out.shape[1]) / 2,
                 (in.shape[2] - out.shape[2]) / 2};
    const auto dtype = output_dtype(lc.input_dtype, params);
    const auto dsize = data::dtype_size(dtype);
    const auto want = std::size_t(out.voxels()) * dsize;
    auto r = proc_->call(std::move(h),
                         std::span(reinterpret_cast<const std::byte*>(in.data),
                                   std::size_t(in.voxels()) * sizeof(float)),
                         want);
    if (!r) return fail(ErrorCode::kInternal, "{}: {}", e_.where, r.error().message);
    const json shape = r->header.value("shape", json());
    if (shape != json(out.shape))
      return fail(ErrorCode::kInternal,
                  "{} returned a chunk of shape {} where {} (z, y, x) was expected", e_.where,
                  shape.dump(), json(out.shape).dump());
    const auto got = r->header.value("dtype", json());
    if (got != data::dtype_name(dtype))
      return fail(ErrorCode::kInternal, "{} returned dtype {} where \"{}\" was expected", e_.where,
                  got.dump(), data::dtype_name(dtype));
    if (r->truncated)
      return fail(ErrorCode::kInternal, "{} returned more than the {} bytes expected", e_.where,
                  want);
    if (r->data.size() != want)
      return fail(ErrorCode::kInternal, "{} returned {} bytes where {} were expected", e_.where,
                  r->data.size(), want);
    dispatch_dtype(dtype, [&](auto t) {
      using T = decltype(t);
      if constexpr (std::is_same_v<T, float>) {
        std::memcpy(out.data, r->data.data(), want);
      } else {
        const T* p = reinterpret_cast<const T*>(r->data.data());
        for (std::int64_t i = 0; i < out.voxels(); ++i)
          out.data[i] = float(p[i]);
      }
    });
    return {};
  }

 private:
  json request(std::string_view op, const json& params, const LevelContext& lc) const {
    json p = params;
    for (auto it = p.begin(); it != p.end();)
      it = it.key().starts_with("_") ? p.erase(it) : std::next(it);
    return json{{"op", op},
                {"pipeline", e_.name},
                {"params", std::move(p)},
                {"voxel_size", lc.voxel_size},
                {"spatial_dims", lc.spatial_dims},
                {"input_dtype", data::dtype_name(lc.input_dtype)}};
  }

  std::shared_ptr<WorkerProcess> proc_;
  External e_;
  std::uint64_t share_ = 0;
  bool loaded_ = false;  // the manager serializes load and unload
};

Status format_error(const std::filesystem::path& file, std::string_view field,
                    std::string_view what) {
  return fail(ErrorCode::kFormat, "{}: {}: {}", file.string(), field, what);
}

Result<WorkerSpec> read_worker(const std::filesystem::path& file, const json& w, std::size_t i) {
  const auto field = fmt::format("workers[{}]", i);
  if (!w.is_object())
    return tl::unexpected(format_error(file, field, "expected an object").error());
  static const std::set<std::string> known = {
      "name", "command", "env", "cwd", "memory_mb", "timeout_s", "start_timeout_s", "shm_mb"};
  for (const auto& [k, v] : w.items())
    if (!known.count(k))
      return tl::unexpected(format_error(file, field + "." + k,
                                         "unknown field (known: name, command, env, cwd, "
                                         "memory_mb, timeout_s, start_timeout_s, shm_mb)")
                                .error());
  WorkerSpec s;
  if (!w.contains("name") || !w["name"].is_string() ||
      !std::regex_match(w["name"].get<std::string>(), std::regex("[A-Za-z0-9_.-]{1,64}")))
    return tl::unexpected(
        format_error(file, field + ".name", "required: letters, digits, '_', '.', '-'").error());
  s.name = w["name"].get<std::string>();
  const auto& c = w.value("command", json());
  if (!c.is_array() || c.empty())
    return tl::unexpected(format_error(file, field + ".command",
                                       "required: an array of strings (program and arguments)")
                              .error());
  for (const auto& a : c) {
    if (!a.is_string() || a.get<std::string>().empty())
      return tl::unexpected(
          format_error(file, field + ".command", "every item must be a non-empty string").error());
    s.command.push_back(a.get<std::string>());
  }
  if (w.contains("env")) {
    if (!w["env"].is_object())
      return tl::unexpected(format_error(file, field + ".env", "expected an object").error());
    for (const auto& [k, v] : w["env"].items()) {
      if (!v.is_string() || k.empty() || k.find('=') != std::string::npos)
        return tl::unexpected(
            format_error(file, field + ".env." + k, "expected NAME: \"string\"").error());
      s.env[k] = v.get<std::string>();
    }
  }
  const auto dir = std::filesystem::absolute(file).parent_path();
  s.cwd = dir.string();
  if (w.contains("cwd")) {
    if (!w["cwd"].is_string())
      return tl::unexpected(format_error(file, field + ".cwd", "expected a string").error());
    s.cwd = (dir / w["cwd"].get<std::string>()).lexically_normal().string();
  }
  if (s.command[0].find('/') != std::string::npos && s.command[0][0] != '/')
    s.command[0] = (std::filesystem::path(s.cwd) / s.command[0]).lexically_normal().string();
  auto number = [&](const char* key, double lo, double hi) -> Result<std::optional<double>> {
    if (!w.contains(key)) return std::optional<double>();
    const auto& v = w[key];
    if (!v.is_number() || v.get<double>() < lo || v.get<double>() > hi)
      return tl::unexpected(
          format_error(file, field + "." + key, fmt::format("expected a number in {}..{}", lo, hi))
              .error());
    return std::optional<double>(v.get<double>());
  };
  VX_ASSIGN(auto mem, number("memory_mb", 0, 1 << 24));
  VX_ASSIGN(auto timeout, number("timeout_s", 0.01, 86400));
  VX_ASSIGN(auto start, number("start_timeout_s", 0.1, 3600));
  VX_ASSIGN(auto shm, number("shm_mb", 0, 1 << 16));
  if (shm) s.shm_bytes = std::uint64_t(*shm * (1 << 20));
  if (mem) s.memory_bytes = std::uint64_t(*mem * (1 << 20));
  if (timeout) s.timeout = std::chrono::milliseconds(std::int64_t(*timeout * 1000));
  if (start) s.start_timeout = std::chrono::milliseconds(std::int64_t(*start * 1000));
  return s;
}

// One pipeline of a worker's description: its descriptor parts, or the reason it is malformed.
External describe_one(const WorkerSpec& w, const json& p, Descriptor& d) {
  External e;
  e.name = p["name"].get<std::string>();
  e.where = fmt::format("pipeline '{}' (worker '{}')", e.name, w.name);
  d.name = e.name;
  auto bad = [&](std::string what) {
    e.error = fmt::format("{}: malformed description: {}", e.where, what);
    return e;
  };
  d.version = p.value("version", json("")).is_string() ? p.value("version", "") : "";
  d.description = p.value("description", json("")).is_string() ? p.value("description", "") : "";
  auto schema = ParamSchema::from_json_schema(p.value("schema", json()), "schema");
  if (!schema) return bad(schema.error().message);
  d.schema = std::move(*schema);
  e.halo = p.value("halo", json(0));
  if (e.halo.is_number_integer()) e.halo = json::array({e.halo, e.halo, e.halo});
  const bool halo_ok =
      e.halo == "dynamic" || (e.halo.is_array() && e.halo.size() == 3 &&
                              std::all_of(e.halo.begin(), e.halo.end(), [](const json& v) {
                                return v.is_number_integer() && v.get<std::int64_t>() >= 0 &&
                                       v.get<std::int64_t>() <= 1024;
                              }));
  if (!halo_ok)
    return bad(fmt::format("halo: an integer 0..1024, three of them, or \"dynamic\" (got {})",
                           e.halo.dump()));
  e.output_dtype = p.value("output_dtype", json("float32")).is_string()
                       ? p.value("output_dtype", std::string("float32"))
                       : std::string("?");
  if (e.output_dtype != "input" && !data::parse_dtype_name(e.output_dtype))
    return bad(fmt::format("output_dtype: a dtype name or \"input\" (got {})",
                           p.value("output_dtype", json()).dump()));
  return e;
}

struct WorkersImpl final : Workers {
  std::shared_ptr<detail::Hub> hub;
  std::vector<std::shared_ptr<WorkerProcess>> procs;
  void shutdown() override {
    for (auto& p : procs)
      p->shutdown();
  }
};

}  // namespace

Result<std::vector<WorkerSpec>> read_worker_manifest(const std::filesystem::path& file) {
  std::ifstream in(file);
  if (!in)
    return fail(ErrorCode::kNotFound, "{}: cannot read the pipelines manifest", file.string());
  const auto j = json::parse(in, nullptr, false);
  if (j.is_discarded()) return fail(ErrorCode::kFormat, "{}: not valid JSON", file.string());
  if (!j.is_object() || !j.contains("workers") || !j["workers"].is_array())
    return tl::unexpected(
        format_error(file, "workers", "required: an array of {name, command, ...}").error());
  std::vector<WorkerSpec> out;
  std::set<std::string> names;
  const std::string transports = j.value("transports", json("")).is_string()
                                     ? j.value("transports", std::string())
                                     : std::string();
  for (std::size_t i = 0; i < j["workers"].size(); ++i) {
    VX_ASSIGN(auto s, read_worker(file, j["workers"][i], i));
    if (!names.insert(s.name).second)
      return tl::unexpected(format_error(file, fmt::format("workers[{}].name", i),
                                         fmt::format("'{}' is used twice", s.name))
                                .error());
    s.transports = transports;
    out.push_back(std::move(s));
  }
  return out;
}

Result<std::shared_ptr<Workers>> add_workers(Registry& registry,
                                             const std::filesystem::path& manifest,
                                             Budget* budget) {
  VX_ASSIGN(auto specs, read_worker_manifest(manifest));
  auto impl = std::make_shared<WorkersImpl>();
  impl->hub = std::make_shared<detail::Hub>(specs.empty() ? "" : specs[0].transports);
  for (const auto& w : specs) {
    const auto where = fmt::format("{}: worker '{}'", manifest.string(), w.name);
    auto out = detail::run_capture({w.command, w.env, w.cwd}, {"--describe"}, w.start_timeout);
    if (!out) return fail(out.error().code, "{}: {}", where, out.error().message);
    const auto j = json::parse(*out, nullptr, false);
    if (!j.is_object() || !j.contains("pipelines") || !j["pipelines"].is_array())
      return fail(ErrorCode::kFormat,
                  "{}: '--describe' printed no JSON object with \"pipelines\" (got: {})", where,
                  out->substr(0, 300));
    std::vector<std::pair<Descriptor, External>> found;
    for (std::size_t i = 0; i < j["pipelines"].size(); ++i) {
      const auto& p = j["pipelines"][i];
      if (!p.is_object() || !p.contains("name") || !p["name"].is_string() ||
          !std::regex_match(p["name"].get<std::string>(), std::regex("[A-Za-z0-9_.-]{1,64}")))
        return fail(ErrorCode::kFormat,
                    "{}: pipelines[{}]: a pipeline needs a \"name\" (letters, digits, '_', '.', "
                    "'-')",
                    where, i);
      Descriptor d;
      auto e = describe_one(w, p, d);
      if (!e.error.empty())
        VX_LOG(warn, "pipeline.worker_malformed", "worker={} pipeline={} error={}", w.name, e.name,
               log_quote(e.error));
      found.emplace_back(std::move(d), std::move(e));
    }
    std::vector<std::string> names;
    std::size_t valid = 0;
    for (const auto& [d, e] : found) {
      names.push_back(d.name);
      valid += e.error.empty() ? 1 : 0;
    }
    auto proc = std::make_shared<WorkerProcess>(w, impl->hub, names, budget);
    impl->procs.push_back(proc);
    // With a budget the process itself is charged while it runs (worker_process.hpp).
    const std::uint64_t share = budget || !valid ? 0 : w.memory_bytes / valid;
    for (auto& item : found) {
      auto& d = item.first;
      d.error = item.second.error;
      d.details = [proc] { return proc->details(); };
      d.make = [proc, ext = item.second, share] {
        return std::make_unique<ExternalPipeline>(proc, ext, share);
      };
      const auto name = d.name;
      if (auto st = registry.add(std::move(d)); !st)
        return fail(ErrorCode::kConflict,
                    "{}: pipeline '{}' is already registered (a built-in "
                    "or another worker has that name)",
                    where, name);
    }
    VX_LOG(info, "pipeline.worker_described", "worker={} pipelines={} memory_mb={}", w.name,
           fmt::join(names, ","), w.memory_bytes >> 20);
  }
  return std::shared_ptr<Workers>(std::move(impl));
}

}  // namespace vx::pipeline
