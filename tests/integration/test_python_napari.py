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
async def test_screenshots_beyond_two_at_once_are_waited_out(serve, tmp_path):
    # The server renders 2 screenshots at once and answers more with 429; the client waits
    # and asks again, so six asked together all arrive, the same picture.
    import asyncio
    import urllib.request
    s = serve("synthetic:cells?shape=64x128x128&chunk=32&latency_ms=50", "--data-dir",
              tmp_path / "d")
    async with await voxcast.connect(s.ws, codecs=["jpeg"]) as v:
        v.dims.ndisplay = 3
        v.camera.angles = (0, 20, 100)
        await v.sync()
        shots = await asyncio.gather(*(v.screenshot(size=(512, 512), timeout=300)
                                       for _ in range(6)))
    assert all(img.shape == (512, 512, 3) for img in shots)
    assert all(np.array_equal(img, shots[0]) for img in shots)
    assert (shots[0].max(axis=2) > 30).mean() > 0.02, "blank"
    with urllib.request.urlopen(f"{s.http}/api/v1/health", timeout=30) as r:
        assert json.loads(r.read())["http"]["overloaded"] > 0, "no 429: nothing was waited out"


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


@pytest.mark.asyncio
async def test_layer_data_is_lazy_and_reads_only_the_box(serve, tmp_path, calibrated):
    s = serve(calibrated.path, "--data-dir", tmp_path / "d")
    truth = calibrated.levels
    async with await voxcast.connect(s.ws, codecs=["jpeg"]) as v:
        layer = v.layers[1]
        ch = layer.as_dict()["channel"]
        data = layer.data
        assert layer.multiscale and len(data) == len(truth)
        assert data[0].shape == truth[0].shape[1:] and data[0].dtype == truth[0].dtype
        assert data[1].shape == truth[1].shape[1:]
        got = data[0][5, 3:20:4, ::-3]  # a strided box
        assert np.array_equal(got, truth[0][ch, 5, 3:20:4, ::-3])
        assert np.array_equal(await data[0].aget((-1, Ellipsis, 7)), truth[0][ch, -1, :, 7])
        assert np.array_equal(np.asarray(data[1]), truth[1][ch])
        with pytest.raises(IndexError):
            data[0][99]
        with pytest.raises(IndexError):
            data[0][0, 0, 0, 0]


def test_indexing_reads_only_the_chunks_of_its_box(serve, tmp_path):
    """Chunks of 32: a box inside one chunk is one chunk read, a 2x2 box of chunks four."""
    from voxcast.lazy import LazyArray
    from voxcast.connection import parse_url
    s = serve("synthetic:cells?shape=64x256x256&chunk=32", "--data-dir", tmp_path / "d")
    arr = LazyArray(parse_url(s.ws), 0, 0, (2, 64, 256, 256), "uint16", channel_axis=0, channel=1)
    assert arr.shape == (64, 256, 256)
    before = health_misses(s)
    a = arr[40, 100:110, 200:220]
    assert a.shape == (10, 20) and health_misses(s) - before == 1
    before = health_misses(s)
    b = arr[33, 60:70, 90:100]  # y 32..63 and 64..95, x 64..95 and 96..127
    assert b.shape == (10, 10) and health_misses(s) - before == 4
    before = health_misses(s)
    assert np.array_equal(arr[40, 100:110, 200:220], a) and health_misses(s) == before


def health_misses(s) -> int:
    import urllib.request
    with urllib.request.urlopen(f"{s.http}/api/v1/health", timeout=10) as r:
        return json.load(r)["cache"]["misses"]


@pytest.mark.parametrize("body, field", [
    ({"level": 0, "start": [0, 0, 0, 0], "shape": [1, 1, 1, 1], "dataset": 3}, "'dataset'"),
    ({"level": 9, "start": [0, 0, 0, 0], "shape": [1, 1, 1, 1]}, "'level'"),
    ({"start": [0, 0, 0], "shape": [1, 1, 1, 1]}, "'start'"),
    ({"start": [0, 0, 0, -1], "shape": [1, 1, 1, 1]}, "'start', 'shape'"),
    ({"start": [0, 0, 0, 30], "shape": [1, 1, 1, 5]}, "'start', 'shape'"),
    ({"start": [0, 0, 0, 0], "shape": [2, 16, 32, 0]}, "'start', 'shape'"),
    ({"start": [0, 0, 0, "../etc"], "shape": [1, 1, 1, 1]}, "'start'"),
    ({"start": [0, 0, 0, 0], "shape": [1, 1, 1, 1], "path": "/etc/passwd"}, "'path'"),
])
def test_region_route_names_the_field(serve, tmp_path, calibrated, body, field):
    import urllib.error
    import urllib.request
    s = serve(calibrated.path, "--data-dir", tmp_path / "d")
    req = urllib.request.Request(f"{s.http}/api/v1/region", data=json.dumps(body).encode(),
                                 method="POST")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(req, timeout=30)
    assert info.value.code == 400
    msg = json.loads(info.value.read())["error"]["message"]
    assert field in msg, msg


def test_region_route_size_limit(serve, tmp_path):
    import urllib.error
    import urllib.request
    s = serve("synthetic:cells?shape=512x1024x1024", "--data-dir", tmp_path / "d")
    body = {"start": [0, 0, 0, 0], "shape": [2, 512, 1024, 1024]}
    req = urllib.request.Request(f"{s.http}/api/v1/region", data=json.dumps(body).encode(),
                                 method="POST")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(req, timeout=30)
    assert info.value.code == 400 and "MiB" in json.loads(info.value.read())["error"]["message"]


def test_regions_beyond_two_at_once_are_429_and_the_client_asks_again(serve, tmp_path):
    # Regions run on the render pool: at most 2 at once, the rest get 429 (before, twenty of
    # them held another client's first frame back by ten seconds). voxcast's client retries.
    import concurrent.futures
    import urllib.error
    import urllib.request

    from voxcast import rest
    from voxcast.connection import parse_url

    # Each box its own chunks, each chunk 100 ms of storage latency: 16 boxes take at least
    # 800 ms two at a time, far longer than sending them all.
    s = serve("synthetic:cells?shape=1024x128x128&chunk=64&latency_ms=100", "--data-dir",
              tmp_path / "d")
    boxes = [([0, z, 0, 0], [1, 64, 128, 128]) for z in range(0, 1024, 64)]

    def raw(box):
        req = urllib.request.Request(f"{s.http}/api/v1/region", method="POST",
                                     data=json.dumps({"start": box[0], "shape": box[1]}).encode())
        try:
            with urllib.request.urlopen(req, timeout=120) as r:
                return r.status, dict(r.headers)
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers)

    with concurrent.futures.ThreadPoolExecutor(len(boxes)) as ex:
        answers = list(ex.map(raw, boxes))
    codes = sorted(c for c, _ in answers)
    assert set(codes) == {200, 429} and codes.count(200) >= 2, codes
    assert all(h.get("Retry-After") == "1" for c, h in answers if c == 429)

    endpoint = parse_url(s.http)
    with concurrent.futures.ThreadPoolExecutor(len(boxes)) as ex:
        got = list(ex.map(lambda b: rest.read_region(endpoint, 0, 0, b[0], b[1]), boxes))
    whole = rest.read_region(endpoint, 0, 0, [0, 0, 0, 0], [1, 1024, 128, 128])
    for (start, shape), a in zip(boxes, got):
        assert np.array_equal(a, whole[:, start[1]:start[1] + 64]), start
