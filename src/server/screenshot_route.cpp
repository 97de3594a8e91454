// POST /api/v1/screenshot: one view rendered at final quality, answered as a PNG
// (docs/protocol.md, "Screenshots"). The render path is `voxcast render`'s: the dataset's
// default scene at the view's canvas, the view on top, the CPU renderer waiting for every
// chunk; it runs on the render pool, never on a network thread.
#include <fmt/format.h>

#include <set>

#include "codec/png.hpp"
#include "core/json_text.hpp"
#include "core/log.hpp"
#include "render/renderer.hpp"
#include "server/server_impl.hpp"

namespace vx::server {

namespace {

struct Shot {
  int dataset = 0;
  render::Scene scene;
};

// The scene a screenshot request asks for, or an error naming the field.
Result<Shot> screenshot_scene(const Context& ctx, const json& body) {
  if (!body.is_object())
    return fail(ErrorCode::kInvalidArgument,
                "the body must be a JSON object: {{\"dataset\": 0, \"scene\": {{...}}, "
                "\"width\": W, \"height\": H}}");
  static const std::set<std::string> known = {"dataset", "scene", "width", "height"};
  for (const auto& [k, v] : body.items())
    if (!known.count(k))
      return fail(ErrorCode::kInvalidArgument,
                  "field '{}': unknown (dataset, scene, width, height)", k);
  const auto& e = ctx.engine;
  Shot shot;
  if (body.contains("dataset")) {
    const auto& d = body["dataset"];
    if (!d.is_number_integer() || d.get<std::int64_t>() < 0 ||
        d.get<std::int64_t>() >= std::int64_t(e.datasets.size()))
      return fail(ErrorCode::kInvalidArgument, "field 'dataset': {} is not one of 0..{}", d.dump(),
                  int(e.datasets.size()) - 1);
    shot.dataset = d.get<int>();
  }
  json patch = body.value("scene", json::object());
  if (!patch.is_object())
    return fail(ErrorCode::kInvalidArgument, "field 'scene': expected a scene object");
  for (const char* k : {"width", "height"})
    if (body.contains(k) &&
        (!body[k].is_number_integer() || body[k].get<std::int64_t>() < kMinScreenshotSide ||
         body[k].get<std::int64_t>() > kMaxScreenshotSide))
      return fail(ErrorCode::kInvalidArgument, "field '{}': {} is not an integer in {}..{}", k,
                  body[k].dump(), kMinScreenshotSide, kMaxScreenshotSide);
  const auto d = std::size_t(shot.dataset);
  render::SceneData sd{{e.datasets[d]}};
  // The view's canvas (as `voxcast render` does: canvas first, so the default framing fits).
  const auto& defaults = e.defaults[d];
  int w0 = defaults.canvas.width, h0 = defaults.canvas.height;
  if (patch.contains("canvas") && patch["canvas"].is_object()) {
    const auto& c = patch["canvas"];
    if (c.contains("width") && c["width"].is_number_integer() && c["width"].get<int>() > 0)
      w0 = c["width"].get<int>();
    if (c.contains("height") && c["height"].is_number_integer() && c["height"].get<int>() > 0)
      h0 = c["height"].get<int>();
  }
  auto base = render::default_scene(sd, w0, h0);
  for (std::size_t i = 0; i < base.layers.size() && i < defaults.layers.size(); ++i)
    base.layers[i].contrast_limits = defaults.layers[i].contrast_limits;
  auto scene = render::apply_patch(base, patch, sd);
  if (!scene) return tl::unexpected(with_context(scene.error(), "field 'scene'"));
  // The output size: the canvas's, or the one asked for (one side given: the other keeps
  // the aspect). A different size shows the same view with more (or fewer) pixels: the zoom
  // grows with the size, as far as both sides allow.
  const int cw = scene->canvas.width, ch = scene->canvas.height;
  int w = cw, h = ch;
  if (body.contains("width") && body.contains("height")) {
    w = body["width"].get<int>();
    h = body["height"].get<int>();
  } else if (body.contains("width")) {
    w = body["width"].get<int>();
    h = std::max(1, int(std::lround(double(w) * ch / cw)));
  } else if (body.contains("height")) {
    h = body["height"].get<int>();
    w = std::max(1, int(std::lround(double(h) * cw / ch)));
  }
  if (w > kMaxScreenshotSide || h > kMaxScreenshotSide)
    return fail(ErrorCode::kInvalidArgument,
                "fields 'width', 'height': {}x{}: each side at most {}", w, h, kMaxScreenshotSide);
  if (std::uint64_t(w) * std::uint64_t(h) > kMaxScreenshotPixels)
    return fail(ErrorCode::kInvalidArgument,
                "fields 'width', 'height': {}x{} is over the {} Mpx a screenshot may have", w, h,
                kMaxScreenshotPixels >> 20);
  if (w != cw || h != ch) {
    scene->camera.zoom *= std::min(double(w) / cw, double(h) / ch);
    scene->canvas.width = w;
    scene->canvas.height = h;
  }
  int visible = 0;
  for (const auto& l : scene->layers)
    visible += l.visible;
  if (visible > ctx.options.max_layers)
    return fail(ErrorCode::kInvalidArgument,
                "field 'scene.layers': {} visible layers, over the {} a view may have", visible,
                ctx.options.max_layers);
  shot.scene = std::move(*scene);
  return shot;
}

}  // namespace

void screenshot_route(std::shared_ptr<Context> ctx, PoolRequest r) {
  const auto& req = r.req;
  if (req.method() != http::verb::post)
    return r.reply(json_error(req, http::status::method_not_allowed, "bad_method",
                              "/api/v1/screenshot: POST a JSON body"),
                   nullptr);
  const json body = parse_untrusted_json(req.body());
  if (body.is_discarded())
    return r.reply(json_error(req, http::status::bad_request, "bad_json",
                              fmt::format("the body must be JSON, nested at most {} levels deep: "
                                          "{{\"dataset\": 0, \"scene\": {{...}}, \"width\": W, "
                                          "\"height\": H}}",
                                          kMaxJsonDepth)),
                   nullptr);
  auto shot = screenshot_scene(*ctx, body);
  // The frame's RGBA, and then its PNG (no larger, short of noise), is held until read.
  const std::uint64_t bytes =
      shot ? std::uint64_t(shot->scene.canvas.width) * std::uint64_t(shot->scene.canvas.height) * 4
           : 0;
  if (shot && bytes > ctx->answer_bytes.capacity())
    shot = fail(ErrorCode::kInvalidArgument,
                "fields 'width', 'height': {}x{} needs {} MiB, over the {} MiB of answers this "
                "server holds at once (--http-max-inflight-mb)",
                shot->scene.canvas.width, shot->scene.canvas.height, bytes >> 20,
                ctx->answer_bytes.capacity() >> 20);
  if (!shot)
    return r.reply(json_error(req, http::status::bad_request, "bad_request", shot.error().message),
                   nullptr);
  auto held = ctx->answer_bytes.take(bytes);
  if (!held) return r.reply(answers_full(*ctx, req), nullptr);
  auto rendering = ctx->screenshots.take();
  if (!rendering)
    return r.reply(
        overloaded(*ctx, req,
                   fmt::format("{} screenshots are rendering", ctx->screenshots.capacity())),
        nullptr);
  const unsigned version = req.version();
  ctx->engine.pool->submit(
      stream::kRenderFinal,
      [ctx, shot = std::move(*shot), version, reply = std::move(r.reply), left = std::move(r.left),
       held = std::move(held), rendering = std::move(rendering)]() mutable {
        auto& e = ctx->engine;
        const auto d = std::size_t(shot.dataset);
        render::RenderInputs in{e.cache, {e.ids[d]}, render::SceneData{{e.datasets[d]}}};
        render::RenderOptions opt;
        // Stops when the client leaves (or the server stops): nobody would get the picture.
        opt.cancel = left.get();
        auto frame = render::make_cpu_renderer()->render(shot.scene, in, opt);
        Result<std::vector<std::uint8_t>> png =
            frame ? codec::encode_png(frame->width, frame->height, frame->pixels)
                  : Result<std::vector<std::uint8_t>>(tl::unexpected(frame.error()));
        frame = {};
        rendering.reset();
        http::request<http::string_body> dummy;
        dummy.version(version);
        if (!png && *left) {
          ++ctx->abandoned;
          VX_LOG(info, "screenshot.abandoned", "dataset={} size={}x{}", shot.dataset,
                 shot.scene.canvas.width, shot.scene.canvas.height);
          return reply(json_error(dummy, http::status::service_unavailable, "cancelled",
                                  "screenshot: cancelled"),
                       nullptr);
        }
        if (!png) {
          VX_LOG(warn, "screenshot.failed", "message={}", log_quote(png.error().message));
          return reply(json_error(dummy, http::status::internal_server_error, "internal",
                                  "screenshot: " + png.error().message),
                       nullptr);
        }
        http::response<http::string_body> res{http::status::ok, version};
        res.set(http::field::server, "voxcast");
        res.set(http::field::content_type, "image/png");
        res.set(http::field::cache_control, "no-store");
        res.body().assign(png->begin(), png->end());
        png = {};
        res.prepare_payload();
        VX_LOG(info, "screenshot.done", "dataset={} size={}x{} bytes={}", shot.dataset,
               shot.scene.canvas.width, shot.scene.canvas.height, res.body().size());
        reply(std::move(res), std::move(held));
      });
}

}  // namespace vx::server
