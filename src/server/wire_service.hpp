// The fast data path over wire (`voxcast serve --wire PORT`): raw sub-volume reads and
// raw RGBA frames for Python and cluster clients, zero-copy over UCX. docs/protocol.md,
// "Fast path over wire", is the normative text.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "data/chunk_cache.hpp"

namespace vx::server {

// Tag layout: client id (32 bits) | kind (8 bits) | request sequence (24 bits).
inline constexpr std::uint64_t kWireRequest = 1, kWireReply = 2, kWirePayload = 3;
inline constexpr std::size_t kWireMaxRequestBytes = 64 * 1024;
inline constexpr std::uint64_t kWireMaxPayloadBytes = 1ull << 30;  // per read or frame

struct WireServiceOptions {
  std::string host = "127.0.0.1";
  unsigned short port = 0;  // 0: any free one
  std::string transports;   // UCX_TLS; empty: environment or UCX's default
  // Reply payloads allocated and not yet delivered, all clients together. A request that
  // would exceed it gets a "busy" error: a client that asks without receiving cannot make
  // the server hold unbounded memory.
  std::uint64_t max_inflight_bytes = 2ull << 30;
  int workers = 2;  // requests served at once (each reads or renders in parallel itself)
  // When set, the first request of each connection must carry it (a string field `token`);
  // a connection without it gets an `unauthorized` error reply to every request, and nothing
  // else. `voxcast serve` passes its --token (required beyond loopback).
  std::string token;
};

class WireService {
 public:
  // Listens and serves `datasets` from `cache` on a thread of its own until destroyed.
  static Result<std::unique_ptr<WireService>> start(const WireServiceOptions& options,
                                                    data::ChunkCache& cache,
                                                    std::vector<data::SourceId> datasets);
  ~WireService();
  unsigned short port() const;
  std::string transports() const;

  // Messages read so far: requests (kind 1, whatever their fate), and messages of any other
  // kind, which a client has no business sending: read and dropped, so that none waits in
  // UCX's unexpected queue (there it would hold memory for good and slow every receive).
  struct Counters {
    std::uint64_t requests = 0, discarded = 0, discarded_bytes = 0;
  };
  Counters counters() const;

  struct Impl;

 private:
  explicit WireService(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace vx::server
