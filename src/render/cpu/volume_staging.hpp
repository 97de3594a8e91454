// The slice pass's staging of slices whose lines are strided in memory (volume_pass.cpp).
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "render/cpu/volume_impl.hpp"

namespace vx::render::cpu {

// Eight runs of 8 voxels along c (run r at src + r * sa, voxel q of it at q * sc, sc = 1 or
// -1) written transposed: voxel q of every run into d[q][j .. j + 7]. 16-bit voxels.
template <class T>
inline void transpose8(const T* src, std::int64_t sa, std::int64_t sc, T* const* d,
                       std::int64_t j) {
  using V = std::uint16_t __attribute__((vector_size(16)));
  V r[8];
  for (int q = 0; q < 8; ++q) {
    std::memcpy(&r[q], sc > 0 ? src + q * sa : src + q * sa - 7, sizeof(V));
    if (sc < 0) r[q] = __builtin_shufflevector(r[q], r[q], 7, 6, 5, 4, 3, 2, 1, 0);
  }
  const V t0 = __builtin_shufflevector(r[0], r[1], 0, 8, 1, 9, 2, 10, 3, 11);
  const V t1 = __builtin_shufflevector(r[0], r[1], 4, 12, 5, 13, 6, 14, 7, 15);
  const V t2 = __builtin_shufflevector(r[2], r[3], 0, 8, 1, 9, 2, 10, 3, 11);
  const V t3 = __builtin_shufflevector(r[2], r[3], 4, 12, 5, 13, 6, 14, 7, 15);
  const V t4 = __builtin_shufflevector(r[4], r[5], 0, 8, 1, 9, 2, 10, 3, 11);
  const V t5 = __builtin_shufflevector(r[4], r[5], 4, 12, 5, 13, 6, 14, 7, 15);
  const V t6 = __builtin_shufflevector(r[6], r[7], 0, 8, 1, 9, 2, 10, 3, 11);
  const V t7 = __builtin_shufflevector(r[6], r[7], 4, 12, 5, 13, 6, 14, 7, 15);
  const V u0 = __builtin_shufflevector(t0, t2, 0, 1, 8, 9, 2, 3, 10, 11);
  const V u1 = __builtin_shufflevector(t0, t2, 4, 5, 12, 13, 6, 7, 14, 15);
  const V u2 = __builtin_shufflevector(t1, t3, 0, 1, 8, 9, 2, 3, 10, 11);
  const V u3 = __builtin_shufflevector(t1, t3, 4, 5, 12, 13, 6, 7, 14, 15);
  const V u4 = __builtin_shufflevector(t4, t6, 0, 1, 8, 9, 2, 3, 10, 11);
  const V u5 = __builtin_shufflevector(t4, t6, 4, 5, 12, 13, 6, 7, 14, 15);
  const V u6 = __builtin_shufflevector(t5, t7, 0, 1, 8, 9, 2, 3, 10, 11);
  const V u7 = __builtin_shufflevector(t5, t7, 4, 5, 12, 13, 6, 7, 14, 15);
  const V o[8] = {__builtin_shufflevector(u0, u4, 0, 1, 2, 3, 8, 9, 10, 11),
                  __builtin_shufflevector(u0, u4, 4, 5, 6, 7, 12, 13, 14, 15),
                  __builtin_shufflevector(u1, u5, 0, 1, 2, 3, 8, 9, 10, 11),
                  __builtin_shufflevector(u1, u5, 4, 5, 6, 7, 12, 13, 14, 15),
                  __builtin_shufflevector(u2, u6, 0, 1, 2, 3, 8, 9, 10, 11),
                  __builtin_shufflevector(u2, u6, 4, 5, 6, 7, 12, 13, 14, 15),
                  __builtin_shufflevector(u3, u7, 0, 1, 2, 3, 8, 9, 10, 11),
                  __builtin_shufflevector(u3, u7, 4, 5, 6, 7, 12, 13, 14, 15)};
  for (int q = 0; q < 8; ++q)
    std::memcpy(d[q] + j, &o[q], sizeof(V));
}

// When the slicing axis c is the contiguous one in memory, a line along a of one slice is a
// strided gather (one cache line per voxel). The slice pass then stages a group of slices at
// a time for the rows it draws: each (row, a) run of K voxels along c is read once,
// contiguously, and written transposed, so that the lines of every slice of the group are
// contiguous. The group never crosses a brick boundary along c.
template <class T>
struct Staging {
  // A cache line's worth of voxels along c (its other voxels are read again otherwise).
  static constexpr int kMaxSlices = int(std::clamp<std::size_t>(64 / sizeof(T), 8, 32));
  bool on = false;                        // the axis order calls for it (see slice_rows)
  std::int64_t k_first = 0, k_last = -1;  // slices of the group, k_first first (in dir)
  int count = 0;                          // slices in the group
  // Per slice of the group its first row (rows follow the shear), rows per slice, columns.
  std::array<std::int64_t, kMaxSlices> b_lo{}, b_hi{};
  std::int64_t nb = 0, a_lo = 0, na = 0;
  std::vector<T> buf;  // [slice index in group][b - b_lo[slice]][a - a_lo]
  std::vector<T> scratch;

