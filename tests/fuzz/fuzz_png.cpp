// libFuzzer target: the PNG reader (libpng behind data::read_png) on arbitrary bytes.
// Whatever the input, it returns a source or an Error naming the file; it never crashes,
// leaks or allocates past its limit (64 MiB here, so that a header claiming a huge image is
// refused rather than tripping the fuzzer's malloc limit).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <vector>

#include "data/formats.hpp"

using namespace vx::data;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;  // fmemopen refuses an empty buffer
  struct Closer {
    void operator()(std::FILE* f) const { std::fclose(f); }
  };
  std::unique_ptr<std::FILE, Closer> f(
      fmemopen(const_cast<std::uint8_t*>(data), size, "rb"));  // read only, despite the cast
  if (!f) return 0;
  auto src = read_png(f.get(), "fuzz.png", 64u << 20);
  if (src) {  // read the first chunk of what was decoded, as a renderer would
    std::vector<std::byte> out((*src)->info().chunk_bytes(0));
    (void)(*src)->read_chunk(0, Index{}, out);
  }
  return 0;
}
