"""`voxcast render`: a 2D slice of data written by python3-zarr, read back from the PNG with
python3-pil and compared with the stored plane through the contrast and colormap mapping."""

from __future__ import annotations

import json

import numpy as np
import pytest
import zarr
from PIL import Image

from vxhelpers import error_line, random_zyx_zarr

SHAPE = (5, 40, 60)  # z, y, x


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("render") / "r.ome.zarr"
    return path, random_zyx_zarr(path, SHAPE, (2, 16, 16), seed=7)


def view(tmp_path, scene) -> str:
    p = tmp_path / "view.json"
    p.write_text(json.dumps(scene))
    return str(p)


@pytest.mark.parametrize("z", [0, 3])
def test_slice_equals_the_stored_plane_through_contrast(run_ok, store, tmp_path, z):
    path, data = store
    lo, hi = 500.0, 3500.0
    v = view(tmp_path, {
        "canvas": {"width": SHAPE[2], "height": SHAPE[1]},
        "camera": {"zoom": 1.0},
        "dims": {"point": [z, 19.5, 29.5]},
        "layers": [{"colormap": "gray", "contrast_limits": [lo, hi], "interpolation": "nearest"}],
    })
    out = tmp_path / "out.png"
    run_ok("render", path, "--view", v, "-o", out)
    img = np.asarray(Image.open(out).convert("RGBA"))
    assert img.shape == (SHAPE[1], SHAPE[2], 4)
    want = np.rint(np.clip((data[z].astype(float) - lo) / (hi - lo), 0, 1) * 255)
    # Tolerance 1: the value is quantized to 4096 steps before the 256-entry colormap.
    assert np.abs(img[..., 0].astype(int) - want).max() <= 1
    assert (img[..., 0] == img[..., 2]).all() and (img[..., 3] == 255).all()


def test_size_overrides_the_canvas_and_default_view_frames_the_data(run_ok, store, tmp_path):
    path, data = store
    out = tmp_path / "out.png"
    run_ok("render", path, "--size", "120x80", "-o", out)
    img = np.asarray(Image.open(out).convert("RGB")).astype(float)
    assert img.shape == (80, 120, 3)
    # napari's framing: the middle slice, centred, scaled to fit with a 5% margin. The
    # extent between the first and last voxel centres is 59 x 39, so zoom = 0.95 * 80 / 39.
    zoom = 0.95 * min(120 / 59, 80 / 39)
    lit = np.argwhere(img.max(axis=2) > 0)
    (top, left), (bottom, right) = lit.min(axis=0), lit.max(axis=0)
    want = (40 - 20 * zoom, 60 - 30 * zoom, 40 + 20 * zoom, 60 + 30 * zoom)
    assert np.abs(np.array([top, left, bottom + 1, right + 1]) - want).max() <= 1.5, (
        f"data spans rows {top}..{bottom}, columns {left}..{right}; expected {want}")
    # The picture is the middle plane (z = 2) the right way up: it correlates with the plane
    # sampled at each pixel's world position (nearest), and not with the plane flipped.
    py, px = np.mgrid[0:80, 0:120]
    yi = np.rint(19.5 + (py + 0.5 - 40) / zoom).astype(int)
    xi = np.rint(29.5 + (px + 0.5 - 60) / zoom).astype(int)
    inside = (yi >= 0) & (yi < SHAPE[1]) & (xi >= 0) & (xi < SHAPE[2])
    plane = data[2].astype(float)
    for ref, sign in ((plane, 1), (plane[::-1], -1), (plane[:, ::-1], -1)):
        r = np.corrcoef(img[..., 0][inside], ref[yi[inside], xi[inside]])[0, 1]
        assert (r > 0.5) if sign > 0 else (abs(r) < 0.2), f"correlation {r:.2f}"


@pytest.mark.parametrize("scene,field", [
    ({"camera": {"zoom": -1}}, "camera.zoom"),
    ({"layers": [{"colormap": "nope"}]}, "layers[0].colormap"),
    ({"layers": [{"rendering": "dvr"}]}, "layers[0].rendering"),
    ({"dims": {"point": [1, 2]}}, "dims.point"),
    ({"camera": {"zoom": 1}, "extra": 1}, "extra"),
    ([1, 2], "object"),
], ids=["negative-zoom", "bad-colormap", "bad-rendering", "short-point", "unknown-key", "not-object"])
def test_malformed_view_files_name_the_field(run, store, tmp_path, scene, field):
    path, _ = store
    res = run("render", path, "--view", view(tmp_path, scene), "-o", tmp_path / "x.png")
    error_line(res, field, scrub=tmp_path, code=2)  # the view asks for what cannot be
    assert not (tmp_path / "x.png").exists()


def test_view_that_is_not_json(run, store, tmp_path):
    path, _ = store
    p = tmp_path / "broken.json"
    p.write_text('{"camera": ')
    res = run("render", path, "--view", p, "-o", tmp_path / "x.png")
    error_line(res, "broken.json", "json")


def test_bad_size(run, store, tmp_path):
    path, _ = store
    res = run("render", path, "--size", "wide", "-o", tmp_path / "x.png")
    error_line(res, "--size", code=2)


def test_demo_converts_describes_and_renders(run_ok, tmp_path):
    out = tmp_path / "demo.ome.zarr"
    res = run_ok("demo", "--offline", "-o", out, "--shape", "32x128x128")
    assert "1.0 TiB" in res.stdout  # the built-in dataset, described
    z = zarr.open(str(out), mode="r")
    assert z["0"].shape == (2, 32, 128, 128)
    assert np.asarray(z["0"][0, 16]).max() > 1000  # bright nuclei in the middle slice
    img = np.asarray(Image.open(tmp_path / "demo.png").convert("RGB")).astype(int)
    assert img.shape == (720, 1280, 3)
    # The PNG is the default view (middle slice, contrast from the data) of what it wrote:
    # the same as rendering the written store, and not blank.
    run_ok("render", out, "--size", "1280x720", "-o", tmp_path / "again.png")
    again = np.asarray(Image.open(tmp_path / "again.png").convert("RGB")).astype(int)
    assert np.abs(img - again).max() <= 1
    assert (img.max(axis=2) > 100).mean() > 0.01


def test_default_contrast_comes_from_the_data(run_ok, tmp_path):
    """A .npy has no display window: the default view estimates one (napari does the same),
    instead of stretching the dtype's full range and showing black."""
    rng = np.random.default_rng(3)
    data = rng.integers(1000, 2000, size=(8, 48, 64), dtype=np.uint16)
    np.save(tmp_path / "a.npy", data)
    out = tmp_path / "a.png"
    run_ok("render", tmp_path / "a.npy", "--size", "64x48", "-o", out)
    img = np.asarray(Image.open(out).convert("L")).astype(float)
    assert 60 < img.mean() < 200, img.mean()  # mid-grey on average, not black
    assert img.std() > 30  # and the values spread over the range
