// The streaming session without a network: the frame header, latest-wins pacing (a frame
// is rendered only once the previous one is written), keyframes, and errors that leave
// the scene as it was.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <condition_variable>
#include <thread>

#include "stream/session.hpp"

namespace vx::stream {
namespace {

TEST(FrameHeader, RoundTripsEveryFieldLittleEndian) {
  FrameHeader h;
  h.codec = 1;
  h.flags = kKeyframe | kInteractive;
  h.frame_seq = 0x01020304;
  h.state_seq = 77;
  h.width = 1920;
  h.height = 1080;
  h.render_us = 1234;
  h.encode_us = 567;
  h.server_us = 8910;
  h.payload = 3;
  h.wall_us = 0x0102030405060708ull;
  std::vector<std::uint8_t> buf(kHeaderBytes + 3);
  write_header(h, buf.data());
  EXPECT_EQ(std::string(buf.begin(), buf.begin() + 4), "VXF1");
  EXPECT_EQ(buf[8], 0x04);  // little-endian
  auto back = read_header(buf.data(), buf.size());
  ASSERT_TRUE(back) << back.error().what();
  EXPECT_EQ(back->frame_seq, h.frame_seq);
  EXPECT_EQ(back->flags, h.flags);
  EXPECT_EQ(back->wall_us, h.wall_us);
  EXPECT_EQ(back->width, 1920);
  EXPECT_FALSE(read_header(buf.data(), 20));              // short
  EXPECT_FALSE(read_header(buf.data(), buf.size() - 1));  // payload length disagrees
  buf[0] = 'X';
  EXPECT_FALSE(read_header(buf.data(), buf.size()));  // magic
}

struct Harness {
  std::shared_ptr<data::VolumeSource> src =
      *data::open_volume("synthetic:cells?shape=16x64x64&chunk=32");
  data::ChunkCache cache{data::CacheOptions{64u << 20, 2, 4}};
  PriorityPool pool{2};
  Engine engine;
  std::mutex m;
  std::condition_variable cv;
  std::vector<FrameHeader> frames;

