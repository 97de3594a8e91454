// The hub (the wire server workers connect to, and a pool of transfer buffers) and the
// shared memory regions of pipeline workers (worker_process.hpp).
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <fmt/format.h>
#include <cerrno>
#include <cstring>

#include "core/log.hpp"
#include "pipeline/worker_process.hpp"
#include "wire/wire.hpp"

namespace vx::pipeline::detail {

// ---- Hub ----

struct Hub::Pool {
  std::mutex mutex;
  std::multimap<std::size_t, std::unique_ptr<std::vector<std::byte>>> free;
  std::size_t pooled = 0;
  static constexpr std::size_t kMaxPooled = 64u << 20;
};

Hub::Hub(std::string transports) : transports_(std::move(transports)) {}

Hub::~Hub() {
  if (server_) (void)server_->server.close(true);
}

Result<Hub::Server*> Hub::server() {
  std::lock_guard lock(mutex_);
  if (server_) return server_.get();
  wire::Options o;
  o.transports = transports_;
  auto s = wire::Server::listen("127.0.0.1", 0, o);
  if (!s)
    return fail(ErrorCode::kIo, "pipeline workers: cannot listen on loopback: {}",
                s.error().what());
  server_ = std::make_unique<Server>(Server{std::move(*s)});
  VX_LOG(info, "pipeline.worker_hub", "port={} transports={}", server_->server.port(),
         log_quote(server_->server.transports()));
  return server_.get();
}

Bytes Hub::buffer(std::size_t bytes) {
  {
    std::lock_guard lock(mutex_);
    if (!pool_) pool_ = std::make_shared<Pool>();
  }
  std::weak_ptr<Pool> weak = pool_;
  std::unique_ptr<std::vector<std::byte>> v;
  {
    std::lock_guard lock(pool_->mutex);
    auto it = pool_->free.lower_bound(bytes);
    if (it != pool_->free.end() && it->first <= bytes * 2) {
      v = std::move(it->second);
      pool_->pooled -= it->first;
      pool_->free.erase(it);
    }
  }
  if (!v) v = std::make_unique<std::vector<std::byte>>(bytes);
  auto* raw = v.release();
  raw->resize(std::max(raw->size(), bytes));
  return Bytes(raw, [weak, bytes](std::vector<std::byte>* p) {
    auto pool = weak.lock();
    if (pool) {
      std::lock_guard lock(pool->mutex);
      if (pool->pooled + p->capacity() <= Pool::kMaxPooled) {
        pool->pooled += p->capacity();
        pool->free.emplace(p->capacity(), std::unique_ptr<std::vector<std::byte>>(p));
        return;
      }
    }
    (void)bytes;
    delete p;
  });
}

// ---- Slab ----

std::unique_ptr<Slab> Slab::create(std::string name, std::size_t bytes) {
  const int fd = ::shm_open(name.c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
  if (fd < 0) {
    VX_LOG(warn, "pipeline.worker_shm", "name={} error={}", name, log_quote(std::strerror(errno)));
    return nullptr;
  }
  void* p = MAP_FAILED;
  if (::ftruncate(fd, off_t(bytes)) == 0)
    p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  const int err = errno;
  ::close(fd);
  if (p == MAP_FAILED) {
    ::shm_unlink(name.c_str());
    VX_LOG(warn, "pipeline.worker_shm", "name={} error={}", name, log_quote(std::strerror(err)));
    return nullptr;
  }
  return std::unique_ptr<Slab>(new Slab(std::move(name), static_cast<std::byte*>(p), bytes));
}

Slab::~Slab() {
  unlink();
  ::munmap(base_, size_);
}

void Slab::unlink() {
  std::lock_guard lock(mutex_);
  if (linked_) ::shm_unlink(name_.c_str());
  linked_ = false;
}

std::optional<std::size_t> Slab::alloc(std::size_t bytes) {
  bytes = (bytes + 63) & ~std::size_t(63);
  std::lock_guard lock(mutex_);
  std::size_t at = 0;
  for (const auto& [off, n] : used_) {
    if (off - at >= bytes) break;
    at = (off + n + 63) & ~std::size_t(63);
  }
  if (at + bytes > size_) return std::nullopt;
  used_.emplace(at, bytes);
  return at;
}

void Slab::free(std::size_t offset) {
  std::lock_guard lock(mutex_);
  used_.erase(offset);
}

}  // namespace vx::pipeline::detail
