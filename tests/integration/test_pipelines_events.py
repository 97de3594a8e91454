"""Pipeline status changes pushed on /ws/events: loading, loaded, unloaded on request,
offloaded when the budget needs the memory, and error with its reason when a load cannot fit.
Premises are certain: richardson_lucy charges 4 MiB when it loads (its FFT plans), so in an
8 MiB budget, reading 8 MiB of chunks must offload it; in a 2 MiB budget it cannot load."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request

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
