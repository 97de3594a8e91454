"""The Python client, closer to napari (issue 14), against a real `voxcast serve`: choosing a
dataset by index or name; `dims.axis_labels`, `dims.current_step`, `layer.scale` from the
data's calibration; `colormap` as an object with `.name`; an error reply raised by `sync()`
at the assignment that caused it; `screenshot(path=, size=)` rendered by the server, equal
to `voxcast render` of the same scene."""

from __future__ import annotations

import json
import subprocess
import sys
import traceback
import types
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import fixtures

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT / "python") not in sys.path:
    sys.path.insert(0, str(REPO_ROOT / "python"))

import voxcast  # noqa: E402
from voxcast.components import Colormap  # noqa: E402

SYN = "synthetic:cells?shape=32x96x128&chunk=32"


@pytest.fixture
def calibrated(tmp_path):
    """An OME-Zarr (c, z, y, x) with scale (2, 0.5, 0.25) and translation (10, -5, 2.5)."""
    return fixtures.build_zarr2(tmp_path, shape=(2, 16, 32, 32), dtype="uint16",
                                chunks=(1, 16, 16, 16), compressor=None)


@pytest.mark.asyncio
async def test_dataset_by_index_or_name(serve, tmp_path, calibrated):
    s = serve(SYN, calibrated.path, "--data-dir", tmp_path / "d")
    name = Path(calibrated.path).name
    async with await voxcast.connect(s.ws, dataset=name, codecs=["jpeg"]) as v:
        assert v.dataset == 1 and v.dataset_name == name
    async with await voxcast.connect(s.ws, dataset=1, codecs=["jpeg"]) as v:
        assert v.dataset == 1 and v.dataset_name == name
    async with await voxcast.connect(s.ws, codecs=["jpeg"]) as v:
        assert v.dataset == 0 and v.dataset_name == "synthetic:cells"
    with pytest.raises(ValueError, match=r"'nope.tif': not served here \(0 'synthetic:cells', 1 "):
        await voxcast.connect(s.ws, dataset="nope.tif", codecs=["jpeg"])
    with pytest.raises(voxcast.ServerError, match="field 'dataset'"):
        await voxcast.connect(s.ws, dataset=2, codecs=["jpeg"])
    # A path is only ever a name to look up among the served datasets, never opened.
    with pytest.raises(ValueError, match="not served here"):
        await voxcast.connect(s.ws, dataset="/etc/passwd", codecs=["jpeg"])


@pytest.mark.asyncio
async def test_axis_labels_current_step_scale_and_colormap(serve, tmp_path, calibrated):
    s = serve(calibrated.path, "--data-dir", tmp_path / "d")
    async with await voxcast.connect(s.ws, codecs=["jpeg"]) as v:
        assert v.dims.axis_labels == ("z", "y", "x")
        layer = v.layers[0]
        assert layer.scale == (2.0, 0.5, 0.25)
        v.dims.current_step = (3, 4, 5)
        assert v.dims.point == (10 + 2 * 3, -5 + 0.5 * 4, 2.5 + 0.25 * 5)  # at once, locally
        await v.sync()
        assert v.confirmed_scene["dims"]["point"] == [16.0, -3.0, 3.75]
        assert v.dims.current_step == (3, 4, 5)
        with pytest.raises(ValueError, match="3 values"):
            v.dims.current_step = (1, 2)
        cm = layer.colormap
        assert isinstance(cm, Colormap) and cm.name == layer.as_dict()["colormap"] and cm == cm.name
        layer.colormap = types.SimpleNamespace(name="magma")  # any object with .name
        await v.sync()
        assert v.layers[0].colormap.name == "magma"
        v.layers[1].colormap = v.layers[0].colormap  # one layer's colormap object to another
        await v.sync()
        assert v.confirmed_scene["layers"][1]["colormap"] == "magma"


@pytest.mark.asyncio
async def test_sync_raises_at_the_assignment(serve, tmp_path):
    s = serve(SYN, "--data-dir", tmp_path / "d")
    async with await voxcast.connect(s.ws, codecs=["jpeg"]) as v:
        v.camera.center = v.camera.center  # fine
        line = sys._getframe().f_lineno + 1
        v.camera.zoom = -1  # refused by the server
        v.dims.ndisplay = 3  # fine, after it
        with pytest.raises(voxcast.ServerError) as info:
            await v.sync()
        err = info.value
        assert err.code == "bad_patch" and "camera.zoom" in err.message
        assert (err.filename, err.lineno) == (__file__, line)
        assert err.assignment == "v.camera.zoom = -1  # refused by the server"
        assert f"test_python_napari.py:{line}" in str(err)
        last = traceback.extract_tb(err.__traceback__)[-1]
        assert (last.filename, last.lineno) == (__file__, line), traceback.format_tb(err.__traceback__)
        assert v.confirmed_scene["dims"]["ndisplay"] == 3
        # set() too.
        line = sys._getframe().f_lineno + 1
        v.set({"layers": [{"gamma": -2}]})
        with pytest.raises(voxcast.ServerError) as info:
            await v.sync()
        assert info.value.lineno == line and "gamma" in info.value.message


@pytest.mark.asyncio
@pytest.mark.parametrize("ndisplay", [2, 3])
async def test_screenshot_path_and_size_equals_voxcast_render(serve, voxcast_bin, tmp_path, ndisplay):
    s = serve(SYN, "--data-dir", tmp_path / "d")
    async with await voxcast.connect(s.ws, codecs=["jpeg"]) as v:
        v.canvas.size = (200, 150)
        v.dims.ndisplay = ndisplay
        v.camera.zoom = 1.25
        if ndisplay == 3:
            v.camera.angles = (0, 20, 100)
        await v.sync()
        out = tmp_path / "shot.png"
        img = await v.screenshot(path=str(out), size=(300, 400))  # napari: (height, width)
        assert img.shape == (300, 400, 3) and img.dtype == np.uint8
        saved = np.asarray(Image.open(out).convert("RGB"))
        assert np.array_equal(saved, img)
        scene = v.confirmed_scene
        scene["canvas"].update(width=400, height=300)
        scene["camera"]["zoom"] = 1.25 * 2
        view = tmp_path / "view.json"
        view.write_text(json.dumps(scene))
        ref = tmp_path / "ref.png"
        res = subprocess.run([str(voxcast_bin), "render", SYN, "--view", str(view), "-o", str(ref)],
                             capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
        assert res.returncode == 0, res.stderr[-2000:]
        want = np.asarray(Image.open(ref).convert("RGB"))
        assert (want.max(axis=2) > 30).mean() > 0.02, "the reference is blank"
        assert np.array_equal(img, want), f"max diff {np.abs(img.astype(int) - want).max()}"
        # Only a path: the canvas's size.
        img = await v.screenshot(path=str(out))
        assert img.shape == (150, 200, 3)
        with pytest.raises(voxcast.ServerError, match="field 'height'"):
            await v.screenshot(size=(100000, 400))
