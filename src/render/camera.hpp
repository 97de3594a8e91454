// Camera math for 3D views, in napari's convention (napari 0.6, right-handed; the one whose
// default angles are (0, 0, 90)). Vectors are in world coordinates of the three displayed
// axes, in (z, y, x) order, as the scene's camera.center.
//   angles (a0, a1, a2) in degrees -> R = from_euler('yzx', angles) (extrinsic, scipy),
//   view direction = (-R[2][1], R[1][1], R[0][1]), up = (-R[2][2], R[1][2], R[0][2]),
//   screen right = view x up.
// The default (0, 0, 90) looks along -z (the highest z is nearest the viewer) with +y down
// and +x right on screen, the same picture as a 2D view of the last two axes.
// zoom is screen pixels per world unit: everywhere for orthographic views, on the plane
// through the center for perspective ones, whose `perspective` is the vertical field of
// view in degrees; the eye then sits at center - view * (height / 2 / zoom) / tan(fov / 2).
#pragma once

#include <array>

#include "render/scene.hpp"

namespace vx::render {

using Vec3 = std::array<double, 3>;

struct ViewBasis {
  Vec3 view;   // from the eye into the scene
  Vec3 up;     // screen up
  Vec3 right;  // screen right
};

ViewBasis view_basis(const std::array<double, 3>& angles_degrees);

// Pixel rays and projection of a camera on a canvas. Screen coordinates are continuous:
// pixel (px, py) covers [px, px + 1) x [py, py + 1), y grows downwards.
class Projection {
 public:
  Projection(const Camera& camera, int width, int height);
  bool perspective() const { return perspective_; }
  const ViewBasis& basis() const { return basis_; }
  const Vec3& eye() const { return eye_; }  // perspective only
  const Vec3& center() const { return center_; }
  double zoom() const { return zoom_; }
  int width() const { return int(2 * half_w_); }
  int height() const { return int(2 * half_h_); }
  double distance() const { return dist_; }  // eye to center (perspective only)
  // The ray through screen point (x, y): its origin (on the plane through the center for
  // orthographic views, the eye for perspective ones) and direction (not normalized).
  void ray(double x, double y, Vec3& origin, Vec3& direction) const;
  // Screen position of a world point and its depth along the view (negative: behind the eye).
  void project(const Vec3& p, double& x, double& y, double& depth) const;

 private:
  ViewBasis basis_;
  Vec3 center_{}, eye_{};
  double zoom_ = 1, half_w_ = 0, half_h_ = 0, dist_ = 0;
  bool perspective_ = false;
};

}  // namespace vx::render
