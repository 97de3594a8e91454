"""`voxcast render` against references computed here, independently of the renderer: NumPy
for contrast, gamma, blending, opacity, visibility, background, dims.order and voxel scale,
and matplotlib's own colormaps (python3-matplotlib) for every entry of every table.

The semantics are napari's (docs/rendering.md): a value is normalized by its contrast
limits (clamped), quantized to 4096 steps, raised to `gamma`, and looked up in a 256-entry
colormap; layers composite over the canvas background in order: additive adds
`opacity * colour`, translucent mixes `(1 - opacity) * below + opacity * colour`, and a
hidden layer draws nothing. Tolerances are stated per test: 1 level per colour channel for
one layer (the tables hold bytes, the reference floats), 2 for two layers."""

from __future__ import annotations

import json

import matplotlib
import numpy as np
import pytest
import zarr
from PIL import Image

CMAPS_MPL = ["gray", "viridis", "magma", "inferno", "plasma", "turbo"]
# napari's single-hue maps: a linear ramp from black to the colour.
HUES = {"red": (1, 0, 0), "green": (0, 1, 0), "blue": (0, 0, 1), "cyan": (0, 1, 1),
        "magenta": (1, 0, 1), "yellow": (1, 1, 0), "#FF8000": (1, 128 / 255, 0)}


def colormap(name: str) -> np.ndarray:
    """(256, 3) floats in [0, 1]: matplotlib's map (or napari's ramp) at 256 points."""
    if name in HUES:
        return np.linspace(0, 1, 256)[:, None] * np.asarray(HUES[name], float)[None, :]
    return np.asarray(matplotlib.colormaps[name](np.linspace(0, 1, 256)))[:, :3]


def layer_colour(values, lo, hi, name="gray", gamma=1.0) -> np.ndarray:
    """(..., 3) colour in [0, 1] of data values through contrast, gamma and colormap."""
    t = np.clip((np.asarray(values, float) - lo) / (hi - lo), 0, 1)
    t = np.floor(t * 4095 + 0.5) / 4095  # the documented 4096-step table
    idx = np.floor(t ** gamma * 255 + 0.5).astype(int)
    return colormap(name)[idx]


def to_bytes(rgb) -> np.ndarray:
    return np.floor(np.clip(rgb, 0, 1) * 255 + 0.5).astype(int)


def ome_zarr(path, data, axes, scale=None):
    g = zarr.open_group(str(path), mode="w")
    g.create_dataset("0", data=data, chunks=tuple(min(16, n) for n in data.shape),
                     dimension_separator="/")
    g.attrs["multiscales"] = [{
        "version": "0.4",
        "axes": [{"name": n, "type": "channel" if n == "c" else "space",
                  **({} if n == "c" else {"unit": "micrometer"})} for n in axes],
        "datasets": [{"path": "0", "coordinateTransformations": [
            {"type": "scale", "scale": list(scale or [1] * len(axes))}]}],
    }]
    return path


def render(run_ok, tmp_path, data_path, scene) -> np.ndarray:
    v = tmp_path / "view.json"
    v.write_text(json.dumps(scene))
    out = tmp_path / "out.png"
    run_ok("render", data_path, "--view", v, "-o", out)
    img = np.asarray(Image.open(out).convert("RGBA")).astype(int)
    assert (img[..., 3] == 255).all()
    return img[..., :3]


def assert_close(got, want, tol, what):
    assert got.shape == want.shape, f"{what}: shape {got.shape}, expected {want.shape}"
    diff = np.abs(got - want)
    if diff.max() > tol:
        at = np.unravel_index(diff.argmax(), diff.shape)
        pytest.fail(f"{what}: {int((diff > tol).sum())} values off by more than {tol}; worst "
                    f"{diff.max()} at {at}: got {got[at[:2]]}, expected {want[at[:2]]}",
                    pytrace=False)


# --- every colormap entry -----------------------------------------------------------------

