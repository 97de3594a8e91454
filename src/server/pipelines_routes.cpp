// The pipeline and resource routes of the REST API (docs/protocol.md, "Pipelines"):
// GET /api/v1/pipelines, POST /api/v1/pipelines/NAME/load and /unload, GET /api/v1/resources.
#include <fmt/format.h>

#include "pipeline/pipeline.hpp"
#include "render/select.hpp"
#include "server/server_impl.hpp"

namespace vx::server {

namespace {

using Response = http::response<http::string_body>;

Response reply(const http::request<http::string_body>& req, const json& body) {
  return json_response(req, http::status::ok, body);
}

Response error_reply(const http::request<http::string_body>& req, const Error& e) {
  switch (e.code) {
    case ErrorCode::kNotFound:
      return json_error(req, http::status::not_found, "not_found", e.message);
    case ErrorCode::kBusy:
      return json_error(req, http::status::conflict, "busy", e.message);
    case ErrorCode::kOutOfMemory:
      return json_error(req, http::status::service_unavailable, "out_of_memory", e.message);
    case ErrorCode::kInvalidArgument:
      return json_error(req, http::status::bad_request, "bad_request", e.message);
    default:
      return json_error(req, http::status::internal_server_error, "internal", e.message);
  }
}

json budget_json(const BudgetSnapshot& s) {
  json holders = json::array();
  for (const auto& h : s.holders)
    holders.push_back({{"name", h.name},
                       {"rank", h.rank == kRankPipeline ? "pipeline" : "cache"},
                       {"bytes", h.bytes},
                       {"idle_s", h.idle_s},
                       {"evicted_bytes", h.evicted_bytes}});
  return {{"name", s.name},         {"limit_bytes", s.limit}, {"slack_bytes", s.slack},
          {"used_bytes", s.used},   {"peak_bytes", s.peak},   {"evictions", s.evictions},
          {"refusals", s.refusals}, {"holders", holders}};
}

}  // namespace

std::optional<Response> pipelines_route(Context& ctx, const http::request<http::string_body>& req,
                                        const std::string& path) {
  const bool get = req.method() == http::verb::get || req.method() == http::verb::head;
  const bool post = req.method() == http::verb::post;
  if (path == "/api/v1/resources") {
    if (!get)
      return json_error(req, http::status::method_not_allowed, "bad_method",
                        fmt::format("{} {}: only GET", req.method_string(), path));
    const auto c = ctx.engine.cache->counters();
    // Host memory (chunks, derived results, pipelines), then device memory where a GPU
    // backend renders (the CUDA brick pool's "device" budget).
    json budgets = json::array({budget_json(ctx.engine.cache->budget().snapshot())});
    for (const auto& d : render::device_budgets())
      budgets.push_back(budget_json(d));
    return reply(req, {{"budgets", std::move(budgets)},
                       {"cache",
                        {{"bytes", c.bytes_cached},
                         {"entries", c.entries},
                         {"evictions", c.evictions},
                         {"computed", c.computed}}}});
  }
  constexpr std::string_view kPrefix = "/api/v1/pipelines";
  if (!path.starts_with(kPrefix)) return std::nullopt;
  auto* m = ctx.options.pipelines;
  if (path == kPrefix) {
    if (!get)
      return json_error(req, http::status::method_not_allowed, "bad_method",
                        fmt::format("{} {}: only GET", req.method_string(), path));
    return reply(req, {{"pipelines", m ? m->list() : json::array()}});
  }
  // /api/v1/pipelines/NAME/(load|unload)
  const std::string rest = path.substr(kPrefix.size());
  const auto slash = rest.rfind('/');
  if (rest.size() < 2 || rest[0] != '/' || slash == 0)
    return json_error(req, http::status::not_found, "not_found",
                      fmt::format("{}: no such route", path));
  const std::string name = rest.substr(1, slash - 1), action = rest.substr(slash + 1);
  if (action != "load" && action != "unload")
    return json_error(req, http::status::not_found, "not_found",
                      fmt::format("{}: the actions are load and unload", path));
  if (!post)
    return json_error(req, http::status::method_not_allowed, "bad_method",
                      fmt::format("{} {}: only POST", req.method_string(), path));
  if (!m)
    return json_error(req, http::status::not_found, "not_found", "this server has no pipelines");
  if (!m->registry().find(name))
    return error_reply(req,
                       Error{ErrorCode::kNotFound, fmt::format("unknown pipeline '{}'", name)});
  auto st = action == "load" ? m->load(name) : m->unload(name);
  if (!st) return error_reply(req, st.error());
  return reply(req, {{"name", name}, {"status", to_string(m->status(name))}});
}

}  // namespace vx::server
