// A Python pipeline worker as the server sees it: a child process started on first use,
// connected over wire to the hub (a wire::Server on loopback), asked to compute with the
// request/reply protocol of docs/pipelines.md ("Worker protocol"), restarted with backoff
// when it dies, stopped when the last pipeline using it is unloaded.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/process.hpp"
#include "core/resources.hpp"
#include "pipeline/workers.hpp"
#include "wire/wire.hpp"

namespace vx::pipeline::detail {

// Worker processes are started with core/process.hpp.
using process::Command;
using process::describe_exit;
using process::run_capture;
using process::spawn;

using json = nlohmann::json;

// Tag layout (u64): [63:32] the worker's wire id, [31:28] the kind, [27:0] a sequence number.
enum class Kind : std::uint64_t {
  kHello = 1,        // worker -> server, JSON; sequence = the launch number
  kRequest = 2,      // server -> worker, JSON header
  kRequestData = 3,  // server -> worker, the block (float32)
  kReply = 4,        // worker -> server, JSON header
  kReplyData = 5,    // worker -> server, the result
};
inline constexpr std::uint64_t kSeqMask = (1u << 28) - 1;
inline constexpr std::size_t kHeaderMax = 64 * 1024;
inline std::uint64_t make_tag(std::uint32_t wire_id, Kind kind, std::uint64_t seq) {
  return (std::uint64_t(wire_id) << 32) | (std::uint64_t(kind) << 28) | (seq & kSeqMask);
}

class Hub;
using Bytes = std::shared_ptr<std::vector<std::byte>>;

// How a request went, for the caller to decide (retry once after a death).
enum class Outcome { kOk, kFailed, kDied };

struct Reply {
  json header;                      // {"ok": true, ...}
  std::span<const std::byte> data;  // the result (shared memory, or the reply data message)
  std::shared_ptr<void> hold;       // keeps `data` valid
  bool truncated = false;           // the reply data was larger than expected (consumed, not kept)
};

// A POSIX shared memory region the server and one worker both map: requests carry the block
// and get the result through it, and only headers go over wire (docs/pipelines.md).
class Slab {
 public:
  // nullptr (logged) when the region cannot be made.
  static std::unique_ptr<Slab> create(std::string name, std::size_t bytes);
  ~Slab();
  Slab(const Slab&) = delete;
  Slab& operator=(const Slab&) = delete;
  const std::string& name() const { return name_; }
  std::size_t size() const { return size_; }
  void unlink();  // once the worker has mapped it: nobody else can open it
  // A free range of `bytes` (64-byte aligned), or nothing when the region is full.
  std::optional<std::size_t> alloc(std::size_t bytes);
  void free(std::size_t offset);
  std::byte* at(std::size_t offset) const { return base_ + offset; }

 private:
  Slab(std::string name, std::byte* base, std::size_t size)
      : name_(std::move(name)), base_(base), size_(size) {}
  std::string name_;
  std::byte* base_;
  std::size_t size_;
  bool linked_ = true;
  std::mutex mutex_;
  std::map<std::size_t, std::size_t> used_;  // offset -> bytes
};

class WorkerProcess {
 public:
  // With a budget, the running process is charged its memory estimate there (rank
  // kRankPipeline: when memory is short an idle worker - no request in flight - is stopped;
  // the next request starts it again).
  WorkerProcess(WorkerSpec spec, std::shared_ptr<Hub> hub, std::vector<std::string> pipelines,
                Budget* budget = nullptr);
  ~WorkerProcess();
  WorkerProcess(const WorkerProcess&) = delete;
  WorkerProcess& operator=(const WorkerProcess&) = delete;

  const WorkerSpec& spec() const { return spec_; }
  // A pipeline of this worker was loaded / unloaded: the process starts with the first and
  // stops with the last.
  Status acquire();
  void release();
  // Sends `header` (and `payload` as the request data) and waits for the reply, within the
  // worker's timeout; starts or restarts the worker first when needed. A reply data buffer
  // of `reply_bytes` is posted when `reply_bytes` > 0. A request lost to the worker's death
  // is sent once more to the restarted worker.
  Result<Reply> call(json header, std::span<const std::byte> payload, std::size_t reply_bytes);
  // Stops the process for good (Workers::shutdown): a request in flight fails at once (the
  // process is killed), later ones fail without starting it again.
  void shutdown();
  // Empty while healthy; otherwise why not (the last death, a restart pending).
  std::string health() const;
  json details() const;  // {"worker", "pid", "starts", "deaths", "last_death"?}

 private:
  struct Conn;
  Result<std::shared_ptr<Conn>> running();  // starts or restarts as needed
  Result<std::shared_ptr<Conn>> start();
  void stop(const std::shared_ptr<Conn>& c);
  // Marks the connection dead (once): kills and reaps the process, records why.
  void died(const std::shared_ptr<Conn>& c, std::string why, bool kill_it);
  std::pair<Outcome, Result<Reply>> attempt(const json& header, std::span<const std::byte> payload,
                                            std::size_t reply_bytes);
  std::uint64_t offload();  // the budget's evictor
  void uncharge();          // the process is gone: its estimate goes back to the budget
  std::string name_;        // "worker 'NAME'"
  WorkerSpec spec_;
  std::shared_ptr<Hub> hub_;
  std::vector<std::string> pipelines_;
  std::mutex start_mutex_;  // one start at a time
  mutable std::mutex mutex_;
  // Guarded by mutex_:
  std::shared_ptr<Conn> conn_;
  int users_ = 0;
  std::uint64_t starts_ = 0, deaths_ = 0;
  int consecutive_deaths_ = 0;
  std::chrono::steady_clock::time_point next_start_{};
  std::string last_death_;
  int inflight_ = 0;
  bool charged_ = false;
  std::atomic<bool> stopping_{false};  // shutdown(): never started again
  Budget::Holder holder_;              // last: gone (and its evictor with it) before the rest
};

// The wire server workers connect to (loopback, a free port), made on the first start, and a
// pool of transfer buffers.
class Hub {
 public:
  explicit Hub(std::string transports);
  ~Hub();
  struct Server {
    wire::Server server;
  };
  // The listening server (made on first use).
  Result<Server*> server();
  std::uint64_t next_seq() { return seq_.fetch_add(1) & kSeqMask; }
  std::uint64_t next_launch() { return (launch_.fetch_add(1) + 1) & kSeqMask; }
  // A buffer of `bytes`, from the pool; it returns there when the last reference goes.
  Bytes buffer(std::size_t bytes);

 private:
  std::string transports_;
  std::mutex mutex_;
  std::unique_ptr<Server> server_;
  std::atomic<std::uint64_t> seq_{1}, launch_{0};
  struct Pool;
  std::shared_ptr<Pool> pool_;
};

}  // namespace vx::pipeline::detail