@pytest.fixture(scope="module")
def ramp(tmp_path_factory):
    """One 16 x 16 plane holding 0..255: with contrast [0, 255] pixel v shows entry v."""
    data = np.arange(256, dtype=np.uint8).reshape(1, 16, 16)
    return ome_zarr(tmp_path_factory.mktemp("ramp") / "ramp.ome.zarr", data, "zyx"), data


@pytest.mark.parametrize("name", CMAPS_MPL + list(HUES))
def test_every_colormap_entry_matches_the_reference(run_ok, tmp_path, ramp, name):
    path, data = ramp
    got = render(run_ok, tmp_path, path, {
        "canvas": {"width": 16, "height": 16},
        "camera": {"center": [7.5, 7.5], "zoom": 1},
        "dims": {"point": [0, 7.5, 7.5]},
        "layers": [{"colormap": name, "contrast_limits": [0, 255], "interpolation": "nearest"}],
    })
    want = to_bytes(colormap(name)[data[0].astype(int)])
    assert_close(got, want, 1, f"colormap {name}")


# --- contrast, gamma, layers, background ----------------------------------------------------

SHAPE = (6, 40, 60)  # z, y, x


@pytest.fixture(scope="module")
def two_channels(tmp_path_factory):
    """(c, z, y, x) uint16 in 0..4095: with contrast [0, 4095] no value sits on a rounding tie."""
    rng = np.random.default_rng(5)
    data = rng.integers(0, 4096, size=(2, *SHAPE), dtype=np.uint16)
    path = ome_zarr(tmp_path_factory.mktemp("two") / "two.ome.zarr", data, "czyx")
    return path, data


def scene_2d(layers, z=2, width=SHAPE[2] + 12, height=SHAPE[1] + 10, background=None):
    canvas = {"width": width, "height": height}
    if background is not None:
        canvas["background"] = background
    return {"canvas": canvas,
            "camera": {"center": [(SHAPE[1] - 1) / 2, (SHAPE[2] - 1) / 2], "zoom": 1},
            "dims": {"point": [z, (SHAPE[1] - 1) / 2, (SHAPE[2] - 1) / 2]},
            # Layers a view leaves out keep the data's defaults: null removes them.
            "layers": [{"interpolation": "nearest", "contrast_limits": [0, 4095],
                        "blending": "translucent", "opacity": 1.0, "gamma": 1.0, "visible": True,
                        "channel": 0, **l} for l in layers] + [None] * (2 - len(layers))}


def composite(data, layers, z, width, height, background):
    """The reference frame: the canvas background, then each layer over it."""
    out = np.empty((height, width, 3))
    out[:] = np.asarray(background, float)
    top, left = (height - SHAPE[1]) // 2, (width - SHAPE[2]) // 2
    box = out[top:top + SHAPE[1], left:left + SHAPE[2]]
    for l in layers:
        if l is None or not l.get("visible", True):
            continue
        lo, hi = l.get("contrast_limits", [0, 4095])
        c = layer_colour(data[l.get("channel", 0), z], lo, hi, l.get("colormap", "gray"),
                         l.get("gamma", 1.0))
        op = l.get("opacity", 1.0)
        blending = l.get("blending", "translucent")
        if blending == "additive":
            box += op * c
        elif blending == "translucent":
            box[:] = (1 - op) * box + op * c
        else:
            raise ValueError(blending)
    return to_bytes(out)


