#include "render/fetch.hpp"

#include <fmt/format.h>

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
    auto got = data::get_chunks_partial(*in.cache, id, level, indices);
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

}  // namespace vx::render
