// Private to src/cluster: the MPI communicator behind a World, and bounded waits.
#pragma once

#include <mpi.h>

#include <chrono>
#include <span>
#include <string>

#include "cluster/cluster.hpp"

namespace vx::cluster {

// A duplicate of MPI_COMM_WORLD that returns errors (MPI_ERRORS_RETURN) instead of
// aborting; freed on destruction. Move-only.
class Comm {
 public:
  Comm() = default;
  static Result<Comm> dup_world();
  Comm(Comm&& o) noexcept : comm_(o.comm_) { o.comm_ = MPI_COMM_NULL; }
  Comm& operator=(Comm&& o) noexcept;
  Comm(const Comm&) = delete;
  Comm& operator=(const Comm&) = delete;
  ~Comm();
  MPI_Comm get() const { return comm_; }

 private:
  MPI_Comm comm_ = MPI_COMM_NULL;
};

// "MPI_ERR_TRUNCATE: message truncated" for an MPI error code.
std::string mpi_error(int code);

struct World::Impl {
  Comm comm;
  int rank = 0, size = 1;
  Options options;
  Counters counters;
  bool failed = false;  // an error was seen: abort, never finalize (a peer may be waiting)

  // Waits for every request, up to options.timeout; the error names `what` and `peer`.
  Status wait(std::span<MPI_Request> requests, const char* what, int peer);
  Status wait(std::span<MPI_Request> requests, const char* what, int peer,
              std::chrono::milliseconds timeout);
  // Bounded point-to-point: a send and a receive posted together (no deadlock either way).
  Status exchange(const float* send, std::size_t send_count, float* recv, std::size_t recv_count,
                  int peer, int tag, const char* what);
  Status send(const void* data, std::size_t bytes, int peer, int tag, const char* what);
  Status recv(void* data, std::size_t bytes, int peer, int tag, const char* what);
  Status recv(void* data, std::size_t bytes, int peer, int tag, const char* what,
              std::chrono::milliseconds timeout);
  Status check(int code, const char* what);
};

}  // namespace vx::cluster
