#include "data/mapped_array.hpp"

#include <algorithm>
#include <cstring>

namespace vx::data {

std::uint64_t ArrayLayout::bytes_needed() const {
  std::uint64_t extent = dtype_size(dtype);
  for (std::size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 0) return offset;
    extent += std::uint64_t(shape[d] - 1) * std::uint64_t(strides[d]);
  }
  return offset + extent;
}

std::vector<std::int64_t> default_chunks(const std::vector<Axis>& axes,
                                         const std::vector<std::int64_t>& shape) {
  std::vector<std::int64_t> c(shape.size(), 1);
  const int nd = int(shape.size());
  for (int d = 0; d < nd; ++d) {
    if (axes[std::size_t(d)].type != AxisType::kSpace) continue;
    const bool inplane = d >= nd - 2;
    c[std::size_t(d)] = std::max<std::int64_t>(
        1, std::min<std::int64_t>(shape[std::size_t(d)], inplane ? 256 : 32));
  }
  return c;
}

namespace {

class MappedSource final : public VolumeSource {
 public:
  MappedSource(VolumeInfo info, ArrayLayout layout, std::shared_ptr<const void> owner,
               std::span<const std::byte> data)
      : info_(std::move(info)), layout_(std::move(layout)), owner_(std::move(owner)), data_(data) {}

  const VolumeInfo& info() const override { return info_; }

  Result<ReadResult> read_chunk(int level, const Index& index,
                                std::span<std::byte> out) const override {
    if (level != 0)
      return fail(ErrorCode::kInvalidArgument, "{}: has one level, asked for {}", info_.location,
                  level);
    const auto& lv = info_.levels[0];
    const int nd = lv.ndim();
    const std::size_t item = dtype_size(info_.dtype);
    Index start{}, count{};
    bool partial = false;
    for (int d = 0; d < nd; ++d) {
      start[d] = index[d] * lv.chunks[std::size_t(d)];
      if (start[d] >= lv.shape[std::size_t(d)] || index[d] < 0)
        return fail(ErrorCode::kInvalidArgument, "{}: chunk index out of range", info_.location);
      count[d] = std::min(lv.chunks[std::size_t(d)], lv.shape[std::size_t(d)] - start[d]);
      partial |= count[d] != lv.chunks[std::size_t(d)];
    }
    if (partial) fill_with(out, info_.dtype, info_.fill_value);
    // Walk every row (all axes but the last) of the box.
    const int last = nd - 1;
    const auto row_bytes = std::size_t(count[last]) * item;
    const bool contiguous = layout_.strides[std::size_t(last)] == std::int64_t(item);
    Index pos{};
    std::uint64_t copied = 0;
    for (;;) {
      std::int64_t src = std::int64_t(layout_.offset), dst = 0;
      for (int d = 0; d < nd; ++d) {
        src += (start[d] + pos[d]) * layout_.strides[std::size_t(d)];
        dst = dst * lv.chunks[std::size_t(d)] + (d == last ? 0 : pos[d]);
      }
      std::byte* o = out.data() + std::size_t(dst) * item;
      const std::byte* s = data_.data() + src;
      if (contiguous) {
        std::memcpy(o, s, row_bytes);
      } else {
        const auto step = layout_.strides[std::size_t(last)];
        for (std::int64_t k = 0; k < count[last]; ++k)
          std::memcpy(o + k * std::int64_t(item), s + k * step, item);
      }
      if (layout_.big_endian) byteswap_inplace(std::span(o, row_bytes), item);
      copied += row_bytes;
      int d = last - 1;
      for (; d >= 0; --d) {
        if (++pos[d] < count[d]) break;
        pos[d] = 0;
      }
      if (d < 0) break;
    }
    return ReadResult{false, copied};
  }

 private:
  VolumeInfo info_;
  ArrayLayout layout_;
  std::shared_ptr<const void> owner_;
  std::span<const std::byte> data_;
};

}  // namespace

SourcePtr make_mapped_source(VolumeInfo info, ArrayLayout layout, std::shared_ptr<const void> owner,
                             std::span<const std::byte> data) {
  return std::make_shared<MappedSource>(std::move(info), std::move(layout), std::move(owner), data);
}

}  // namespace vx::data
