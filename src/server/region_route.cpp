// POST /api/v1/region: a box of one level of a dataset, raw (docs/protocol.md, "Regions"):
// the HTTP twin of the wire fast path's `read`, for clients without UCX (the Python client's
// lazy `layer.data`). Read through the server's chunk cache on the render pool.
#include <fmt/format.h>

#include <set>

#include "core/json_text.hpp"
#include "data/chunk_cache.hpp"
#include "server/server_impl.hpp"

namespace vx::server {

namespace {

struct Box {
  int dataset = 0, level = 0;
  std::vector<std::int64_t> start, shape;
  std::uint64_t bytes = 0;
};

Result<Box> region_box(const Context& ctx, const json& body) {
  if (!body.is_object())
    return fail(ErrorCode::kInvalidArgument,
                "the body must be a JSON object: {{\"dataset\": 0, \"level\": 0, \"start\": "
                "[...], \"shape\": [...]}}");
  static const std::set<std::string> known = {"dataset", "level", "start", "shape"};
  for (const auto& [k, v] : body.items())
    if (!known.count(k))
      return fail(ErrorCode::kInvalidArgument, "field '{}': unknown (dataset, level, start, shape)",
                  k);
  const auto& e = ctx.engine;
  Box b;
  const json d = body.value("dataset", json(0));
  if (!d.is_number_integer() || d.get<std::int64_t>() < 0 ||
      d.get<std::int64_t>() >= std::int64_t(e.datasets.size()))
    return fail(ErrorCode::kInvalidArgument, "field 'dataset': {} is not one of 0..{}", d.dump(),
                int(e.datasets.size()) - 1);
  b.dataset = d.get<int>();
  const auto& info = e.datasets[std::size_t(b.dataset)];
  const json l = body.value("level", json(0));
  if (!l.is_number_integer() || l.get<std::int64_t>() < 0 ||
      l.get<std::int64_t>() >= std::int64_t(info.levels.size()))
    return fail(ErrorCode::kInvalidArgument, "field 'level': {} is not one of 0..{}", l.dump(),
                int(info.levels.size()) - 1);
  b.level = l.get<int>();
  const auto& full = info.levels[std::size_t(b.level)].shape;
  for (const char* k : {"start", "shape"}) {
    const json a = body.value(k, json(nullptr));
    bool ok = a.is_array() && a.size() == full.size();
    for (std::size_t i = 0; ok && i < a.size(); ++i)
      ok = a[i].is_number_integer();
    if (!ok)
      return fail(ErrorCode::kInvalidArgument, "field '{}': expected {} integers (one per axis)", k,
                  full.size());
    (std::string_view(k) == "start" ? b.start : b.shape) = a.get<std::vector<std::int64_t>>();
  }
  b.bytes = data::dtype_size(info.dtype);
  for (std::size_t i = 0; i < full.size(); ++i) {
    if (b.start[i] < 0 || b.shape[i] <= 0 || b.start[i] > full[i] - b.shape[i])
      return fail(ErrorCode::kInvalidArgument,
                  "fields 'start', 'shape': axis {}: [{}, {} + {}) is not inside 0..{} of level {}",
                  i, b.start[i], b.start[i], b.shape[i], full[i], b.level);
    b.bytes *= std::uint64_t(b.shape[i]);
    if (b.bytes > kMaxRegionBytes)
      return fail(ErrorCode::kInvalidArgument,
                  "field 'shape': {} is over the {} MiB one region may have; ask in pieces",
                  json(b.shape).dump(), kMaxRegionBytes >> 20);
  }
  return b;
}

}  // namespace

void region_route(std::shared_ptr<Context> ctx, PoolRequest r) {
  const auto& req = r.req;
  if (req.method() != http::verb::post)
    return r.reply(json_error(req, http::status::method_not_allowed, "bad_method",
                              "/api/v1/region: POST a JSON body"),
                   nullptr);
  const json body = parse_untrusted_json(req.body());
  if (body.is_discarded())
    return r.reply(json_error(req, http::status::bad_request, "bad_json",
                              fmt::format("the body must be JSON, nested at most {} levels deep: "
                                          "{{\"dataset\": 0, \"level\": 0, \"start\": [...], "
                                          "\"shape\": [...]}}",
                                          kMaxJsonDepth)),
                   nullptr);
  auto box = region_box(*ctx, body);
  if (box && box->bytes > ctx->answer_bytes.capacity())
    box = fail(ErrorCode::kInvalidArgument,
               "field 'shape': {} bytes are over the {} MiB of answers this server holds at once "
               "(--http-max-inflight-mb); ask in pieces",
               box->bytes, ctx->answer_bytes.capacity() >> 20);
  if (!box)
    return r.reply(json_error(req, http::status::bad_request, "bad_request", box.error().message),
                   nullptr);
  // The answer's bytes are held from now until the client has read them; the read slot
  // only while reading.
  auto held = ctx->answer_bytes.take(box->bytes);
  if (!held) return r.reply(answers_full(*ctx, req), nullptr);
  auto reading = ctx->regions.take();
  if (!reading)
    return r.reply(
        overloaded(*ctx, req, fmt::format("{} regions are being read", ctx->regions.capacity())),
        nullptr);
  const unsigned version = req.version();
  ctx->engine.pool->submit(
      stream::kRenderFinal, [ctx, b = std::move(*box), version, reply = std::move(r.reply),
                             held = std::move(held), reading = std::move(reading)]() mutable {
        auto& e = ctx->engine;
        const auto& info = e.datasets[std::size_t(b.dataset)];
        http::response<http::string_body> res{http::status::ok, version};
        std::string& out = res.body();
        out.resize(b.bytes);
        auto st =
            data::read_region(*e.cache, e.ids[std::size_t(b.dataset)], b.level, b.start, b.shape,
                              std::as_writable_bytes(std::span(out.data(), out.size())));
        reading.reset();
        if (!st) {
          http::request<http::string_body> dummy;
          dummy.version(version);
          return reply(json_error(dummy, http::status::internal_server_error, "internal",
                                  "region: " + st.error().message),
                       nullptr);
        }
        res.set(http::field::server, "voxcast");
        res.set(http::field::content_type, "application/octet-stream");
        res.set(http::field::cache_control, "no-store");
        res.set("X-Voxcast-Dtype", std::string(data::dtype_name(info.dtype)));
        res.set("X-Voxcast-Shape", fmt::format("{}", fmt::join(b.shape, ",")));
        res.prepare_payload();
        reply(std::move(res), std::move(held));
      });
}

}  // namespace vx::server
