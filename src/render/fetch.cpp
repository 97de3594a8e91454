#include "render/fetch.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace vx::render {

namespace {

std::string chunk_name(const data::VolumeInfo& info, int level, const data::Index& idx) {
  std::string s;
  for (int d = 0; d < info.ndim(); ++d)
    s += fmt::format("{}{}", d ? "." : "", idx[std::size_t(d)]);
  return fmt::format("{} level {} chunk {}", info.location, level, s);
}

}  // namespace

Fetched fetch_chunks(const RenderInputs& in, const RenderOptions& opt, data::SourceId id, int level,
                     std::span<const data::Index> indices, std::span<const double> centre,
                     Fetch mode) {
  Fetched out;
  const auto& info = in.cache->source(id).info();
  auto why = [&](std::size_t i, const Error& e) {
    // The cache's messages usually name the file already; say which chunk of which view.
    return fmt::format("{}: {}", chunk_name(info, level, indices[i]), e.message);
  };
  if (mode == Fetch::kWait) {
    auto got = data::get_chunks_partial(*in.cache, id, level, indices, data::kPriorityVisible,
                                        std::nullopt, opt.cancel);
    out.pins = std::move(got.pins);
    for (const auto& [i, e] : got.failed)
      out.failed.push_back(why(i, e));
    return out;
  }
  out.pins.resize(indices.size());
  for (std::size_t i = 0; i < indices.size(); ++i) {
    const double d = i < centre.size() ? centre[i] : 0.5;
    if (mode == Fetch::kCachedOnly) {
      if (auto pin = in.cache->try_get(id, level, indices[i])) out.pins[i] = std::move(*pin);
      continue;
    }
    if (opt.fetch) {
      switch (
          opt.fetch->want(id, level, indices[i], data::visible_priority(level, d), out.pins[i])) {
        case data::FetchSet::State::kReady:
          break;
        case data::FetchSet::State::kPending:
          ++out.pending;
          break;
        case data::FetchSet::State::kFailed:
          out.failed.push_back(
              fmt::format("{}: could not be read", chunk_name(info, level, indices[i])));
          break;
      }
      continue;
    }
    if (auto pin = in.cache->try_get(id, level, indices[i])) {
      out.pins[i] = std::move(*pin);
      continue;
    }
    ++out.pending;
    in.cache->request(id, level, indices[i], data::visible_priority(level, d),
                      [cb = opt.on_chunk](Result<data::ChunkPin>) {
                        if (cb) cb();
                      });
  }
  return out;
}

void prefetch_chunks(const RenderInputs& in, const RenderOptions& opt, data::SourceId id, int level,
                     std::span<const data::Index> indices, std::span<const double> centre,
                     std::uint64_t max_bytes) {
  if (!opt.fetch || indices.empty()) return;
  const auto chunk = std::max<std::uint64_t>(1, in.cache->source(id).info().chunk_bytes(level));
  std::vector<std::size_t> order(indices.size());
  for (std::size_t i = 0; i < order.size(); ++i)
    order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    return (a < centre.size() ? centre[a] : 1) < (b < centre.size() ? centre[b] : 1);
  });
  const std::size_t n = std::min<std::size_t>(order.size(), max_bytes / chunk);
  for (std::size_t k = 0; k < n; ++k) {
    const auto i = order[k];
    data::ChunkPin pin;  // resident ones are not kept pinned: a prefetch holds nothing
    opt.fetch->want(id, level, indices[i],
                    data::prefetch_priority(level, i < centre.size() ? centre[i] : 1), pin,
                    /*prefetch=*/true);
  }
}

}  // namespace vx::render
