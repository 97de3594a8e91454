// Sort-last parallel rendering on the CPU path: the intermediate image of every part has
// the same grid (all parts plan the same slicing of the whole volume), so the parts'
// partial images combine pixel by pixel, front to back, before the warp. This keeps the
// composite equal to the one-process image: the warp's bilinear filter never sees a
// per-part image.
#include <cstring>

#include "render/cpu/volume_impl.hpp"

namespace vx::render::cpu {

Status composite_planes(const Slicing& s, const SortLast& sl, Mode mode, Planes& pl) {
  // The parts front to back: along the rays (orthographic) or away from the eye.
  std::array<double, 3> dir{}, eye{};
  dir[std::size_t(s.c)] = s.dir;
  if (!s.persp) {
    dir[std::size_t(s.a)] = s.sh_a * s.dir;
    dir[std::size_t(s.b)] = s.sh_b * s.dir;
  }
  for (std::size_t d = 0; d < 3; ++d)
    eye[d] = s.e[d] / double(sl.chunk[d]);
  const auto order = sl.partition.order(dir, s.persp ? &eye : nullptr);
  const std::size_t n = std::size_t(pl.nu) * std::size_t(pl.nv);
  std::vector<float> buf;
  switch (mode) {
    case Mode::kMip:
    case Mode::kMinip:
      return sl.compositor->composite(mode == Mode::kMip ? PartialOp::kMax : PartialOp::kMin,
                                      pl.p[0], order);
    case Mode::kAverage:
    case Mode::kAttenuatedMip: {
      buf.resize(2 * n);
      for (std::size_t i = 0; i < n; ++i)
        buf[2 * i] = pl.p[0][i], buf[2 * i + 1] = pl.p[1][i];
      VX_TRY(sl.compositor->composite(
          mode == Mode::kAverage ? PartialOp::kSum : PartialOp::kAttenuated, buf, order));
      for (std::size_t i = 0; i < n; ++i)
        pl.p[0][i] = buf[2 * i], pl.p[1][i] = buf[2 * i + 1];
      return {};
    }
    case Mode::kTranslucent:
    case Mode::kIso:  // shaded hits: premultiplied RGBA with alpha 0 or 1
      break;
  }
  buf.resize(4 * n);
  std::memcpy(buf.data(), pl.c.data(), 4 * n * sizeof(float));
  VX_TRY(sl.compositor->composite(PartialOp::kOver, buf, order));
  std::memcpy(pl.c.data(), buf.data(), 4 * n * sizeof(float));
  return {};
}

}  // namespace vx::render::cpu
