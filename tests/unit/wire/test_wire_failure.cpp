// wire when things go wrong: peers killed with SIGKILL, closed ports, bad addresses, and
// a progress thread that must sleep when idle. The peer runs in a child process made by
// re-running this binary (fork + exec, so no UCX object crosses the fork).
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <ucp/api/ucp.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "wire/wire.hpp"

namespace vx::wire {
namespace {

using namespace std::chrono_literals;

std::string self_exe() {
  char buf[4096];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  return n > 0 ? std::string(buf, size_t(n)) : std::string();
}

// Runs `filter` of this binary in a child with `env` added; returns its pid.
pid_t spawn_child(const std::string& filter, const std::vector<std::string>& env) {
  pid_t pid = fork();
  if (pid == 0) {
    for (auto& e : env)
      putenv(const_cast<char*>(e.c_str()));
    std::string exe = self_exe();
    std::string arg = "--gtest_filter=" + filter;
    execl(exe.c_str(), exe.c_str(), arg.c_str(), "--gtest_also_run_disabled_tests",
          static_cast<char*>(nullptr));
    _exit(127);
  }
  return pid;
}

void kill_child(pid_t pid) {
  kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
}

Options options_for(const char* tls) {
  Options o;
  o.transports = tls;
  return o;
}

// ---- the child halves (skipped unless run as a child) -----------------------------

TEST(WireChild, DISABLED_ClientThatHangs) {
  const char* port = std::getenv("VX_WIRE_CHILD_PORT");
  if (!port) GTEST_SKIP() << "runs only as a child of the SIGKILL tests";
  // Polling mode: after connecting, nothing progresses this client, so whatever the
  // server sends it stays pending (large messages go eagerly over shared memory and
  // would otherwise complete into this process's unexpected queue).
  auto opts = options_for(std::getenv("VX_WIRE_CHILD_TLS"));
  opts.progress = ProgressMode::kPolling;
  auto client = Client::connect("127.0.0.1", uint16_t(std::atoi(port)), opts);
  ASSERT_TRUE(client) << client.error().what();
  std::this_thread::sleep_for(600s);  // killed long before
}

TEST(WireChild, DISABLED_ServerThatHangs) {
  const char* fd = std::getenv("VX_WIRE_CHILD_FD");
  if (!fd) GTEST_SKIP() << "runs only as a child of the SIGKILL tests";
  auto server = Server::listen("127.0.0.1", 0, options_for(std::getenv("VX_WIRE_CHILD_TLS")));
  ASSERT_TRUE(server) << server.error().what();
  uint16_t port = server->port();
  ASSERT_EQ(write(std::atoi(fd), &port, sizeof port), ssize_t(sizeof port));
  std::this_thread::sleep_for(600s);
}

// ---- the tests ----------------------------------------------------------------------

class WireFailure : public testing::TestWithParam<const char*> {};

TEST_P(WireFailure, KilledClientFailsPendingSendsAndLeavesTheList) {
  std::atomic<int> gone{0};
  Error why;
  auto server =
      Server::listen("127.0.0.1", 0, options_for(GetParam()), {}, [&](Endpoint, const Error& e) {
        why = e;
        ++gone;
      });
  ASSERT_TRUE(server) << server.error().what();
  std::string port_env = "VX_WIRE_CHILD_PORT=" + std::to_string(server->port());
  std::string tls_env = std::string("VX_WIRE_CHILD_TLS=") + GetParam();
  pid_t child = spawn_child("WireChild.DISABLED_ClientThatHangs", {port_env, tls_env});
  auto deadline = std::chrono::steady_clock::now() + 20s;
  while (server->endpoints().empty() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(5ms);
  }
  ASSERT_EQ(server->endpoints().size(), 1u) << "the child never connected";
  auto ep = server->endpoints().front();
  // The child never progresses: this send stays pending until the child dies.
  std::vector<std::byte> big(32u << 20, std::byte{2});
  auto pending = ep.send({big.data(), big.size()}, 9);
  std::this_thread::sleep_for(100ms);
  EXPECT_FALSE(pending.done());
  kill_child(child);
  auto got = pending.wait_for(30s);
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().code, Errc::kPeerFailure) << got.error().what();
  EXPECT_NE(got.error().message.find("127.0.0.1"), std::string::npos) << got.error().message;
  deadline = std::chrono::steady_clock::now() + 10s;
  while (gone.load() == 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(5ms);
  }
  EXPECT_EQ(gone.load(), 1);
  EXPECT_TRUE(server->endpoints().empty());
  EXPECT_FALSE(ep.connected());
  // New operations on the dead endpoint fail at once, naming the peer.
  auto again = ep.send({big.data(), 8}, 1).wait_for(1s);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, Errc::kPeerFailure);
}

