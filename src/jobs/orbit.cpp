#include "jobs/orbit.hpp"

#include <tbb/enumerable_thread_specific.h>
#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>

#include <cctype>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "codec/encoder.hpp"
#include "codec/webp.hpp"
#include "render/select.hpp"

namespace vx::jobs {

using json = nlohmann::json;

double orbit_yaw(const OrbitOptions& o, int column) {
  return o.columns == 1 ? 0.5 * (o.yaw_min + o.yaw_max)
                        : o.yaw_min + (o.yaw_max - o.yaw_min) * column / (o.columns - 1);
}

double orbit_pitch(const OrbitOptions& o, int row) {
  return o.rows == 1 ? 0.5 * (o.pitch_min + o.pitch_max)
                     : o.pitch_min + (o.pitch_max - o.pitch_min) * row / (o.rows - 1);
}

std::array<double, 3> orbit_angles(const render::Scene& base, double yaw, double pitch) {
  const auto& a = base.camera.angles;
  return {a[0], a[1] + yaw, a[2] + pitch};
}

render::Scene orbit_scene(const render::SceneData& data, int size) {
  auto s = render::default_scene(data, size, size);
  s.dims.ndisplay = 3;
  const auto extent = data.world_extent();
  double d2 = 0;
  for (std::size_t i = extent.size() >= 3 ? extent.size() - 3 : 0; i < extent.size(); ++i)
    d2 += std::pow(extent[i][1] - extent[i][0] + 1, 2);
  s.camera.zoom = 0.95 * size / std::max(1e-9, std::sqrt(d2));
  return s;
}

namespace {

Status write_file(const std::filesystem::path& p, std::span<const std::uint8_t> bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  if (!out) return fail(ErrorCode::kIo, "{}: cannot write", p.string());
  return {};
}

// Text safe inside an HTML element or attribute.
std::string html_escape(std::string_view text) {
  std::string out;
  for (char ch : text) {
    switch (ch) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += ch;
    }
  }
  return out;
}

// Inlined into a <script> element, "</script" (in any case, even in a comment) would end the
// element early and "<!--" could start HTML's escaped script state: "<\/script" and "<\!--"
// are the same text to JavaScript (in strings, comments and regular expressions alike).
std::string script_escape(std::string script) {
  for (std::size_t at = 0; (at = script.find('<', at)) != std::string::npos; ++at) {
    if (script.compare(at, 4, "<!--") == 0) {
      script.insert(at + 1, "\\");
    } else if (at + 8 <= script.size() && script[at + 1] == '/') {
      std::string word = script.substr(at + 2, 6);
      for (auto& ch : word)
        ch = char(std::tolower(static_cast<unsigned char>(ch)));
      if (word == "script") script.insert(at + 1, "\\");
    }
  }
  return script;
}

// A self-contained page that opens from disk (file://) too: the component and orbit.json
// inlined (a page opened from disk may not fetch a file beside it; it may show images from
// there, so the sheets stay beside it). Served over HTTP, it is the same page.
std::string index_html(const std::string& component, const std::string& manifest,
                       const std::string& dataset, const OrbitOptions& o) {
  const int w = std::min(o.size * 2, 720);
  const std::string script = component.empty()
                                 ? "document.body.append('voxcast-orbit.js was not found when this "
                                   "orbit was written');"
                                 : script_escape(component);
  // '<' only occurs inside JSON strings, where \u003c is the same character.
  std::string data;
  for (char ch : manifest)
    data += ch == '<' ? std::string("\\u003c") : std::string(1, ch);
  std::string name = dataset;
  if (name.rfind("synthetic:", 0) != 0) {
    while (name.size() > 1 && name.back() == '/')
      name.pop_back();
    name = std::filesystem::path(name).filename().string();
  }
  const std::string title = name.empty() ? "voxcast orbit" : name + " \u2014 voxcast orbit";
  return "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
         "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
         "<title>" +
         html_escape(title) +
         "</title>\n"
         "<style>body{margin:0;background:#111;color:#ddd;font:14px system-ui;display:flex;"
         "flex-direction:column;align-items:center;justify-content:center;min-height:100vh}"
         "p{opacity:.7}</style>\n</head>\n<body>\n"
         "<voxcast-orbit src=\"orbit.json\" manifest=\"voxcast-orbit-manifest\" width=\"" +
         std::to_string(w) + "\" height=\"" + std::to_string(w) +
         "\"></voxcast-orbit>\n<p>Move the pointer (or a finger) over the view to turn it; "
         "arrow keys work too.</p>\n"
         "<script type=\"application/json\" id=\"voxcast-orbit-manifest\">\n" +
         data + "\n</script>\n<script type=\"module\">\n" + script +
         "\n</script>\n</body>\n</html>\n";
}

}  // namespace

