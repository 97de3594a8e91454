#include "data/file_io.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>

namespace vx::data {

std::string errno_text(int err) {
  return std::strerror(err);
}

File::~File() {
  if (fd_ >= 0) ::close(fd_);
}

File& File::operator=(File&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = o.fd_;
    o.fd_ = -1;
  }
  return *this;
}

Result<std::optional<File>> File::open_if_exists(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return std::optional<File>{};
    return fail(ErrorCode::kIo, "{}: cannot open: {}", path, errno_text(errno));
  }
  struct stat st {};
  if (::fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
    ::close(fd);
    return fail(ErrorCode::kFormat, "{}: is a directory, expected a file", path);
  }
  return std::optional<File>(File(fd));
}

Result<File> File::open(const std::string& path) {
  VX_ASSIGN(auto f, open_if_exists(path));
  if (!f) return fail(ErrorCode::kNotFound, "{}: no such file", path);
  return std::move(*f);
}

Result<std::uint64_t> File::size(const std::string& path) const {
  struct stat st {};
  if (::fstat(fd_, &st) != 0) return fail(ErrorCode::kIo, "{}: stat: {}", path, errno_text(errno));
  return std::uint64_t(st.st_size);
}

Status File::pread_exact(std::span<std::byte> out, std::uint64_t offset,
                         const std::string& path) const {
  std::size_t done = 0;
  while (done < out.size()) {
    const auto n = ::pread(fd_, out.data() + done, out.size() - done, off_t(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail(ErrorCode::kIo, "{}: read at offset {}: {}", path, offset + done,
                  errno_text(errno));
    }
    if (n == 0)
      return fail(ErrorCode::kCorrupt, "{}: file ends at byte {}, expected {} bytes at offset {}",
                  path, offset + done, out.size(), offset);
    done += std::size_t(n);
  }
  return {};
}

Result<std::optional<Bytes>> read_file_if_exists(const std::string& path) {
  VX_ASSIGN(auto f, File::open_if_exists(path));
  if (!f) return std::optional<Bytes>{};
  VX_ASSIGN(auto size, f->size(path));
  Bytes data(size);
  VX_TRY(f->pread_exact(data, 0, path));
  return std::optional<Bytes>(std::move(data));
}

Result<Bytes> read_file(const std::string& path) {
  VX_ASSIGN(auto data, read_file_if_exists(path));
  if (!data) return fail(ErrorCode::kNotFound, "{}: no such file", path);
  return std::move(*data);
}

Status write_file_atomic(const std::string& path, std::span<const std::byte> data) {
  const std::string tmp = path + ".part";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return fail(ErrorCode::kIo, "{}: cannot create: {}", tmp, errno_text(errno));
  File guard(fd);
  std::size_t done = 0;
  while (done < data.size()) {
    const auto n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail(ErrorCode::kIo, "{}: write: {}", tmp, errno_text(errno));
    }
    done += std::size_t(n);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0)
    return fail(ErrorCode::kIo, "{}: rename: {}", path, errno_text(errno));
  return {};
}

Mapping::~Mapping() {
  if (data_ && size_) ::munmap(data_, size_);
}

Mapping& Mapping::operator=(Mapping&& o) noexcept {
  if (this != &o) {
    if (data_ && size_) ::munmap(data_, size_);
    data_ = o.data_;
    size_ = o.size_;
    o.data_ = nullptr;
    o.size_ = 0;
  }
  return *this;
}

Result<std::optional<Mapping>> Mapping::map_if_exists(const std::string& path, bool populate) {
  VX_ASSIGN(auto f, File::open_if_exists(path));
  if (!f) return std::optional<Mapping>{};
  VX_ASSIGN(auto size, f->size(path));
  Mapping m;
  if (size == 0) return std::optional<Mapping>(std::move(m));
  const int flags = MAP_SHARED | (populate ? MAP_POPULATE : 0);
  void* p = ::mmap(nullptr, size, PROT_READ, flags, f->fd(), 0);
  if (p == MAP_FAILED) return fail(ErrorCode::kIo, "{}: mmap: {}", path, errno_text(errno));
  m.data_ = static_cast<std::byte*>(p);
  m.size_ = size;
  return std::optional<Mapping>(std::move(m));
}

Result<Mapping> Mapping::map_file(const std::string& path, bool populate) {
  VX_ASSIGN(auto m, map_if_exists(path, populate));
  if (!m) return fail(ErrorCode::kNotFound, "{}: no such file", path);
  return std::move(*m);
}

}  // namespace vx::data
