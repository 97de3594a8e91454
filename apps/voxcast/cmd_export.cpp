#include <fmt/format.h>

#include <charconv>

#include "commands.hpp"
#include "data/chunk_cache.hpp"
#include "data/data.hpp"
#include "data/file_io.hpp"
#include "data/mapped_array.hpp"

namespace vx::app {
namespace {

using namespace vx::data;

// "0:10,5:69,0:64" -> starts and sizes, one range per axis.
Result<std::pair<std::vector<std::int64_t>, std::vector<std::int64_t>>> parse_box(
    const std::string& text, const VolumeInfo& info, int level) {
  std::vector<std::int64_t> start, size;
  std::string_view rest = text;
  const auto& shape = info.levels[std::size_t(level)].shape;
  while (!rest.empty()) {
    const auto comma = rest.find(',');
    const auto part = rest.substr(0, comma);
    rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
    const auto colon = part.find(':');
    std::int64_t a = 0, b = 0;
    const auto axis = start.size();
    if (axis >= shape.size())
      return fail(ErrorCode::kInvalidArgument, "--box '{}': more ranges than the {} axes", text,
                  shape.size());
    if (colon == std::string_view::npos) {
      auto r = std::from_chars(part.data(), part.data() + part.size(), a);
      if (r.ec != std::errc() || r.ptr != part.data() + part.size())
        return fail(ErrorCode::kInvalidArgument, "--box '{}': '{}' is not START:STOP or an index",
                    text, part);
      b = a + 1;
    } else {
      const auto sa = part.substr(0, colon), sb = part.substr(colon + 1);
      if (!sa.empty()) {
        auto r = std::from_chars(sa.data(), sa.data() + sa.size(), a);
        if (r.ec != std::errc() || r.ptr != sa.data() + sa.size())
          return fail(ErrorCode::kInvalidArgument, "--box '{}': '{}' is not an integer", text, sa);
      }
      b = shape[axis];
      if (!sb.empty()) {
        auto r = std::from_chars(sb.data(), sb.data() + sb.size(), b);
        if (r.ec != std::errc() || r.ptr != sb.data() + sb.size())
          return fail(ErrorCode::kInvalidArgument, "--box '{}': '{}' is not an integer", text, sb);
      }
    }
    if (a < 0 || b > shape[axis] || b <= a)
      return fail(ErrorCode::kInvalidArgument,
                  "--box '{}': range {}:{} on axis '{}' is empty or outside 0:{}", text, a, b,
                  info.axes[axis].name, shape[axis]);
    start.push_back(a);
    size.push_back(b - a);
  }
  if (start.size() != shape.size())
    return fail(ErrorCode::kInvalidArgument, "--box '{}': needs one range per axis ({})", text,
                shape.size());
  return std::pair{start, size};
}

}  // namespace

Runner add_export(CLI::App& app, const GlobalOptions& g) {
  auto* cmd = app.add_subcommand("export",
                                 "Read a level, or a box of it, through the chunk cache and "
                                 "write it as a NumPy .npy file (little-endian, C order)");
  struct Opts {
    std::string data, out, box;
    int level = 0;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("DATA", o->data, "Dataset path or synthetic:NAME[?k=v&...]")->required();
  cmd->add_option("-o,--output", o->out, "Output .npy file")->required();
  cmd->add_option("--level", o->level, "Resolution level (0 is the finest)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--box", o->box,
                  "START:STOP per axis, comma separated (default: the whole level)");
  cmd->footer("Example: voxcast export brain.ome.zarr --level 2 --box 0:1,100:110,:,: -o slab.npy");
  return [o, &g]() {
    auto src = open_volume(o->data, g.open_options());
    if (!src) return report(src.error().what());
    const auto& info = (*src)->info();
    if (o->level >= int(info.levels.size()))
      return usage_error(fmt::format("--level {}: {} has {} levels (0..{})", o->level, o->data,
                                     info.levels.size(), info.levels.size() - 1));
    std::vector<std::int64_t> start(info.levels[std::size_t(o->level)].shape.size(), 0);
    std::vector<std::int64_t> size = info.levels[std::size_t(o->level)].shape;
    if (!o->box.empty()) {
      auto b = parse_box(o->box, info, o->level);
      if (!b) return usage_error(b.error().message);
      std::tie(start, size) = *b;
    }
    std::size_t bytes = dtype_size(info.dtype);
    for (auto s : size)
      bytes *= std::size_t(s);
    if (bytes > g.cache_bytes() * 4 && bytes > (std::size_t(1) << 32))
      return report(fmt::format("the box holds {} bytes; export a smaller --box", bytes));
    ChunkCache cache(CacheOptions{g.cache_bytes(), g.io_threads, 16});
    const auto id = cache.add_source(*src);
    const std::string header = make_npy_header(info.dtype, size);
    std::vector<std::byte> buf(header.size() + bytes);
    std::memcpy(buf.data(), header.data(), header.size());
    auto st = read_region(cache, id, o->level, start, size, std::span(buf).subspan(header.size()));
    if (!st) return report(st.error().what());
    auto w = write_file_atomic(o->out, buf);
    if (!w) return report(w.error().what());
    return 0;
  };
}

}  // namespace vx::app
