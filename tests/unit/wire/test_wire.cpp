// wire over real UCX on loopback, over tcp and over shared memory, in every progress mode.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

#include "wire/wire.hpp"

namespace vx::wire {
namespace {

using namespace std::chrono_literals;

struct Param {
  const char* tls;
  ProgressMode mode;
};

std::string param_name(const testing::TestParamInfo<Param>& info) {
  std::string tls = info.param.tls;
  return tls + "_" + std::string(to_string(info.param.mode));
}

std::vector<std::byte> pattern(size_t n, uint32_t seed) {
  std::vector<std::byte> v(n);
  uint32_t x = seed * 2654435761u + 1;
  for (auto& b : v) {
    x = x * 1664525u + 1013904223u;
    b = std::byte(x >> 24);
  }
  return v;
}

std::span<const std::byte> cbytes(const std::vector<std::byte>& v) {
  return {v.data(), v.size()};
}
std::span<std::byte> wbytes(std::vector<std::byte>& v) {
  return {v.data(), v.size()};
}

// Waits on requests while a second node may need progress too (kEventFd / kPolling have
// no thread: this test drives both sides from one thread).
class Pump {
 public:
  explicit Pump(std::vector<Node*> nodes) : nodes_(std::move(nodes)) {}
  Result<Completion> wait(Request& r, std::chrono::milliseconds limit = 20s) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (!r.done()) {
      for (auto* n : nodes_)
        n->progress();
      if (std::chrono::steady_clock::now() > deadline) {
        return tl::unexpected(Error{Errc::kTimedOut, "test pump gave up"});
      }
      if (nodes_.front()->progress_mode() == ProgressMode::kThread)
        std::this_thread::sleep_for(50us);
    }
    return r.wait();
  }

 private:
  std::vector<Node*> nodes_;
};

class WireTest : public testing::TestWithParam<Param> {
 protected:
  Options options() const {
    Options o;
    o.transports = GetParam().tls;
    o.progress = GetParam().mode;
    return o;
  }
  // Server and one connected client; connect needs both sides progressed.
  void SetUp() override {
    auto s = Server::listen("127.0.0.1", 0, options(), [this](Endpoint) { ++accepted_; });
    ASSERT_TRUE(s) << s.error().what();
    server_.emplace(std::move(*s));
    auto c = Client::create(options());
    ASSERT_TRUE(c) << c.error().what();
    client_.emplace(std::move(*c));
    auto r = client_->connect_async("127.0.0.1", server_->port());
    auto got = pump().wait(r);
    ASSERT_TRUE(got) << got.error().what();
    ASSERT_NE(client_->id(), 0u);
  }
  Pump pump() { return Pump({&*server_, &*client_}); }
  Endpoint server_ep() {
    auto eps = server_->endpoints();
    return eps.empty() ? Endpoint() : eps.front();
  }

  std::optional<Server> server_;
  std::optional<Client> client_;
  std::atomic<int> accepted_{0};
};

TEST_P(WireTest, ConnectsAndAgreesOnTheId) {
  // The server calls on_accept after posting the welcome that completes the client's
  // connect, so the client can get here first (its progress thread, or this one): wait.
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (accepted_.load() == 0 && std::chrono::steady_clock::now() < deadline) {
    server_->progress();
    client_->progress();
    std::this_thread::sleep_for(100us);
  }
  EXPECT_EQ(accepted_.load(), 1);
  auto ep = server_ep();
  ASSERT_TRUE(ep);
  EXPECT_EQ(ep.id(), client_->id());
  EXPECT_TRUE(ep.connected());
  EXPECT_NE(ep.peer().find("127.0.0.1:"), std::string::npos);
  EXPECT_NE(server_->transports().find("tcp"), std::string::npos);
  // Shared memory survives peer error handling (MM_ERROR_HANDLING set by the library).
  auto info = client_->endpoint().info();
  if (std::string(GetParam().tls) == "shm") {
    EXPECT_TRUE(info.find("sysv/") != std::string::npos || info.find("posix/") != std::string::npos)
        << info;
  } else {
    EXPECT_NE(info.find("tcp/"), std::string::npos) << info;
  }
}

TEST_P(WireTest, BothDirectionsAtOnce) {
  auto a = pattern(1 << 20, 1), b = pattern(1 << 20, 2);
  std::vector<std::byte> at_server(a.size()), at_client(b.size());
  auto r1 = server_->recv(wbytes(at_server), 10, ~0ull);
  auto r2 = client_->recv(wbytes(at_client), 20, ~0ull);
  auto s1 = client_->send(cbytes(a), 10);
  auto s2 = server_ep().send(cbytes(b), 20);
  auto p = pump();
  for (auto* r : {&s1, &s2, &r1, &r2}) {
    auto got = p.wait(*r);
    ASSERT_TRUE(got) << got.error().what();
  }
  EXPECT_EQ(at_server, a);
  EXPECT_EQ(at_client, b);
  EXPECT_EQ(r1.wait()->length, a.size());
  EXPECT_EQ(r1.wait()->tag, 10u);
  EXPECT_EQ(s1.wait()->length, a.size());
  // Flush one endpoint and all of them, from both sides.
  auto f1 = server_->flush(server_ep());
  auto f2 = server_->flush();
  auto f3 = client_->flush(client_->endpoint());
  for (auto* f : {&f1, &f2, &f3})
    ASSERT_TRUE(p.wait(*f));
  auto bad = server_->flush(Endpoint()).wait();
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, Errc::kInvalidArgument);
}

