"""Renderer selection (docs/gpu.md): --renderer auto|cpu|cuda on render, orbit and serve;
the health route and the welcome message say which renderer runs and why not a better one.

These hold on any machine: where the CUDA backend is not available (built without CUDA, or
no driver or device, as in CI) auto falls back to the CPU with the reason and asking for
cuda is an error that names it; where it is available, cuda runs and there is no reason."""

from __future__ import annotations

import asyncio
import json

import websockets

from vxhelpers import describe, error_line
from vxhelpers import http_get as get

DATA = "synthetic:cells?shape=32x96x96&chunk=32"
# The reasons the CUDA backend gives for not running (render/cuda_stub.cpp, cuda/probe).
WHY = ("built without cuda", "driver", "no cuda device", "device")


def health(server) -> dict:
    status, body = get(f"{server.http}/api/v1/health")[:2]
    assert status == 200, body
    return json.loads(body)


def test_health_and_welcome_name_the_renderer_and_the_reason(serve):
    server = serve(DATA, "--renderer", "auto")
    h = health(server)["renderer"]
    assert h["name"] in ("cpu", "cuda"), h
    if h["name"] == "cpu":
        assert h["fallback"] and h["fallback"].startswith("cuda: "), h
        assert any(w in h["fallback"].lower() for w in WHY), h
        assert f"renderer cpu ({h['fallback']})" in server.printed, server.printed
    else:
        assert h["fallback"] is None, h

    async def welcome():
        async with websockets.connect(f"{server.ws}/ws/state", max_size=None) as st:
            await st.send(json.dumps({"type": "hello", "codecs": ["jpeg"], "client": "test"}))
            return json.loads(await asyncio.wait_for(st.recv(), 30))

    w = asyncio.run(welcome())
    assert w["type"] == "welcome", w
    assert w["renderer"] == h["name"], w
    assert w["renderer_fallback"] == h["fallback"], w


def test_serve_cpu_has_no_fallback(serve):
    server = serve(DATA, "--renderer", "cpu")
    assert health(server)["renderer"] == {"name": "cpu", "fallback": None}


def test_asking_for_cuda_where_it_is_not_available_is_an_error_naming_why(run, serve, tmp_path):
    server = serve(DATA, "--renderer", "auto")
    available = health(server)["renderer"]["name"] == "cuda"
    out = tmp_path / "view.png"
    res = run("render", DATA, "--size", "64x48", "--renderer", "cuda", "-o", out)
    if available:
        assert res.returncode == 0, describe(res)
        assert "renderer=cuda" in res.stderr, describe(res)
        return
    line = error_line(res, "--renderer cuda", "renderer 'cuda' is not available", WHY)
    assert not out.exists(), line
    res = run("orbit", DATA, "--grid", "2x1", "--size", "32", "--renderer", "cuda", "-q", "-o",
              tmp_path / "orbit")
    error_line(res, "--renderer", "cuda", WHY)


def test_serve_refuses_cuda_where_it_is_not_available(voxcast_bin, serve, run):
    server = serve(DATA, "--renderer", "auto")
    if health(server)["renderer"]["name"] == "cuda":
        assert serve(DATA, "--renderer", "cuda")  # it starts
        return
    res = run("serve", DATA, "--port", "0", "--renderer", "cuda", timeout=60)
    error_line(res, "--renderer cuda", "not available", WHY)


def test_auto_and_cpu_render_the_same_picture_here(run_ok, tmp_path):
    a, c = tmp_path / "auto.png", tmp_path / "cpu.png"
    res = run_ok("render", DATA, "--size", "64x48", "--renderer", "auto", "-o", a)
    run_ok("render", DATA, "--size", "64x48", "--renderer", "cpu", "-o", c)
    if "renderer=cpu" in res.stderr:
        assert a.read_bytes() == c.read_bytes()


def test_unknown_renderer_is_a_usage_error(run):
    res = run("render", DATA, "--renderer", "opengl", "-o", "x.png")
    error_line(res, "--renderer", "opengl", code=2)
    res = run("serve", DATA, "--renderer", "vulkan")
    error_line(res, "--renderer", "vulkan", code=2)


def post_job(server, params):
    import urllib.error
    import urllib.request
    req = urllib.request.Request(f"{server.http}/api/v1/jobs", method="POST",
                                 data=json.dumps({"kind": "orbit", "params": params}).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_orbit_job_renderer_parameter_is_checked(serve):
    server = serve(DATA, "--renderer", "auto")
    small = {"columns": 2, "rows": 1, "size": 32}
    code, body = post_job(server, {**small, "renderer": "opengl"})
    assert code == 400 and b"renderer" in body, (code, body)
    code, body = post_job(server, {**small, "renderer": 7})
    assert code == 400 and b"renderer" in body, (code, body)
    code, body = post_job(server, {**small, "renderer": "cuda"})
    if health(server)["renderer"]["name"] == "cuda":
        assert code == 202, (code, body)
    else:
        assert code == 400, (code, body)
        msg = json.loads(body)["error"]["message"].lower()
        assert "params.renderer" in msg and any(w in msg for w in WHY), msg
    code, body = post_job(server, {**small, "renderer": "cpu"})
    assert code == 202, (code, body)
