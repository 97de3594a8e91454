// DerivedSource: a pipeline applied to an input source of the chunk cache, chunk by chunk.
// A chunk's input is its region plus the halo, gathered from the input's chunks with scipy's
// 'reflect' boundary (d c b a | a b c d) outside the array, so that a chunk computed alone
// equals the same region of the pipeline run on the whole array.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "core/log.hpp"
#include "pipeline/kernels.hpp"

namespace vx::pipeline {

namespace {

// Along x, consecutive block positions mostly read consecutive voxels of one chunk: runs.
struct Run {
  std::int64_t x0 = 0, n = 0, chunk = 0, offset = 0;
};

std::vector<Run> x_runs(const std::vector<std::int64_t>& cidx,
                        const std::vector<std::int64_t>& off) {
  std::vector<Run> runs;
  for (std::size_t x = 0; x < cidx.size(); ++x) {
    if (!runs.empty()) {
      auto& r = runs.back();
      if (cidx[x] == r.chunk && off[x] == r.offset + r.n) {
        ++r.n;
        continue;
      }
    }
    runs.push_back({std::int64_t(x), 1, cidx[x], off[x]});
  }
  return runs;
}

template <class T>
void gather_typed(const std::byte* const* chunks, const std::vector<std::int64_t>* cidx,
                  const std::vector<std::int64_t>* off, const std::array<std::int64_t, 3>& cn,
                  const std::array<std::int64_t, 3>& stride, std::int64_t lead,
                  const BlockView& out) {
  const auto runs = x_runs(cidx[2], off[2]);  // x is the last axis: stride 1
  for (std::int64_t z = 0; z < out.shape[0]; ++z)
    for (std::int64_t y = 0; y < out.shape[1]; ++y) {
      const auto czy = (cidx[0][std::size_t(z)] * cn[1] + cidx[1][std::size_t(y)]) * cn[2];
      const auto ozy =
          lead + off[0][std::size_t(z)] * stride[0] + off[1][std::size_t(y)] * stride[1];
      float* dst = &out.at(z, y, 0);
      for (const auto& r : runs) {
        const T* src = reinterpret_cast<const T*>(chunks[std::size_t(czy + r.chunk)]) + ozy +
                       r.offset * stride[2];
        float* d = dst + r.x0;
        for (std::int64_t i = 0; i < r.n; ++i)
          d[i] = float(src[i]);
      }
    }
}

template <class T>
void store_typed(const BlockView& in, std::byte* out, const std::array<std::int64_t, 3>& stride,
                 std::int64_t lead) {
  T* o = reinterpret_cast<T*>(out);
  for (std::int64_t z = 0; z < in.shape[0]; ++z)
    for (std::int64_t y = 0; y < in.shape[1]; ++y) {
      const float* src = &in.at(z, y, 0);
      // x is the array's last axis (stride 1): contiguous, so the loop vectorizes.
      T* dst = o + lead + z * stride[0] + y * stride[1];
      for (std::int64_t x = 0; x < in.shape[2]; ++x) {
        if constexpr (std::is_floating_point_v<T>) {
          dst[x] = T(src[x]);
        } else {
          const double v = std::nearbyint(double(src[x]));
          dst[x] = T(std::clamp(v, double(std::numeric_limits<T>::lowest()),
                                double(std::numeric_limits<T>::max())));
        }
      }
    }
}

}  // namespace

Result<std::shared_ptr<DerivedSource>> DerivedSource::create(
    Manager& manager, data::ChunkCache& cache, data::SourceId input, std::string_view name,
    const json& params, std::int64_t z_chunk) {
  const auto* desc = manager.registry().find(name);
  if (!desc) {
    std::string known;
    for (const auto* d : manager.registry().list())
      known += (known.empty() ? "" : ", ") + d->name;
    return fail(ErrorCode::kNotFound, "unknown pipeline '{}' (known: {})", name, known);
  }
  VX_ASSIGN(auto validated, desc->schema.validate(params, "params"));
  std::shared_ptr<DerivedSource> d(new DerivedSource(manager, cache));
  d->input_ = input;
  d->name_ = std::string(name);
  d->params_ = validated;
  // Kept, not looked up by id on each computation: the cache may forget the input's id while
  // a computation of this source is still running (ChunkCache::remove_source).
  d->input_info_ = cache.source(input).info();
  const auto& in = d->input_info_;
  // Spatial axes: the last 2 or 3, after any channel/time axes (OME-NGFF's order).
  int spatial = 0;
  for (int a = in.ndim() - 1; a >= 0 && in.axes[std::size_t(a)].type == data::AxisType::kSpace; --a)
    ++spatial;
  for (int a = 0; a < in.ndim() - spatial; ++a)
    if (in.axes[std::size_t(a)].type == data::AxisType::kSpace) spatial = 0;
  if (spatial < 2 || spatial > 3)
    return fail(ErrorCode::kUnsupported,
                "{}: pipeline '{}' needs 2 or 3 spatial axes after any others (the data has {})",
                in.location, name, spatial);
  d->spatial_ = spatial;
  d->first_spatial_ = in.ndim() - spatial;
  for (const auto& spec : desc->schema.params()) {
    const auto& v = validated[spec.name];
    if (spec.per_axis && v.is_array() && v.size() != 1 && int(v.size()) != spatial)
      return fail(ErrorCode::kInvalidArgument,
                  "params.{}: expected a number or {} values (one per spatial axis), got {}",
                  spec.name, spatial, v.size());
  }
  VX_ASSIGN(auto lease, manager.use(name));
  d->scratch_ = manager.scratch_holder(d->name_);
  // Whole-volume preparation (Otsu): reads levels through the cache, as float32.
  const int levels = int(in.levels.size());
  auto reader = [&](int level, Ext3& shape) -> Result<std::vector<float>> {
    if (level < 0 || level >= levels)
      return fail(ErrorCode::kInvalidArgument, "level {} does not exist", level);
    const auto& lv = in.levels[std::size_t(level)];
    std::vector<std::int64_t> start(lv.shape.size(), 0);
    std::int64_t n = 1;
    for (auto s : lv.shape)
      n *= s;
    if (std::uint64_t(n) * (dtype_size(in.dtype) + 4) > cache.budget_bytes())
      return fail(ErrorCode::kOutOfMemory, "{}: level {} is larger than the budget '{}'",
                  in.location, level, cache.budget().name());
    std::vector<std::byte> raw(std::size_t(n) * dtype_size(in.dtype));
    VX_TRY(data::read_region(cache, input, level, start, lv.shape, raw));
    std::vector<float> out(static_cast<std::size_t>(n));
    dispatch_dtype(in.dtype, [&](auto t) {
      using T = decltype(t);
      const T* p = reinterpret_cast<const T*>(raw.data());
      for (std::int64_t i = 0; i < n; ++i)
        out[std::size_t(i)] = float(p[i]);
    });
    shape = {1, 1, 1};
    for (int a = 0; a < lv.ndim(); ++a)
      shape[std::size_t(std::max(0, 3 - lv.ndim() + a))] *= lv.shape[std::size_t(a)];
    return out;
  };
  json prepared;
  try {
    VX_ASSIGN(prepared, lease->prepare(validated, in.dtype, levels, reader));
  } catch (const std::exception& e) {
    return fail(ErrorCode::kInternal, "pipeline '{}': {}", name, e.what());
  }
  d->params_ = std::move(prepared);
  d->info_ = in;
  d->info_.format = "derived";
  d->info_.format_version.clear();
  d->info_.zarr_format = 0;
  d->info_.dtype = lease->output_dtype(in.dtype, d->params_);
  d->info_.fill_value = 0;
  d->info_.warnings.clear();
  d->info_.location = fmt::format("{}({}) of {}", name, validated.dump(), in.location);
  for (auto& ch : d->info_.channels)
    ch.window.reset();  // the input's display window does not fit the output
  for (int l = 0; l < levels; ++l) {
    auto& lv = d->info_.levels[std::size_t(l)];
    lv.codec = fmt::format("pipeline:{}", name);
    // Thinner chunks than the input's along z: a 2D view computes the planes it shows (and
    // their halo), not the input chunk's whole depth.
    if (z_chunk > 0 && spatial == 3) {
      auto& cz = lv.chunks[std::size_t(d->first_spatial_)];
      cz = std::min(cz, z_chunk);
    }
    LevelContext lc;
    lc.spatial_dims = spatial;
    lc.input_dtype = in.dtype;
    const auto& lv0 = d->info_.levels[0];
    for (int a = 0; a < spatial; ++a) {
      const auto at = std::size_t(d->first_spatial_ + a);
      const double size = lv.scale.empty() ? 1.0 : lv.scale[at];
      const double size0 = lv0.scale.empty() ? 1.0 : lv0.scale[at];
      lc.voxel_size[std::size_t(3 - spatial + a)] = size;
      lc.downsample[std::size_t(3 - spatial + a)] = size0 > 0 ? size / size0 : 1.0;
    }
    Ext3 h{0, 0, 0};
    try {
      h = lease->halo(d->params_, lc);  // an external pipeline asks its worker: may throw
    } catch (const std::exception& e) {
      return fail(ErrorCode::kInternal, "pipeline '{}': halo: {}", name, e.what());
    }
    if (spatial == 2) h[0] = 0;
    d->levels_.push_back(lc);
    d->halos_.push_back(h);
  }
  return d;
}

json DerivedSource::spec(const json& input_spec) const {
  json p = params_;
  for (auto it = p.begin(); it != p.end();)
    it = it.key().starts_with("_") ? p.erase(it) : std::next(it);
  return json{{"pipeline", name_}, {"input", input_spec}, {"params", p}};
}

namespace {

struct ChunkGeometry {
  Ext3 c0{0, 0, 0}, ext{1, 1, 1}, shape{1, 1, 1}, chunk{1, 1, 1};
  Ext3 lo{0, 0, 0}, hi{0, 0, 0};  // input chunk index range per axis (inclusive)
};

// `out` is the level as this source chunks it, `in_chunks` the input's chunk shape (the same
// but along z, where a thin source's chunks are thinner).
ChunkGeometry geometry(const data::Level& out, const std::vector<std::int64_t>& in_chunks,
                       int first, int spatial, const data::Index& index, const Ext3& halo) {
  ChunkGeometry g;
  for (int a = 3 - spatial; a < 3; ++a) {
    const auto d = std::size_t(first + a - (3 - spatial));
    const auto s = std::size_t(a);
    g.chunk[s] = in_chunks[d];
    g.shape[s] = out.shape[d];
    g.c0[s] = index[d] * out.chunks[d];
    g.ext[s] = std::min(out.chunks[d], out.shape[d] - g.c0[s]);
    const auto from = std::max<std::int64_t>(0, g.c0[s] - halo[s]);
    const auto to = std::min(out.shape[d], g.c0[s] + g.ext[s] + halo[s]);
    g.lo[s] = from / in_chunks[d];
    g.hi[s] = (to - 1) / in_chunks[d];
  }
  return g;
}

// Element strides of a full chunk of shape `chunks`, and those of the spatial axes (z, y, x).
std::vector<std::int64_t> chunk_strides(const std::vector<std::int64_t>& chunks) {
  std::vector<std::int64_t> stride(chunks.size(), 1);
  for (int d = int(chunks.size()) - 2; d >= 0; --d)
    stride[std::size_t(d)] = stride[std::size_t(d + 1)] * chunks[std::size_t(d + 1)];
  return stride;
}

}  // namespace

Result<std::vector<data::ChunkKey>> DerivedSource::inputs(int level,
                                                          const data::Index& index) const {
  if (level < 0 || level >= int(halos_.size()))
    return fail(ErrorCode::kInvalidArgument, "level {} does not exist", level);
  const auto& lv = info_.levels[std::size_t(level)];
  const auto& in_chunks = input_info_.levels[std::size_t(level)].chunks;
  const auto g =
      geometry(lv, in_chunks, first_spatial_, spatial_, index, halos_[std::size_t(level)]);
  std::vector<data::ChunkKey> keys;
  for (auto z = g.lo[0]; z <= g.hi[0]; ++z)
    for (auto y = g.lo[1]; y <= g.hi[1]; ++y)
      for (auto x = g.lo[2]; x <= g.hi[2]; ++x) {
        data::ChunkKey k{input_, level, index};
        const Ext3 c{z, y, x};
        for (int a = 3 - spatial_; a < 3; ++a)
          k.index[std::size_t(first_spatial_ + a - (3 - spatial_))] = c[std::size_t(a)];
        keys.push_back(k);
      }
  return keys;
}

Result<data::ReadResult> DerivedSource::compute(int level, const data::Index& index,
                                                std::span<const data::ChunkPin> pins,
                                                std::span<std::byte> out) const {
  const auto& lv = info_.levels[std::size_t(level)];
  const auto& halo = halos_[std::size_t(level)];
  const auto& lc = levels_[std::size_t(level)];
  const auto& in_chunks = input_info_.levels[std::size_t(level)].chunks;
  const auto g = geometry(lv, in_chunks, first_spatial_, spatial_, index, halo);
  // Strides (elements) of a full chunk of the output and of the input (they differ along z
  // for a thin source).
  const auto stride = chunk_strides(lv.chunks), in_stride = chunk_strides(in_chunks);
  std::array<std::int64_t, 3> sstride{0, 0, 0}, in_sstride{0, 0, 0};
  for (int a = 3 - spatial_; a < 3; ++a) {
    const auto d = std::size_t(first_spatial_ + a - (3 - spatial_));
    sstride[std::size_t(a)] = stride[d];
    in_sstride[std::size_t(a)] = in_stride[d];
  }
  const Ext3 bshape{g.ext[0] + 2 * halo[0], g.ext[1] + 2 * halo[1], g.ext[2] + 2 * halo[2]};
  const Ext3 oshape = g.ext;
  VX_ASSIGN(auto lease, manager_.use(name_));
  const std::uint64_t scratch =
      std::uint64_t(bshape[0] * bshape[1] * bshape[2] + oshape[0] * oshape[1] * oshape[2]) * 4 +
      lease->scratch_bytes(params_, bshape);
  if (auto ok = scratch_->charge(scratch); !ok)
    return tl::unexpected(with_context(ok.error(), fmt::format("pipeline '{}'", name_)));
  struct Release {
    Budget::Holder& h;
    std::uint64_t n;
    ~Release() { h.release(n); }
  } release{*scratch_, scratch};

  // Per spatial axis: for each block position, the input chunk (relative to lo) and offset.
  std::vector<std::int64_t> cidx[3], off[3];
  std::array<std::int64_t, 3> cn{};
  for (std::size_t a = 0; a < 3; ++a) {
    cn[a] = g.hi[a] - g.lo[a] + 1;
    for (std::int64_t p = 0; p < bshape[a]; ++p) {
      const auto r = reflect_index(g.c0[a] - halo[a] + p, g.shape[a]);
      cidx[a].push_back(r / g.chunk[a] - g.lo[a]);
      off[a].push_back(r % g.chunk[a]);
    }
  }
  std::vector<const std::byte*> chunks;
  for (const auto& p : pins)
    chunks.push_back(p.bytes().data());
  if (std::int64_t(chunks.size()) != cn[0] * cn[1] * cn[2])
    return fail(ErrorCode::kInternal, "pipeline '{}': {} input chunks, expected {}", name_,
                chunks.size(), cn[0] * cn[1] * cn[2]);

  Block in_block(bshape), out_block(oshape);
  // Leading (channel, time) axes: each position within the chunk is a separate volume.
  std::vector<std::int64_t> lext(static_cast<std::size_t>(first_spatial_));
  std::int64_t batches = 1;
  for (int d = 0; d < first_spatial_; ++d) {
    const auto c0 = index[std::size_t(d)] * lv.chunks[std::size_t(d)];
    lext[std::size_t(d)] = std::min(lv.chunks[std::size_t(d)], lv.shape[std::size_t(d)] - c0);
    batches *= lext[std::size_t(d)];
  }
  // Only an edge chunk has voxels past the array (the fill value, 0) that no block writes.
  bool partial = g.ext != g.chunk;
  for (int d = 0; d < first_spatial_; ++d)
    partial = partial || lext[std::size_t(d)] != lv.chunks[std::size_t(d)];
  if (partial) std::memset(out.data(), 0, out.size());
  for (std::int64_t b = 0; b < batches; ++b) {
    std::int64_t lead = 0, in_lead = 0, rest = b;
    for (int d = first_spatial_ - 1; d >= 0; --d) {
      lead += (rest % lext[std::size_t(d)]) * stride[std::size_t(d)];
      in_lead += (rest % lext[std::size_t(d)]) * in_stride[std::size_t(d)];
      rest /= lext[std::size_t(d)];
    }
    dispatch_dtype(input_info_.dtype, [&](auto t) {
      gather_typed<decltype(t)>(chunks.data(), cidx, off, cn, in_sstride, in_lead, in_block.view());
    });
    VX_TRY(lease->process(params_, lc, in_block.view(), out_block.view()));
    dispatch_dtype(info_.dtype, [&](auto t) {
      store_typed<decltype(t)>(out_block.view(), out.data(), sstride, lead);
    });
  }
  return data::ReadResult{};
}

}  // namespace vx::pipeline
