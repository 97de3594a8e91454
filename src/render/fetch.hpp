// How a frame gets the chunks of one level (backend-neutral): waiting for all of them, asking
// for the missing ones without waiting (through the session's fetch set, ranked), or taking
// only what is in memory.
#pragma once

#include <span>
#include <string>
#include <vector>

#include "render/renderer.hpp"

namespace vx::render {

enum class Fetch { kWait, kRequest, kCachedOnly };

struct Fetched {
  std::vector<data::ChunkPin> pins;  // per index; empty where not (yet) in memory
  std::size_t pending = 0;           // asked for, on their way
  std::vector<std::string> failed;   // could not be read: one message per chunk
  bool complete() const {
    for (const auto& p : pins)
      if (!p) return false;
    return true;
  }
};

// `centre` gives each index's distance from the centre of the screen (0 centre, 1 corner),
// for the order of reads; empty: all alike.
Fetched fetch_chunks(const RenderInputs& in, const RenderOptions& opt, data::SourceId id, int level,
                     std::span<const data::Index> indices, std::span<const double> centre,
                     Fetch mode);

// Asks for chunks the view may need next (neighbouring tiles, the next slices, a coarser
// level), at prefetch priority through the fetch set (without one: nothing), at most
// `max_bytes` of them, nearest first. They are cancelled like the rest when the view moves.
void prefetch_chunks(const RenderInputs& in, const RenderOptions& opt, data::SourceId id, int level,
                     std::span<const data::Index> indices, std::span<const double> centre,
                     std::uint64_t max_bytes);

}  // namespace vx::render
