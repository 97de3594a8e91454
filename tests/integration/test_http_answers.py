"""Screenshot and region answers under clients that do not play along (docs/protocol.md,
"Memory held for answers"): answers nobody reads count against --http-max-inflight-mb until
their client reads them or leaves, and a screenshot whose client left stops rendering."""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request

MiB = 1 << 20


def health(s):
    with urllib.request.urlopen(f"{s.http}/api/v1/health", timeout=30) as r:
        return json.loads(r.read())


def wait_for(s, what, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        h = health(s)
        if what(h["http"]):
            return h["http"]
        assert time.monotonic() < deadline, f"timed out; http is {h['http']}"
        time.sleep(0.05)


def post(s, route, body):
    req = urllib.request.Request(f"{s.http}/api/v1/{route}", data=json.dumps(body).encode(),
                                 method="POST")
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def raw_post(s, route, body) -> socket.socket:
    """Sends a request and never reads the answer (a receive buffer of 4 KiB fills at once)."""
    host, port = s.http.removeprefix("http://").rsplit(":", 1)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    data = json.dumps(body).encode()
    sock.sendall(f"POST /api/v1/{route} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 f"Content-Length: {len(data)}\r\n\r\n".encode() + data)
    return sock


def region(z, depth):
    return {"start": [0, z, 0, 0], "shape": [1, depth, 256, 256]}


def test_answers_nobody_reads_are_bounded_and_freed_when_their_client_leaves(serve, tmp_path):
    # uint16: a 256-deep box is 32 MiB. The budget is 40 MiB.
    s = serve("synthetic:cells?shape=384x256x256&chunk=64", "--data-dir", tmp_path / "d",
              "--http-max-inflight-mb", "40")
    assert health(s)["http"]["answer_budget_bytes"] == 40 * MiB
    hog = raw_post(s, "region", region(0, 256))
    try:
        # Read (the read slot free again), then held while the client does not read it.
        held = wait_for(s, lambda h: h["regions"] == 0 and h["answer_bytes"] == 32 * MiB)
        assert held["screenshots"] == 0
        # 32 + 16 > 40: refused, saying why; 32 + 4 fits.
        status, headers, body = post(s, "region", region(0, 128))
        assert status == 429 and headers.get("Retry-After") == "1", body[:300]
        msg = json.loads(body)["error"]["message"]
        assert "32 MiB of answers" in msg and "--http-max-inflight-mb 40" in msg, msg
        status, _, body = post(s, "region", region(256, 32))
        assert status == 200 and len(body) == 4 * MiB
        # A screenshot counts too: 1024x1024 RGBA is 4 MiB, 2048x2048 is 16.
        status, _, _ = post(s, "screenshot", {"width": 1024, "height": 1024})
        assert status == 200
        status, _, body = post(s, "screenshot", {"width": 2048, "height": 2048})
        assert status == 429, body[:300]
        # Larger than the whole budget: no wait would help.
        status, _, body = post(s, "region", {"start": [0, 0, 0, 0], "shape": [1, 384, 256, 256]})
        assert status == 400, body[:300]
        msg = json.loads(body)["error"]["message"]
        assert "'shape'" in msg and "--http-max-inflight-mb" in msg, msg
        status, _, body = post(s, "screenshot", {"width": 4096, "height": 4096})
        assert status == 400 and b"--http-max-inflight-mb" in body, body[:300]
    finally:
        hog.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
        hog.close()  # a reset: the server's write fails and the answer is dropped
    wait_for(s, lambda h: h["answer_bytes"] == 0, timeout=30)
    status, _, body = post(s, "region", region(0, 128))
    assert status == 200 and len(body) == 16 * MiB
    assert s.proc.poll() is None


def test_a_screenshot_whose_client_left_stops_rendering(serve, tmp_path):
    # Every chunk of a 3D view, each read waiting 2 s of storage latency: far longer than the
    # render's next check once the client has gone.
    s = serve("synthetic:cells?shape=512x512x512&chunk=32&latency_ms=2000", "--data-dir",
              tmp_path / "d")
    scene = {"dims": {"ndisplay": 3}, "camera": {"angles": [0, 30, 110]}}
    gone = raw_post(s, "screenshot", {"scene": scene, "width": 1024, "height": 1024})
    wait_for(s, lambda h: h["screenshots"] == 1)
    time.sleep(0.5)
    gone.close()
    left = wait_for(s, lambda h: h["screenshots"] == 0, timeout=30)
    assert left["abandoned"] == 1 and left["answer_bytes"] == 0, left
    # The slots are free: two more at once are taken (each then left too).
    more = [raw_post(s, "screenshot", {"scene": scene, "width": 1024, "height": 1024})
            for _ in range(2)]
    wait_for(s, lambda h: h["screenshots"] == 2)
    for m in more:
        m.close()
    left = wait_for(s, lambda h: h["screenshots"] == 0, timeout=30)
    assert left["abandoned"] == 3, left
    # A client that stays gets its picture (a small dataset without latency).
    s2 = serve("synthetic:cells?shape=48x96x128&chunk=32", "--data-dir", tmp_path / "d2")
    status, headers, body = post(s2, "screenshot", {"width": 64, "height": 48})
    assert status == 200 and body[:8] == b"\x89PNG\r\n\x1a\n"
    assert health(s2)["http"]["abandoned"] == 0
