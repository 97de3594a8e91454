#include "data/convert.hpp"

#include <fmt/format.h>
#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <mutex>

#include "core/log.hpp"
#include "core/progress.hpp"
#include "data/chunk_cache.hpp"
#include "data/downsample.hpp"
#include "data/file_io.hpp"
#include "data/formats.hpp"
#include "data/zarr_meta.hpp"

namespace vx::data {
namespace {

namespace fs = std::filesystem;

struct LevelPlan {
  std::vector<std::int64_t> shape, chunks;
  std::vector<double> scale, translation;
  std::int64_t chunk_count() const {
    std::int64_t n = 1;
    for (std::size_t d = 0; d < shape.size(); ++d)
      n *= (shape[d] + chunks[d] - 1) / chunks[d];
    return n;
  }
};

json fill_json(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "Infinity" : "-Infinity";
  if (v == std::floor(v) && std::abs(v) < 9e15) return std::int64_t(v);
  return v;
}

std::string v2_typestr(DType t) {
  switch (t) {
    case DType::kUInt8:
      return "|u1";
    case DType::kInt8:
      return "|i1";
    case DType::kUInt16:
      return "<u2";
    case DType::kInt16:
      return "<i2";
    case DType::kUInt32:
      return "<u4";
    case DType::kInt32:
      return "<i4";
    case DType::kFloat32:
      return "<f4";
    case DType::kFloat64:
      return "<f8";
  }
  return "|u1";
}

CodecChain output_chain(OutputCodec codec) {
  CodecChain c;
  c.array_to_bytes.kind = CodecSpec::Kind::kBytes;
  if (codec == OutputCodec::kZstd) {
    CodecSpec z{CodecSpec::Kind::kZstd, {}, false, nullptr, "zstd"};
    z.level = 3;
    c.bytes_to_bytes.push_back(z);
  } else if (codec == OutputCodec::kLz4) {
    CodecSpec b{CodecSpec::Kind::kBlosc, {}, false, nullptr, "blosc(lz4,shuffle)"};
    b.cname = "lz4";
    b.shuffle = Shuffle::kByte;
    b.level = 5;
    c.bytes_to_bytes.push_back(b);
  }
  return c;
}

json array_metadata(const LevelPlan& p, DType dtype, double fill, const ConvertOptions& o,
                    const std::vector<Axis>& axes) {
  if (o.zarr_version == 2) {
    json comp = nullptr;
    if (o.codec == OutputCodec::kZstd) comp = {{"id", "zstd"}, {"level", 3}};
    if (o.codec == OutputCodec::kLz4)
      comp = {{"id", "blosc"}, {"cname", "lz4"}, {"clevel", 5}, {"shuffle", 1}, {"blocksize", 0}};
    return {{"zarr_format", 2},
            {"shape", p.shape},
            {"chunks", p.chunks},
            {"dtype", v2_typestr(dtype)},
            {"compressor", comp},
            {"fill_value", fill_json(fill)},
            {"order", "C"},
            {"filters", nullptr},
            {"dimension_separator", "/"}};
  }
  json codecs = json::array({{{"name", "bytes"}, {"configuration", {{"endian", "little"}}}}});
  if (o.codec == OutputCodec::kZstd)
    codecs.push_back({{"name", "zstd"}, {"configuration", {{"level", 3}, {"checksum", false}}}});
  if (o.codec == OutputCodec::kLz4)
    codecs.push_back({{"name", "blosc"},
                      {"configuration",
                       {{"cname", "lz4"},
                        {"clevel", 5},
                        {"shuffle", "shuffle"},
                        {"typesize", dtype_size(dtype)},
                        {"blocksize", 0}}}});
  json names = json::array();
  for (const auto& a : axes)
    names.push_back(a.name);
  std::vector<std::int64_t> grid_shape = p.chunks;
  if (o.shard > 0) {
    // Shards of shard^n chunks on the spatial axes; inside, the chunks with the same codecs;
    // the index at the end, checksummed.
    for (std::size_t d = 0; d < axes.size(); ++d)
      if (axes[d].type == AxisType::kSpace) grid_shape[d] *= o.shard;
    codecs = json::array(
        {{{"name", "sharding_indexed"},
          {"configuration",
           {{"chunk_shape", p.chunks},
            {"codecs", codecs},
            {"index_codecs",
             json::array({{{"name", "bytes"}, {"configuration", {{"endian", "little"}}}},
                          {{"name", "crc32c"}}})},
            {"index_location", "end"}}}}});
  }
  return {{"zarr_format", 3},
          {"node_type", "array"},
          {"shape", p.shape},
          {"data_type", std::string(dtype_name(dtype))},
          {"chunk_grid", {{"name", "regular"}, {"configuration", {{"chunk_shape", grid_shape}}}}},
          {"chunk_key_encoding", {{"name", "default"}, {"configuration", {{"separator", "/"}}}}},
          {"fill_value", fill_json(fill)},
          {"codecs", codecs},
          {"attributes", json::object()},
          {"dimension_names", names}};
}

json ome_metadata(const VolumeInfo& in, const std::vector<LevelPlan>& plans, int zarr_version) {
  json axes = json::array();
  for (const auto& a : in.axes) {
    json j = {{"name", a.name}, {"type", std::string(axis_type_name(a.type))}};
    if (!a.unit.empty()) j["unit"] = a.unit;
    axes.push_back(j);
  }
  json datasets = json::array();
  for (std::size_t l = 0; l < plans.size(); ++l)
    datasets.push_back({{"path", std::to_string(l)},
                        {"coordinateTransformations",
                         {{{"type", "scale"}, {"scale", plans[l].scale}},
                          {{"type", "translation"}, {"translation", plans[l].translation}}}}});
  json ms = {{"name", fs::path(in.location).filename().string()},
             {"axes", axes},
             {"datasets", datasets},
             {"type", "mean"},
             {"metadata", {{"method", "voxcast convert: 2x mean over spatial axes"}}}};
  if (zarr_version == 2) ms["version"] = "0.4";
  json channels = json::array();
  for (const auto& c : in.channels) {
    json j = {{"label", c.name}, {"active", c.visible}};
    if (c.color) j["color"] = color_hex(*c.color);
    if (c.window)
      j["window"] = {{"start", c.window->start},
                     {"end", c.window->end},
                     {"min", c.window->min},
                     {"max", c.window->max}};
    channels.push_back(j);
  }
  json attrs = {{"multiscales", json::array({ms})}};
  if (!channels.empty()) attrs["omero"] = {{"channels", channels}};
  return attrs;
}

Status write_json(const fs::path& path, const json& j) {
  const auto text = j.dump(2);
  return write_file_atomic(path.string(), std::as_bytes(std::span(text.data(), text.size())));
}

// Level 0 as the input; each next level halves the spatial axes (scale x2, translation by
// half a voxel) until one chunk holds it, or until `levels` when given.
std::vector<LevelPlan> plan_levels(const VolumeInfo& in, const std::vector<bool>& spatial,
                                   const ConvertOptions& o) {
  const std::size_t nd = spatial.size();
  std::vector<LevelPlan> plans(1);
  LevelPlan& first = plans[0];
  first.shape = in.levels[0].shape;
  first.scale = in.levels[0].scale;
  first.translation = in.levels[0].translation;
  for (std::size_t d = 0; d < nd; ++d)
    first.chunks.push_back(spatial[d] ? std::max<std::int64_t>(1, std::min(o.chunk, first.shape[d]))
                                      : 1);
  auto fits = [&](const LevelPlan& p) {
    for (std::size_t d = 0; d < nd; ++d)
      if (spatial[d] && p.shape[d] > o.chunk) return false;
    return true;
  };
  while (o.levels ? int(plans.size()) < o.levels : !fits(plans.back())) {
    LevelPlan p = plans.back();
    bool shrunk = false;
    for (std::size_t d = 0; d < nd; ++d) {
      if (!spatial[d]) continue;
      shrunk |= p.shape[d] > 1;
      p.shape[d] = (p.shape[d] + 1) / 2;
      p.chunks[d] = std::min(o.chunk, p.shape[d]);
      p.translation[d] += 0.5 * p.scale[d];
      p.scale[d] *= 2;
    }
    if (!shrunk) break;
    plans.push_back(std::move(p));
  }
  return plans;
}

Status prepare_output(const fs::path& out, bool overwrite) {
  std::error_code ec;
  if (fs::exists(out, ec)) {
    const bool is_store = fs::exists(out / ".zattrs") || fs::exists(out / ".zgroup") ||
                          fs::exists(out / "zarr.json") || fs::exists(out / "0");
    const bool empty = fs::is_directory(out, ec) && fs::is_empty(out, ec);
    if (!empty) {
      if (!overwrite)
        return fail(ErrorCode::kInvalidArgument,
                    "{}: already exists (pass --overwrite to replace it)", out.string());
      if (!is_store)
        return fail(ErrorCode::kInvalidArgument,
                    "{}: exists and is not a Zarr store; refusing to replace it", out.string());
      fs::remove_all(out, ec);
      if (ec) return fail(ErrorCode::kIo, "{}: cannot remove: {}", out.string(), ec.message());
    }
  }
  fs::create_directories(out, ec);
  if (ec) return fail(ErrorCode::kIo, "{}: cannot create: {}", out.string(), ec.message());
  return {};
}

}  // namespace

Result<ConvertStats> convert_to_ome_zarr(std::string_view input, const std::string& output,
                                         const ConvertOptions& o) {
  const auto t0 = std::chrono::steady_clock::now();
  if (o.zarr_version != 2 && o.zarr_version != 3)
    return fail(ErrorCode::kInvalidArgument, "--zarr-version must be 2 or 3, got {}",
                o.zarr_version);
  if (o.chunk < 8 || o.chunk > 4096)
    return fail(ErrorCode::kInvalidArgument, "--chunk must be in 8..4096, got {}", o.chunk);
  if (o.shard < 0 || o.shard > 64)
    return fail(ErrorCode::kInvalidArgument, "--shard must be in 0..64, got {}", o.shard);
  if (o.shard > 0 && o.zarr_version != 3)
    return fail(ErrorCode::kInvalidArgument,
                "--shard needs --zarr-version 3 (Zarr v2 has no sharding)");
  VX_ASSIGN(auto src, open_volume(input));
  CacheOptions copts{o.cache_bytes, o.io_threads, 16};
  copts.budget = o.budget;
  ChunkCache cache(copts);
  SourceId input_id = cache.add_source(src);
  if (o.transform) {
    VX_ASSIGN(input_id, o.transform(cache, input_id));
  }
  const VolumeInfo in = cache.source(input_id).info();
  const int nd = in.ndim();
  std::vector<bool> spatial(static_cast<std::size_t>(nd));
  for (int d = 0; d < nd; ++d)
    spatial[std::size_t(d)] = in.axes[std::size_t(d)].type == AxisType::kSpace;

  const std::vector<LevelPlan> plans = plan_levels(in, spatial, o);

  const fs::path out(output);
  auto agree = [&](Status st) { return o.agree ? o.agree(st) : st; };
  if (o.part == 0) VX_TRY(agree(prepare_output(out, o.overwrite)));
  if (o.part != 0) VX_TRY(agree({}));
  for (std::size_t l = 0; l < plans.size() && o.part == 0; ++l) {
    const auto dir = out / std::to_string(l);
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) return fail(ErrorCode::kIo, "{}: cannot create: {}", dir.string(), ec.message());
    VX_TRY(write_json(dir / (o.zarr_version == 2 ? ".zarray" : "zarr.json"),
                      array_metadata(plans[l], in.dtype, in.fill_value, o, in.axes)));
  }