CASES = {
    "gamma-0.5-viridis": [{"colormap": "viridis", "gamma": 0.5}],
    "gamma-2.2-magma": [{"colormap": "magma", "gamma": 2.2, "contrast_limits": [300, 3500]}],
    "additive-green-magenta": [
        {"channel": 0, "colormap": "green", "blending": "additive"},
        {"channel": 1, "colormap": "magenta", "blending": "additive"}],
    "additive-same-channels-with-opacity": [
        {"channel": 0, "colormap": "gray", "blending": "additive", "opacity": 0.6},
        {"channel": 1, "colormap": "inferno", "blending": "additive", "opacity": 0.5}],
    "translucent-over-additive": [
        {"channel": 0, "colormap": "viridis", "blending": "additive"},
        {"channel": 1, "colormap": "plasma", "blending": "translucent", "opacity": 0.35}],
    "translucent-opaque-top-hides-below": [
        {"channel": 0, "colormap": "viridis", "blending": "additive"},
        {"channel": 1, "colormap": "turbo", "blending": "translucent", "opacity": 1.0}],
    "hidden-second-layer": [
        {"channel": 0, "colormap": "cyan", "blending": "additive"},
        {"channel": 1, "colormap": "yellow", "blending": "additive", "visible": False}],
    "hidden-first-layer": [
        {"channel": 0, "colormap": "cyan", "blending": "additive", "visible": False},
        {"channel": 1, "colormap": "yellow", "blending": "additive", "opacity": 0.7}],
}


