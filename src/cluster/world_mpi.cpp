// The World over MPI: start-up and shut-down, the error handler, bounded waits.
#include <fmt/format.h>

#include <climits>
#include <cstdlib>
#include <thread>

#include "cluster/mpi_impl.hpp"
#include "core/log.hpp"

namespace vx::cluster {

bool built_with_mpi() {
  return true;
}

std::string mpi_error(int code) {
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(code, text, &len) != MPI_SUCCESS) return fmt::format("MPI error {}", code);
  return std::string(text, std::size_t(len));
}

Result<Comm> Comm::dup_world() {
  Comm c;
  // Errors come back as values on our communicator (and on the world, for the calls made
  // before the duplicate exists): convention 4, and a dead peer is not a crash.
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  if (const int rc = MPI_Comm_dup(MPI_COMM_WORLD, &c.comm_); rc != MPI_SUCCESS)
    return fail(ErrorCode::kIo, "MPI_Comm_dup: {}", mpi_error(rc));
  MPI_Comm_set_errhandler(c.comm_, MPI_ERRORS_RETURN);
  return c;
}

Comm& Comm::operator=(Comm&& o) noexcept {
  std::swap(comm_, o.comm_);
  return *this;
}

Comm::~Comm() {
  if (comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
}

Status World::Impl::check(int code, const char* what) {
  if (code == MPI_SUCCESS) return {};
  failed = true;
  return fail(ErrorCode::kIo, "MPI rank {}: {}: {}", rank, what, mpi_error(code));
}

namespace {
std::string peer_name(int peer) {
  return peer < 0 ? std::string("the other ranks") : fmt::format("rank {}", peer);
}
}  // namespace

Status World::Impl::wait(std::span<MPI_Request> requests, const char* what, int peer) {
  return wait(requests, what, peer, options.timeout);
}

Status World::Impl::wait(std::span<MPI_Request> requests, const char* what, int peer,
                         std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  auto nap = std::chrono::microseconds(20);
  // A long wait (an idle follower) naps longer: fewer wake-ups while nothing happens.
  const auto longest = timeout > options.timeout ? std::chrono::microseconds(10'000)
                                                 : std::chrono::microseconds(1000);
  for (;;) {
    int done = 0;
    const int rc = MPI_Testall(int(requests.size()), requests.data(), &done, MPI_STATUSES_IGNORE);
    if (rc != MPI_SUCCESS) {
      failed = true;
      return fail(ErrorCode::kIo, "MPI rank {}: {} with {}: {}", rank, what, peer_name(peer),
                  mpi_error(rc));
    }
    if (done) return {};
    if (std::chrono::steady_clock::now() > deadline) {
      failed = true;
      return fail(ErrorCode::kIo,
                  "MPI rank {}: {} with {}: nothing within {} s (did it die? "
                  "VOXCAST_MPI_TIMEOUT_S sets the limit)",
                  rank, what, peer_name(peer), double(timeout.count()) / 1000);
    }
    // Progress needs MPI_Test calls; naps keep an oversubscribed node usable.
    std::this_thread::sleep_for(nap);
    nap = std::min(nap * 2, longest);
  }
}

namespace {

Status check_count(std::size_t bytes, const char* what) {
  if (bytes > std::size_t(INT_MAX))
    return fail(ErrorCode::kInvalidArgument, "{}: {} bytes is more than one MPI message holds",
                what, bytes);
  return {};
}

}  // namespace

Status World::Impl::send(const void* data, std::size_t bytes, int peer, int tag, const char* what) {
  VX_TRY(check_count(bytes, what));
  MPI_Request r;
  VX_TRY(check(MPI_Isend(data, int(bytes), MPI_BYTE, peer, tag, comm.get(), &r), what));
  counters.bytes_sent += bytes;
  return wait({&r, 1}, what, peer);
}

Status World::Impl::recv(void* data, std::size_t bytes, int peer, int tag, const char* what) {
  return recv(data, bytes, peer, tag, what, options.timeout);
}

Status World::Impl::recv(void* data, std::size_t bytes, int peer, int tag, const char* what,
                         std::chrono::milliseconds timeout) {
  VX_TRY(check_count(bytes, what));
  MPI_Request r;
  VX_TRY(check(MPI_Irecv(data, int(bytes), MPI_BYTE, peer, tag, comm.get(), &r), what));
  return wait({&r, 1}, what, peer, timeout);
}

Status World::Impl::exchange(const float* send_buf, std::size_t send_count, float* recv_buf,
                             std::size_t recv_count, int peer, int tag, const char* what) {
  VX_TRY(check_count(send_count * sizeof(float), what));
  VX_TRY(check_count(recv_count * sizeof(float), what));
  MPI_Request r[2];
  VX_TRY(
      check(MPI_Irecv(recv_buf, int(recv_count), MPI_FLOAT, peer, tag, comm.get(), &r[0]), what));
  VX_TRY(
      check(MPI_Isend(send_buf, int(send_count), MPI_FLOAT, peer, tag, comm.get(), &r[1]), what));
  counters.bytes_sent += send_count * sizeof(float);
  return wait(r, what, peer);
}

World::World(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

World::~World() {
  if (!impl_) return;
  if (impl_->failed) {
    // A peer may be blocked on us, or dead: finalizing could wait forever.
    VX_LOG(error, "cluster.abort", "rank={} reason=an earlier MPI error", impl_->rank);
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  impl_->comm = Comm();
  MPI_Finalize();
}

Result<std::unique_ptr<World>> World::init(Options options) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (initialized)
    return fail(ErrorCode::kInternal, "MPI is already initialized (one World per process)");
  if (const char* t = std::getenv("VOXCAST_MPI_TIMEOUT_S"); t && std::atof(t) > 0)
    options.timeout = std::chrono::milliseconds(std::int64_t(std::atof(t) * 1000));
  int provided = 0;
  if (const int rc = MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SERIALIZED, &provided);
      rc != MPI_SUCCESS)
    return fail(ErrorCode::kIo, "MPI_Init_thread: error {}", rc);
  if (provided < MPI_THREAD_SERIALIZED) {
    MPI_Abort(MPI_COMM_WORLD, 1);
    return fail(ErrorCode::kUnsupported,
                "MPI_Init_thread: this MPI gives thread level {}, voxcast needs serialized ({})",
                provided, int(MPI_THREAD_SERIALIZED));
  }
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  auto comm = Comm::dup_world();
  if (!comm) {
    MPI_Abort(MPI_COMM_WORLD, 1);
    return tl::unexpected(comm.error());
  }
  impl->comm = std::move(*comm);
  MPI_Comm_rank(impl->comm.get(), &impl->rank);
  MPI_Comm_size(impl->comm.get(), &impl->size);
  VX_LOG(debug, "cluster.init", "rank={} size={} timeout_s={}", impl->rank, impl->size,
         double(options.timeout.count()) / 1000);
  return std::unique_ptr<World>(new World(std::move(impl)));
}

int World::rank() const {
  return impl_->rank;
}
int World::size() const {
  return impl_->size;
}
Counters World::counters() const {
  return impl_->counters;
}

Status World::broadcast(std::string& bytes) {
  return broadcast(bytes, impl_->options.timeout);
}

Status World::broadcast(std::string& bytes, std::chrono::milliseconds timeout) {
  auto& I = *impl_;
  if (I.size == 1) return {};
  // Rank 0 sends the length, then the bytes, to each rank (point-to-point, so every wait
  // is bounded; a scene is a few KiB).
  std::uint64_t len = bytes.size();
  if (I.rank == 0) {
    for (int r = 1; r < I.size; ++r) {
      VX_TRY(I.send(&len, sizeof len, r, 900, "broadcast"));
      VX_TRY(I.send(bytes.data(), bytes.size(), r, 901, "broadcast"));
    }
    return {};
  }
  VX_TRY(I.recv(&len, sizeof len, 0, 900, "broadcast", timeout));
  if (len > (std::uint64_t(1) << 30))
    return fail(ErrorCode::kFormat, "MPI rank {}: broadcast of {} bytes from rank 0", I.rank, len);
  bytes.resize(len);
  return I.recv(bytes.data(), bytes.size(), 0, 901, "broadcast");
}

Status World::agree(const Status& local) {
  auto& I = *impl_;
  if (I.size == 1) return local;
  // After an MPI error the peers may be gone or stuck: no more talking (the destructor
  // aborts the job).
  if (I.failed)
    return local ? fail(ErrorCode::kIo, "MPI rank {}: an earlier MPI error", I.rank) : local;
  // Everyone's message (empty: ok) goes to rank 0, which sends back the first error.
  std::string mine = local ? std::string() : local.error().what();
  std::string verdict;
  if (I.rank == 0) {
    if (!local) verdict = fmt::format("rank 0: {}", mine);
    for (int r = 1; r < I.size; ++r) {
      std::uint64_t len = 0;
      VX_TRY(I.recv(&len, sizeof len, r, 910, "agree"));
      if (len > 65536) return fail(ErrorCode::kFormat, "agree: {} bytes from rank {}", len, r);
      std::string msg(len, '\0');
      VX_TRY(I.recv(msg.data(), msg.size(), r, 911, "agree"));
      if (!msg.empty() && verdict.empty()) verdict = fmt::format("rank {}: {}", r, msg);
    }
  } else {
    if (mine.size() > 65536) mine.resize(65536);
    std::uint64_t len = mine.size();
    VX_TRY(I.send(&len, sizeof len, 0, 910, "agree"));
    VX_TRY(I.send(mine.data(), mine.size(), 0, 911, "agree"));
  }
  VX_TRY(broadcast(verdict));
  if (verdict.empty()) return {};
  return fail(local ? ErrorCode::kIo : local.error().code, "{}", verdict);
}

}  // namespace vx::cluster
