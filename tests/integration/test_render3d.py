"""`voxcast render` of 3D views: a MIP of data written by python3-zarr against numpy's max
along the view axis, golden images of every rendering mode (with a stated tolerance), and
malformed 3D views.

The golden images (tests/golden/) are a regression net only: each mode is also checked
against an independent reference (tests/unit/render/test_volume.cpp ray-marches them;
test_render_reference.py checks colormaps, blending and the rest with NumPy). The test run
never writes them. After an intended change of the picture, regenerate them by hand with
`/usr/bin/python3 scripts/update-golden build/asan/apps/voxcast/voxcast`, look at them,
and commit them with the change."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vxhelpers import error_line, random_zyx_zarr

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
SHAPE = (24, 40, 56)  # z, y, x


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("render3d") / "v.ome.zarr"
    return path, random_zyx_zarr(path, SHAPE, (8, 16, 16), seed=11)


def view(tmp_path, scene) -> str:
    p = tmp_path / "view.json"
    p.write_text(json.dumps(scene))
    return str(p)


@pytest.mark.parametrize("angles,axis", [([0, 0, 90], 0), ([0, 0, 0], 1)], ids=["along-z", "along-y"])
def test_mip_is_the_max_along_the_view_axis(run_ok, store, tmp_path, angles, axis):
    path, data = store
    lo, hi = 2000.0, 4000.0
    w, h = 80, 64
    v = view(tmp_path, {
        "canvas": {"width": w, "height": h},
        "camera": {"zoom": 1.0, "angles": angles},
        "dims": {"ndisplay": 3},
        "layers": [{"colormap": "gray", "contrast_limits": [lo, hi], "rendering": "mip",
                    "blending": "additive"}],
    })
    out = tmp_path / "mip.png"
    run_ok("render", path, "--view", v, "-o", out)
    img = np.asarray(Image.open(out).convert("L")).astype(int)
    m = data.max(axis=axis).astype(float)  # along -z: (y, x); along +y: (z, x), z down
    want = np.rint(np.clip((m - lo) / (hi - lo), 0, 1) * 255)
    top, left = (h - m.shape[0]) // 2, (w - m.shape[1]) // 2
    got = img[top:top + m.shape[0], left:left + m.shape[1]]
    assert np.abs(got - want).max() <= 1
    assert img[:top].max() == 0 and img[:, :left].max() == 0  # nothing outside the volume


CASES = {
    "mip": {"rendering": "mip"},
    "minip": {"rendering": "minip", "contrast_limits": [0, 150]},
    "average": {"rendering": "average"},
    "attenuated_mip": {"rendering": "attenuated_mip", "attenuation": 0.5},
    "translucent": {"rendering": "translucent"},
    "iso": {"rendering": "iso", "iso_threshold": 1800},
    "mip_perspective": {"rendering": "mip", "perspective": 45},
    "mip_nearest": {"rendering": "mip", "interpolation": "nearest"},
}


GOLDEN_DATA = "synthetic:cells?shape=48x64x80&chunk=16"


def golden_render_args(name, tmp_path, out):
    """The `voxcast render` arguments of golden case `name` (also used by
    scripts/update-golden)."""
    case = dict(CASES[name])
    fov = case.pop("perspective", 0)
    v = view(tmp_path, {
        "canvas": {"width": 160, "height": 120},
        "camera": {"angles": [0, 30, 120], "perspective": fov, "zoom": 1.6},
        "dims": {"ndisplay": 3},
        "layers": [dict(case), dict(case)],
    })
    return ["render", GOLDEN_DATA, "--view", v, "-o", out]


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_images(run_ok, tmp_path, name):
    out = tmp_path / f"{name}.png"
    run_ok(*golden_render_args(name, tmp_path, out))
    got = np.asarray(Image.open(out).convert("RGB")).astype(int)
    golden = GOLDEN / f"3d_{name}.png"
    want = np.asarray(Image.open(golden).convert("RGB")).astype(int)
    diff = np.abs(got - want)
    # Tolerance: 2 levels anywhere (float rounding differs between optimization levels),
    # and the picture is not blank.
    assert diff.max() <= 2, f"{name}: max diff {diff.max()} at {np.unravel_index(diff.argmax(), diff.shape)}"
    # Not blank: the dimmest mode (average) of this data peaks near 59 of 255.
    assert got.max() > 40


def test_3d_needs_three_spatial_axes(run, tmp_path):
    np.save(tmp_path / "plane.npy", np.zeros((32, 32), dtype=np.uint8))
    res = run("render", tmp_path / "plane.npy", "--view",
              view(tmp_path, {"dims": {"ndisplay": 3}}), "-o", tmp_path / "x.png")
    error_line(res, "dims.ndisplay", code=2)


@pytest.mark.parametrize("scene,field", [
    ({"camera": {"perspective": 200}}, "camera.perspective"),
    ({"camera": {"angles": [0, 0]}}, "camera.angles"),
    ({"layers": [{"attenuation": "strong"}]}, "layers[0].attenuation"),
    ({"layers": [{"iso_threshold": None, "rendering": "iso", "interpolation": "cubic"}]},
     "layers[0].interpolation"),
], ids=["fov", "two-angles", "attenuation-type", "interpolation"])
def test_malformed_3d_fields_name_the_field(run, store, tmp_path, scene, field):
    path, _ = store
    scene = {**scene, "dims": {"ndisplay": 3}}
    res = run("render", path, "--view", view(tmp_path, scene), "-o", tmp_path / "x.png")
    error_line(res, field, scrub=tmp_path, code=2)
    assert not (tmp_path / "x.png").exists()