@pytest.mark.parametrize("background", [[0, 0, 0], [0.2, 0.4, 0.1]], ids=["black", "coloured"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_layers_composite_like_the_reference(run_ok, tmp_path, two_channels, name, background):
    path, data = two_channels
    layers = CASES[name]
    sc = scene_2d(layers, background=background)
    got = render(run_ok, tmp_path, path, sc)
    want = composite(data, sc["layers"], 2, sc["canvas"]["width"], sc["canvas"]["height"],
                     background)
    assert_close(got, want, 2 if len(layers) > 1 else 1, name)


# --- dims.order and voxel scale -------------------------------------------------------------

@pytest.mark.parametrize("order,point,expect", [
    ([1, 0, 2], [0, 17, 0], lambda d: d[:, 17, :]),     # displays z (rows) by x
    ([0, 2, 1], [3, 0, 0], lambda d: d[3].T),           # displays x (rows) by y
    ([2, 1, 0], [0, 0, 41], lambda d: d[:, :, 41].T),   # displays y (rows) by z
], ids=["z-by-x", "x-by-y", "y-by-z"])
def test_dims_order_chooses_the_displayed_axes(run_ok, tmp_path, two_channels, order, point,
                                               expect):
    path, data = two_channels
    plane = expect(data[0])
    rows, cols = plane.shape
    world = np.asarray(point, float)
    got = render(run_ok, tmp_path, path, {
        "canvas": {"width": max(cols, 16), "height": max(rows, 16)},
        "camera": {"center": [(rows - 1) / 2, (cols - 1) / 2], "zoom": 1},
        "dims": {"order": order, "point": world.tolist()},
        "layers": [{"colormap": "viridis", "contrast_limits": [0, 4095], "channel": 0,
                    "interpolation": "nearest", "blending": "translucent", "opacity": 1.0,
                    "gamma": 1.0}, None],
    })
    want = to_bytes(layer_colour(plane, 0, 4095, "viridis"))
    top, left = (max(rows, 16) - rows) // 2, (max(cols, 16) - cols) // 2
    assert_close(got[top:top + rows, left:left + cols], want, 1, f"order {order}")


def test_non_unit_voxel_scale_is_world_units(run_ok, tmp_path):
    """Scale (z, y, x) = (2, 0.5, 1) at zoom 2: a y voxel is one pixel, an x voxel two, and
    dims.point picks z in world units (z = 6 is voxel 3)."""
    rng = np.random.default_rng(9)
    data = rng.integers(0, 4096, size=(5, 24, 20), dtype=np.uint16)
    path = ome_zarr(tmp_path / "s.ome.zarr", data, "zyx", scale=[2, 0.5, 1])
    ny, nx = data.shape[1:]
    got = render(run_ok, tmp_path, path, {
        "canvas": {"width": 2 * nx, "height": ny},
        "camera": {"center": [0.5 * (ny - 1) / 2, (nx - 1) / 2], "zoom": 2},
        "dims": {"point": [6, 0.5 * (ny - 1) / 2, (nx - 1) / 2]},
        "layers": [{"colormap": "plasma", "contrast_limits": [0, 4095],
                    "interpolation": "nearest"}],
    })
    want = to_bytes(layer_colour(np.repeat(data[3], 2, axis=1), 0, 4095, "plasma"))
    assert_close(got, want, 1, "scale (2, 0.5, 1)")


# --- 3D: MIP of two layers, colormaps, blending and scale ----------------------------------

SHAPE3 = (12, 30, 44)


@pytest.fixture(scope="module")
def volume3(tmp_path_factory):
    rng = np.random.default_rng(21)
    data = rng.integers(0, 4096, size=(2, *SHAPE3), dtype=np.uint16)
    path = ome_zarr(tmp_path_factory.mktemp("v3") / "v3.ome.zarr", data, "czyx",
                    scale=[1, 2, 1, 1])
    return path, data


@pytest.mark.parametrize("second", ["additive", "translucent"])
def test_3d_mip_of_two_layers_matches_the_reference(run_ok, tmp_path, volume3, second):
    """Along -z (default angles): each pixel is the colour of the ray's maximum; the second
    layer composites over the first (translucent mip draws nothing where the maximum is at
    or below the low limit). z has scale 2, which must not change an orthographic MIP."""
    path, data = volume3
    ny, nx = SHAPE3[1:]
    lo1 = 3000
    layers = [
        {"channel": 0, "colormap": "viridis", "contrast_limits": [1000, 4095],
         "blending": "additive", "rendering": "mip", "gamma": 0.7},
        {"channel": 1, "colormap": "magma", "contrast_limits": [lo1, 4095],
         "blending": second, "rendering": "mip", "opacity": 0.6},
    ]
    W, H = nx + 8, ny + 6
    got = render(run_ok, tmp_path, path, {
        "canvas": {"width": W, "height": H, "background": [0.1, 0.1, 0.2]},
        "camera": {"center": [SHAPE3[0] - 1, (ny - 1) / 2, (nx - 1) / 2], "zoom": 1,
                   "angles": [0, 0, 90]},
        "dims": {"ndisplay": 3},
        "layers": layers,
    })
    m0, m1 = data[0].max(axis=0), data[1].max(axis=0)
    acc = np.empty((H, W, 3))
    acc[:] = (0.1, 0.1, 0.2)
    box = acc[3:3 + ny, 4:4 + nx]
    box += layer_colour(m0, 1000, 4095, "viridis", 0.7)
    c1 = layer_colour(m1, lo1, 4095, "magma")
    if second == "additive":
        box += 0.6 * c1
    else:
        drawn = (m1 > lo1)[..., None]
        box[:] = np.where(drawn, 0.4 * box + 0.6 * c1, box)
    assert_close(got, to_bytes(acc), 2, f"3D mip, {second} second layer")


def test_3d_voxel_scale_stretches_the_view(run_ok, tmp_path, volume3):
    """Along +y (angles (0, 0, 0): z down, x right) with z scale 2: each z voxel is two
    pixel rows at zoom 1. Nearest sampling, so the reference is the maximum along y with
    its rows repeated."""
    path, data = volume3
    nz, ny, nx = SHAPE3
    W, H = nx + 8, 2 * nz + 6
    got = render(run_ok, tmp_path, path, {
        "canvas": {"width": W, "height": H},
        "camera": {"center": [nz - 1, (ny - 1) / 2, (nx - 1) / 2], "zoom": 1, "angles": [0, 0, 0]},
        "dims": {"ndisplay": 3},
        "layers": [{"channel": 0, "colormap": "inferno", "contrast_limits": [1000, 4095],
                    "blending": "translucent", "rendering": "mip", "interpolation": "nearest",
                    "opacity": 1.0, "gamma": 1.0},
                   None],
    })
    m = np.repeat(data[0].max(axis=1), 2, axis=0)  # (2 nz, nx)
    want = np.zeros((H, W, 3))
    want[3:3 + 2 * nz, 4:4 + nx] = np.where((m > 1000)[..., None],
                                            layer_colour(m, 1000, 4095, "inferno"), 0)
    assert_close(got, to_bytes(want), 1, "3D mip along y, z scale 2")
