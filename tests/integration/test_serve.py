"""`voxcast serve` at the protocol level (docs/protocol.md), with raw HTTP and WebSockets:
routes, limits, the frame header, keyframes, refining and interactive frames, stats,
tokens, shutdown. The Python client's own tests are in test_python_client.py."""

from __future__ import annotations

import asyncio
import json
import signal
import struct
import urllib.error
import urllib.request

import av
import numpy as np
import pytest
import websockets

from vxhelpers import http_get as get

DATA = "synthetic:cells?shape=32x128x128&chunk=32"
HEADER = struct.Struct("<4sHBBIIHHIIIIQI")
assert HEADER.size == 48



def header(msg: bytes) -> dict:
    (magic, version, codec, flags, fseq, sseq, w, h, r_us, e_us, s_us, n, wall,
     reserved) = HEADER.unpack_from(msg, 0)
    assert magic == b"VXF1" and version == 1 and reserved == 0
    assert len(msg) == 48 + n
    return dict(codec=codec, key=bool(flags & 1), refining=bool(flags & 2),
                interactive=bool(flags & 4), seq=fseq, state_seq=sseq, width=w, height=h,
                render_us=r_us, encode_us=e_us, server_us=s_us, wall_us=wall)


async def open_session(server, codecs=("h264",), token=None):
    q = f"?token={token}" if token else ""
    st = await websockets.connect(f"{server.ws}/ws/state{q}", max_size=None)
    await st.send(json.dumps({"type": "hello", "codecs": list(codecs), "client": "test"}))
    welcome = (await reply(st))
    assert welcome["type"] == "welcome", welcome
    sep = "&" if q else "?"
    px = await websockets.connect(
        f"{server.ws}/ws/pixels?session={welcome['session']}{sep + q[1:] if q else ''}",
        max_size=None)
    return st, px, welcome


async def reply(st, timeout=60):
    """The next reply on the state channel, skipping the once-a-second stats."""
    while True:
        m = json.loads(await asyncio.wait_for(st.recv(), timeout))
        if m["type"] != "stats":
            return m


async def frame_for(px, state_seq, final=True, timeout=60):
    """The first frame that reflects `state_seq` (and is final, if asked)."""
    async def loop():
        while True:
            m = await px.recv()
            h = header(m)
            if h["state_seq"] >= state_seq and (not final or not (h["refining"] or h["interactive"])):
                return h, m
    return await asyncio.wait_for(loop(), timeout)


def test_http_routes(serve):
    s = serve(DATA)
    code, body = get(f"{s.http}/api/v1/health")
    assert code == 200 and json.loads(body)["status"] == "ok"
    code, body = get(f"{s.http}/api/v1/datasets")
    ds = json.loads(body)["datasets"]
    assert code == 200 and ds[0]["id"] == 0 and ds[0]["info"]["levels"][0]["shape"][-1] == 128
    code, body = get(f"{s.http}/")
    assert code == 200 and b"<html" in body.lower()
    for path in ("/nothing", "/../../etc/passwd", "/%2e%2e/etc/passwd", "/.hidden"):
        code, body = get(f"{s.http}{path}")
        assert code == 404, path
        assert json.loads(body)["error"]["code"] == "not_found"
    req = urllib.request.Request(f"{s.http}/api/v1/health", method="POST", data=b"{}")
    try:
        urllib.request.urlopen(req, timeout=10)
        raise AssertionError("POST accepted")
    except urllib.error.HTTPError as e:
        assert e.code == 405


def test_first_frame_is_a_keyframe_and_frames_follow_the_state(serve):
    s = serve(DATA)

    async def go():
        st, px, welcome = await open_session(s)
        assert welcome["codec"] == "h264" and welcome["encoder"] in ("libx264", "h264_nvenc")
        if welcome["encoder"] == "libx264":  # no NVENC here, and the server says why
            assert "h264_nvenc" in welcome["fallback"]
        assert welcome["limits"]["max_clients"] == 32
        first = header(await asyncio.wait_for(px.recv(), 60))
        assert first["key"] and first["seq"] == 1 and first["codec"] == 1
        await st.send(json.dumps({"type": "state.update", "seq": 7,
                                  "patch": {"canvas": {"width": 320, "height": 240},
                                            "camera": {"zoom": 2}}}))
        ack = (await reply(st))
        assert ack["type"] == "ack" and ack["seq"] == 7 and ack["changes"]["camera"]["zoom"] == 2
        h, m = await frame_for(px, 7, final=False)
        assert (h["width"], h["height"]) == (320, 240)
        assert h["key"]  # a new size starts a new stream
        dec = av.CodecContext.create("h264", "r")
        frames = dec.decode(av.Packet(m[48:]))
        assert frames and frames[0].width == 320
        if h["refining"]:  # it becomes final once the chunks are in
            h, m = await frame_for(px, 7)
            assert dec.decode(av.Packet(m[48:]))
        assert 0 < h["server_us"] < 60_000_000 and h["render_us"] > 0
        # A keyframe on request.
        await st.send(json.dumps({"type": "keyframe.request"}))
        assert (await reply(st))["type"] == "ack"
        h, _ = await frame_for(px, 7, final=False)
        while not h["key"]:
            h, _ = await frame_for(px, 7, final=False)
        # Stats arrive once a second while frames flow.
        async def stats():
            while True:
                m = json.loads(await st.recv())
                if m["type"] == "stats":
                    return m
        m = await asyncio.wait_for(stats(), 10)
        assert m["frames"] >= 1 and m["kbps"] > 0
        await st.close()
        await px.close()

    asyncio.run(go())


