// voxcast_wire_bench: latency and bandwidth of vx::wire, defined as ucx_perftest defines them
// so that bench/wire.sh can put the two side by side:
//   lat: 8-byte tagged ping-pong; one-way latency = round trip / 2 (perftest tag_lat), median
//        (perftest's "50.0%ile" column), p99 and mean over --lat-iters after a warm-up.
//   bw:  one-way stream of messages, a window of non-blocking sends from one buffer (perftest
//        tag_bw, window 32); the receiver keeps receives pre-posted into pre-allocated buffers;
//        the clock stops when the receiver's 8-byte ack arrives. MiB/s = 2^20 bytes/s, which is
//        what perftest prints as "MB/s" (it divides by 1024*1024).
//
//   voxcast_wire_bench --tls shm --mode polling            fork(): child serves, parent measures
//   voxcast_wire_bench --server --port 13400 --tls tcp     or two processes (or two hosts):
//   voxcast_wire_bench --client 127.0.0.1 --port 13400 --tls tcp
// stdout: one JSON line per measurement; stderr: a human table. UCX objects are only created
// after the fork (wire.hpp, "Fork").
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <string>
#include <vector>

#include "wire/wire.hpp"

namespace {

using namespace vx::wire;
using Clock = std::chrono::steady_clock;
using Bytes = std::vector<std::byte>;

constexpr uint64_t kAll = ~uint64_t{0};  // every tag below is matched exactly
constexpr uint64_t kCtlTag = 0x5642'0001, kDataTag = 0x5642'0002, kAckTag = 0x5642'0003;

enum : uint32_t { kQuit = 0, kLat = 1, kBw = 2 };
struct Cmd {  // client -> server, then the server answers 8 bytes on kCtlTag ("ready")
  uint32_t test = kQuit;
  uint32_t window = 0;  // bw: receives the server keeps posted
  uint64_t size = 0;
  uint64_t iters = 0;
};

struct Config {
  bool server = false;
  std::string client_host;
  std::string bind = "127.0.0.1";
  uint16_t port = 0;
  std::string tls = "shm";
  std::string mode = "polling";
  std::vector<std::string> tests{"lat", "bw"};
  std::vector<std::string> sizes{"64K", "256K", "1M", "4M", "16M", "64M"};
  uint64_t lat_iters = 10000;
  uint64_t lat_warmup = 1000;
  uint64_t bw_mib = 1024;  // bytes per bw point: iters = max(bw_min_iters, bw_mib MiB / size)
  uint64_t bw_min_iters = 16;
  uint32_t window = 32;     // perftest tag_bw's default window
  uint64_t recv_mib = 512;  // cap on the receiver's buffer ring (window buffers at most)
  bool no_peer_errors = false;
  int64_t spin_us = -1;  // Options.spin for kThread; -1: the library's default
  bool info = false;
  std::string impl;  // "impl" in the JSON lines; default cpp-<mode>
};

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "voxcast_wire_bench: %s\n", what.c_str());
  std::exit(1);
}

Completion wait_ok(Request r, const char* what) {
  auto got = r.wait();
  if (!got) die(std::string(what) + ": " + got.error().what());
  return *got;
}

template <class T>
std::span<std::byte> bytes_of(T& v) {
  return std::as_writable_bytes(std::span(&v, 1));
}

uint64_t parse_size(const std::string& s) {
  size_t pos = 0;
  uint64_t n = std::stoull(s, &pos);
  std::string unit = s.substr(pos);
  std::transform(unit.begin(), unit.end(), unit.begin(), ::toupper);
  if (unit.empty() || unit == "B") return n;
  if (unit == "K" || unit == "KIB") return n << 10;
  if (unit == "M" || unit == "MIB") return n << 20;
  if (unit == "G" || unit == "GIB") return n << 30;
  die("size '" + s + "': use a number with K, M or G (binary)");
}

Bytes touched(size_t n) {
  Bytes b(n);  // value-initialised: every page is touched before the clock starts
  for (size_t i = 0; i < n; i += 4096)
    b[i] = std::byte(i >> 12);
  return b;
}

Options options_of(const Config& cfg) {
  Options o;
  o.transports = cfg.tls;
  auto mode = parse_progress_mode(cfg.mode);
  if (!mode) die(mode.error().what());
  o.progress = *mode;
  o.peer_error_handling = !cfg.no_peer_errors;
  if (cfg.spin_us >= 0) o.spin = std::chrono::microseconds(cfg.spin_us);
  return o;
}

