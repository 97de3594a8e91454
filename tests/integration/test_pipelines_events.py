"""Pipeline status changes pushed on /ws/events: loading, loaded, unloaded on request,
offloaded when the budget needs the memory, and error with its reason when a load cannot fit.
Premises are certain: richardson_lucy charges 4 MiB when it loads (its FFT plans), so in an
8 MiB budget, reading 8 MiB of chunks must offload it; in a 2 MiB budget it cannot load."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from pathlib import Path

import websockets

DATA = "synthetic:cells?shape=64x256x256&chunk=32"  # 2 channels, uint16: 8 MiB per channel at level 0


def post(s, path, body=None):
    data = json.dumps(body).encode() if body is not None else b""
    req = urllib.request.Request(f"{s.http}{path}", data=data, method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


async def changes_until(ws, name, status, seen, timeout=60):
    """Pipeline messages for `name` up to the first with `status` (appended to `seen`)."""
    async def loop():
        while True:
            m = json.loads(await ws.recv())
            if m["type"] != "pipeline" or m["pipeline"]["name"] != name:
                continue
            seen.append(m["pipeline"])
            if m["pipeline"]["status"] == status:
                return m["pipeline"]
    try:
        return await asyncio.wait_for(loop(), timeout)
    except asyncio.TimeoutError:
        raise AssertionError(f"no '{status}' for {name} within {timeout} s; saw {seen}")


async def in_thread(fn, *args):
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)


def test_status_changes_are_pushed(serve):
    s = serve(DATA, "--cache-mb", "8")

    async def go():
        ws = await websockets.connect(f"{s.ws}/ws/events", max_size=None)
        assert json.loads(await ws.recv())["type"] == "jobs"

        seen = []
        code, _ = await in_thread(post, s, "/api/v1/pipelines/gaussian/load")
        assert code == 200
        await changes_until(ws, "gaussian", "loaded", seen)
        assert [c["status"] for c in seen] == ["loading", "loaded"], seen
        code, _ = await in_thread(post, s, "/api/v1/pipelines/gaussian/unload")
        assert code == 200
        c = await changes_until(ws, "gaussian", "not_loaded", seen)
        assert c["reason"] == "request", c

        seen = []
        code, _ = await in_thread(post, s, "/api/v1/pipelines/richardson_lucy/load")
        assert code == 200
        loaded = await changes_until(ws, "richardson_lucy", "loaded", seen)
        assert loaded["memory_bytes"] == 4 << 20, loaded
        # 8 MiB of chunks through the 8 MiB budget: the idle pipeline goes first.
        code, body = await in_thread(post, s, "/api/v1/region", {
            "dataset": 0, "level": 0, "start": [0, 0, 0, 0], "shape": [1, 64, 256, 256]})
        assert code == 200, body[:300]
        c = await changes_until(ws, "richardson_lucy", "not_loaded", seen)
        assert c["reason"] == "offloaded" and c["memory_bytes"] == 0, c
        await ws.close()

    asyncio.run(go())


def test_a_load_that_cannot_fit_is_an_error_with_its_reason(serve):
    s = serve(DATA, "--cache-mb", "2")

    async def go():
        ws = await websockets.connect(f"{s.ws}/ws/events", max_size=None)
        assert json.loads(await ws.recv())["type"] == "jobs"
        seen = []
        code, body = await in_thread(post, s, "/api/v1/pipelines/richardson_lucy/load")
        assert code == 503 and b"out_of_memory" in body, (code, body)
        c = await changes_until(ws, "richardson_lucy", "error", seen)
        assert [x["status"] for x in seen] == ["loading", "error"], seen
        assert "budget 'host'" in c["error"] and "pipeline richardson_lucy" in c["error"], c
        # Unloading a pipeline in error resets it: not_loaded, pushed too.
        code, _ = await in_thread(post, s, "/api/v1/pipelines/richardson_lucy/unload")
        assert code == 200
        c = await changes_until(ws, "richardson_lucy", "not_loaded", seen)
        assert "error" not in c, c
        await ws.close()

    asyncio.run(go())


def test_a_subscriber_that_stops_reading_is_disconnected(serve):
    # Changes of state are never dropped, so a subscriber that stops reading used to make
    # the server queue them without end (RSS 47 to 251 MB in a minute of load/unload). Past
    # 4096 waiting messages (or 8 MiB) it is now disconnected, as on the state channel.
    import base64
    import http.client
    import os
    import socket

    s = serve(DATA)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # the kernel holds little
    sock.connect((s.host, s.port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET /ws/events HTTP/1.1\r\nHost: {s.host}\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                  "Sec-WebSocket-Version: 13\r\n\r\n").encode())
    assert b" 101 " in sock.recv(1024).split(b"\r\n", 1)[0]
    # From here on the socket is never read. Each load and unload is a change of state.
    conn = http.client.HTTPConnection(s.host, s.port, timeout=60)
    disconnected = False
    for i in range(20_000):
        for action in ("load", "unload"):
            conn.request("POST", f"/api/v1/pipelines/gaussian/{action}")
            r = conn.getresponse()
            r.read()
            assert r.status == 200, (action, r.status)
        if i % 256 == 255 and "ws.slow_client channel=events" in Path(s.log.name).read_text(errors="replace"):
            disconnected = True
            break
    assert disconnected, "the subscriber that never reads was never disconnected"
    assert "action=disconnect" in Path(s.log.name).read_text(errors="replace")
    sock.close()
    with urllib.request.urlopen(f"{s.http}/api/v1/health", timeout=10) as r:
        assert json.loads(r.read())["status"] == "ok"
