#include "render/camera.hpp"

#include <cmath>
#include <numbers>

namespace vx::render {

namespace {

using Mat3 = std::array<std::array<double, 3>, 3>;

Mat3 mul(const Mat3& a, const Mat3& b) {
  Mat3 m{};
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j)
      for (int k = 0; k < 3; ++k)
        m[std::size_t(i)][std::size_t(j)] +=
            a[std::size_t(i)][std::size_t(k)] * b[std::size_t(k)][std::size_t(j)];
  return m;
}

// Rotation by `deg` about axis `axis` (0 = x, 1 = y, 2 = z) of a right-handed xyz frame.
Mat3 rotation(int axis, double deg) {
  const double r = deg * std::numbers::pi / 180, c = std::cos(r), s = std::sin(r);
  switch (axis) {
    case 0:
      return Mat3{{{1, 0, 0}, {0, c, -s}, {0, s, c}}};
    case 1:
      return Mat3{{{c, 0, s}, {0, 1, 0}, {-s, 0, c}}};
    default:
      return Mat3{{{c, -s, 0}, {s, c, 0}, {0, 0, 1}}};
  }
}

Vec3 cross(const Vec3& a, const Vec3& b) {
  return {a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]};
}

double dot(const Vec3& a, const Vec3& b) {
  return a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
}

}  // namespace

ViewBasis view_basis(const std::array<double, 3>& angles) {
  // scipy's extrinsic 'yzx': about y by a0, then z by a1, then x by a2.
  const Mat3 r = mul(rotation(0, angles[2]), mul(rotation(2, angles[1]), rotation(1, angles[0])));
  ViewBasis b;
  b.view = {-r[2][1], r[1][1], r[0][1]};
  b.up = {-r[2][2], r[1][2], r[0][2]};
  b.right = cross(b.view, b.up);
  return b;
}

Projection::Projection(const Camera& camera, int width, int height)
    : basis_(view_basis(camera.angles)),
      center_(camera.center),
      zoom_(camera.zoom),
      half_w_(width / 2.0),
      half_h_(height / 2.0),
      perspective_(camera.perspective > 0) {
  if (perspective_) {
    dist_ = half_h_ / zoom_ / std::tan(camera.perspective * std::numbers::pi / 360);
    for (int k = 0; k < 3; ++k)
      eye_[std::size_t(k)] = center_[std::size_t(k)] - dist_ * basis_.view[std::size_t(k)];
  }
}

void Projection::ray(double x, double y, Vec3& origin, Vec3& direction) const {
  const double dx = (x - half_w_) / zoom_, dy = (y - half_h_) / zoom_;
  Vec3 p;
  for (std::size_t k = 0; k < 3; ++k)
    p[k] = center_[k] + dx * basis_.right[k] - dy * basis_.up[k];
  if (!perspective_) {
    origin = p;
    direction = basis_.view;
    return;
  }
  origin = eye_;
  for (std::size_t k = 0; k < 3; ++k)
    direction[k] = p[k] - eye_[k];
}

void Projection::project(const Vec3& p, double& x, double& y, double& depth) const {
  Vec3 d;
  const Vec3& from = perspective_ ? eye_ : center_;
  for (std::size_t k = 0; k < 3; ++k)
    d[k] = p[k] - from[k];
  depth = dot(d, basis_.view);
  const double s = perspective_ ? dist_ / depth : 1.0;
  x = half_w_ + zoom_ * s * dot(d, basis_.right);
  y = half_h_ - zoom_ * s * dot(d, basis_.up);
}

}  // namespace vx::render