// ---- server: answers commands until kQuit ------------------------------------------------

void serve(Server& server, const Config& cfg) {
  std::array<std::byte, 8> in{}, out{}, ready{};
  std::vector<Bytes> ring;  // bw receive buffers, kept while the message size stays the same
  bool printed = false;
  for (;;) {
    Cmd cmd;
    auto got = wait_ok(server.recv(bytes_of(cmd), kCtlTag, kAll), "receiving a command");
    if (got.length != sizeof cmd) die("malformed command");
    if (cmd.test == kQuit) break;
    auto eps = server.endpoints();
    if (eps.empty()) die("command from a client that is gone");
    Endpoint ep = eps.front();
    if (cfg.info && !printed) {
      std::fprintf(stderr, "server endpoint (transports %s):\n%s\n", server.transports().c_str(),
                   ep.info().c_str());
      printed = true;
    }
    if (cmd.test == kLat) {
      Request r = server.recv(in, kDataTag, kAll);
      wait_ok(ep.send(ready, kCtlTag), "ready");
      for (uint64_t i = 0; i < cmd.iters; ++i) {
        wait_ok(std::move(r), "ping");
        wait_ok(ep.send(out, kDataTag), "pong");
        // The next receive is posted after the pong, as perftest's tag_lat responder does:
        // posting it first put a receive's cost on every round trip's critical path. The
        // next ping cannot arrive before the client has this pong.
        if (i + 1 < cmd.iters) r = server.recv(in, kDataTag, kAll);
      }
    } else if (cmd.test == kBw) {
      if (!ring.empty() && ring.front().size() != cmd.size) ring.clear();
      const uint64_t want =
          std::min<uint64_t>(cmd.window, std::max<uint64_t>(1, (cfg.recv_mib << 20) / cmd.size));
      while (ring.size() < want)
        ring.push_back(touched(cmd.size));
      const uint64_t k = std::min<uint64_t>(ring.size(), cmd.iters);
      std::deque<Request> posted;
      uint64_t next = 0;
      for (; next < k; ++next)
        posted.push_back(server.recv(ring[next % ring.size()], kDataTag, kAll));
      wait_ok(ep.send(ready, kCtlTag), "ready");
      for (uint64_t i = 0; i < cmd.iters; ++i) {
        // Same tag, same sender: receives match in order, so the oldest frees its slot first.
        auto c = wait_ok(std::move(posted.front()), "bw receive");
        posted.pop_front();
        if (c.length != cmd.size) die("bw receive: short message");
        if (next < cmd.iters) {
          posted.push_back(server.recv(ring[next % ring.size()], kDataTag, kAll));
          ++next;
        }
      }
      wait_ok(ep.send(out, kAckTag), "ack");
    } else {
      die("unknown command");
    }
  }
  (void)server.flush().wait();
}

// ---- client: drives the tests ------------------------------------------------------------

struct Row {
  std::string test;
  uint64_t size, iters;
  double value, p99, mean;
};

void command(Client& client, Cmd cmd) {
  std::array<std::byte, 8> ready{};
  Request r = client.recv(ready, kCtlTag, kAll);
  wait_ok(client.send(bytes_of(cmd), kCtlTag), "sending a command");
  if (cmd.test != kQuit) wait_ok(std::move(r), "waiting for ready");
}

std::vector<double> ping_pong(Client& client, uint64_t iters, bool keep) {
  std::array<std::byte, 8> in{}, out{};
  command(client, Cmd{kLat, 1, 8, iters});
  std::vector<double> half_rtt_us;
  if (keep) half_rtt_us.reserve(iters);
  for (uint64_t i = 0; i < iters; ++i) {
    Request r = client.recv(in, kDataTag, kAll);  // posted before the ping leaves
    auto t0 = Clock::now();
    wait_ok(client.send(out, kDataTag), "ping");
    wait_ok(std::move(r), "pong");
    auto dt = std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
    if (keep) half_rtt_us.push_back(dt / 2);
  }
  return half_rtt_us;
}