  bool holds(std::int64_t k, int dir, std::int64_t b0, std::int64_t b1, std::int64_t a0,
             std::int64_t a1) const {
    const std::int64_t i = (k - k_first) * dir;
    if (count <= 0 || i < 0 || i >= count) return false;
    const auto lo = b_lo[std::size_t(i)], hi = b_hi[std::size_t(i)];
    return b0 >= lo && b1 >= lo && b0 <= hi && b1 <= hi && a0 >= a_lo && a1 < a_lo + na;
  }
  const T* line(std::int64_t k, int dir, std::int64_t b, std::int64_t a) const {
    const auto i = std::size_t((k - k_first) * dir);
    return buf.data() + std::size_t((std::int64_t(i) * nb + (b - b_lo[i])) * na + (a - a_lo));
  }

  // Stages slices k, k + dir, ... (at most kMaxSlices, up to the end of the brick along c and
  // to k_end), rows [rows(k).first, rows(k).second] of each and columns [a0, a1].
  template <class Rows>
  void fill(const Geom& g, const Bricks& br, const Slicing& s, std::int64_t k, std::int64_t k_end,
            const Rows& rows, std::int64_t a0, std::int64_t a1) {
    const auto C = std::size_t(s.c), A = std::size_t(s.a), B = std::size_t(s.b);
    const std::int64_t in_brick = s.dir > 0 ? g.chunk[C] - k % g.chunk[C] : k % g.chunk[C] + 1;
    const std::int64_t left = (k_end - k) * s.dir + 1;
    count = int(std::min<std::int64_t>({kMaxSlices, in_brick, left}));
    k_first = k;
    k_last = k + s.dir * (count - 1);
    nb = 0;
    std::int64_t all_lo = std::numeric_limits<std::int64_t>::max(), all_hi = -1;
    for (int i = 0; i < count; ++i) {
      const auto [lo, hi] = rows(k + s.dir * i);
      b_lo[std::size_t(i)] = lo, b_hi[std::size_t(i)] = hi;
      nb = std::max(nb, hi - lo + 1);
      all_lo = std::min(all_lo, lo), all_hi = std::max(all_hi, hi);
    }
    a_lo = a0, na = a1 - a0 + 1;
    buf.resize(std::size_t(nb * count * na));
    const std::int64_t ck = k / g.chunk[C], sc = g.stride[C] * s.dir, sa = g.stride[A];
    // Row by row and brick by brick, every slice that needs the row: the cache lines of one
    // (row, brick) run hold all the group's slices, so they are read from memory once.
    for (std::int64_t b = all_lo; b <= all_hi; ++b) {
      const std::int64_t cb = b / g.chunk[B];
      for (std::int64_t ca = a0 / g.chunk[A]; ca <= a1 / g.chunk[A]; ++ca) {
        const std::int64_t first = std::max(a0, ca * g.chunk[A]);
        const std::int64_t last = std::min(a1, ca * g.chunk[A] + g.chunk[A] - 1);
        const std::int64_t cnt = last - first + 1;
        I3 idx{};
        idx[C] = ck, idx[B] = cb, idx[A] = ca;
        bool in = true;
        for (std::size_t d = 0; d < 3; ++d)
          in &= idx[d] >= br.lo[d] && idx[d] < br.lo[d] + br.dim[d];
        const std::byte* p = in ? br.ptr[br.flat(idx[0], idx[1], idx[2])] : nullptr;
        const T* src = p ? reinterpret_cast<const T*>(p) + g.base + (k % g.chunk[C]) * g.stride[C] +
                               (b % g.chunk[B]) * g.stride[B] + (first % g.chunk[A]) * sa
                         : nullptr;
        if (src && (b + 1) % g.chunk[B] != 0 && b + 1 <= all_hi)
          for (std::int64_t j = 0; j < cnt; ++j)  // the next row's lines, while this one copies
            __builtin_prefetch(src + g.stride[B] + j * sa);
        int i = 0;
        if constexpr (sizeof(T) == 2) {
          // 8 slices by 8 columns at a time, where all 8 slices need the row: an 8 x 8
          // transpose in registers instead of 64 single loads and stores.
          if (src && (sc == 1 || sc == -1)) {
            auto dst_of = [&](int slice) {
              return buf.data() + std::size_t((slice * nb + (b - b_lo[std::size_t(slice)])) * na +
                                              (first - a_lo));
            };
            // Slices of a block that do not need the row (the rows follow the shear) write
            // into a scratch line instead.
            scratch.resize(std::size_t(na) + 8);
            for (; i + 8 <= count; i += 8) {
              T* d[8];
              bool any = false;
              for (int q = 0; q < 8; ++q) {
                const auto sq = std::size_t(i + q);
                const bool need = b >= b_lo[sq] && b <= b_hi[sq];
                d[q] = need ? dst_of(i + q) : scratch.data();
                any |= need;
              }
              if (!any) continue;
              std::int64_t j = 0;
              for (; j + 8 <= cnt; j += 8)
                transpose8(src + j * sa + i * sc, sa, sc, d, j);
              for (; j < cnt; ++j)
                for (int q = 0; q < 8; ++q)
                  d[q][j] = src[j * sa + (i + q) * sc];
            }
          }
        }
        for (; i < count; ++i) {
          const auto si = std::size_t(i);
          if (b < b_lo[si] || b > b_hi[si]) continue;
          T* dst = buf.data() + std::size_t((i * nb + (b - b_lo[si])) * na + (first - a_lo));
          if (!src) {
            std::fill(dst, dst + cnt, T(0));
            continue;
          }
          const T* e = src + i * sc;
          for (std::int64_t j = 0; j < cnt; ++j)
            dst[j] = e[j * sa];
        }
      }
    }
  }
};

}  // namespace vx::render::cpu