TEST_P(WireTest, TagsMatchUnderMasksAndOutOfOrder) {
  std::vector<uint64_t> tags = {0x0300, 0x0101, 0x0202, 0x0999};
  std::vector<std::vector<std::byte>> msgs;
  std::vector<Request> sends;
  for (size_t i = 0; i < tags.size(); ++i)
    msgs.push_back(pattern(64 + i, uint32_t(i)));
  for (size_t i = 0; i < tags.size(); ++i)
    sends.push_back(client_->send(cbytes(msgs[i]), tags[i]));
  auto p = pump();
  std::vector<std::byte> buf(256);
  // Exact tag, out of send order.
  auto r = server_->recv(wbytes(buf), 0x0202, ~0ull);
  auto got = p.wait(r);
  ASSERT_TRUE(got) << got.error().what();
  EXPECT_EQ(got->tag, 0x0202u);
  EXPECT_EQ(got->length, msgs[2].size());
  EXPECT_TRUE(std::equal(msgs[2].begin(), msgs[2].end(), buf.begin()));
  // Mask on the high byte: 0x01xx.
  r = server_->recv(wbytes(buf), 0x0100, 0xff00);
  got = p.wait(r);
  ASSERT_TRUE(got);
  EXPECT_EQ(got->tag, 0x0101u);
  // Mask 0 matches anything: the oldest remaining message.
  r = server_->recv(wbytes(buf), 0, 0);
  got = p.wait(r);
  ASSERT_TRUE(got);
  EXPECT_EQ(got->tag, 0x0300u);
  r = server_->recv(wbytes(buf), 0x0999, ~0ull);
  ASSERT_TRUE(p.wait(r));
  for (auto& s : sends)
    ASSERT_TRUE(p.wait(s));
}

TEST_P(WireTest, LargeMessageLandsInTheGivenBuffer) {
  const size_t n = (64u << 20) + 4096;  // 64 MiB and more: rendezvous
  auto a = pattern(n, 7);
  std::vector<std::byte> dst(n, std::byte{0});
  const std::byte* where = dst.data();
  auto r = server_->recv(wbytes(dst), 5, ~0ull);
  auto s = client_->send(cbytes(a), 5);
  auto p = pump();
  auto got = p.wait(r, 60s);
  ASSERT_TRUE(got) << got.error().what();
  ASSERT_TRUE(p.wait(s));
  EXPECT_EQ(got->length, n);
  EXPECT_EQ(dst.data(), where);  // no reallocation: the very buffer
  EXPECT_EQ(std::memcmp(dst.data(), a.data(), n), 0);
}

TEST_P(WireTest, SmallerMessageReportsItsLength) {
  auto a = pattern(100, 3);
  std::vector<std::byte> dst(4096);
  auto r = server_->recv(wbytes(dst), 1, ~0ull);
  auto s = client_->send(cbytes(a), 1);
  auto got = pump().wait(r);
  ASSERT_TRUE(got);
  EXPECT_EQ(got->length, 100u);
}

