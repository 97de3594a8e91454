// The job routes of the REST API and the orbit job kind (docs/protocol.md, "Jobs").
#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "core/paths.hpp"
#include "jobs/orbit.hpp"
#include "server/server_impl.hpp"

namespace vx::server {

namespace {

using Response = http::response<http::string_body>;

Response json_response(const http::request<http::string_body>& req, http::status status,
                       const json& body) {
  Response res{status, req.version()};
  res.set(http::field::server, "voxcast");
  res.set(http::field::content_type, "application/json");
  res.set(http::field::cache_control, "no-store");
  res.keep_alive(req.keep_alive());
  res.body() = body.dump();
  res.prepare_payload();
  return res;
}

Response error_response(const http::request<http::string_body>& req, const Error& e) {
  http::status st = http::status::bad_request;
  std::string code = "bad_request";
  switch (e.code) {
    case ErrorCode::kNotFound:
      st = http::status::not_found, code = "not_found";
      break;
    case ErrorCode::kBusy:
      st = http::status::too_many_requests, code = "overloaded";
      break;
    case ErrorCode::kConflict:
      st = http::status::conflict, code = "conflict";
      break;
    case ErrorCode::kIo:
    case ErrorCode::kInternal:
      st = http::status::internal_server_error, code = "internal";
      break;
    default:
      break;
  }
  auto res = json_error(req, st, code, e.message);
  if (e.code == ErrorCode::kBusy) res.set(http::field::retry_after, "5");
  return res;
}

// The scene an orbit of `p` renders from: the dataset's defaults, its `view` patch on top.
// Checked at submission too, so that a bad dataset or view is refused with 400 then.
Result<render::Scene> orbit_base_scene(const Context& ctx, const json& p) {
  const auto& e = ctx.engine;
  const int dataset = p.value("dataset", 0);
  if (dataset < 0 || dataset >= int(e.datasets.size()))
    return fail(ErrorCode::kInvalidArgument, "field 'params.dataset': {} is not one of 0..{}",
                dataset, int(e.datasets.size()) - 1);
  render::SceneData sd{{e.datasets[std::size_t(dataset)]}};
  auto scene = jobs::orbit_scene(sd, p.value("size", 256));
  const auto& defaults = e.defaults[std::size_t(dataset)];
  for (std::size_t i = 0; i < scene.layers.size() && i < defaults.layers.size(); ++i)
    scene.layers[i].contrast_limits = defaults.layers[i].contrast_limits;
  if (p.contains("view")) {
    auto view = p["view"];
    if (view.is_object()) view.erase("canvas");  // the tile size decides
    auto patched = render::apply_patch(scene, view, sd);
    if (!patched) return tl::unexpected(with_context(patched.error(), "field 'params.view'"));
    scene = std::move(*patched);
  }
  return scene;
}

}  // namespace

jobs::JobRunner orbit_runner(std::shared_ptr<Context> ctx) {
  return [ctx](const json& p, jobs::JobContext& job) -> Result<std::vector<std::string>> {
    auto& e = ctx->engine;
    VX_ASSIGN(auto scene, orbit_base_scene(*ctx, p));
    const int dataset = p.value("dataset", 0);
    jobs::OrbitOptions o;
    o.columns = p.value("columns", 30);
    o.rows = p.value("rows", 30);
    o.size = p.value("size", 256);
    o.format = p.value("format", std::string("webp"));
    o.quality = p.value("quality", 85);
    if (p.contains("yaw")) o.yaw_min = p["yaw"].at(0), o.yaw_max = p["yaw"].at(1);
    if (p.contains("pitch")) o.pitch_min = p["pitch"].at(0), o.pitch_max = p["pitch"].at(1);
    {
      std::ifstream js(ctx->options.web_dir + "/voxcast-orbit.js");
      std::ostringstream ss;
      ss << js.rdbuf();
      o.component_js = ss.str();
    }
    render::SceneData sd{{e.datasets[std::size_t(dataset)]}};
    render::RenderInputs in{e.cache, {e.ids[std::size_t(dataset)]}, sd};
    jobs::OrbitProgress progress;
    progress.cancel = &job.cancelled();
    progress.on_view = [&job](int done, int total) {
      job.progress(std::uint64_t(done), std::uint64_t(total));
    };
    job.progress(0, std::uint64_t(o.columns) * std::uint64_t(o.rows));  // the total, at once
    VX_ASSIGN(auto result, jobs::render_orbit(scene, in, o, job.dir(), progress));
    return result.files;
  };
}

Result<json> validate_orbit_params(const Context& ctx, const json& p) {
  if (!p.is_object())
    return fail(ErrorCode::kInvalidArgument, "field 'params': expected an object");
  static const std::set<std::string> known = {"dataset", "view",    "columns", "rows", "size",
                                              "format",  "quality", "yaw",     "pitch"};
  for (const auto& [k, v] : p.items())
    if (!known.count(k))
      return fail(ErrorCode::kInvalidArgument,
                  "field 'params.{}': unknown (dataset, view, columns, rows, size, format, "
                  "quality, yaw, pitch)",
                  k);
  auto integer = [&](const char* k, int lo, int hi) -> Status {
    if (!p.contains(k)) return {};
    if (!p[k].is_number_integer() || p[k].get<std::int64_t>() < lo || p[k].get<std::int64_t>() > hi)
      return fail(ErrorCode::kInvalidArgument, "field 'params.{}': expected an integer in {}..{}",
                  k, lo, hi);
    return {};
  };
  VX_TRY(integer("dataset", 0, 1000));
  VX_TRY(integer("columns", 1, 100));
  VX_TRY(integer("rows", 1, 100));
  VX_TRY(integer("size", 16, 1024));
  VX_TRY(integer("quality", 1, 100));
  {
    const double views = double(p.value("columns", 30)) * double(p.value("rows", 30));
    const double side = double(p.value("size", 256));
    if (views * side * side > double(jobs::kMaxOrbitPixels))
      return fail(ErrorCode::kInvalidArgument,
                  "field 'params.size': {} views of {}x{} px is over the {} Mpx an orbit may hold",
                  views, side, side, jobs::kMaxOrbitPixels >> 20);
  }
  if (p.contains("format") && p["format"] != "webp" && p["format"] != "jpeg")
    return fail(ErrorCode::kInvalidArgument, "field 'params.format': webp or jpeg");
  for (const char* k : {"yaw", "pitch"})
    if (p.contains(k) &&
        !(p[k].is_array() && p[k].size() == 2 && p[k][0].is_number() && p[k][1].is_number()))
      return fail(ErrorCode::kInvalidArgument, "field 'params.{}': expected [first, last]", k);
  if (p.contains("view") && !p["view"].is_object())
    return fail(ErrorCode::kInvalidArgument, "field 'params.view': expected a scene object");
  VX_TRY(orbit_base_scene(ctx, p));  // the dataset exists and the view applies to it
  return p;
}

std::optional<Response> jobs_route(Context& ctx, const http::request<http::string_body>& req,
                                   const std::string& path) {
  constexpr std::string_view base = "/api/v1/jobs";
  if (path.rfind(base, 0) != 0 || !ctx.jobs) return std::nullopt;
  const std::string rest = path.substr(base.size());
  const auto method = req.method();
  if (rest.empty() || rest == "/") {
    if (method == http::verb::get) {
      json list = json::array();
      for (const auto& j : ctx.jobs->list())
        list.push_back(j.to_json());
      return json_response(req, http::status::ok, {{"jobs", list}});
    }
    if (method != http::verb::post)
      return json_error(req, http::status::method_not_allowed, "bad_method",
                        "/api/v1/jobs: GET or POST");
  }
  // /api/v1/jobs/{id}[/files/{name}]
  std::string id, file;
  if (!rest.empty() && rest != "/") {
    const auto second = rest.find('/', 1);
    id = rest.substr(1, second == std::string::npos ? std::string::npos : second - 1);
    if (second != std::string::npos) {
      const std::string tail = rest.substr(second);
      if (tail.rfind("/files/", 0) != 0 || tail.size() <= 7)
        return json_error(req, http::status::not_found, "not_found", path + ": no such route");
      file = tail.substr(7);
    }
  }
  if (!file.empty()) {
    if (method != http::verb::get && method != http::verb::head)
      return json_error(req, http::status::method_not_allowed, "bad_method", "files: GET only");
    const auto job = ctx.jobs->get(id);
    // Only the job's own result files, by exact name, and only inside its files folder
    // (job.json is a stored file: its list is not trusted to stay there).
    auto file_path = job ? resolve_inside(ctx.jobs->files_dir(id), file)
                         : Result<std::filesystem::path>(fail(ErrorCode::kNotFound, "no job"));
    if (!job || std::find(job->files.begin(), job->files.end(), file) == job->files.end() ||
        !file_path || !std::filesystem::is_regular_file(*file_path))
      return json_error(req, http::status::not_found, "not_found",
                        fmt::format("job '{}' has no file '{}'", id, file));
    std::ifstream in(*file_path, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    Response res{http::status::ok, req.version()};
    res.set(http::field::server, "voxcast");
    const auto ext = std::filesystem::path(file).extension().string();
    res.set(http::field::content_type, ext == ".json"   ? "application/json"
                                       : ext == ".html" ? "text/html; charset=utf-8"
                                       : ext == ".webp" ? "image/webp"
                                       : ext == ".jpeg" ? "image/jpeg"
                                                        : "application/octet-stream");
    res.keep_alive(req.keep_alive());
    res.body() = ss.str();  // a HEAD request gets the headers alone (HttpSession::send)
    res.prepare_payload();
    return res;
  }
  if (method == http::verb::post || method == http::verb::put) {
    if (method == http::verb::put && id.empty())
      return json_error(req, http::status::method_not_allowed, "bad_method", "PUT needs an id");
    const json body = json::parse(req.body(), nullptr, false);
    if (body.is_discarded() || !body.is_object())
      return json_error(req, http::status::bad_request, "bad_json",
                        "the body must be a JSON object: {\"kind\": \"orbit\", \"params\": {...}}");
    if (body.contains("kind") && !body["kind"].is_string())
      return json_error(req, http::status::bad_request, "bad_request",
                        "field 'kind': expected a string (orbit)");
    const std::string kind = body.value("kind", std::string("orbit"));
    auto params = kind == "orbit" ? validate_orbit_params(ctx, body.value("params", json::object()))
                                  : Result<json>(body.value("params", json::object()));
    if (!params) return error_response(req, params.error());
    const std::string jid = method == http::verb::put ? id : jobs::JobQueue::new_id();
    const bool existed = ctx.jobs->get(jid).has_value();
    json dataset = nullptr;
    if (kind == "orbit") {
      const int di = params->value("dataset", 0);
      dataset = ctx.datasets_brief.at(std::size_t(di));  // validated: it exists
    }
    auto info = ctx.jobs->submit(jid, kind, *params, dataset);
    if (!info) return error_response(req, info.error());
    auto res = json_response(req, existed ? http::status::ok : http::status::accepted,
                             {{"job", info->to_json()}});
    res.set(http::field::location, fmt::format("/api/v1/jobs/{}", jid));
    return res;
  }
  if (method == http::verb::get) {
    const auto job = ctx.jobs->get(id);
    if (!job) return json_error(req, http::status::not_found, "not_found", "no job '" + id + "'");
    return json_response(req, http::status::ok, {{"job", job->to_json()}});
  }
  if (method == http::verb::delete_) {
    auto info = ctx.jobs->cancel(id);
    if (!info) return error_response(req, info.error());
    return json_response(req, http::status::ok, {{"job", info->to_json()}});
  }
  return json_error(req, http::status::method_not_allowed, "bad_method",
                    "/api/v1/jobs/{id}: GET, PUT or DELETE");
}

}  // namespace vx::server
