// The blocking helpers over ChunkCache's asynchronous requests: pin a set of chunks
// (get_chunks, get_chunks_partial) and copy a box of voxels (read_region).
#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>

#include "data/chunk_cache.hpp"

namespace vx::data {

PartialChunks get_chunks_partial(ChunkCache& cache, SourceId id, int level,
                                 std::span<const Index> indices, int priority,
                                 std::optional<std::chrono::steady_clock::time_point> deadline,
                                 const std::atomic<bool>* cancel) {
  PartialChunks out;
  out.pins.resize(indices.size());
  // Hits first, without callbacks: a warm view (every frame of an interaction) ends here.
  std::vector<std::size_t> missing;
  for (std::size_t i = 0; i < indices.size(); ++i) {
    if (auto pin = cache.try_get(id, level, indices[i]))
      out.pins[i] = std::move(*pin);
    else
      missing.push_back(i);
  }
  if (missing.empty()) return out;
  // Shared with the callbacks: with a deadline they may run after this returns.
  struct State {
    std::mutex m;
    std::condition_variable cv;
    std::size_t pending = 0;
    PartialChunks got;
    std::vector<bool> done;
  };
  auto st = std::make_shared<State>();
  st->pending = missing.size();
  st->got.pins.resize(indices.size());
  st->done.assign(indices.size(), false);
  std::vector<ChunkRequest> tickets;
  tickets.reserve(cancel ? missing.size() : 0);
  for (const std::size_t i : missing) {
    auto ticket = cache.request(id, level, indices[i], priority, [st, i](Result<ChunkPin> r) {
      std::lock_guard lock(st->m);
      if (r)
        st->got.pins[i] = std::move(*r);
      else
        st->got.failed.emplace_back(i, r.error());
      st->done[i] = true;
      if (--st->pending == 0) st->cv.notify_all();
    });
    if (cancel) tickets.push_back(std::move(ticket));
  }
  std::unique_lock lock(st->m);
  const auto all = [&] { return st->pending == 0; };
  if (cancel) {  // looks every 50 ms; when cancelled, what is not read yet is not wanted
    constexpr auto kLook = std::chrono::milliseconds(50);
    while (!st->cv.wait_for(lock, kLook, all) && !cancel->load(std::memory_order_relaxed) &&
           (!deadline || std::chrono::steady_clock::now() < *deadline)) {
    }
    if (!all() && cancel->load(std::memory_order_relaxed)) {
      lock.unlock();  // a callback may be waiting for the lock: cancel() waits for it
      for (auto& t : tickets)
        t.cancel();
      lock.lock();
    }
  } else if (deadline) {
    st->cv.wait_until(lock, *deadline, all);
  } else {
    st->cv.wait(lock, all);
  }
  const bool cancelled = cancel && cancel->load(std::memory_order_relaxed);
  for (const std::size_t i : missing) {
    if (st->done[i]) {
      if (st->got.pins[i]) out.pins[i] = std::move(st->got.pins[i]);
      continue;
    }
    if (cancelled)
      out.failed.emplace_back(
          i, Error{ErrorCode::kCancelled,
                   fmt::format("a chunk of level {} was not read: cancelled", level)});
    else
      out.failed.emplace_back(
          i, Error{ErrorCode::kBusy,
                   fmt::format("a chunk of level {} was not ready within the time allowed (still "
                               "on its way)",
                               level)});
  }
  for (auto& f : st->got.failed)
    out.failed.push_back(std::move(f));
  std::sort(out.failed.begin(), out.failed.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  return out;
}

Result<std::vector<ChunkPin>> get_chunks(ChunkCache& cache, SourceId id, int level,
                                         std::span<const Index> indices, int priority) {
  auto got = get_chunks_partial(cache, id, level, indices, priority);
  if (!got.failed.empty()) return tl::unexpected(got.failed.front().second);
  return std::move(got.pins);
}

// --- read_region ----------------------------------------------------------------------------

Status read_region(ChunkCache& cache, SourceId id, int level, std::span<const std::int64_t> start,
                   std::span<const std::int64_t> shape, std::span<std::byte> out, int priority) {
  const auto& info = cache.source(id).info();
  if (level < 0 || level >= int(info.levels.size()))
    return fail(ErrorCode::kInvalidArgument, "{}: level {} does not exist ({} levels)",
                info.location, level, info.levels.size());
  const auto& lv = info.levels[std::size_t(level)];
  const int nd = lv.ndim();
  if (int(start.size()) != nd || int(shape.size()) != nd)
    return fail(ErrorCode::kInvalidArgument, "{}: a box needs {} axes, got {}", info.location, nd,
                start.size());
  const std::size_t item = dtype_size(info.dtype);
  std::size_t total = item;
  bool inside = true;
  for (int d = 0; d < nd; ++d) {
    if (shape[std::size_t(d)] < 0)
      return fail(ErrorCode::kInvalidArgument, "{}: box size on axis '{}' is negative",
                  info.location, info.axes[std::size_t(d)].name);
    total *= std::size_t(shape[std::size_t(d)]);
    inside &= start[std::size_t(d)] >= 0 &&
              start[std::size_t(d)] + shape[std::size_t(d)] <= lv.shape[std::size_t(d)];
  }
  if (out.size() != total)
    return fail(ErrorCode::kInvalidArgument, "region buffer has {} bytes, the box needs {}",
                out.size(), total);
  if (total == 0) return {};
  if (!inside) fill_with(out, info.dtype, info.fill_value);

  // Chunk range clipped to the array.
  Index c0{}, c1{};
  for (int d = 0; d < nd; ++d) {
    const auto lo = std::max<std::int64_t>(start[std::size_t(d)], 0);
    const auto hi =
        std::min(start[std::size_t(d)] + shape[std::size_t(d)], lv.shape[std::size_t(d)]);
    if (hi <= lo) return {};
    c0[d] = lo / lv.chunks[std::size_t(d)];
    c1[d] = (hi - 1) / lv.chunks[std::size_t(d)] + 1;
  }

  struct Shared {
    std::mutex m;
    std::condition_variable cv;
    std::size_t pending = 0;
    std::optional<Error> error;
  } sh;
  std::vector<ChunkRequest> tickets;

  auto copy = [&, nd, item](const Index& ci, const ChunkPin& pin) {
    // Overlap of chunk ci with the box, in array coordinates.
    Index lo{}, cnt{};
    for (int d = 0; d < nd; ++d) {
      const auto cs = lv.chunks[std::size_t(d)];
      const auto a = std::max(ci[d] * cs, start[std::size_t(d)]);
      const auto b = std::min({(ci[d] + 1) * cs, start[std::size_t(d)] + shape[std::size_t(d)],
                               lv.shape[std::size_t(d)]});
      lo[d] = a;
      cnt[d] = b - a;
    }
    const std::byte* src = pin.bytes().data();
    Index pos{};
    const int last = nd - 1;
    for (;;) {
      std::int64_t so = 0, dof = 0;
      for (int d = 0; d < nd; ++d) {
        const auto p = lo[d] + (d == last ? 0 : pos[d]);
        so = so * lv.chunks[std::size_t(d)] + (p - ci[d] * lv.chunks[std::size_t(d)]);
        dof = dof * shape[std::size_t(d)] + (p - start[std::size_t(d)]);
      }
      std::memcpy(out.data() + std::size_t(dof) * item, src + std::size_t(so) * item,
                  std::size_t(cnt[last]) * item);
      int d = last - 1;
      for (; d >= 0; --d) {
        if (++pos[d] < cnt[d]) break;
        pos[d] = 0;
      }
      if (d < 0) break;
    }
  };

  Index ci = c0;
  std::size_t n = 1;
  for (int d = 0; d < nd; ++d)
    n *= std::size_t(c1[d] - c0[d]);
  sh.pending = n;
  for (std::size_t k = 0; k < n; ++k) {
    tickets.push_back(cache.request(id, level, ci, priority, [&, ci](Result<ChunkPin> r) {
      if (r) copy(ci, *r);
      std::lock_guard lock(sh.m);
      if (!r && !sh.error) sh.error = r.error();
      if (--sh.pending == 0) sh.cv.notify_all();
    }));
    for (int d = nd - 1; d >= 0; --d) {
      if (++ci[d] < c1[d]) break;
      ci[d] = c0[d];
    }
  }
  std::unique_lock lock(sh.m);
  sh.cv.wait(lock, [&] { return sh.pending == 0; });
  if (sh.error) return tl::unexpected(*sh.error);
  return {};
}

}  // namespace vx::data
