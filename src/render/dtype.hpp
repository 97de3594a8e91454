// Dispatch on a source's element type (backend-neutral; every backend's kernels are
// templated on it).
#pragma once

#include <cstdint>

#include "data/data.hpp"

namespace vx::render {

// Calls f.template operator()<T>() with T the C++ type of `t`.
template <class F>
decltype(auto) with_dtype(data::DType t, F&& f) {
  using data::DType;
  switch (t) {
    case DType::kUInt8:
      return f.template operator()<std::uint8_t>();
    case DType::kInt8:
      return f.template operator()<std::int8_t>();
    case DType::kUInt16:
      return f.template operator()<std::uint16_t>();
    case DType::kInt16:
      return f.template operator()<std::int16_t>();
    case DType::kUInt32:
      return f.template operator()<std::uint32_t>();
    case DType::kInt32:
      return f.template operator()<std::int32_t>();
    case DType::kFloat32:
      return f.template operator()<float>();
    case DType::kFloat64:
      break;
  }
  return f.template operator()<double>();
}

}  // namespace vx::render