TEST_P(WireTest, LargerMessageThanBufferIsAnError) {
  auto a = pattern(1024, 3);
  std::vector<std::byte> dst(512);
  auto s = client_->send(cbytes(a), 1);
  auto r = server_->recv(wbytes(dst), 1, ~0ull);
  auto got = pump().wait(r);
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().code, Errc::kTruncated);
  EXPECT_NE(got.error().message.find("512-byte"), std::string::npos) << got.error().message;
  (void)pump().wait(s);
}

TEST_P(WireTest, CancelledReceiveReportsCancelled) {
  std::vector<std::byte> dst(64);
  auto r = client_->recv(wbytes(dst), 99, ~0ull);
  r.cancel();
  r.cancel();
  auto got = pump().wait(r);
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().code, Errc::kCancelled);
}

TEST_P(WireTest, FlushThenCloseDeliversALargeMessage) {
  const size_t n = 16u << 20;
  auto a = pattern(n, 11);
  auto s = client_->send(cbytes(a), 77);
  // The receive is posted only after the sender asked to flush: the flush completes once
  // the data has reached the server.
  auto f = client_->flush();
  std::vector<std::byte> dst(n);
  auto r = server_->recv(wbytes(dst), 77, ~0ull);
  auto p = pump();
  ASSERT_TRUE(p.wait(f));
  ASSERT_TRUE(p.wait(s));
  auto closing = client_->endpoint().close();
  auto got = p.wait(r);
  ASSERT_TRUE(got) << got.error().what();
  EXPECT_EQ(got->length, n);
  EXPECT_EQ(dst, a);
  (void)p.wait(closing);
}

TEST_P(WireTest, ClosingTwiceIsANoOp) {
  auto ep = client_->endpoint();
  auto p = pump();
  auto c1 = ep.close();
  ASSERT_TRUE(p.wait(c1));
  auto c2 = ep.close();
  ASSERT_TRUE(p.wait(c2));
  EXPECT_FALSE(ep.connected());
  auto s = ep.send(cbytes(pattern(8, 1)), 1);
  auto got = s.wait();
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().code, Errc::kClosed);
  EXPECT_TRUE(client_->close());
  EXPECT_TRUE(client_->close());
  EXPECT_TRUE(server_->close());
  EXPECT_TRUE(server_->close());
}

TEST_P(WireTest, ServerSeesAClosedClientLeave) {
  std::vector<std::byte> dst(64);
  ASSERT_EQ(server_->endpoints().size(), 1u);
  // A graceful close is a handshake: both sides need progress.
  auto closing = client_->endpoint().close();
  ASSERT_TRUE(pump().wait(closing));
  ASSERT_TRUE(client_->close());
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!server_->endpoints().empty() && std::chrono::steady_clock::now() < deadline) {
    server_->progress();
    std::this_thread::sleep_for(1ms);
  }
  EXPECT_TRUE(server_->endpoints().empty());
}

TEST_P(WireTest, CloseFromACallbackIsRefused) {
  // A callback runs inside UCX progress: closing there would re-enter it (or join the
  // progress thread from itself). It is refused; closing afterwards works.
  std::atomic<int> code{-1};
  std::vector<std::byte> buf(8);
  auto r = client_->recv(wbytes(buf), 1, ~0ull, [&](const Result<Completion>&) {
    auto st = client_->close();
    code = st ? 0 : int(st.error().code) + 1;
  });
  auto data = pattern(8, 1);
  auto s = server_ep().send(cbytes(data), 1);
  ASSERT_TRUE(pump().wait(r));
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (code.load() < 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(1ms);
  }
  EXPECT_EQ(code.load(), int(Errc::kInvalidArgument) + 1);
  EXPECT_FALSE(client_->closed());
  EXPECT_TRUE(client_->close(/*force=*/true));  // graceful would need the server pumped
}

const Param kParams[] = {
    {"tcp", ProgressMode::kThread},  {"tcp", ProgressMode::kEventFd},
    {"tcp", ProgressMode::kPolling}, {"shm", ProgressMode::kThread},
    {"shm", ProgressMode::kEventFd}, {"shm", ProgressMode::kPolling},
};
INSTANTIATE_TEST_SUITE_P(Transports, WireTest, testing::ValuesIn(kParams), param_name);

}  // namespace
}  // namespace vx::wire
