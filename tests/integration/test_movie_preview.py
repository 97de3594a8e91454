"""The timeline preview (docs/protocol.md `timeline.play`): the server steps a live session's
scene along a keyframe timeline at its real speed, interactive frames while it plays, a
final one where it stops; a state update takes the view back; bad timelines are refused
naming the keyframe and field, and nothing plays; a client that leaves mid-preview costs
the server nothing."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import websockets

from test_streaming_core import health

REPO = Path(__file__).resolve().parents[2]
if str(REPO / "python") not in sys.path:
    sys.path.insert(0, str(REPO / "python"))
import voxcast  # noqa: E402
from voxcast.errors import ServerError  # noqa: E402

DATA = "synthetic:cells?shape=48x64x64&chunk=32"
INTERACTIVE = 4


def scene_3d(yaw):
    return {"dims": {"ndisplay": 3}, "camera": {"angles": [0, yaw, 90], "zoom": 1.0},
            "canvas": {"width": 160, "height": 120}}


def timeline(duration=2.0, yaw0=0, yaw1=90):
    return {"keyframes": [{"time": 0, "scene": scene_3d(yaw0)},
                          {"time": duration, "scene": scene_3d(yaw1)}]}


def test_preview_steps_the_scene_and_ends_with_a_final_frame(serve):
    s = serve(DATA)

    async def go():
        async with await voxcast.connect(s.ws, codecs=["jpeg"]) as v:
            await v.update(scene_3d(0))
            _, before = await v.final_frame()
            first = v._last_frame_seq
            progress = []
            task = asyncio.ensure_future(v.preview(timeline(2.0), timeout=60))
            while not task.done():
                st = v.timeline_state
                if st and st.get("type") == "timeline.event" and st["reason"] == "playing":
                    progress.append(st["t"])
                await asyncio.sleep(0.05)
            end = task.result()
            headers = [h for h in v.recent_headers if h.frame_seq > first]
            _, after = await v.final_frame()
            return end, progress, headers, before, after, v.scene

    end, progress, headers, before, after, scene = asyncio.run(go())
    assert end["type"] == "timeline.event" and end["reason"] == "ended", end
    assert end["playing"] is False and end["t"] == pytest.approx(2.0)
    # The scene where it ended is the last keyframe's, and the client's from then on.
    assert end["scene"]["camera"]["angles"] == pytest.approx([0, 90, 90], abs=1e-6)
    assert scene["camera"]["angles"] == pytest.approx([0, 90, 90], abs=1e-6)
    # Progress once a second, strictly inside the timeline (a 2 s play spans a 1 s tick).
    assert progress and all(0 < t < 2.0 for t in progress), progress
    flags = [h.flags for h in headers]
    assert any(f & INTERACTIVE for f in flags), f"no interactive frame while playing: {flags}"
    # The picture turned: the final frame after the end differs from the one before.
    moved = (np.abs(after.astype(int) - before.astype(int)).max(axis=2) > 8).mean()
    assert moved > 0.05, f"the view did not move: {moved:.3f} of the pixels changed"


def test_state_update_takes_the_view_back_and_pause_stops(serve):
    s = serve(DATA)

    async def go():
        async with await voxcast.connect(s.ws, codecs=["jpeg"]) as v:
            await v.update(scene_3d(0))
            st = await v.preview(timeline(30.0, 0, 80), loop=True)
            assert st["type"] == "timeline.state" and st["playing"] is True, st
            assert st["loop"] is True and st["end"] == 30.0
            await asyncio.sleep(0.5)
            # An update stops the preview where it is and applies to that scene: its ack
            # says so, and its changes carry the camera the preview moved.
            scene = await v.update({"camera": {"zoom": 1.5}})
            stopped = v.timeline_state
            assert stopped["type"] == "ack" and stopped["reason"] == "state.update", stopped
            assert 0 < stopped["t"] < 30.0
            cam = scene["camera"]
            assert cam["zoom"] == 1.5 and 0 < cam["angles"][1] < 80, cam
            # Nothing plays now: a pause is answered `idle`.
            idle = await v.pause_preview()
            assert idle["reason"] == "idle" and idle["playing"] is False, idle
            # Play from the middle, then pause: the scene stays where it paused.
            st = await v.preview(timeline(30.0, 0, 80), start=15.0, wait=False)
            assert st["t"] == pytest.approx(15.0, abs=0.5)
            await asyncio.sleep(0.3)
            paused = await v.pause_preview()
            assert paused["reason"] == "paused" and 15.0 <= paused["t"] < 30.0, paused
            yaw = paused["scene"]["camera"]["angles"][1]
            assert yaw == pytest.approx(80 * paused["t"] / 30.0, abs=1e-3), (yaw, paused)
            assert v.scene["camera"]["angles"][1] == pytest.approx(yaw)
            _, pic = await v.final_frame()
            assert pic.size > 0
            return v.protocol_violations

    assert asyncio.run(go()) == []


@pytest.mark.parametrize("msg, code, needle", [
    ({"timeline": {"keyframes": []}}, "bad_message", "keyframes"),
    ({"timeline": [1, 2]}, "bad_message", "field 'timeline'"),
    ({"timeline": {"keyframes": [{"time": 1, "scene": {}}, {"time": 0.5, "scene": {}}]}},
     "bad_message", "keyframes[1].time"),
    ({"timeline": {"keyframes": [{"time": 0, "scene": {}},
                                 {"time": 1, "scene": {"camera": {"zoom": "near"}}}]}},
     "bad_message", "keyframes[1]"),
    ({"timeline": {"keyframes": [{"time": 0, "scene": {}},
                                 {"time": 1, "scene": {"canvas": {"width": 4096, "height": 4096}}}]}},
     "unsupported", "keyframes[1]"),
    ({"timeline": {"keyframes": [{"time": 0, "scene": {}},
                                 {"time": 1, "scene": {"dims": {"point": [1e9, 0, 0]}}}]}},
     None, "keyframes[1]"),
    ({"timeline": {"keyframes": [{"time": 0, "scene": {"layers": [{"source": {"pipeline": "nope"}}]}}]}},
     None, "keyframes[0].scene"),
    ({"timeline": timeline(), "speed": 0}, "bad_message", "field 'speed'"),
    ({"timeline": timeline(), "speed": 1e9}, "bad_message", "field 'speed'"),
    ({"timeline": timeline(), "speed": "fast"}, "bad_message", "field 'speed'"),
    ({"timeline": timeline(), "from": 5.0}, "bad_message", "field 'from'"),
    ({"timeline": timeline(), "from": "start"}, "bad_message", "field 'from'"),
    ({"timeline": timeline(), "loop": "yes"}, "bad_message", "field 'loop'"),
])
def test_bad_previews_are_refused_and_nothing_plays(serve, msg, code, needle):
    s = serve(DATA)

    async def go():
        async with await voxcast.connect(s.ws, codecs=["jpeg"]) as v:
            before = v.scene
            reply = await v.send_raw(json.dumps({"type": "timeline.play", **msg}))
            idle = await v.pause_preview()
            return reply, idle, before, v.scene

    reply, idle, before, after = asyncio.run(go())
    assert reply["type"] == "error", reply
    if code:
        assert reply["code"] == code, reply
    assert needle in reply["message"], reply
    assert idle["reason"] == "idle", idle
    assert after == before


def test_client_leaving_mid_preview_costs_nothing(serve):
    """A client that drops its connections mid-preview: its session and the steps end, the
    renders stop, and the next client is served as usual."""
    s = serve(DATA)

    async def leaver():
        state = await websockets.connect(s.ws + "/ws/state")
        await state.send(json.dumps({"type": "hello", "codecs": ["jpeg"]}))
        welcome = json.loads(await state.recv())
        pixels = await websockets.connect(f"{s.ws}/ws/pixels?session={welcome['session']}")
        await state.send(json.dumps({"type": "timeline.play", "loop": True,
                                     "timeline": timeline(60.0, 0, 360)}))
        reply = json.loads(await state.recv())
        assert reply["type"] == "timeline.state" and reply["playing"], reply
        await pixels.recv()  # frames flow
        # Gone without a close handshake.
        state.transport.abort()
        pixels.transport.abort()

    asyncio.run(leaver())
    deadline = time.monotonic() + 20
    while True:
        h = health(s)
        if h["sessions"] == 0 and h["renders"]["running"] == 0:
            break
        assert time.monotonic() < deadline, f"the session outlived its client: {h}"
        time.sleep(0.1)

    async def next_client():
        async with await voxcast.connect(s.ws, codecs=["jpeg"]) as v:
            await v.update(scene_3d(30))
            _, pic = await v.final_frame()
            return pic.shape

    assert asyncio.run(next_client())[2] == 3