def test_refining_frames_converge_and_moving_3d_frames_are_interactive(serve):
    s = serve("synthetic:cells?shape=192x256x256&chunk=32&latency_ms=20")

    async def go():
        st, px, _ = await open_session(s, codecs=("jpeg",))
        await st.send(json.dumps({"type": "state.update", "seq": 1,
                                  "patch": {"canvas": {"width": 256, "height": 192},
                                            "camera": {"zoom": 3},
                                            "dims": {"point": [2.0, 128.0, 128.0]}}}))
        assert (await reply(st))["type"] == "ack"
        # The opening view shows the middle slice (z 95 or 96: chunk 2 or 3) and prefetches
        # only the neighbour chunks along z (1 to 4), so chunk 0 at z=2 is certainly cold: its first frame is drawn
        # while its chunks are still being read (20 ms each).
        seen_refining = False
        while True:
            h = header(await asyncio.wait_for(px.recv(), 60))
            if h["state_seq"] < 1:
                continue
            assert h["codec"] == 2 and h["key"]  # JPEG frames are all keyframes
            if h["refining"]:
                seen_refining = True
            else:
                break
        assert seen_refining, "a cold zoomed view should first be drawn from a coarser level"
        # 3D while the camera moves: interactive frames, then a final one by itself.
        await st.send(json.dumps({"type": "state.update", "seq": 2, "interactive": True,
                                  "patch": {"dims": {"ndisplay": 3}, "camera": {"zoom": 0.7}}}))
        assert (await reply(st))["type"] == "ack"
        kinds = []
        while True:
            h = header(await asyncio.wait_for(px.recv(), 120))
            if h["state_seq"] < 2:
                continue
            kinds.append("i" if h["interactive"] else "r" if h["refining"] else "f")
            if kinds[-1] == "f":
                break
        assert "i" in kinds, kinds
        await st.close()
        await px.close()

    asyncio.run(go())


def test_pixels_for_an_unknown_session_and_limits(serve):
    s = serve(DATA, "--max-clients", "2")

    async def go():
        with pytest.raises(websockets.exceptions.InvalidStatusCode) as e:
            await websockets.connect(f"{s.ws}/ws/pixels?session=nope")
        assert e.value.status_code == 404
        a = await websockets.connect(f"{s.ws}/ws/state")
        b = await websockets.connect(f"{s.ws}/ws/state")
        with pytest.raises(websockets.exceptions.InvalidStatusCode) as e:
            await websockets.connect(f"{s.ws}/ws/state")
        assert e.value.status_code == 503
        await a.close()
        await asyncio.sleep(0.5)
        c = await websockets.connect(f"{s.ws}/ws/state")  # a slot is free again
        # Every message gets exactly one reply, in order.
        await c.send(json.dumps({"type": "state.update", "seq": 1, "patch": {}}))
        assert (await reply(c))["code"] == "bad_message"  # before hello
        await c.send(json.dumps({"type": "ping", "t": 42}))
        assert (await reply(c))["code"] == "bad_message"  # a ping too
        await c.send(json.dumps({"type": "hello", "codecs": ["vp9"]}))
        assert (await reply(c))["code"] == "unsupported"
        await c.send(json.dumps({"type": "hello", "dataset": 5}))
        err = (await reply(c))
        assert err["code"] == "bad_message" and "dataset" in err["message"]
        await c.send(json.dumps({"type": "hello", "client": 5}))  # wrong type: an error
        err = await reply(c)
        assert err["code"] == "bad_message" and "client" in err["message"]
        await c.send(json.dumps({"type": "hello"}))
        assert (await reply(c))["type"] == "welcome"
        await c.send(json.dumps({"type": "ping", "t": 42}))
        assert (await reply(c)) == {"type": "pong", "t": 42}
        await c.send(json.dumps({"type": "state.update", "seq": 1,
                                 "patch": {"canvas": {"width": 9000}}}))
        err = (await reply(c))
        assert err["code"] == "bad_patch" and "canvas.width" in err["message"]
        await c.send(json.dumps({"type": "state.update", "seq": 2,
                                 "patch": {"canvas": {"width": 4000, "height": 3000}}}))
        err = (await reply(c))
        assert err["code"] == "unsupported" and "canvas" in err["message"]
        await c.send(json.dumps({"type": "state.update", "seq": 3,
                                 "patch": {"canvas": {"width": 321}}}))
        assert (await reply(c))["code"] == "unsupported"  # odd size for H.264
        await c.send(json.dumps({"type": "state.update", "seq": 3,
                                 "patch": {"dims": {"point": [1e6, 0, 0]}}}))
        err = await reply(c)  # a slice past the end: named, not drawn black
        assert "dims.point[0]" in err["message"] and "outside the data" in err["message"], err
        await c.send(json.dumps({"type": "state.update", "seq": 3, "patch": {"camera": {"zoom": 2}}}))
        assert (await reply(c))["type"] == "ack"
        await c.send(json.dumps({"type": "state.update", "seq": 3, "patch": {}}))
        assert (await reply(c))["code"] == "bad_seq"
        await c.send("x" * 100_000)
        assert (await reply(c))["code"] == "too_large"
        await c.send(json.dumps({"type": "ping"}))  # still usable
        assert (await reply(c))["type"] == "pong"
        for x in (b, c):
            await x.close()

    asyncio.run(go())


