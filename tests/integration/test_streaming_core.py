"""The streaming core under bad data and load (issue 11): a chunk that cannot be read is
drawn without, reported once and causes no more frames; a bad chunk in the coarsest level
does not stop `serve` or `render`; a scene over the cost limits is refused while other
clients keep getting frames; leaving cancels a running render; SIGTERM stops a server in the
middle of a heavy render. Real server, real clients; datasets written by python3-zarr."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import struct
import time
import urllib.request
from pathlib import Path

import pytest
import websockets
from numcodecs import Blosc

import fixtures

HEADER = struct.Struct("<4sHBBIIHHIIIIQI")
REFINING, INTERACTIVE, DEGRADED = 2, 4, 8


def flags_of(msg: bytes):
    h = HEADER.unpack_from(msg, 0)
    assert h[0] == b"VXF1"
    return h[3], h[5]  # flags, state seq


def health(server):
    with urllib.request.urlopen(f"{server.http}/api/v1/health", timeout=10) as r:
        return json.loads(r.read())


async def open_session(server):
    st = await websockets.connect(f"{server.ws}/ws/state", max_size=None)
    await st.send(json.dumps({"type": "hello", "codecs": ["jpeg"], "client": "core-test"}))
    welcome = json.loads(await asyncio.wait_for(st.recv(), 60))
    assert welcome["type"] == "welcome", welcome
    px = await websockets.connect(f"{server.ws}/ws/pixels?session={welcome['session']}",
                                  max_size=None)
    return st, px, welcome


async def state_reply(st, types=("ack", "error"), timeout=60):
    while True:
        m = json.loads(await asyncio.wait_for(st.recv(), timeout))
        if m["type"] in types:
            return m


async def final_frame(px, seq, timeout=120):
    """The first frame for `seq` that is neither refining nor interactive: its flags."""
    async def loop():
        while True:
            flags, sseq = flags_of(await px.recv())
            if sseq >= seq and not flags & (REFINING | INTERACTIVE):
                return flags
    return await asyncio.wait_for(loop(), timeout)


def corrupt_zarr(tmp_path: Path, level: int, chunk: str, keep_window: bool):
    """A 2-level OME-Zarr (python3-zarr) with one chunk file of `level` cut to zero bytes."""
    ds = fixtures.build_zarr2(tmp_path, shape=(16, 128, 128), dtype="uint16",
                              chunks=(16, 32, 32), compressor=Blosc("lz4", 5, Blosc.SHUFFLE),
                              sep=".", nlevels=2, seed=11)
    root = Path(ds.path)
    if not keep_window:  # no stored window: the default contrast reads the coarsest level
        attrs = json.loads((root / ".zattrs").read_text())
        attrs.pop("omero", None)
        (root / ".zattrs").write_text(json.dumps(attrs))
    bad = root / str(level) / chunk
    assert bad.is_file(), sorted(p.name for p in bad.parent.iterdir())
    bad.write_bytes(b"")
    return root


def test_a_corrupt_chunk_is_drawn_without_reported_once_and_stops_rerendering(serve, tmp_path):
    root = corrupt_zarr(tmp_path, 0, "0.1.1", keep_window=True)
    s = serve(root)

    async def go():
        st, px, _ = await open_session(s)
        # 256x256 shows all 128x128 voxels of level 0, the bad chunk among them.
        await st.send(json.dumps({"type": "state.update", "seq": 1,
                                  "patch": {"canvas": {"width": 256, "height": 256}}}))
        assert (await state_reply(st))["type"] == "ack"
        flags = await final_frame(px, 1)
        assert flags & DEGRADED, "the final frame does not say a chunk is missing from it"
        warning = await state_reply(st, types=("warning",), timeout=30)
        assert warning["code"] == "chunk_failed"
        assert "0.1.1" in warning["message"] and "level 0" in warning["message"], warning
        # No more frames for it: count what arrives while the server is left alone (the old
        # code drew thousands a second here).
        extra = 0
        deadline = time.monotonic() + 2.0
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                await asyncio.wait_for(px.recv(), left)
                extra += 1
            except asyncio.TimeoutError:
                break
        assert extra <= 1, f"{extra} frames after the final one: the view re-renders"
        h = health(s)
        assert h["cache"]["failed_reads"] == 1, h
        await st.close()
        await px.close()

    asyncio.run(go())
    code, log = s.stop()
    assert code == 0
    lines = [l for l in log.splitlines() if "chunk_failed" in l]
    assert len(lines) == 1 and "0.1.1" in lines[0], lines


def test_a_corrupt_coarsest_chunk_does_not_stop_serve_or_render(serve, run, tmp_path):
    root = corrupt_zarr(tmp_path, 1, "0.0.0", keep_window=False)
    s = serve(root)  # it starts: the default contrast comes from what could be read

    async def go():
        st, px, welcome = await open_session(s)
        lo, hi = welcome["scene"]["layers"][0]["contrast_limits"]
        assert hi > lo
        await st.send(json.dumps({"type": "state.update", "seq": 1,
                                  "patch": {"canvas": {"width": 128, "height": 128}}}))
        await final_frame(px, 1)
        await st.close()
        await px.close()

    asyncio.run(go())
    code, log = s.stop()
    assert code == 0
    assert "serve.contrast" in log and "level 1" in log, log[-2000:]
    out = tmp_path / "render.png"
    res = run("render", root, "--size", "128x128", "-o", out)
    assert res.returncode == 0, res.stderr
    assert out.is_file()
    assert "data.contrast" in res.stderr


def layers(n, rendering="translucent"):
    return [{"source": 0, "channel": 0, "rendering": rendering, "blending": "additive",
             "colormap": "gray", "contrast_limits": [100, 3500]} for _ in range(n)]


def test_a_scene_over_the_limits_is_refused_and_others_keep_streaming(serve):
    s = serve("synthetic:cells?shape=64x128x128&chunk=32", "--max-layers", "16")

    async def go():
        a_st, a_px, a_welcome = await open_session(s)
        b_st, b_px, _ = await open_session(s)
        await a_st.send(json.dumps({"type": "state.update", "seq": 1, "patch": {
            "canvas": {"width": 1920, "height": 1080}, "dims": {"ndisplay": 3},
            "layers": layers(200)}}))
        err = await state_reply(a_st)
        assert err["type"] == "error" and err["code"] == "unsupported", err
        assert "16" in err["message"] and "--max-layers" in err["message"], err
        await a_st.send(json.dumps({"type": "state.update", "seq": 2, "patch": {
            "canvas": {"width": 3840, "height": 2160}, "dims": {"ndisplay": 3},
            "layers": layers(8)}}))
        err = await state_reply(a_st)
        assert err["type"] == "error" and "--max-scene-cost" in err["message"], err
        # The scene stayed as it was: an empty update changes nothing.
        await a_st.send(json.dumps({"type": "state.update", "seq": 3, "patch": {}}))
        ack = await state_reply(a_st)
        assert ack["type"] == "ack" and ack["changes"] == {}, ack
        # The other client is served as before.
        await b_st.send(json.dumps({"type": "state.update", "seq": 1,
                                    "patch": {"canvas": {"width": 320, "height": 240}}}))
        await final_frame(b_px, 1)
        for w in (a_st, a_px, b_st, b_px):
            await w.close()

    asyncio.run(go())


HEAVY = ["synthetic:cells?shape=128x256x256&chunk=32", "--max-layers", "64",
         "--max-scene-cost", "100000"]
HEAVY_PATCH = {"canvas": {"width": 1920, "height": 1080}, "dims": {"ndisplay": 3},
               "camera": {"angles": [0, 30, 60]}, "layers": layers(48)}


async def start_heavy_render(s):
    """A client whose frame now being drawn is a long 3D render (48 layers, every brick in
    memory). Returns once that render is running."""
    st, px, _ = await open_session(s)
    await st.send(json.dumps({"type": "state.update", "seq": 1, "patch": HEAVY_PATCH}))
    assert (await state_reply(st))["type"] == "ack"
    await final_frame(px, 1, timeout=600)  # everything loaded
    # The job that sent it counts as running until it returns: wait for the session to idle.
    deadline = time.monotonic() + 120
    while health(s)["renders"]["running"] > 0:
        assert time.monotonic() < deadline, "renders go on after the final frame"
        await asyncio.sleep(0.005)
    await st.send(json.dumps({"type": "keyframe.request", "seq": 2}))
    deadline = time.monotonic() + 120
    while health(s)["renders"]["running"] == 0:
        assert time.monotonic() < deadline, "the keyframe render never started"
        await asyncio.sleep(0.005)
    return st, px


def test_leaving_cancels_the_running_render(serve):
    s = serve(*HEAVY)

    async def go():
        st, px = await start_heavy_render(s)
        cancelled = health(s)["renders"]["cancelled"]
        await px.close()
        await st.close()
        # Event-based: wait for the render to stop, then ask how it stopped.
        deadline = time.monotonic() + 300
        while health(s)["renders"]["running"] > 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        h = health(s)
        assert h["renders"]["running"] == 0
        assert h["renders"]["cancelled"] > cancelled, h["renders"]

    asyncio.run(go())


def test_sigterm_stops_a_server_in_the_middle_of_a_heavy_render(serve):
    s = serve(*HEAVY)

    async def go():
        st, px = await start_heavy_render(s)
        t0 = time.monotonic()
        s.proc.send_signal(signal.SIGTERM)
        code = await asyncio.get_running_loop().run_in_executor(None, s.proc.wait, 60)
        return code, time.monotonic() - t0

    code, _ = asyncio.run(go())
    assert code == 0
    _, log = s.stop()
    # It stopped the render instead of finishing it (the old server ran it to its end).
    stopped = [l for l in log.splitlines() if "serve.stopped" in l]
    assert stopped and re.search(r"renders_cancelled=[1-9]", stopped[0]), log[-2000:]


def test_limits_and_latency_options_refuse_nonsense(run):
    for args, name in ((["serve", "synthetic:cells", "--max-layers", "0"], "--max-layers"),
                       (["serve", "synthetic:cells", "--max-scene-cost", "-1"], "--max-scene-cost"),
                       (["--latency-ms", "-5", "info", "synthetic:cells"], "--latency-ms"),
                       (["--latency-ms", "1e9", "info", "synthetic:cells"], "--latency-ms")):
        res = run(*args)
        assert res.returncode == 2 and name in res.stderr, (args, res.stderr)
