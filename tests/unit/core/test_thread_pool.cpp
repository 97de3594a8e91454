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
