// The job routes of the REST API, generic over job kinds (docs/protocol.md, "Jobs").
#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "core/json_text.hpp"
#include "core/paths.hpp"
#include "jobs/kind.hpp"
#include "server/server_impl.hpp"

namespace vx::server {

namespace {

using Response = http::response<http::string_body>;

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

bool method_is_read(http::verb v) {
  return v == http::verb::get || v == http::verb::head;
}

std::string kind_names(const Context& ctx) {
  std::string names;
  for (const auto& [name, k] : ctx.jobs->kinds())
    names += (names.empty() ? "" : ", ") + name;
  return names;
}

}  // namespace

jobs::DatasetLookup dataset_lookup(std::shared_ptr<Context> ctx) {
  return [ctx](int i) -> Result<jobs::Dataset> {
    const auto& e = ctx->engine;
    if (i < 0 || i >= int(e.datasets.size()))
      return fail(ErrorCode::kInvalidArgument, "field 'params.dataset': {} is not one of 0..{}", i,
                  int(e.datasets.size()) - 1);
    const auto at = std::size_t(i);
    jobs::Dataset d;
    d.inputs = render::RenderInputs{e.cache, {e.ids[at]}, render::SceneData{{e.datasets[at]}}};
    d.defaults = e.defaults[at];
    d.brief = ctx->datasets_brief.at(at);
    d.pipelines = e.pipelines;  // derived layers in job scenes (movies)
    return d;
  };
}

namespace {

// A 405 names the methods the route takes (RFC 9110, section 15.5.6).
Response with_allow(Response res, std::string_view methods) {
  res.set(http::field::allow, methods);
  return res;
}

}  // namespace

std::optional<Response> jobs_route(Context& ctx, const http::request<http::string_body>& req,
                                   const std::string& path) {
  constexpr std::string_view base = "/api/v1/jobs";
  if (path == "/api/v1/job-kinds" && ctx.jobs) {
    if (method_is_read(req.method()))
      return json_response(req, http::status::ok, jobs::describe_kinds(ctx.jobs->kinds()));
    return json_error(req, http::status::method_not_allowed, "bad_method",
                      "/api/v1/job-kinds: GET only");
  }
  if (path.rfind(base, 0) != 0 || !ctx.jobs) return std::nullopt;
  const std::string rest = path.substr(base.size());
  const auto method = req.method();
  if (rest.empty() || rest == "/") {
    if (method_is_read(method)) {
      json list = json::array();
      for (const auto& j : ctx.jobs->list())
        list.push_back(j.to_json());
      return json_response(req, http::status::ok, {{"jobs", list}});
    }
    if (method != http::verb::post)
      return with_allow(json_error(req, http::status::method_not_allowed, "bad_method",
                                   "/api/v1/jobs: GET or POST"),
                        "GET, HEAD, POST");
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
      return with_allow(
          json_error(req, http::status::method_not_allowed, "bad_method", "files: GET only"),
          "GET, HEAD");
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
                                       : ext == ".mp4"  ? "video/mp4"
                                       : ext == ".webm" ? "video/webm"
                                                        : "application/octet-stream");
    res.keep_alive(req.keep_alive());
    res.body() = ss.str();  // a HEAD request gets the headers alone (HttpSession::send)
    res.prepare_payload();
    return res;
  }
  if (method == http::verb::post && !id.empty())  // a job of its own id is PUT
    return with_allow(json_error(req, http::status::method_not_allowed, "bad_method",
                                 "/api/v1/jobs/{id}: GET, PUT or DELETE (POST /api/v1/jobs makes "
                                 "a job with a new id)"),
                      "GET, HEAD, PUT, DELETE");
  if (method == http::verb::post || method == http::verb::put) {
    if (method == http::verb::put && id.empty())
      return json_error(req, http::status::method_not_allowed, "bad_method", "PUT needs an id");
    const json body = parse_untrusted_json(req.body());
    if (body.is_discarded() || !body.is_object())
      return json_error(req, http::status::bad_request, "bad_json",
                        "the body must be a JSON object, nested at most 64 levels deep: {\"kind\": "
                        "KIND, \"params\": {...}}");
    if (!body.contains("kind") || !body["kind"].is_string())
      return json_error(req, http::status::bad_request, "bad_request",
                        fmt::format("field 'kind': expected a string ({}; GET /api/v1/job-kinds)",
                                    kind_names(ctx)));
    for (const auto& [key, value] : body.items())
      if (key != "kind" && key != "params")
        return json_error(req, http::status::bad_request, "bad_request",
                          fmt::format("field '{}': unknown (a job is {{\"kind\": KIND, "
                                      "\"params\": {{...}}}})",
                                      key));
    const std::string kind = body["kind"];
    const json params = body.value("params", json::object());
    const std::string jid = method == http::verb::put ? id : jobs::JobQueue::new_id();
    const bool existed = ctx.jobs->get(jid).has_value();
    auto info = ctx.jobs->submit(jid, kind, params);
    if (!info) return error_response(req, info.error());
    auto res = json_response(req, existed ? http::status::ok : http::status::accepted,
                             {{"job", info->to_json()}});
    res.set(http::field::location, fmt::format("/api/v1/jobs/{}", jid));
    return res;
  }
  if (method_is_read(method)) {
    const auto job = ctx.jobs->get(id);
    if (!job) return json_error(req, http::status::not_found, "not_found", "no job '" + id + "'");
    return json_response(req, http::status::ok, {{"job", job->to_json()}});
  }
  if (method == http::verb::delete_) {
    auto info = ctx.jobs->cancel(id);
    if (!info) return error_response(req, info.error());
    return json_response(req, http::status::ok, {{"job", info->to_json()}});
  }
  return with_allow(json_error(req, http::status::method_not_allowed, "bad_method",
                               "/api/v1/jobs/{id}: GET, PUT or DELETE"),
                    "GET, HEAD, PUT, DELETE");
}

}  // namespace vx::server
