"""POST /api/v1/screenshot (docs/protocol.md, "Screenshots"): a view rendered by the server at
final quality as a PNG. At a larger size it equals `voxcast render` of the same scene at that
size (the zoom scaled with it): pixel-exact, the same renderer, the same chunks. Every field
refused by name when it is wrong; the token guards it."""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import urllib.error
import urllib.request

import numpy as np
import pytest
import websockets
from PIL import Image

DATA = "synthetic:cells?shape=48x96x128&chunk=32"


def post(s, body, raw=None, token=None, method="POST"):
    data = raw if raw is not None else json.dumps(body).encode()
    url = f"{s.http}/api/v1/screenshot" + (f"?token={token}" if token else "")
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def png(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGBA"))


async def welcome_scene(s):
    async with websockets.connect(f"{s.ws}/ws/state") as ws:
        await ws.send(json.dumps({"type": "hello", "codecs": ["jpeg"]}))
        return json.loads(await asyncio.wait_for(ws.recv(), 30))["scene"]


def render_cli(voxcast_bin, tmp_path, scene, name):
    view, out = tmp_path / f"{name}.json", tmp_path / f"{name}.png"
    view.write_text(json.dumps(scene))
    res = subprocess.run([str(voxcast_bin), "render", DATA, "--view", str(view), "-o", str(out)],
                         capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert res.returncode == 0, res.stderr[-3000:]
    return np.asarray(Image.open(out).convert("RGBA"))


@pytest.mark.parametrize("ndisplay", [2, 3])
def test_larger_screenshot_equals_voxcast_render(serve, voxcast_bin, tmp_path, ndisplay):
    s = serve(DATA, "--data-dir", tmp_path / "d")
    scene = asyncio.run(welcome_scene(s))
    scene["canvas"] = {"width": 160, "height": 120, "background": [0, 0, 0]}
    scene["dims"]["ndisplay"] = ndisplay
    scene["camera"]["zoom"] = 1.0
    if ndisplay == 3:
        scene["camera"]["angles"] = [0, 30, 110]
    scene["layers"][0]["colormap"] = "magma"
    status, headers, body = post(s, {"scene": scene, "width": 480, "height": 360})
    assert status == 200, body[:300]
    assert headers["Content-Type"] == "image/png"
    got = png(body)
    assert got.shape == (360, 480, 4)
    # The same view at 3x the pixels: canvas 480x360, zoom 3.
    big = json.loads(json.dumps(scene))
    big["canvas"].update(width=480, height=360)
    big["camera"]["zoom"] = 3.0
    want = render_cli(voxcast_bin, tmp_path, big, f"big{ndisplay}")
    assert (want[..., :3].max(axis=2) > 30).mean() > 0.02, "the reference is blank"
    diff = np.abs(got.astype(int) - want.astype(int))
    assert diff.max() == 0, f"differs from voxcast render: max {diff.max()}, " \
                            f"{(diff.max(axis=2) > 0).mean():.4f} of the pixels"
    # Without a size: the canvas's.
    status, _, body = post(s, {"scene": scene})
    assert status == 200 and png(body).shape == (120, 160, 4)
    # One side: the other keeps the aspect.
    status, _, body = post(s, {"scene": scene, "width": 320})
    assert status == 200 and png(body).shape == (240, 320, 4)


@pytest.mark.parametrize("body, field", [
    ({"width": 100000}, "'width'"),
    ({"width": 8192, "height": 8192}, "Mpx"),
    ({"width": 10}, "'width'"),
    ({"height": "big"}, "'height'"),
    ({"dataset": 5}, "'dataset'"),
    ({"dataset": -1}, "'dataset'"),
    ({"scene": {"camera": {"zoom": -1}}}, "'scene'"),
    ({"scene": {"camera": {"zoon": 2}}}, "camera.zoon"),
    ({"scene": []}, "'scene'"),
    ({"size": [10, 10]}, "'size'"),
    ([], "JSON object"),
])
def test_bad_requests_name_the_field(serve, tmp_path, body, field):
    s = serve(DATA, "--data-dir", tmp_path / "d")
    status, _, raw = post(s, body)
    assert status == 400, raw[:300]
    msg = json.loads(raw)["error"]["message"]
    assert field in msg, msg


def test_not_json_wrong_method_and_token(serve, tmp_path):
    s = serve(DATA, "--data-dir", tmp_path / "d", "--token", "sekrit")
    status, _, raw = post(s, None, raw=b"{not json", token="sekrit")
    assert status == 400 and json.loads(raw)["error"]["code"] == "bad_json"
    status, _, raw = post(s, None, raw=b"", token="sekrit", method="GET")
    assert status == 405, raw
    status, _, raw = post(s, {})
    assert status == 401, raw
    status, _, raw = post(s, {"width": 64}, token="sekrit")
    assert status == 200 and png(raw).shape[1] == 64