TEST_P(WireFailure, KilledServerFailsThePendingReceive) {
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  std::string fd_env = "VX_WIRE_CHILD_FD=" + std::to_string(fds[1]);
  std::string tls_env = std::string("VX_WIRE_CHILD_TLS=") + GetParam();
  pid_t child = spawn_child("WireChild.DISABLED_ServerThatHangs", {fd_env, tls_env});
  close(fds[1]);
  uint16_t port = 0;
  ASSERT_EQ(read(fds[0], &port, sizeof port), ssize_t(sizeof port));
  close(fds[0]);
  auto client = Client::connect("127.0.0.1", port, options_for(GetParam()));
  ASSERT_TRUE(client) << client.error().what();
  std::vector<std::byte> buf(1024);
  auto r = client->recv({buf.data(), buf.size()}, 0, 0);
  std::this_thread::sleep_for(50ms);
  EXPECT_FALSE(r.done());
  kill_child(child);
  auto got = r.wait_for(30s);
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().code, Errc::kPeerFailure) << got.error().what();
  EXPECT_FALSE(client->endpoint().connected());
  // A receive posted after the failure was handled can only be answered by the dead peer:
  // it fails at once, naming the peer, instead of waiting forever (the soak test's hang:
  // a Receiver that reposted its receive just after the peer died).
  auto late = client->recv({buf.data(), buf.size()}, 0, 0).wait_for(5s);
  ASSERT_FALSE(late);
  EXPECT_EQ(late.error().code, Errc::kPeerFailure) << late.error().what();
  EXPECT_NE(late.error().message.find("127.0.0.1"), std::string::npos) << late.error().message;
}

INSTANTIATE_TEST_SUITE_P(Transports, WireFailure, testing::Values("tcp", "shm"));

uint16_t closed_port() {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
  close(s);  // nothing listens there now
  return ntohs(a.sin_port);
}

TEST(Wire, ConnectingToAClosedPortIsRefused) {
  auto c = Client::connect("127.0.0.1", closed_port());
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().code, Errc::kRefused) << c.error().what();
  EXPECT_NE(c.error().message.find("127.0.0.1:"), std::string::npos) << c.error().message;
}

TEST(Wire, BadHostsAreClearErrors) {
  auto c = Client::connect("no-such-host.invalid", 1);
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().code, Errc::kAddress);
  EXPECT_NE(c.error().message.find("no-such-host.invalid"), std::string::npos);
  auto e = Client::connect("", 1);
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().code, Errc::kInvalidArgument);
  auto s = Server::listen("203.0.113.7", 0);  // TEST-NET-3: not an address of this host
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, Errc::kAddress) << s.error().what();
  auto mode = parse_progress_mode("spin");
  ASSERT_FALSE(mode);
  EXPECT_NE(mode.error().message.find("thread, eventfd, polling"), std::string::npos);
}

// Whether this kernel has IPv6 loopback at all, asked of the socket API directly (not of
// the code under test, so that a broken listen fails instead of skipping).
bool kernel_has_ipv6_loopback() {
  const int fd = ::socket(AF_INET6, SOCK_STREAM, 0);
  if (fd < 0) return false;
  sockaddr_in6 a{};
  a.sin6_family = AF_INET6;
  a.sin6_addr = in6addr_loopback;
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(fd);
  return ok;
}

void expect_delivered(Server& server, Client& client) {
  std::vector<std::byte> out(100, std::byte{5}), in(100);
  auto r = server.recv({in.data(), in.size()}, 3, ~0ull);
  ASSERT_TRUE(client.send({out.data(), out.size()}, 3).wait());
  ASSERT_TRUE(r.wait_for(30s));
  EXPECT_EQ(in, out);
}

