// 3D views: camera math, every rendering mode against an independent reference (reductions
// along an axis; brute-force ray marching with trilinear sampling for oblique and
// perspective views), empty-space skipping, levels and refining frames.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <numeric>

#include "data/mapped_array.hpp"
#include "render/camera.hpp"
#include "render/renderer.hpp"
#include "render_fixture.hpp"

namespace vx::render {
namespace {

using Fixture = RenderFixture;

// A dense float copy of level 0 (z, y, x) of a one-channel volume.
struct Dense {
  std::int64_t nz = 0, ny = 0, nx = 0;
  std::vector<float> v;
  float at(std::int64_t z, std::int64_t y, std::int64_t x) const {
    return v[std::size_t((z * ny + y) * nx + x)];
  }
  // Trilinear, clamped to the edge, voxel centres at integers.
  float sample(double z, double y, double x) const {
    const double p[3] = {std::clamp(z, 0.0, double(nz - 1)), std::clamp(y, 0.0, double(ny - 1)),
                         std::clamp(x, 0.0, double(nx - 1))};
    const std::int64_t n[3] = {nz, ny, nx};
    std::int64_t i0[3];
    double f[3];
    for (int d = 0; d < 3; ++d) {
      i0[d] = std::min<std::int64_t>(std::int64_t(p[d]), n[d] - 1);
      f[d] = p[d] - double(i0[d]);
    }
    double out = 0;
    for (int c = 0; c < 8; ++c) {
      std::int64_t i[3];
      double w = 1;
      for (int d = 0; d < 3; ++d) {
        const int bit = (c >> d) & 1;
        i[d] = std::min(i0[d] + bit, n[d] - 1);
        w *= bit ? f[d] : 1 - f[d];
      }
      out += w * at(i[0], i[1], i[2]);
    }
    return float(out);
  }
};

Dense dense_of(Fixture& f) {
  const auto& lv = f.src->info().levels[0];
  Dense d;
  const int nd = int(lv.shape.size());
  d.nz = lv.shape[std::size_t(nd - 3)];
  d.ny = lv.shape[std::size_t(nd - 2)];
  d.nx = lv.shape[std::size_t(nd - 1)];
  std::vector<std::int64_t> start(std::size_t(nd), 0), shape = lv.shape;
  const auto dt = f.src->info().dtype;
  std::vector<std::byte> raw(std::size_t(d.nz * d.ny * d.nx) * data::dtype_size(dt));
  EXPECT_TRUE(data::read_region(f.cache, 0, 0, start, shape, raw));
  d.v.resize(std::size_t(d.nz * d.ny * d.nx));
  for (std::size_t i = 0; i < d.v.size(); ++i) {
    if (dt == data::DType::kUInt16)
      d.v[i] = float(reinterpret_cast<const std::uint16_t*>(raw.data())[i]);
    else
      d.v[i] = reinterpret_cast<const float*>(raw.data())[i];
  }
  return d;
}

// A float32 .npy of two Gaussian blobs and a bar, placed off-centre so that a flipped or
// transposed view cannot match; background 0, so many chunks are empty.
std::string blob_volume(const std::string& name, std::int64_t nz, std::int64_t ny,
                        std::int64_t nx) {
  const auto path = (std::filesystem::temp_directory_path() / name).string();
  std::vector<float> v(std::size_t(nz * ny * nx));
  for (std::int64_t z = 0; z < nz; ++z)
    for (std::int64_t y = 0; y < ny; ++y)
      for (std::int64_t x = 0; x < nx; ++x) {
        auto g = [&](double cz, double cy, double cx, double r, double a) {
          const double d2 = (z - cz) * (z - cz) + (y - cy) * (y - cy) + (x - cx) * (x - cx);
          return a * std::exp(-d2 / (2 * r * r));
        };
        double val =
            g(nz * 0.3, ny * 0.35, nx * 0.6, 4.0, 1000) + g(nz * 0.7, ny * 0.7, nx * 0.3, 3.0, 700);
        if (y > ny * 0.15 && y < ny * 0.25 && x > nx * 0.2 && x < nx * 0.8 && z > nz * 0.4 &&
            z < nz * 0.6)
          val += 500;
        v[std::size_t((z * ny + y) * nx + x)] = float(val);
      }
  const std::int64_t shape[3] = {nz, ny, nx};
  std::ofstream out(path, std::ios::binary);
  const auto header = data::make_npy_header(data::DType::kFloat32, shape);
  out.write(header.data(), std::streamsize(header.size()));
  out.write(reinterpret_cast<const char*>(v.data()), std::streamsize(v.size() * sizeof(float)));
  return path;
}

Scene volume_scene(const SceneData& data, int w, int h, Rendering mode, double lo, double hi) {
  Scene s = default_scene(data, w, h);
  s.dims.ndisplay = 3;
  s.layers.resize(1);
  s.layers[0].colormap = "gray";
  s.layers[0].contrast_limits = {lo, hi};
  s.layers[0].rendering = mode;
  return s;
}

int grey(double v, double lo, double hi) {
  return int(std::lround(std::clamp((v - lo) / (hi - lo), 0.0, 1.0) * 255));
}

TEST(Camera, NapariDefaultLooksDownZWithYDownAndXRight) {
  const auto b = view_basis({0, 0, 90});
  for (int i = 0; i < 3; ++i) {
    EXPECT_NEAR(b.view[std::size_t(i)], (Vec3{-1, 0, 0})[std::size_t(i)], 1e-12);
    EXPECT_NEAR(b.up[std::size_t(i)], (Vec3{0, -1, 0})[std::size_t(i)], 1e-12);
    EXPECT_NEAR(b.right[std::size_t(i)], (Vec3{0, 0, 1})[std::size_t(i)], 1e-12);
  }
}

TEST(Camera, ViewDirectionFollowsNapariFormulaAndTheBasisIsOrthonormal) {
  for (const Vec3 a : {Vec3{10, 20, 30}, Vec3{-45, 60, 120}, Vec3{90, -30, -75}, Vec3{0, 89, 3}}) {
    const auto b = view_basis(a);
    const double r1 = a[1] * M_PI / 180, r2 = a[2] * M_PI / 180;
    // napari 0.6: view_direction = (-sin(a2) cos(a1), cos(a2) cos(a1), -sin(a1)).
    const Vec3 expect{-std::sin(r2) * std::cos(r1), std::cos(r2) * std::cos(r1), -std::sin(r1)};
    auto dot = [](const Vec3& x, const Vec3& y) { return x[0] * y[0] + x[1] * y[1] + x[2] * y[2]; };
    for (int i = 0; i < 3; ++i)
      EXPECT_NEAR(b.view[std::size_t(i)], expect[std::size_t(i)], 1e-12);
    EXPECT_NEAR(dot(b.view, b.view), 1, 1e-12);
    EXPECT_NEAR(dot(b.up, b.up), 1, 1e-12);
    EXPECT_NEAR(dot(b.view, b.up), 0, 1e-12);
    EXPECT_NEAR(dot(b.right, b.up), 0, 1e-12);
    EXPECT_NEAR(dot(b.right, b.view), 0, 1e-12);
  }
}

TEST(Camera, ProjectionInvertsRaysOrthographicAndPerspective) {
  for (double fov : {0.0, 40.0}) {
    Camera cam;
    cam.center = {5, -3, 8};
    cam.zoom = 3;
    cam.angles = {15, 35, 100};
    cam.perspective = fov;
    const Projection p(cam, 200, 120);
    for (const auto& xy : {std::array<double, 2>{0.5, 0.5}, {100, 60}, {173.25, 17.5}}) {
      Vec3 o, d;
      p.ray(xy[0], xy[1], o, d);
      for (double t : {0.5, 2.0}) {
        const Vec3 q{o[0] + t * d[0], o[1] + t * d[1], o[2] + t * d[2]};
        double x, y, depth;
        p.project(q, x, y, depth);
        EXPECT_NEAR(x, xy[0], 1e-9);
        EXPECT_NEAR(y, xy[1], 1e-9);
      }
    }
    // zoom is pixels per world unit on the plane through the center.
    double x0, y0, x1, y1, z;
    p.project(cam.center, x0, y0, z);
    const auto& r = p.basis().right;
    p.project({cam.center[0] + r[0], cam.center[1] + r[1], cam.center[2] + r[2]}, x1, y1, z);
    EXPECT_NEAR(x0, 100, 1e-9);
    EXPECT_NEAR(x1 - x0, 3, 1e-9);
  }
}

// Axis-aligned views: each pixel is the reduction (max, min, mean) of the voxel column
// under it, through contrast and colormap.
void expect_reduction_along_view(const Vec3& angles, Rendering mode) {
  Fixture f("synthetic:cells?shape=32x48x64&chunk=16&channels=1");
  const auto d = dense_of(f);
  const double lo = 100, hi = 3500;
  Scene s = volume_scene(f.inputs.data, 80, 72, mode, lo, hi);
  s.layers[0].blending = Blending::kAdditive;  // no cutoff: every column drawn
  s.camera.zoom = 1;
  s.camera.angles = angles;
  auto frame = make_cpu_renderer()->render(s, f.inputs);
  ASSERT_TRUE(frame) << frame.error().what();
  EXPECT_EQ(frame->levels, std::vector<int>{0});
  const Projection proj(s.camera, 80, 72);
  const auto& v = proj.basis().view;
  const int axis =
      int(std::max_element(v.begin(), v.end(),
                           [](double a, double b) { return std::abs(a) < std::abs(b); }) -
          v.begin());
  const std::int64_t n[3] = {d.nz, d.ny, d.nx};
  int checked = 0, worst = 0;
  for (int py = 0; py < 72; ++py)
    for (int px = 0; px < 80; ++px) {
      Vec3 o, dir;
      proj.ray(px + 0.5, py + 0.5, o, dir);
      std::int64_t idx[3];
      bool inside = true;
      for (int k = 0; k < 3; ++k) {
        if (k == axis) continue;
        idx[k] = std::llround(o[std::size_t(k)]);
        ASSERT_NEAR(o[std::size_t(k)], double(idx[k]), 1e-6);  // pixels on voxel centres
        inside &= idx[k] >= 0 && idx[k] < n[k];
      }
      const std::uint8_t* px4 = &frame->pixels[std::size_t(py * 80 + px) * 4];
      if (!inside) {
        EXPECT_EQ(px4[0], 0) << px << "," << py;
        continue;
      }
      double acc = mode == Rendering::kMinip ? 1e30 : mode == Rendering::kMip ? -1e30 : 0;
      for (std::int64_t i = 0; i < n[axis]; ++i) {
        idx[axis] = i;
        const double val = d.at(idx[0], idx[1], idx[2]);
        acc = mode == Rendering::kMip     ? std::max(acc, val)
              : mode == Rendering::kMinip ? std::min(acc, val)
                                          : acc + val / double(n[axis]);
      }
      worst = std::max(worst, std::abs(int(px4[0]) - grey(acc, lo, hi)));
      ++checked;
    }
  EXPECT_GT(checked, 1000);
  // 1: the value goes through a 4096-entry table before the 256-entry colormap.
  EXPECT_LE(worst, 1);
}

TEST(Volume, MipAlongEachAxisIsTheMaxOverThatAxis) {
  expect_reduction_along_view({0, 0, 90}, Rendering::kMip);   // along -z
  expect_reduction_along_view({0, 0, 0}, Rendering::kMip);    // along +y
  expect_reduction_along_view({0, -90, 0}, Rendering::kMip);  // along +x
}

TEST(Volume, MinipAndAverageAlongAnAxisAreTheMinAndMean) {
  expect_reduction_along_view({0, 0, 90}, Rendering::kMinip);
  expect_reduction_along_view({0, 0, 0}, Rendering::kAverage);
}

// Brute force: march every pixel's ray through the box in steps of 1/8 voxel with
// trilinear sampling.
std::vector<double> march(
    const Dense& d, const Scene& s,
    const std::function<void(double value, double step, double& acc, double& alpha)>& f,
    double init) {
  const int W = s.canvas.width, H = s.canvas.height;
  const Projection p(s.camera, W, H);
  std::vector<double> out(std::size_t(W * H), std::nan(""));
  const double n[3] = {double(d.nz), double(d.ny), double(d.nx)};
  for (int py = 0; py < H; ++py)
    for (int px = 0; px < W; ++px) {
      Vec3 o, dir;
      p.ray(px + 0.5, py + 0.5, o, dir);
      const double len = std::sqrt(dir[0] * dir[0] + dir[1] * dir[1] + dir[2] * dir[2]);
      double t0 = p.perspective() ? 0 : -1e9, t1 = 1e9;
      for (int k = 0; k < 3; ++k) {
        double a = (-0.5 - o[std::size_t(k)]) / dir[std::size_t(k)],
               b = (n[k] - 0.5 - o[std::size_t(k)]) / dir[std::size_t(k)];
        if (a > b) std::swap(a, b);
        t0 = std::max(t0, a), t1 = std::min(t1, b);
      }
      if (t0 >= t1) continue;
      double acc = init, alpha = 0;
      const double h = 0.125 / len;
      for (double t = t0 + h / 2; t < t1; t += h)
        f(d.sample(o[0] + t * dir[0], o[1] + t * dir[1], o[2] + t * dir[2]), 0.125, acc, alpha);
      out[std::size_t(py * W + px)] = acc;
    }
  return out;
}

struct Diff {
  double mean = 0;
  int p99 = 0;
  int covered = 0;
};

Diff compare(const Frame& frame, const std::vector<double>& expect_grey) {
  std::vector<int> diffs;
  for (std::size_t i = 0; i < expect_grey.size(); ++i) {
    const double e = std::isnan(expect_grey[i]) ? 0 : expect_grey[i];
    diffs.push_back(std::abs(int(frame.pixels[i * 4]) - int(std::lround(e))));
  }
  Diff r;
  r.mean = std::accumulate(diffs.begin(), diffs.end(), 0.0) / double(diffs.size());
  std::sort(diffs.begin(), diffs.end());
  r.p99 = diffs[diffs.size() * 99 / 100];
  for (const double e : expect_grey)
    r.covered += !std::isnan(e) && e > 20;
  return r;
}

TEST(Volume, ObliqueAndPerspectiveMipMatchBruteForceRayMarching) {
  const auto path = blob_volume("vx_blobs_mip.npy", 24, 28, 36);
  Fixture f(path);
  const auto d = dense_of(f);
  for (double fov : {0.0, 30.0}) {
    Scene s = volume_scene(f.inputs.data, 96, 80, Rendering::kMip, 0, 1000);
    s.camera.angles = {10, 35, 125};
    s.camera.zoom = 1.8;
    s.camera.perspective = fov;
    auto frame = make_cpu_renderer()->render(s, f.inputs);
    ASSERT_TRUE(frame) << frame.error().what();
    auto ref = march(
        d, s, [](double v, double, double& acc, double&) { acc = std::max(acc, v); }, -1e30);
    for (auto& v : ref)
      if (!std::isnan(v)) v = grey(v, 0, 1000);
    const auto diff = compare(*frame, ref);
    EXPECT_GT(diff.covered, 300) << "fov " << fov;
    EXPECT_LT(diff.mean, 1.5) << "fov " << fov;
    EXPECT_LE(diff.p99, 12) << "fov " << fov;
  }
}

TEST(Volume, TranslucentAndAttenuatedMipMatchBruteForceRayMarching) {
  const auto path = blob_volume("vx_blobs_tr.npy", 24, 28, 36);
  Fixture f(path);
  const auto d = dense_of(f);
  const double lo = 0, hi = 1000;
  Scene s = volume_scene(f.inputs.data, 96, 80, Rendering::kTranslucent, lo, hi);
  s.camera.angles = {0, -25, 60};
  s.camera.zoom = 1.8;
  auto frame = make_cpu_renderer()->render(s, f.inputs);
  ASSERT_TRUE(frame) << frame.error().what();
  // Opacity of a sample of normalized value t over a step h (voxels): 1 - (1 - t)^h.
  auto ref = march(
      d, s,
      [&](double v, double h, double& acc, double& alpha) {
        const double t = std::clamp((v - lo) / (hi - lo), 0.0, 1.0);
        const double a = 1 - std::pow(1 - t, h);
        acc += (1 - alpha) * a * t;
        alpha += (1 - alpha) * a;
      },
      0);
  for (auto& v : ref)
    if (!std::isnan(v)) v = v * 255;
  auto diff = compare(*frame, ref);
  EXPECT_GT(diff.covered, 300);
  EXPECT_LT(diff.mean, 2.0);
  EXPECT_LE(diff.p99, 16);

  // Attenuated MIP: a sample is dimmed by exp(-attenuation * the integral of the normalized
  // value in front of it).
  s.layers[0].rendering = Rendering::kAttenuatedMip;
  s.layers[0].attenuation = 0.2;
  frame = make_cpu_renderer()->render(s, f.inputs);
  ASSERT_TRUE(frame) << frame.error().what();
  ref = march(
      d, s,
      [&](double v, double h, double& acc, double& sum) {
        acc = std::max(acc, v * std::exp(-0.2 * sum));
        sum += std::clamp((v - lo) / (hi - lo), 0.0, 1.0) * h;
      },
      -1e30);
  for (auto& v : ref)
    if (!std::isnan(v)) v = grey(v, lo, hi);
  diff = compare(*frame, ref);
  EXPECT_GT(diff.covered, 300);
  EXPECT_LT(diff.mean, 2.0);
  EXPECT_LE(diff.p99, 16);
}

TEST(Volume, IsoSurfaceCoversTheSilhouetteOfTheThresholdedBlob) {
  const auto path = blob_volume("vx_blobs_iso.npy", 24, 28, 36);
  Fixture f(path);
  const auto d = dense_of(f);
  Scene s = volume_scene(f.inputs.data, 96, 80, Rendering::kIso, 0, 1000);
  s.layers[0].iso_threshold = 400;
  s.camera.angles = {5, 20, 110};
  s.camera.zoom = 1.8;
  auto frame = make_cpu_renderer()->render(s, f.inputs);
  ASSERT_TRUE(frame) << frame.error().what();
  // A pixel is covered iff its ray reaches the threshold somewhere.
  auto ref = march(
      d, s, [](double v, double, double& acc, double&) { acc = std::max(acc, v); }, -1e30);
  int agree = 0, total = 0, lit = 0;
  for (std::size_t i = 0; i < ref.size(); ++i) {
    if (std::isnan(ref[i])) continue;
    if (std::abs(ref[i] - 400) < 40) continue;  // the rim: sampling decides
    const bool hit = ref[i] >= 400;
    const bool drawn = frame->pixels[i * 4] > 0;
    agree += hit == drawn;
    lit += hit;
    ++total;
  }
  EXPECT_GT(lit, 100);
  EXPECT_GE(agree, total * 99 / 100);
}

TEST(Volume, SkipsEmptyChunksOfAChunkedVolume) {
  Fixture f("synthetic:cells?shape=64x64x64&chunk=16&channels=1");
  const auto d = dense_of(f);
  // A floor above most chunks' maximum: those cannot show in a MIP.
  std::vector<float> sorted = d.v;
  std::sort(sorted.begin(), sorted.end());
  const double lo = sorted[sorted.size() * 999 / 1000];
  Scene s = volume_scene(f.inputs.data, 64, 64, Rendering::kMip, lo, lo + 500);
  s.layers[0].blending = Blending::kAdditive;
  s.camera.zoom = 1;
  auto frame = make_cpu_renderer()->render(s, f.inputs);
  ASSERT_TRUE(frame) << frame.error().what();
  EXPECT_EQ(frame->bricks, 64u);
  EXPECT_LT(frame->bricks_drawn, frame->bricks);
  int worst = 0;
  for (int y = 0; y < 64; ++y)
    for (int x = 0; x < 64; ++x) {
      double m = -1e30;
      for (int z = 0; z < 64; ++z)
        m = std::max(m, double(d.at(z, y, x)));
      worst = std::max(
          worst, std::abs(int(frame->pixels[std::size_t(y * 64 + x) * 4]) - grey(m, lo, lo + 500)));
    }
  EXPECT_LE(worst, 1);
}

TEST(Volume, LevelFollowsTheFootprintAndInteractiveFramesAreCheaper) {
  Fixture f("synthetic:cells?shape=128x128x128&chunk=32&channels=1");
  Scene s = volume_scene(f.inputs.data, 64, 64, Rendering::kMip, 100, 3500);
  s.camera.angles = {0, 30, 120};  // 128 voxels in 64 pixels: level 1
  auto renderer = make_cpu_renderer();
  auto full = renderer->render(s, f.inputs);
  ASSERT_TRUE(full) << full.error().what();
  EXPECT_EQ(full->levels, std::vector<int>{1});
  EXPECT_FALSE(full->interactive);
  RenderOptions moving;
  moving.interactive = true;
  auto quick = renderer->render(s, f.inputs, moving);
  ASSERT_TRUE(quick);
  EXPECT_EQ(quick->levels, std::vector<int>{2});
  EXPECT_TRUE(quick->interactive);
  EXPECT_LT(quick->bricks, full->bricks);
  // Zoomed in on a corner: only the chunks on screen.
  s.camera.zoom = 4;
  s.camera.center = {16, 16, 16};
  auto zoomed = renderer->render(s, f.inputs);
  ASSERT_TRUE(zoomed);
  EXPECT_EQ(zoomed->levels, std::vector<int>{0});
  EXPECT_LT(zoomed->bricks, 64u);
}

TEST(Volume, RefiningFramesConvergeToTheColdRender) {
  const std::string spec = "synthetic:cells?shape=64x64x64&chunk=16&channels=1";
  Fixture f(spec);
  Scene s = volume_scene(f.inputs.data, 64, 64, Rendering::kMip, 100, 3500);
  s.camera.angles = {0, 20, 100};
  s.camera.zoom = 1;
  auto renderer = make_cpu_renderer();
  std::mutex m;
  std::condition_variable cv;
  int arrivals = 0;
  RenderOptions progressive;
  progressive.wait = false;
  progressive.on_chunk = [&] {
    std::lock_guard lock(m);
    ++arrivals;
    cv.notify_all();
  };
  auto first = renderer->render(s, f.inputs, progressive);
  ASSERT_TRUE(first) << first.error().what();
  EXPECT_TRUE(first->refining);
  EXPECT_GT(first->levels[0], 0);
  Result<Frame> frame = first;
  for (int i = 0; i < 200 && frame && frame->refining; ++i) {
    {
      std::unique_lock lock(m);
      cv.wait_for(lock, std::chrono::milliseconds(50), [&] { return arrivals > 0; });
      arrivals = 0;
    }
    frame = renderer->render(s, f.inputs, progressive);
  }
  ASSERT_TRUE(frame);
  ASSERT_FALSE(frame->refining) << "the view never became final";
  Fixture cold(spec);
  auto reference = make_cpu_renderer()->render(s, cold.inputs);
  ASSERT_TRUE(reference);
  EXPECT_EQ(frame->pixels, reference->pixels);
}

TEST(Volume, NaNsInFloatDataAreDrawnAsNothingInEveryMode) {
  // Left half (x < 8) all NaN, right half 500 with a NaN every third voxel: seen along z,
  // the left half shows the background (0) in every mode and the right half is drawn.
  const auto path = (std::filesystem::temp_directory_path() / "vx_nan.npy").string();
  const std::int64_t n = 16;
  std::vector<float> v(std::size_t(n * n * n), 500.f);
  for (std::size_t i = 0; i < v.size(); ++i)
    if (std::int64_t(i) % n < 8 || (i % 3 == 0 && std::int64_t(i) % n >= 12)) v[i] = std::nanf("");
  const std::int64_t shape[3] = {n, n, n};
  {
    std::ofstream out(path, std::ios::binary);
    const auto header = data::make_npy_header(data::DType::kFloat32, shape);
    out.write(header.data(), std::streamsize(header.size()));
    out.write(reinterpret_cast<const char*>(v.data()), std::streamsize(v.size() * 4));
  }
  Fixture f(path);
  for (auto mode : {Rendering::kMip, Rendering::kMinip, Rendering::kAttenuatedMip,
                    Rendering::kAverage, Rendering::kTranslucent, Rendering::kIso}) {
    const int W = 48, H = 40;
    Scene s = volume_scene(f.inputs.data, W, H, mode, 0, 1000);
    s.layers[0].iso_threshold = 400;
    auto frame = make_cpu_renderer()->render(s, f.inputs);  // UBSan checks the conversions
    ASSERT_TRUE(frame) << to_string(mode) << ": " << frame.error().what();
    // Default angles look along -z: screen x is world x, screen y is world y.
    const double zoom = s.camera.zoom;
    int nan_px = 0, lit_px = 0;
    for (int py = 0; py < H; ++py) {
      const double wy = s.camera.center[1] + (py + 0.5 - H / 2.0) / zoom;
      if (wy < 2 || wy > n - 3) continue;
      for (int px = 0; px < W; ++px) {
        const double wx = s.camera.center[2] + (px + 0.5 - W / 2.0) / zoom;
        const auto* p = &frame->pixels[std::size_t(py * W + px) * 4];
        if (wx > 0.5 && wx < 6) {  // rays through NaN only
          ++nan_px;
          EXPECT_EQ(p[0] + p[1] + p[2], 0)
              << to_string(mode) << ": NaN drawn at pixel " << px << "," << py;
        } else if (wx > 8.6 && wx < 10.6) {  // rays through 500 only
          ++lit_px;
          EXPECT_GT(p[0], 40) << to_string(mode) << ": data not drawn at " << px << "," << py;
        }
      }
    }
    EXPECT_GT(nan_px, 20) << to_string(mode);
    EXPECT_GT(lit_px, 10) << to_string(mode);
  }
}

// Renders `s` with only layer `only` visible (-1: all as given).
Frame render_only(const Scene& scene, const RenderInputs& in, int only) {
  Scene s = scene;
  if (only >= 0)
    for (std::size_t i = 0; i < s.layers.size(); ++i)
      s.layers[i].visible = int(i) == only;
  auto frame = make_cpu_renderer()->render(s, in);
  EXPECT_TRUE(frame) << frame.error().what();
  return frame ? std::move(*frame) : Frame{};
}

TEST(Volume, TwoChannelsCompositeAdditively) {
  // Additive: the frame of both layers is the sum of each layer alone (with its opacity),
  // clamped, within rounding; a max() instead of a sum fails where both layers are lit.
  Fixture f("synthetic:cells?shape=32x32x32&chunk=16");
  Scene s = default_scene(f.inputs.data, 64, 48);
  s.dims.ndisplay = 3;
  s.camera.angles = {0, 30, 120};
  ASSERT_EQ(s.layers.size(), 2u);
  for (auto& l : s.layers) {
    l.colormap = "gray";
    l.blending = Blending::kAdditive;
  }
  s.layers[0].opacity = 0.6;
  s.layers[1].opacity = 0.5;
  const Frame a = render_only(s, f.inputs, 0), b = render_only(s, f.inputs, 1),
              both = render_only(s, f.inputs, -1);
  ASSERT_EQ(both.pixels.size(), a.pixels.size());
  ASSERT_EQ(both.pixels.size(), b.pixels.size());
  EXPECT_EQ(both.levels.size(), 2u);
  int worst = 0, overlap = 0;
  for (std::size_t i = 0; i < both.pixels.size(); i += 4)
    for (std::size_t k = 0; k < 3; ++k) {
      const int sum = std::min(255, int(a.pixels[i + k]) + int(b.pixels[i + k]));
      worst = std::max(worst, std::abs(int(both.pixels[i + k]) - sum));
      overlap += k == 0 && a.pixels[i] > 15 && b.pixels[i] > 15 && sum < 250;
    }
  EXPECT_LE(worst, 1);
  EXPECT_GT(overlap, 50);  // enough pixels where a sum and a max differ
}

TEST(Volume, TwoLayersCompositeTranslucentlyWithOpacity) {
  // Translucent: out = below * (1 - opacity) + colour * opacity where the top layer draws.
  Fixture f("synthetic:cells?shape=32x32x32&chunk=16");
  Scene s = default_scene(f.inputs.data, 64, 48);
  s.dims.ndisplay = 3;
  s.camera.angles = {0, 30, 120};
  ASSERT_EQ(s.layers.size(), 2u);
  s.layers[0].colormap = "gray";
  s.layers[0].blending = Blending::kAdditive;
  s.layers[1].colormap = "gray";
  s.layers[1].blending = Blending::kTranslucent;
  const Frame a = render_only(s, f.inputs, 0), top = render_only(s, f.inputs, 1);
  s.layers[1].opacity = 0.4;
  const Frame both = render_only(s, f.inputs, -1);
  int worst = 0, checked = 0;
  for (std::size_t i = 0; i < both.pixels.size(); i += 4) {
    if (top.pixels[i] == 0) continue;  // the top layer may draw nothing there (cut off)
    const double want = a.pixels[i] * 0.6 + top.pixels[i] * 0.4;
    worst = std::max(worst, std::abs(int(both.pixels[i]) - int(std::lround(want))));
    checked += a.pixels[i] > 15 && std::abs(a.pixels[i] - top.pixels[i]) > 15;
  }
  EXPECT_LE(worst, 2);
  EXPECT_GT(checked, 50);
}

TEST(Volume, YuvMatchesRgba) {
  Fixture f("synthetic:cells?shape=32x32x32&chunk=16");
  Scene s = default_scene(f.inputs.data, 64, 48);
  s.dims.ndisplay = 3;
  s.camera.angles = {0, 30, 120};
  auto renderer = make_cpu_renderer();
  auto rgba = renderer->render(s, f.inputs);
  ASSERT_TRUE(rgba) << rgba.error().what();
  RenderOptions yuv;
  yuv.format = PixelFormat::kI420;
  auto i420 = renderer->render(s, f.inputs, yuv);
  ASSERT_TRUE(i420);
  // Reference: ITU-R BT.709, limited range (Y 16..235, Cb/Cr 16..240), written out here
  // rather than taken from the renderer, so a BT.601 matrix fails. Chroma is 4:2:0: the
  // mean of each 2x2 block.
  const int W = 64, H = 48;
  auto ycc = [&](int x, int y, int k) {
    const auto* p = &rgba->pixels[std::size_t(y * W + x) * 4];
    const double r = p[0] / 255.0, g = p[1] / 255.0, b = p[2] / 255.0;
    const double l = 0.2126 * r + 0.7152 * g + 0.0722 * b;
    return k == 0   ? 16 + 219 * l
           : k == 1 ? 128 + 112 * (b - l) / 0.9278
                    : 128 + 112 * (r - l) / 0.7874;
  };
  int worst = 0, worst_c = 0;
  double chroma_range = 0;
  for (int y = 0; y < H; ++y)
    for (int x = 0; x < W; ++x)
      worst = std::max(worst, std::abs(int(i420->pixels[std::size_t(y * W + x)]) -
                                       int(std::lround(ycc(x, y, 0)))));
  for (int k = 1; k <= 2; ++k)
    for (int y = 0; y < H / 2; ++y)
      for (int x = 0; x < W / 2; ++x) {
        const double want = (ycc(2 * x, 2 * y, k) + ycc(2 * x + 1, 2 * y, k) +
                             ycc(2 * x, 2 * y + 1, k) + ycc(2 * x + 1, 2 * y + 1, k)) /
                            4;
        chroma_range = std::max(chroma_range, std::abs(want - 128));
        const std::size_t at = std::size_t(W * H) + std::size_t(k - 1) * std::size_t(W * H / 4) +
                               std::size_t(y * W / 2 + x);
        worst_c = std::max(worst_c, std::abs(int(i420->pixels[at]) - int(std::lround(want))));
      }
  EXPECT_LE(worst, 1);
  EXPECT_LE(worst_c, 1);
  EXPECT_GT(chroma_range, 20);  // coloured pixels, so the chroma matrix matters
}

}  // namespace
}  // namespace vx::render