def test_rate_limit(serve):
    s = serve(DATA)

    async def go():
        c = await websockets.connect(f"{s.ws}/ws/state")
        await c.send(json.dumps({"type": "hello", "codecs": ["jpeg"]}))
        assert (await reply(c))["type"] == "welcome"
        # Counted, not timed: bursts of 300 pings until one is refused; before the first
        # refusal the server answered at least the limit (240) less the hello.
        codes = []
        for _ in range(20):
            for _ in range(300):
                await c.send(json.dumps({"type": "ping"}))
            codes += [(await reply(c)).get("code") for _ in range(300)]
            if "rate_limited" in codes:
                break
        assert set(codes) <= {None, "rate_limited"}, set(codes)
        assert "rate_limited" in codes and codes.index("rate_limited") >= 239, codes[:5]
        await c.close()

    asyncio.run(go())


def test_token_required_beyond_loopback_and_enforced(serve):
    s = serve(DATA, "--host", "0.0.0.0")
    assert s.token, "a token is generated and printed when bound beyond loopback"
    base = f"http://127.0.0.1:{s.port}"
    assert get(f"{base}/api/v1/health")[0] == 401
    assert json.loads(get(f"{base}/")[1])["error"]["code"] == "unauthorized"
    assert get(f"{base}/api/v1/health?token=wrong")[0] == 401
    assert get(f"{base}/api/v1/health?token={s.token}")[0] == 200
    assert get(f"{base}/api/v1/health", {"Authorization": f"Bearer {s.token}"})[0] == 200

    async def go():
        with pytest.raises(websockets.exceptions.InvalidStatusCode) as e:
            await websockets.connect(f"ws://127.0.0.1:{s.port}/ws/state")
        assert e.value.status_code == 401
        c = await websockets.connect(f"ws://127.0.0.1:{s.port}/ws/state?token={s.token}")
        await c.send(json.dumps({"type": "hello", "codecs": ["jpeg"]}))
        assert (await reply(c))["type"] == "welcome"
        await c.send(json.dumps({"type": "ping"}))
        assert (await reply(c))["type"] == "pong"
        await c.close()

    asyncio.run(go())


def test_sigterm_closes_clients_and_exits_zero(serve):
    s = serve(DATA)

    async def go():
        st, px, _ = await open_session(s)
        await asyncio.wait_for(px.recv(), 60)
        code, _ = s.stop(signal.SIGINT)
        assert code == 0
        with pytest.raises(websockets.exceptions.ConnectionClosed) as e:
            while True:
                await asyncio.wait_for(st.recv(), 10)
        assert e.value.code in (1001, 1006)

    asyncio.run(go())


def test_bad_arguments(run):
    res = run("serve", DATA, "--host", "not-an-address", "--port", "0")
    assert res.returncode == 1 and "--host" in res.stderr
    res = run("serve", "missing.zarr", "--port", "0")
    assert res.returncode == 1 and "missing.zarr" in res.stderr


def test_demo_serves_the_builtin_dataset(voxcast_bin):
    """`voxcast demo` (the README's main command) serves synthetic:cells and prints the URL."""
    import subprocess
    proc = subprocess.Popen([str(voxcast_bin), "demo", "--port", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, text=True)
    try:
        url = None
        for line in proc.stdout:
            if "serving" in line:
                url = line.split(" at ")[1].strip()
                break
        assert url and url.startswith("http://127.0.0.1:")
        code, body = get(url.rstrip("/") + "/api/v1/datasets")
        ds = json.loads(body)["datasets"]
        assert code == 200 and ds[0]["location"] == "synthetic:cells"
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
