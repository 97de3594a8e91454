// A dataset opened into a chunk cache, as the render tests need it.
#pragma once

#include <memory>
#include <stdexcept>
#include <string>

#include "data/chunk_cache.hpp"
#include "data/data.hpp"
#include "render/renderer.hpp"

namespace vx::render {

struct RenderFixture {
  std::shared_ptr<data::VolumeSource> src;
  data::ChunkCache cache{data::CacheOptions{64u << 20, 2, 4}};
  RenderInputs inputs;
  explicit RenderFixture(const std::string& spec) {
    auto s = data::open_volume(spec);
    if (!s) throw std::runtime_error(s.error().what());
    src = *s;
    inputs = RenderInputs{&cache, {cache.add_source(src)}, SceneData{{src->info()}}};
  }
};

}  // namespace vx::render
