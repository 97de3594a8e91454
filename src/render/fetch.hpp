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

}  // namespace vx::render
