// RAII for CUDA runtime handles (move-only; private to src/render/cuda). Only the runtime's
// C API header appears here, never in a public header.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <utility>

#include "core/error.hpp"

namespace vx::render::cuda {

// ok, or kUnsupported naming the call and CUDA's message (an out-of-memory is kOutOfMemory).
inline Status check(cudaError_t e, const char* what) {
  if (e == cudaSuccess) return {};
  return fail(e == cudaErrorMemoryAllocation ? ErrorCode::kOutOfMemory : ErrorCode::kUnsupported,
              "{}: {} ({})", what, cudaGetErrorString(e), cudaGetErrorName(e));
}

// Device memory of `bytes`; freed on destruction.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  static Result<DeviceBuffer> allocate(std::size_t bytes) {
    DeviceBuffer b;
    if (bytes == 0) return b;
    VX_TRY(check(cudaMalloc(&b.ptr_, bytes), "cudaMalloc"));
    b.bytes_ = bytes;
    return b;
  }
  ~DeviceBuffer() { reset(); }
  DeviceBuffer(DeviceBuffer&& o) noexcept
      : ptr_(std::exchange(o.ptr_, nullptr)), bytes_(std::exchange(o.bytes_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    if (this != &o) {
      reset();
      ptr_ = std::exchange(o.ptr_, nullptr);
      bytes_ = std::exchange(o.bytes_, 0);
    }
    return *this;
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  template <class T = void>
  T* get() const {
    return static_cast<T*>(ptr_);
  }
  std::size_t bytes() const { return bytes_; }
  // Grows to at least `bytes` (contents not kept).
  Status reserve(std::size_t bytes) {
    if (bytes <= bytes_) return {};
    reset();
    VX_ASSIGN(*this, allocate(bytes));
    return {};
  }

 private:
  void reset() {
    if (ptr_) cudaFree(ptr_);
    ptr_ = nullptr;
    bytes_ = 0;
  }
  void* ptr_ = nullptr;
  std::size_t bytes_ = 0;
};

// A non-blocking stream; destroyed (after its work) on destruction.
class Stream {
 public:
  Stream() = default;
  static Result<Stream> create() {
    Stream s;
    VX_TRY(check(cudaStreamCreateWithFlags(&s.s_, cudaStreamNonBlocking), "cudaStreamCreate"));
    return s;
  }
  ~Stream() {
    if (s_) cudaStreamDestroy(s_);
  }
  Stream(Stream&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
  Stream& operator=(Stream&& o) noexcept {
    if (this != &o) {
      if (s_) cudaStreamDestroy(s_);
      s_ = std::exchange(o.s_, nullptr);
    }
    return *this;
  }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  cudaStream_t get() const { return s_; }
  Status sync() const { return check(cudaStreamSynchronize(s_), "cudaStreamSynchronize"); }

 private:
  cudaStream_t s_ = nullptr;
};

}  // namespace vx::render::cuda