// Listening on "::1" and on "::" (dual stack) works. Connecting: UCX 1.13's tcp transport
// on the loopback device dials the client's IPv4-only interface at its IPv6 address and is
// refused (docs/wire.md, "IPv6"); that must be a clean kRefused naming the peer's port. A
// newer UCX must deliver the message. The expectation follows the UCX version, never the
// outcome, so each case can fail.
void expect_ipv6_outcome(const char* listen_host, const char* connect_host) {
  if (!kernel_has_ipv6_loopback()) GTEST_SKIP() << "this kernel has no IPv6 loopback";
  unsigned major = 0, minor = 0, release = 0;
  ucp_get_version(&major, &minor, &release);
  const bool ucx_refuses = major == 1 && minor <= 13;
  auto server = Server::listen(listen_host, 0);
  ASSERT_TRUE(server) << listen_host << ": " << server.error().what();
  EXPECT_NE(server->port(), 0);
  auto client = Client::connect(connect_host, server->port());
  if (ucx_refuses) {
    ASSERT_FALSE(client) << "UCX " << major << "." << minor << " connected to " << listen_host
                         << "; docs/wire.md says it cannot";
    EXPECT_EQ(client.error().code, Errc::kRefused) << client.error().what();
    EXPECT_NE(client.error().message.find(":" + std::to_string(server->port())), std::string::npos)
        << client.error().message;
  } else {
    ASSERT_TRUE(client) << "UCX " << major << "." << minor << ": " << client.error().what();
    expect_delivered(*server, *client);
  }
}

TEST(Wire, Ipv6LoopbackConnectFollowsTheUcxVersion) {
  expect_ipv6_outcome("::1", "::1");
}

TEST(Wire, Ipv6DualStackConnectFollowsTheUcxVersion) {
  expect_ipv6_outcome("::", "127.0.0.1");
}

// The threads of this process (/proc/self/task) and the scheduler state of one ('R'
// running or runnable, 'S' sleeping, ...).
std::set<std::string> thread_ids() {
  std::set<std::string> ids;
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/task"))
    ids.insert(e.path().filename().string());
  return ids;
}

char thread_state(const std::string& tid) {
  std::ifstream f("/proc/self/task/" + tid + "/stat");
  std::string stat((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  const auto paren = stat.rfind(')');
  return paren == std::string::npos || paren + 2 >= stat.size() ? '?' : stat[paren + 2];
}

TEST(Wire, IdleProgressThreadsSleep) {
  // Two nodes with progress threads, connected, one receive pending: after the spin window
  // every thread they started sleeps (blocked on its event fd), seen in the scheduler's
  // state rather than measured in CPU time: 100 samples in a row with all of them asleep.
  // A spinning thread is always running or runnable, so it can never pass.
  const auto before = thread_ids();
  auto server = Server::listen("127.0.0.1", 0);
  ASSERT_TRUE(server);
  auto client = Client::connect("127.0.0.1", server->port());
  ASSERT_TRUE(client);
  std::vector<std::byte> buf(64);
  auto r = server->recv({buf.data(), buf.size()}, 1, ~0ull);
  std::vector<std::string> started;
  for (const auto& id : thread_ids())
    if (!before.count(id)) started.push_back(id);
  ASSERT_GE(started.size(), 2u) << "expected a progress thread per node";
  int asleep_in_a_row = 0;
  std::string last;
  for (int sample = 0; sample < 20000 && asleep_in_a_row < 100; ++sample) {
    bool all = true;
    last.clear();
    for (const auto& id : started) {
      const char st = thread_state(id);
      last += id + ":" + st + " ";
      all &= st == 'S' || st == 'D' || st == '?';  // '?': the thread has ended
    }
    asleep_in_a_row = all ? asleep_in_a_row + 1 : 0;
    std::this_thread::sleep_for(1ms);
  }
  EXPECT_GE(asleep_in_a_row, 100) << "threads never all asleep; last states " << last;
  r.cancel();
  EXPECT_EQ(r.wait().error().code, Errc::kCancelled);
}

TEST(Wire, CloseFailsPendingReceivesWithClosed) {
  auto server = Server::listen("127.0.0.1", 0);
  ASSERT_TRUE(server);
  std::vector<std::byte> buf(64);
  auto r = server->recv({buf.data(), buf.size()}, 1, ~0ull);
  ASSERT_TRUE(server->close());
  auto got = r.wait_for(5s);
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().code, Errc::kClosed);
  auto late = server->recv({buf.data(), buf.size()}, 1, ~0ull).wait_for(1s);
  ASSERT_FALSE(late);
  EXPECT_EQ(late.error().code, Errc::kClosed);
}

}  // namespace
}  // namespace vx::wire
