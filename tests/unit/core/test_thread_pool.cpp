#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <mutex>
#include <vector>

#include "core/error.hpp"
#include "core/thread_pool.hpp"

namespace vx {
namespace {

TEST(PriorityPool, RunsHigherPriorityFirstAndFifoAmongEquals) {
  PriorityPool pool(1);
  std::promise<void> gate;
  auto gate_f = gate.get_future().share();
  std::mutex m;
  std::vector<int> order;
  std::promise<void> done;
  pool.submit(0, [gate_f] { gate_f.wait(); });  // occupies the only worker
  pool.submit(1, [&] {
    std::lock_guard l(m);
    order.push_back(1);
  });
  pool.submit(5, [&] {
    std::lock_guard l(m);
    order.push_back(5);
  });
  pool.submit(1, [&] {
    std::lock_guard l(m);
    order.push_back(2);
  });
  pool.submit(-3, [&] {
    {
      std::lock_guard l(m);
      order.push_back(-3);
    }
    done.set_value();
  });
  gate.set_value();
  done.get_future().wait();
  EXPECT_EQ(order, (std::vector<int>{5, 1, 2, -3}));
}

TEST(PriorityPool, DestructionDropsQueuedTasksWithoutRunningThem) {
  std::atomic<int> ran{0};
  auto token = std::make_shared<int>(0);
  std::weak_ptr<int> weak = token;
  {
    std::promise<void> started, gate;  // declared before the pool: they outlive its workers
    auto gf = gate.get_future();
    PriorityPool pool(1);
    pool.submit(0, [&] {
      started.set_value();
      gf.wait();
    });
    started.get_future().wait();
    pool.submit(0, [&ran, t = std::move(token)] { ran++; });
    gate.set_value();
  }
  EXPECT_LE(ran.load(), 1);
  EXPECT_TRUE(weak.expired());  // captured state released either way
}

TEST(Error, ContextKeepsCodeAndNamesBoth) {
  auto e = with_context(Error{ErrorCode::kCorrupt, "bad crc"}, "chunk 0.1");
  EXPECT_EQ(e.code, ErrorCode::kCorrupt);
  EXPECT_EQ(e.what(), "corrupt data: chunk 0.1: bad crc");
}

}  // namespace
}  // namespace vx

namespace vx {
namespace {

TEST(PriorityPool, GrowsOnDemandAndNeverShrinks) {
  PriorityPool pool(2);
  EXPECT_EQ(pool.threads(), 2u);
  pool.ensure_threads(5);
  EXPECT_EQ(pool.threads(), 5u);
  pool.ensure_threads(3);
  EXPECT_EQ(pool.threads(), 5u);
  // All five run at once: each waits until all have started.
  std::atomic<int> started{0};
  std::promise<void> all;
  auto all_f = all.get_future().share();
  std::vector<std::future<void>> done;
  for (int i = 0; i < 5; ++i) {
    auto p = std::make_shared<std::promise<void>>();
    done.push_back(p->get_future());
    pool.submit(0, [&, p, all_f] {
      if (++started == 5) all.set_value();
      all_f.wait();
      p->set_value();
    });
  }
  for (auto& f : done)
    EXPECT_EQ(f.wait_for(std::chrono::seconds(20)), std::future_status::ready);
}

}  // namespace
}  // namespace vx