double stream(Client& client, const Bytes& buf, uint64_t size, uint64_t iters, uint32_t window) {
  std::array<std::byte, 8> ack{};
  command(client, Cmd{kBw, window, size, iters});
  Request ack_r = client.recv(ack, kAckTag, kAll);
  std::span<const std::byte> msg(buf.data(), size);
  std::deque<Request> inflight;
  auto t0 = Clock::now();
  for (uint64_t i = 0; i < iters; ++i) {
    if (inflight.size() >= window) {
      wait_ok(std::move(inflight.front()), "bw send");
      inflight.pop_front();
    }
    inflight.push_back(client.send(msg, kDataTag));
  }
  for (auto& r : inflight)
    wait_ok(std::move(r), "bw send");
  wait_ok(std::move(ack_r), "ack");
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

double percentile(std::vector<double> v, double p) {  // nearest rank
  if (v.empty()) return 0;
  size_t k = std::min(v.size() - 1, size_t(p / 100.0 * double(v.size())));
  std::nth_element(v.begin(), v.begin() + long(k), v.end());
  return v[k];
}

void emit(const Config& cfg, const std::string& impl, const Row& r) {
  if (r.test == "lat") {
    std::printf(
        "{\"impl\":\"%s\",\"tls\":\"%s\",\"test\":\"lat\",\"size\":%llu,\"value\":%.3f,"
        "\"unit\":\"us\",\"p99\":%.3f,\"mean\":%.3f,\"iters\":%llu}\n",
        impl.c_str(), cfg.tls.c_str(), (unsigned long long)r.size, r.value, r.p99, r.mean,
        (unsigned long long)r.iters);
  } else {
    std::printf(
        "{\"impl\":\"%s\",\"tls\":\"%s\",\"test\":\"bw\",\"size\":%llu,\"value\":%.1f,"
        "\"unit\":\"MiB/s\",\"iters\":%llu,\"window\":%u}\n",
        impl.c_str(), cfg.tls.c_str(), (unsigned long long)r.size, r.value,
        (unsigned long long)r.iters, cfg.window);
  }
  std::fflush(stdout);
}

int run_client(const Config& cfg, const std::string& host, uint16_t port) {
  auto c = Client::connect(host, port, options_of(cfg));
  if (!c) die("connect to " + host + ":" + std::to_string(port) + ": " + c.error().what());
  Client& client = *c;
  if (cfg.info) {
    std::fprintf(stderr, "client endpoint (transports %s):\n%s\n", client.transports().c_str(),
                 client.endpoint().info().c_str());
  }
  const std::string impl = cfg.impl.empty() ? "cpp-" + cfg.mode : cfg.impl;
  std::vector<Row> rows;
  auto wants = [&](const char* t) {
    return std::find(cfg.tests.begin(), cfg.tests.end(), t) != cfg.tests.end();
  };
  if (wants("lat")) {
    ping_pong(client, cfg.lat_warmup, false);
    auto s = ping_pong(client, cfg.lat_iters, true);
    double mean = 0;
    for (double x : s)
      mean += x / double(s.size());
    rows.push_back({"lat", 8, cfg.lat_iters, percentile(s, 50), percentile(s, 99), mean});
    emit(cfg, impl, rows.back());
  }
  if (wants("bw")) {
    std::vector<uint64_t> sizes;
    for (auto& s : cfg.sizes)
      sizes.push_back(parse_size(s));
    Bytes buf = touched(*std::max_element(sizes.begin(), sizes.end()));
    for (uint64_t size : sizes) {
      uint64_t iters = std::max(cfg.bw_min_iters, (cfg.bw_mib << 20) / size);
      stream(client, buf, size, std::max<uint64_t>(1, iters / 10), cfg.window);  // warm-up
      double secs = stream(client, buf, size, iters, cfg.window);
      double mibs = double(size) * double(iters) / secs / double(1 << 20);
      rows.push_back({"bw", size, iters, mibs, 0, 0});
      emit(cfg, impl, rows.back());
    }
  }
  command(client, Cmd{kQuit, 0, 0, 0});
  (void)client.flush().wait();

  std::fprintf(stderr, "\nvx::wire %s, transports %s (UCX_TLS %s)\n", impl.c_str(), cfg.tls.c_str(),
               client.transports().c_str());
  std::fprintf(stderr, "%-5s %10s %8s %12s %12s %12s\n", "test", "size", "iters", "median/MiBs",
               "p99 us", "mean us");
  for (auto& r : rows) {
    if (r.test == "lat") {
      std::fprintf(stderr, "%-5s %10llu %8llu %9.3f us %12.3f %12.3f\n", "lat",
                   (unsigned long long)r.size, (unsigned long long)r.iters, r.value, r.p99, r.mean);
    } else {
      std::fprintf(stderr, "%-5s %10llu %8llu %6.1f MiB/s\n", "bw", (unsigned long long)r.size,
                   (unsigned long long)r.iters, r.value);
    }
  }
  return 0;
}

int run_server(const Config& cfg, int port_pipe) {
  auto s = Server::listen(cfg.bind, cfg.port, options_of(cfg));
  if (!s) die("listen on " + cfg.bind + ":" + std::to_string(cfg.port) + ": " + s.error().what());
  uint16_t port = s->port();
  if (port_pipe >= 0) {
    if (write(port_pipe, &port, sizeof port) != sizeof port) die("writing the port");
    close(port_pipe);
  } else {
    std::fprintf(stderr, "listening on %s:%u (%s, %s)\n", cfg.bind.c_str(), port,
                 s->transports().c_str(), cfg.mode.c_str());
  }
  serve(*s, cfg);
  if (auto st = s->close(); !st) die("close: " + st.error().what());
  return 0;
}

// Both sides in one command: fork before any UCX object exists; the child serves.
int run_forked(const Config& cfg) {
  int fds[2];
  if (pipe(fds) != 0) die("pipe");
  std::fflush(nullptr);
  pid_t pid = fork();
  if (pid < 0) die("fork");
  if (pid == 0) {
    close(fds[0]);
    _exit(run_server(cfg, fds[1]));
  }
  close(fds[1]);
  uint16_t port = 0;
  if (read(fds[0], &port, sizeof port) != sizeof port) die("the server did not start");
  close(fds[0]);
  int rc = run_client(cfg, "127.0.0.1", port);
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) die("the server process failed");
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  Config cfg;
  CLI::App app{
      "Latency and bandwidth of vx::wire, comparable with ucx_perftest tag_lat / tag_bw.\n"
      "Without --server or --client, forks: the child serves on a free port.",
      "voxcast_wire_bench"};
  app.add_flag("--server", cfg.server, "Serve on --bind:--port until a client says quit");
  app.add_option("--client", cfg.client_host, "Measure against the server on this host");
  app.add_option("--bind", cfg.bind, "Server: address to listen on")->capture_default_str();
  app.add_option("--port", cfg.port, "Server port (0 with --server: pick one)");
  app.add_option("--tls", cfg.tls, "Options.transports (UCX_TLS syntax: tcp, shm, ...)")
      ->capture_default_str();
  app.add_option("--mode", cfg.mode, "Progress mode")
      ->capture_default_str()
      ->check(CLI::IsMember({"polling", "thread", "eventfd"}));
  app.add_option("--test", cfg.tests, "lat, bw or both")
      ->delimiter(',')
      ->capture_default_str()
      ->check(CLI::IsMember({"lat", "bw"}));
  app.add_option("--sizes", cfg.sizes, "bw message sizes (K, M, G are binary)")
      ->delimiter(',')
      ->capture_default_str();
  app.add_option("--lat-iters", cfg.lat_iters, "Timed ping-pongs")->capture_default_str();
  app.add_option("--lat-warmup", cfg.lat_warmup, "Untimed ping-pongs first")->capture_default_str();
  app.add_option("--bw-mib", cfg.bw_mib, "MiB per bw point (iters = max(min, this / size))")
      ->capture_default_str();
  app.add_option("--bw-min-iters", cfg.bw_min_iters, "Least messages per bw point")
      ->capture_default_str();
  app.add_option("--window", cfg.window, "Outstanding sends (perftest -O; tag_bw uses 32)")
      ->capture_default_str()
      ->check(CLI::Range(1u, 4096u));
  app.add_option("--recv-mib", cfg.recv_mib, "Cap on the receiver's pre-allocated buffers")
      ->capture_default_str();
  app.add_flag("--no-peer-errors", cfg.no_peer_errors,
               "Options.peer_error_handling = false (perftest's default; -e turns it on)");
  app.add_option("--spin-us", cfg.spin_us, "Options.spin (thread mode; -1: library default)")
      ->capture_default_str();
  app.add_flag("--info", cfg.info, "Print UCX's endpoint lanes (ucp_ep_print_info) to stderr");
  app.add_option("--impl", cfg.impl, "Name in the JSON lines (default cpp-<mode>)");
  CLI11_PARSE(app, argc, argv);
  if (cfg.server && !cfg.client_host.empty()) die("--server and --client exclude each other");
  if (cfg.server) return run_server(cfg, -1);
  if (!cfg.client_host.empty()) {
    if (cfg.port == 0) die("--client needs --port");
    return run_client(cfg, cfg.client_host, cfg.port);
  }
  return run_forked(cfg);
}
