// File access for sources (private to src/data): RAII descriptors and mappings, whole-file
// and ranged reads that tell "absent" apart from "failed".
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "core/error.hpp"
#include "data/codecs.hpp"

namespace vx::data {

class File {
 public:
  File() = default;
  explicit File(int fd) : fd_(fd) {}
  ~File();
  File(File&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  File& operator=(File&& o) noexcept;
  File(const File&) = delete;
  File& operator=(const File&) = delete;

  // nullopt when the file does not exist; an error for anything else.
  static Result<std::optional<File>> open_if_exists(const std::string& path);
  static Result<File> open(const std::string& path);

  int fd() const { return fd_; }
  Result<std::uint64_t> size(const std::string& path) const;
  // Reads exactly out.size() bytes at offset or fails naming `path` (short file: kCorrupt).
  Status pread_exact(std::span<std::byte> out, std::uint64_t offset, const std::string& path) const;

 private:
  int fd_ = -1;
};

// Whole file; nullopt when it does not exist (a missing chunk).
Result<std::optional<Bytes>> read_file_if_exists(const std::string& path);
Result<Bytes> read_file(const std::string& path);
Status write_file_atomic(const std::string& path, std::span<const std::byte> data);

// A read-only mapping of a whole file.
class Mapping {
 public:
  Mapping() = default;
  ~Mapping();
  Mapping(Mapping&& o) noexcept : data_(o.data_), size_(o.size_) {
    o.data_ = nullptr;
    o.size_ = 0;
  }
  Mapping& operator=(Mapping&& o) noexcept;
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;

  // populate: fault every page in now (MAP_POPULATE), for small files read whole at once,
  // such as chunks; large arrays (.npy, .nii) are mapped lazily.
  static Result<Mapping> map_file(const std::string& path, bool populate = false);
  // nullopt when the file does not exist (a missing chunk).
  static Result<std::optional<Mapping>> map_if_exists(const std::string& path, bool populate);

  std::span<const std::byte> bytes() const { return {data_, size_}; }

 private:
  std::byte* data_ = nullptr;
  std::size_t size_ = 0;
};

std::string errno_text(int err);

}  // namespace vx::data