Result<OrbitResult> render_orbit(const render::Scene& base_in, const render::RenderInputs& in,
                                 const OrbitOptions& o, const std::string& dir,
                                 const OrbitProgress& progress) {
  if (o.columns < 1 || o.rows < 1 || o.columns * o.rows > 10000)
    return fail(ErrorCode::kInvalidArgument, "--grid {}x{}: 1 to 10000 views", o.columns, o.rows);
  if (o.size < 16 || o.size > 4096)
    return fail(ErrorCode::kInvalidArgument, "--size {}: 16 to 4096 pixels", o.size);
  if (double(o.columns) * o.rows * o.size * o.size > double(kMaxOrbitPixels))
    return fail(ErrorCode::kInvalidArgument,
                "--grid {}x{} at --size {}: over the {} Mpx an orbit may hold", o.columns, o.rows,
                o.size, kMaxOrbitPixels >> 20);
  if (o.format != "webp" && o.format != "jpeg")
    return fail(ErrorCode::kInvalidArgument, "--format {}: webp or jpeg", o.format);
  const auto t0 = std::chrono::steady_clock::now();
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return fail(ErrorCode::kIo, "{}: cannot create: {}", dir, ec.message());

  render::Scene base = base_in;
  base.dims.ndisplay = 3;
  base.canvas.width = base.canvas.height = o.size;
  // Sheets: as few as keep each side within max_sheet, balanced (30 columns of 256 px: two
  // sheets of 15 across, not 16 + 14).
  const int per_max = std::max(1, o.max_sheet / o.size);
  const int sheets_x = (o.columns + per_max - 1) / per_max;
  const int sheets_y = (o.rows + per_max - 1) / per_max;
  const int per_x = (o.columns + sheets_x - 1) / sheets_x;
  const int per_y = (o.rows + sheets_y - 1) / sheets_y;
  struct Sheet {
    int column, row, columns, rows;
    std::vector<std::uint8_t> rgba;
  };
  std::vector<Sheet> sheets;
  for (int sy = 0; sy < sheets_y; ++sy)
    for (int sx = 0; sx < sheets_x; ++sx) {
      Sheet s{sx * per_x,
              sy * per_y,
              std::min(per_x, o.columns - sx * per_x),
              std::min(per_y, o.rows - sy * per_y),
              {}};
      s.rgba.assign(std::size_t(s.columns * o.size) * std::size_t(s.rows * o.size) * 4, 0);
      sheets.push_back(std::move(s));
    }

  // Every view in parallel, each render parallel inside too (TBB balances both); one
  // renderer per thread, one cache for all, so chunks are read once. Batch work: it runs in a
  // low-priority arena, so TBB's workers serve the streaming sessions' frames (the default
  // arena, normal priority) first, and a running view stops when the job is cancelled.
  tbb::enumerable_thread_specific<std::unique_ptr<render::Renderer>> renderers([&o] {
    auto r = render::make_renderer(o.renderer);  // validated: cuda only where it opens
    return r ? std::move(r->renderer) : render::make_cpu_renderer();
  });
  std::atomic<int> done{0};
  std::atomic<bool> cancelled{false};
  std::mutex error_mutex;
  std::optional<Error> error;
  const int total = o.columns * o.rows;
  render::RenderOptions ropt;
  ropt.cancel = progress.cancel;
  ropt.compositor = o.compositor;
  auto view = [&](int v) {
    if (cancelled || (progress.cancel && progress.cancel->load())) {
      cancelled = true;
      return;
    }
    const int r = v / o.columns, c = v % o.columns;
    render::Scene s = base;
    s.camera.angles = orbit_angles(base, orbit_yaw(o, c), orbit_pitch(o, r));
    auto frame = renderers.local()->render(s, in, ropt);
    if (!frame) {
      if (frame.error().code == ErrorCode::kCancelled) {
        cancelled = true;
        return;
      }
      std::lock_guard lock(error_mutex);
      if (!error) error = frame.error();
      cancelled = true;
      return;
    }
    Sheet& sh = sheets[std::size_t((r / per_y) * sheets_x + c / per_x)];
    const std::size_t stride = std::size_t(sh.columns * o.size) * 4;
    const std::size_t x0 = std::size_t((c - sh.column) * o.size) * 4;
    const std::size_t y0 = std::size_t((r - sh.row) * o.size);
    for (int y = 0; y < o.size; ++y)
      std::copy_n(frame->pixels.data() + std::size_t(y) * std::size_t(o.size) * 4,
                  std::size_t(o.size) * 4, sh.rgba.data() + (y0 + std::size_t(y)) * stride + x0);
    const int n = ++done;
    if (progress.on_view) progress.on_view(n, total);
  };
  if (o.compositor) {  // each view is a collective: all ranks in the same order
    for (int v = 0; v < total && !cancelled; ++v)
      view(v);
  } else {
    tbb::task_arena arena(tbb::task_arena::automatic, 1, tbb::task_arena::priority::low);
    arena.execute([&] { tbb::parallel_for(0, total, view); });
  }
  if (error) return tl::unexpected(*error);
  if (cancelled)
    return fail(ErrorCode::kCancelled, "orbit canceled after {} of {} views", done.load(), total);

  OrbitResult result;
  result.views = total;
  json sheet_list = json::array();
  for (std::size_t i = 0; i < sheets.size(); ++i) {
    const auto& sh = sheets[i];
    const int w = sh.columns * o.size, h = sh.rows * o.size;
    const std::string name = "sheet-" + std::to_string(sh.row / per_y) + "-" +
                             std::to_string(sh.column / per_x) + "." + o.format;
    std::vector<std::uint8_t> bytes;
    if (o.format == "webp") {
      VX_ASSIGN(bytes, codec::encode_webp(sh.rgba, w, h, o.quality));
    } else {
      codec::EncoderOptions eo{w, h};
      eo.jpeg_quality = o.quality;
      VX_ASSIGN(auto enc, codec::make_encoder(codec::Codec::kJpeg, eo));
      codec::Encoded out;
      VX_TRY(enc.encoder->encode(sh.rgba.data(), true, out));
      bytes = std::move(out.data);
    }
    VX_TRY(write_file(std::filesystem::path(dir) / name, bytes));
    result.files.push_back(name);
    result.bytes += bytes.size();
    sheet_list.push_back({{"file", name},
                          {"column", sh.column},
                          {"row", sh.row},
                          {"columns", sh.columns},
                          {"rows", sh.rows},
                          {"width", w},
                          {"height", h},
                          {"bytes", bytes.size()}});
  }
  json yaw = json::array(), pitch = json::array();
  for (int c = 0; c < o.columns; ++c)
    yaw.push_back(orbit_yaw(o, c));
  for (int r = 0; r < o.rows; ++r)
    pitch.push_back(orbit_pitch(o, r));
  const json doc = {{"version", 1},
                    {"grid", {{"columns", o.columns}, {"rows", o.rows}}},
                    {"tile", {{"width", o.size}, {"height", o.size}}},
                    {"yaw", yaw},
                    {"pitch", pitch},
                    {"format", o.format},
                    {"sheets", sheet_list},
                    {"dataset", in.data.sources.empty() ? "" : in.data.sources[0].location},
                    {"view", render::to_json(base)}};
  const std::string text = doc.dump(1);
  VX_TRY(write_file(std::filesystem::path(dir) / "orbit.json",
                    {reinterpret_cast<const std::uint8_t*>(text.data()), text.size()}));
  const std::string html =
      index_html(o.component_js, doc.dump(), doc.at("dataset").get<std::string>(), o);
  VX_TRY(write_file(std::filesystem::path(dir) / "index.html",
                    {reinterpret_cast<const std::uint8_t*>(html.data()), html.size()}));
  result.files.push_back("orbit.json");
  result.files.push_back("index.html");
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return result;
}

}  // namespace vx::jobs