  Harness() {
    engine.cache = &cache;
    engine.ids = {cache.add_source(src)};
    engine.datasets = {src->info()};
    engine.defaults = {render::default_scene(render::SceneData{{src->info()}}, 64, 48)};
    engine.pool = &pool;
  }
  std::function<void(FrameBytes)> sink() {
    return [this](FrameBytes f) {
      std::lock_guard lock(m);
      frames.push_back(*read_header(f->data(), f->size()));
      cv.notify_all();
    };
  }
  // Returns once every task queued on the pool before the call has finished: one task per
  // worker, below every other priority, each waiting until all of them run at once (so no
  // worker is busy with anything else). An event, not a sleep.
  bool drain() {
    struct Barrier {
      std::mutex m;
      std::condition_variable cv;
      unsigned started = 0, finished = 0;
    };
    auto b = std::make_shared<Barrier>();
    const unsigned n = pool.threads();
    for (unsigned i = 0; i < n; ++i)
      pool.submit(-1000, [b, n] {
        std::unique_lock lock(b->m);
        ++b->started;
        b->cv.notify_all();
        b->cv.wait_for(lock, std::chrono::seconds(30), [&] { return b->started == n; });
        ++b->finished;
        b->cv.notify_all();
      });
    std::unique_lock lock(b->m);
    return b->cv.wait_for(lock, std::chrono::seconds(60), [&] { return b->finished == n; }) &&
           b->started == n;
  }
  bool wait_frames(std::size_t n) {
    std::unique_lock lock(m);
    return cv.wait_for(lock, std::chrono::seconds(30), [&] { return frames.size() >= n; });
  }
};

TEST(Session, RendersOnlyWhenThePreviousFrameIsWrittenAndAlwaysTheLatestState) {
  Harness h;
  auto s = Session::create(h.engine, 0, {codec::Codec::kJpeg});
  ASSERT_TRUE(s) << s.error().what();
  auto session = *s;
  const auto gen = session->attach(h.sink());
  ASSERT_TRUE(h.wait_frames(1));
  // Not written yet: updates pile up, nothing is rendered.
  for (int i = 1; i <= 5; ++i)
    ASSERT_TRUE(session->update(std::uint64_t(i), {{"camera", {{"zoom", 1.0 + i}}}}, false));
  ASSERT_TRUE(h.drain());  // a render the updates started would have finished by now
  {
    std::lock_guard lock(h.m);
    EXPECT_EQ(h.frames.size(), 1u);
    EXPECT_TRUE(h.frames[0].flags & kKeyframe);
  }
  // Written: the next frame shows the latest state, 5; states 1..4 were skipped.
  session->written(gen);
  ASSERT_TRUE(h.wait_frames(2));
  {
    std::lock_guard lock(h.m);
    EXPECT_EQ(h.frames[1].state_seq, 5u);
    EXPECT_EQ(h.frames[1].frame_seq, 2u);
  }
  EXPECT_GE(session->take_stats().skipped, 4u);
  // A replaced sink's written() does nothing; the new sink starts with a keyframe.
  const auto gen2 = session->attach(h.sink());
  session->written(gen);
  ASSERT_TRUE(h.wait_frames(3));
  {
    std::lock_guard lock(h.m);
    EXPECT_TRUE(h.frames[2].flags & kKeyframe);
  }
  session->detach(gen2);
  session->close();
}

TEST(Session, RejectedUpdatesLeaveTheSceneAsItWas) {
  Harness h;
  auto session = *Session::create(h.engine, 0, {codec::Codec::kH264});
  const auto before = session->scene_json();
  auto bad = session->update(1, {{"camera", {{"zoom", "near"}}}}, false);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("camera.zoom"), std::string::npos);
  EXPECT_EQ(session->scene_json(), before);
  EXPECT_FALSE(session->update(2, {{"canvas", {{"width", 65}}}}, false));  // odd for H.264
  ASSERT_TRUE(session->update(3, {{"camera", {{"zoom", 2}}}}, false));
  auto stale = session->update(3, json::object(), false);
  ASSERT_FALSE(stale);
  EXPECT_EQ(stale.error().message.rfind("field 'seq'", 0), 0u);
  EXPECT_FALSE(Session::create(h.engine, 3, {codec::Codec::kH264}));
  EXPECT_FALSE(Session::create(h.engine, 0, {}));
  session->close();
}

TEST(DerivedCatalog, AnEntryLivesWhileHeldAndItsChainHoldsItsInput) {
  // Entries are shared by key; the last holder removes the source from the cache and the
  // catalog; a source made from another holds it; a key asked for again after its entry went
  // is made anew under a new id.
  data::ChunkCache cache{data::CacheOptions{16u << 20, 1, 2}};
  auto catalog = std::make_shared<DerivedCatalog>();
  std::shared_ptr<const data::VolumeSource> src =
      *data::open_volume("synthetic:cells?shape=16x64x64&chunk=32");
  int made = 0;
  const auto make = [&]() -> Result<std::shared_ptr<const data::VolumeSource>> {
    ++made;
    return src;  // any source does: the catalog only registers and counts it
  };
  const auto base = cache.counters().sources;
  auto a = catalog->get("0|gaussian|1", cache, nullptr, make);
  ASSERT_TRUE(a);
  auto a2 = catalog->get("0|gaussian|1", cache, nullptr, make);
  ASSERT_TRUE(a2);
  EXPECT_EQ(a->get(), a2->get());
  EXPECT_EQ(made, 1);
  const auto a_id = (*a)->id;
  auto chained = catalog->get(fmt::format("{}|median|1", a_id), cache, *a, make);
  ASSERT_TRUE(chained);
  EXPECT_EQ(catalog->size(), 2u);
  EXPECT_EQ(cache.counters().sources, base + 2);
  a->reset();
  a2->reset();  // the chain still reads it
  EXPECT_EQ(cache.counters().sources, base + 2);
  EXPECT_NO_THROW((void)cache.source(a_id));
  chained->reset();  // the last holder of both
  EXPECT_EQ(cache.counters().sources, base);
  EXPECT_EQ(catalog->size(), 0u);
  EXPECT_THROW((void)cache.source(a_id), std::out_of_range);
  auto again = catalog->get("0|gaussian|1", cache, nullptr, make);
  ASSERT_TRUE(again);
  EXPECT_NE((*again)->id, a_id);
  EXPECT_EQ(made, 3);
  // A failing make() registers nothing and says why.
  auto bad = catalog->get("0|gaussian|2", cache, nullptr,
                          []() -> Result<std::shared_ptr<const data::VolumeSource>> {
                            return fail(ErrorCode::kInvalidArgument, "field 'sigma': bad");
                          });
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("sigma"), std::string::npos);
  EXPECT_EQ(cache.counters().sources, base + 1);
  // Entries outliving the catalog still leave the cache.
  catalog.reset();
  again->reset();
  EXPECT_EQ(cache.counters().sources, base);
}

}  // namespace
}  // namespace vx::stream