  const CodecChain chain = output_chain(o.codec);
  const std::size_t item = dtype_size(in.dtype);

  std::uint64_t total_chunks = 0;
  for (const auto& p : plans)
    total_chunks += std::uint64_t(p.chunk_count());
  ConvertStats stats;
  stats.levels = int(plans.size());
  std::atomic<std::uint64_t> written{0}, empty{0}, bytes_out{0}, bytes_in{0};
  std::mutex err_mutex;
  std::optional<Error> first_error;
  ProgressBar bar(fmt::format("{} level 0", fs::path(output).filename().string()), total_chunks,
                  "chunks", o.progress);

  for (std::size_t l = 0; l < plans.size() && !first_error; ++l) {
    bar.set_title(fmt::format("level {}/{}", l, plans.size() - 1));
    const LevelPlan& p = plans[l];
    SourceId read_id = input_id;
    if (l > 0) {
      VX_ASSIGN(auto prev, open_zarr((out / std::to_string(l - 1)).string()));
      read_id = cache.add_source(prev);
    }

    std::vector<std::int64_t> grid(static_cast<std::size_t>(nd));
    std::int64_t chunk_voxels = 1;
    for (int d = 0; d < nd; ++d) {
      grid[std::size_t(d)] =
          (p.shape[std::size_t(d)] + p.chunks[std::size_t(d)] - 1) / p.chunks[std::size_t(d)];
      chunk_voxels *= p.chunks[std::size_t(d)];
    }
    std::vector<std::byte> fill_chunk(std::size_t(chunk_voxels) * item);
    fill_with(fill_chunk, in.dtype, in.fill_value);
    ArrayMeta key_meta;
    key_meta.default_key_encoding = o.zarr_version == 3;
    key_meta.separator = '/';

    // One chunk: read (level 0) or 2x-mean the finer level, then encode; nullopt when it is
    // the fill value everywhere (not written: readers see the fill value).
    auto produce = [&](const std::vector<std::int64_t>& ci, std::vector<std::byte>& chunk,
                       std::vector<std::byte>& region) -> Result<std::optional<Bytes>> {
      std::vector<std::int64_t> start(static_cast<std::size_t>(nd)),
          shape(static_cast<std::size_t>(nd));
      if (l == 0) {
        for (int d = 0; d < nd; ++d) {
          start[std::size_t(d)] = ci[std::size_t(d)] * p.chunks[std::size_t(d)];
          shape[std::size_t(d)] = p.chunks[std::size_t(d)];
        }
        VX_TRY(read_region(cache, read_id, 0, start, shape, chunk));
      } else {
        // The 2x box of the finer level, clipped to it (edges average what exists).
        const auto& prev = plans[l - 1];
        std::size_t rbytes = item;
        for (int d = 0; d < nd; ++d) {
          const auto f = spatial[std::size_t(d)] ? 2 : 1;
          start[std::size_t(d)] = ci[std::size_t(d)] * p.chunks[std::size_t(d)] * f;
          shape[std::size_t(d)] = std::min(p.chunks[std::size_t(d)] * f,
                                           prev.shape[std::size_t(d)] - start[std::size_t(d)]);
          rbytes *= std::size_t(shape[std::size_t(d)]);
        }
        region.resize(rbytes);
        VX_TRY(read_region(cache, read_id, 0, start, shape, region));
        std::memcpy(chunk.data(), fill_chunk.data(), chunk.size());
        downsample_2x_mean(in.dtype, region, shape, spatial, chunk, p.chunks);
      }
      bytes_in += chunk.size();
      bar.add(1, chunk.size());
      if (std::memcmp(chunk.data(), fill_chunk.data(), chunk.size()) == 0) {
        empty++;
        return std::optional<Bytes>{};
      }
      VX_ASSIGN(auto enc, encode_chain(chain, chunk, item));
      return std::optional<Bytes>(std::move(enc));
    };
    // The unit written to one file: a chunk, or a shard of shard^n chunks (spatial axes).
    std::vector<std::int64_t> per_unit(static_cast<std::size_t>(nd), 1),
        units(static_cast<std::size_t>(nd));
    std::int64_t n_units = 1, inner_n = 1;
    for (int d = 0; d < nd; ++d) {
      if (o.shard > 0 && spatial[std::size_t(d)]) per_unit[std::size_t(d)] = o.shard;
      units[std::size_t(d)] =
          (grid[std::size_t(d)] + per_unit[std::size_t(d)] - 1) / per_unit[std::size_t(d)];
      n_units *= units[std::size_t(d)];
      inner_n *= per_unit[std::size_t(d)];
    }
    auto unit_index = [](std::int64_t k, const std::vector<std::int64_t>& dims) {
      std::vector<std::int64_t> idx(dims.size());
      for (int d = int(dims.size()) - 1; d >= 0; --d) {
        idx[std::size_t(d)] = k % dims[std::size_t(d)];
        k /= dims[std::size_t(d)];
      }
      return idx;
    };
    auto write_unit = [&](std::int64_t k, std::vector<std::byte>& chunk,
                          std::vector<std::byte>& region) -> Status {
      const auto ui = unit_index(k, units);
      const auto path = out / std::to_string(l) / key_meta.chunk_key(ui);
      Bytes file;
      if (o.shard == 0) {
        VX_ASSIGN(auto enc, produce(ui, chunk, region));
        if (!enc) return {};
        file = std::move(*enc);
      } else {
        // Inner chunks in C order; (2^64-1, 2^64-1) marks an absent one.
        std::vector<std::uint64_t> index(std::size_t(inner_n) * 2, ~std::uint64_t(0));
        for (std::int64_t j = 0; j < inner_n; ++j) {
          auto ci = unit_index(j, per_unit);
          bool inside = true;
          for (int d = 0; d < nd; ++d) {
            ci[std::size_t(d)] += ui[std::size_t(d)] * per_unit[std::size_t(d)];
            inside &= ci[std::size_t(d)] < grid[std::size_t(d)];
          }
          if (!inside) continue;
          VX_ASSIGN(auto enc, produce(ci, chunk, region));
          if (!enc) continue;
          index[std::size_t(j) * 2] = file.size();
          index[std::size_t(j) * 2 + 1] = enc->size();
          file.insert(file.end(), enc->begin(), enc->end());
        }
        if (file.empty()) return {};
        const auto raw = std::as_bytes(std::span(index));
        const auto crc = crc32c(raw);
        file.insert(file.end(), raw.begin(), raw.end());
        const auto* cp = reinterpret_cast<const std::byte*>(&crc);
        file.insert(file.end(), cp, cp + 4);
      }
      std::error_code ec;
      fs::create_directories(path.parent_path(), ec);
      VX_TRY(write_file_atomic(path.string(), file));
      bytes_out += file.size();
      written++;
      return {};
    };
    // This process's run of the units (all of them in one process).
    const std::int64_t u0 = n_units * o.part / std::max(1, o.parts),
                       u1 = n_units * (o.part + 1) / std::max(1, o.parts);
    tbb::parallel_for(tbb::blocked_range<std::int64_t>(u0, u1, o.shard > 0 ? 1 : 4),
                      [&](const tbb::blocked_range<std::int64_t>& r) {
                        std::vector<std::byte> chunk(std::size_t(chunk_voxels) * item), region;
                        for (std::int64_t k = r.begin(); k < r.end(); ++k) {
                          {
                            std::lock_guard lock(err_mutex);
                            if (first_error) return;
                          }
                          if (auto st = write_unit(k, chunk, region); !st) {
                            std::lock_guard lock(err_mutex);
                            if (!first_error) first_error = st.error();
                            return;
                          }
                        }
                      });
    if (o.agree) {  // every part's share of this level is on disk before the next reads it
      Status st;
      if (first_error) st = tl::unexpected(*first_error);
      VX_TRY(o.agree(st));
    }
  }
  if (first_error && !o.agree) return tl::unexpected(*first_error);
  if (o.part != 0) {
    stats.chunks_written = written;
    stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return stats;
  }

  // Group metadata last: an interrupted conversion is not mistaken for a complete one.
  const json attrs = ome_metadata(in, plans, o.zarr_version);
  if (o.zarr_version == 2) {
    VX_TRY(write_json(out / ".zgroup", json{{"zarr_format", 2}}));
    VX_TRY(write_json(out / ".zattrs", attrs));
  } else {
    VX_TRY(write_json(
        out / "zarr.json",
        json{{"zarr_format", 3}, {"node_type", "group"}, {"attributes", {{"ome", [&] {
                                                                            json ome = attrs;
                                                                            ome["version"] = "0.5";
                                                                            return ome;
                                                                          }()}}}}));
  }
  stats.chunks_written = written;
  stats.chunks_empty = empty;
  stats.bytes_decoded = bytes_in;
  stats.bytes_written = bytes_out;
  stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return stats;
}

}  // namespace vx::data
