"""Jobs over HTTP (docs/protocol.md, "Jobs"): submit, progress, success; idempotent ids;
cancel; failure; overload (429); the files route; persistence across a restart, and jobs
interrupted by a crash marked failed; progress pushed on /ws/events."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import urllib.error
import urllib.request

import pytest
import websockets

DATA = "synthetic:cells?shape=48x64x64&chunk=32"
SMALL = {"columns": 3, "rows": 2, "size": 32}
BIG = {"columns": 40, "rows": 40, "size": 128}


def call(s, method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"{s.http}{path}", data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def job(s, jid):
    code, _, body = call(s, "GET", f"/api/v1/jobs/{jid}")
    assert code == 200, body
    return json.loads(body)["job"]


def wait_state(s, jid, states, timeout=120):
    end = time.time() + timeout
    while time.time() < end:
        j = job(s, jid)
        if j["state"] in states:
            return j
        time.sleep(0.1)
    raise AssertionError(f"job {jid} never reached {states}: {j}")


def test_submit_progress_success_files_and_idempotency(serve, tmp_path):
    s = serve(DATA, "--data-dir", tmp_path / "d")
    code, headers, body = call(s, "PUT", "/api/v1/jobs/first", {"kind": "orbit", "params": SMALL})
    assert code == 202 and headers["Location"] == "/api/v1/jobs/first"
    j = json.loads(body)["job"]
    assert j["id"] == "first" and j["state"] in ("queued", "running", "succeeded")
    done = wait_state(s, "first", {"succeeded"})
    assert done["done"] == done["total"] == 6 and done["error"] is None
    assert {"orbit.json", "index.html"} <= set(done["files"])
    code, headers, body = call(s, "GET", "/api/v1/jobs/first/files/orbit.json")
    assert code == 200 and json.loads(body)["grid"] == {"columns": 3, "rows": 2}
    sheet = [f for f in done["files"] if f.endswith(".webp")][0]
    code, headers, _ = call(s, "GET", f"/api/v1/jobs/first/files/{sheet}")
    assert code == 200 and headers["Content-Type"] == "image/webp"
    # Only that job's files, by exact name.
    for bad in ("../job.json", "..%2Fjob.json", "nothing.png", "", "../../../../etc/passwd"):
        code, _, _ = call(s, "GET", f"/api/v1/jobs/first/files/{bad}")
        assert code == 404, bad
    # Same id and parameters: the same job. Other parameters: a conflict.
    code, _, body = call(s, "PUT", "/api/v1/jobs/first", {"kind": "orbit", "params": SMALL})
    assert code == 200 and json.loads(body)["job"]["state"] == "succeeded"
    code, _, body = call(s, "PUT", "/api/v1/jobs/first",
                         {"kind": "orbit", "params": {**SMALL, "size": 64}})
    assert code == 409 and json.loads(body)["error"]["code"] == "conflict"
    # POST picks an id.
    code, headers, body = call(s, "POST", "/api/v1/jobs", {"kind": "orbit", "params": SMALL})
    assert code == 202
    jid = json.loads(body)["job"]["id"]
    assert headers["Location"] == f"/api/v1/jobs/{jid}"
    wait_state(s, jid, {"succeeded"})
    code, _, body = call(s, "GET", "/api/v1/jobs")
    assert {j["id"] for j in json.loads(body)["jobs"]} == {"first", jid}


@pytest.mark.parametrize("body,field", [
    ({"kind": "nope", "params": {}}, "kind"),
    ({"kind": "orbit", "params": {"size": 5}}, "params.size"),
    ({"kind": "orbit", "params": {"grid": "3x3"}}, "params.grid"),
    ({"kind": "orbit", "params": {"yaw": 30}}, "params.yaw"),
    ({"kind": "orbit", "params": {"format": "gif"}}, "params.format"),
    ({"kind": "orbit", "params": {"view": []}}, "params.view"),
    ({"kind": 1, "params": {}}, "kind"),
    ({"kind": "orbit", "params": {"columns": 100, "rows": 100, "size": 1024}}, "Mpx"),
    ({"kind": "orbit", "params": {"dataset": 3}}, "params.dataset"),
    ({"kind": "orbit", "params": {"view": {"layers": [{"colormap": "nope"}]}}}, "params.view"),
    ({"kind": "orbit", "params": {"view": {"camera": {"zoom": "big"}}}}, "params.view"),
    ({"kind": "orbit", "params": {"yaw": [1e308, -1e308]}}, "params.yaw"),
    ({"kind": "orbit", "params": {"pitch": [0, 91]}}, "params.pitch"),
    ({"kind": "orbit", "parms": {"size": 16}}, "'parms'"),
], ids=["kind", "size", "unknown", "yaw", "format", "view", "kind-type", "too-many-pixels",
        "bad-dataset", "bad-view-colormap", "bad-view-zoom", "huge-yaw", "pitch-range",
        "unknown-top-level"])
def test_bad_submissions_name_the_field(serve, tmp_path, body, field):
    s = serve(DATA, "--data-dir", tmp_path / "d")
    code, _, resp = call(s, "PUT", "/api/v1/jobs/x", body)
    assert code == 400
    assert field in json.loads(resp)["error"]["message"]


def test_bad_ids_and_bodies(serve, tmp_path):
    s = serve(DATA, "--data-dir", tmp_path / "d")
    code, _, _ = call(s, "PUT", "/api/v1/jobs/" + "x" * 80, {"kind": "orbit", "params": SMALL})
    assert code == 400
    req = urllib.request.Request(f"{s.http}/api/v1/jobs", data=b"{not json", method="POST")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=10)
    assert e.value.code == 400
    assert call(s, "GET", "/api/v1/jobs/none")[0] == 404
    assert call(s, "DELETE", "/api/v1/jobs/none")[0] == 404
    # POST to an id is not a way to make a job under another id: 405, naming the methods.
    code, headers, resp = call(s, "POST", "/api/v1/jobs/abc", {"kind": "orbit", "params": SMALL})
    assert code == 405 and headers.get("Allow") == "GET, HEAD, PUT, DELETE", (code, headers)
    assert json.loads(call(s, "GET", "/api/v1/jobs")[2])["jobs"] == []
    code, headers, _ = call(s, "PATCH", "/api/v1/jobs")
    assert code == 405 and headers.get("Allow") == "GET, HEAD, POST", (code, headers)
    # HEAD gets what GET would, without the body.
    req = urllib.request.Request(f"{s.http}/api/v1/jobs", method="HEAD")
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 200 and r.read() == b""


def test_bad_dataset_or_view_is_refused_at_submit(serve, tmp_path):
    # Refused with 400 naming the field, not accepted and failed later: no job is created.
    s = serve(DATA, "--data-dir", tmp_path / "d")
    for jid, params, names in (
            ("v", {**SMALL, "view": {"layers": [{"colormap": "nope"}]}}, ("params.view", "colormap")),
            ("d", {**SMALL, "dataset": 1}, ("params.dataset",))):
        code, _, body = call(s, "PUT", f"/api/v1/jobs/{jid}", {"kind": "orbit", "params": params})
        assert code == 400, body
        err = json.loads(body)["error"]
        assert err["code"] == "bad_request" and all(n in err["message"] for n in names), err
        assert call(s, "GET", f"/api/v1/jobs/{jid}")[0] == 404
    assert json.loads(call(s, "GET", "/api/v1/jobs")[2])["jobs"] == []


def test_cancel_overload_and_queue_position(serve, tmp_path):
    s = serve(DATA, "--data-dir", tmp_path / "d", "--max-jobs", "2")
    assert call(s, "PUT", "/api/v1/jobs/big", {"kind": "orbit", "params": BIG})[0] == 202
    wait_state(s, "big", {"running"})  # then "next" waits behind it, first in line
    code, _, body = call(s, "PUT", "/api/v1/jobs/next", {"kind": "orbit", "params": SMALL})
    assert code == 202 and json.loads(body)["job"]["queue_position"] == 1
    code, headers, body = call(s, "PUT", "/api/v1/jobs/third", {"kind": "orbit", "params": SMALL})
    assert code == 429 and headers["Retry-After"] == "5"
    assert json.loads(body)["error"]["code"] == "overloaded"
    code, _, body = call(s, "DELETE", "/api/v1/jobs/big")
    assert code == 200
    at_cancel = json.loads(body)["job"]["done"]
    j = wait_state(s, "big", {"canceled"})
    # Counted, not timed: a running orbit stops within one view per render thread (the
    # views already started finish; no new one starts).
    assert j["done"] < j["total"] == 40 * 40
    assert j["done"] - at_cancel <= (os.cpu_count() or 1) + 1, (at_cancel, j)
    wait_state(s, "next", {"succeeded"})
    # Canceling a queued job: at once.
    assert call(s, "PUT", "/api/v1/jobs/big2", {"kind": "orbit", "params": BIG})[0] == 202
    assert call(s, "PUT", "/api/v1/jobs/q", {"kind": "orbit", "params": SMALL})[0] == 202
    assert json.loads(call(s, "DELETE", "/api/v1/jobs/q")[2])["job"]["state"] == "canceled"
    call(s, "DELETE", "/api/v1/jobs/big2")


def test_history_survives_a_restart_and_a_crash_marks_running_jobs_failed(serve, tmp_path):
    d = tmp_path / "d"
    # Damaged history is skipped, not fatal.
    for name, text in (("broken", "{not json"), ("typed", '{"id": 5}'), ("other", '{"id": "x"}')):
        (d / "jobs" / name).mkdir(parents=True)
        (d / "jobs" / name / "job.json").write_text(text)
    s = serve(DATA, "--data-dir", d)
    assert call(s, "PUT", "/api/v1/jobs/kept", {"kind": "orbit", "params": SMALL})[0] == 202
    wait_state(s, "kept", {"succeeded"})
    assert call(s, "PUT", "/api/v1/jobs/crashed", {"kind": "orbit", "params": BIG})[0] == 202
    wait_state(s, "crashed", {"running"})
    s.proc.send_signal(signal.SIGKILL)  # not a clean stop
    s.proc.wait(timeout=30)
    t = serve(DATA, "--data-dir", d)
    ids = {j["id"] for j in json.loads(call(t, "GET", "/api/v1/jobs")[2])["jobs"]}
    assert ids == {"kept", "crashed"}
    kept = job(t, "kept")
    assert kept["state"] == "succeeded" and "orbit.json" in kept["files"]
    assert call(t, "GET", "/api/v1/jobs/kept/files/orbit.json")[0] == 200
    crashed = job(t, "crashed")
    assert crashed["state"] == "failed" and "stopped" in crashed["error"]


def test_graceful_stop_cancels_running_and_queued_jobs(serve, tmp_path):
    d = tmp_path / "d"
    s = serve(DATA, "--data-dir", d)
    assert call(s, "PUT", "/api/v1/jobs/running", {"kind": "orbit", "params": BIG})[0] == 202
    wait_state(s, "running", {"running"})
    assert call(s, "PUT", "/api/v1/jobs/waiting", {"kind": "orbit", "params": SMALL})[0] == 202
    code, _ = s.stop(signal.SIGTERM)
    assert code == 0
    for jid in ("running", "waiting"):  # as stored, and as the next start reports them
        stored = json.loads((d / "jobs" / jid / "job.json").read_text())
        assert stored["state"] == "canceled" and stored["error"] == "server stopped", stored
    t = serve(DATA, "--data-dir", d)
    for jid in ("running", "waiting"):
        j = job(t, jid)
        assert j["state"] == "canceled" and j["error"] == "server stopped", j
    assert job(t, "running")["done"] < 40 * 40


def test_events_push_progress(serve, tmp_path):
    s = serve(DATA, "--data-dir", tmp_path / "d")

    async def go():
        ws = await websockets.connect(f"{s.ws}/ws/events")
        first = json.loads(await ws.recv())
        assert first["type"] == "jobs" and first["jobs"] == []
        await asyncio.get_running_loop().run_in_executor(
            None, call, s, "PUT", "/api/v1/jobs/e", {"kind": "orbit", "params": SMALL})
        states = []
        while True:
            m = json.loads(await asyncio.wait_for(ws.recv(), 60))
            assert m["type"] == "job" and m["job"]["id"] == "e"
            states.append(m["job"]["state"])
            if m["job"]["state"] == "succeeded":
                break
        assert states[0] == "queued" and "running" in states
        await ws.close()

    asyncio.run(go())


# ---- pixels through the server, concurrency and order -----------------------------------

def orbit_tile_scene(manifest, c, r):
    """The scene of tile (column c, row r), as docs/orbit.md defines it: the base view with
    camera angles + (0, yaw[c], pitch[r])."""
    view = json.loads(json.dumps(manifest["view"]))
    a = view["camera"]["angles"]
    view["camera"]["angles"] = [a[0], a[1] + manifest["yaw"][c], a[2] + manifest["pitch"][r]]
    return view


def psnr(a, b):
    import numpy as np
    mse = np.mean((a.astype(float) - b.astype(float)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255 ** 2 / mse)


def check_orbit_tiles(s, jid, run_ok, tmp_path, min_psnr):
    """Every tile of a finished orbit, read from the server's files, against `voxcast render`
    of its angles; returns the PSNRs."""
    import io

    import numpy as np
    from PIL import Image
    code, _, body = call(s, "GET", f"/api/v1/jobs/{jid}/files/orbit.json")
    assert code == 200
    m = json.loads(body)
    tw, th = m["tile"]["width"], m["tile"]["height"]
    out = []
    for sheet in m["sheets"]:
        code, _, raw = call(s, "GET", f"/api/v1/jobs/{jid}/files/{sheet['file']}")
        assert code == 200, sheet
        img = np.asarray(Image.open(io.BytesIO(raw)).convert("RGB"))
        assert img.shape == (sheet["rows"] * th, sheet["columns"] * tw, 3), (img.shape, sheet)
        for r in range(sheet["row"], sheet["row"] + sheet["rows"]):
            for c in range(sheet["column"], sheet["column"] + sheet["columns"]):
                y0, x0 = (r - sheet["row"]) * th, (c - sheet["column"]) * tw
                tile = img[y0:y0 + th, x0:x0 + tw]
                v = tmp_path / f"tile-{c}-{r}.json"
                v.write_text(json.dumps(orbit_tile_scene(m, c, r)))
                png = tmp_path / f"tile-{c}-{r}.png"
                run_ok("render", m["dataset"], "--view", v, "-o", png)
                want = np.asarray(Image.open(png).convert("RGB"))
                assert (want.max(axis=2) > 30).mean() > 0.02, f"tile {c},{r}: the render is blank"
                p = psnr(tile, want)
                assert p >= min_psnr, f"tile (column {c}, row {r}): PSNR {p:.1f} dB against its render"
                out.append(p)
    assert len(out) == m["grid"]["columns"] * m["grid"]["rows"]
    return out


@pytest.mark.parametrize("fmt,min_psnr", [("webp", 25.0), ("jpeg", 25.0)])
def test_orbit_tiles_through_the_server_are_renders_of_their_angles(serve, run_ok, tmp_path, fmt,
                                                                     min_psnr):
    """Job pixels: each tile equals `voxcast render` of the view at its yaw and pitch (within
    the image format's loss: 48-pixel tiles of fine detail measured 28-30 dB in WebP and
    JPEG, against 15-17 dB for the same tile flipped or mirrored); a flipped, misplaced or
    wrongly angled tile fails. The page is
    the component with this orbit, not just any 200."""
    s = serve(DATA, "--data-dir", tmp_path / "d", "--jobs", "2")
    view = {"camera": {"angles": [0, 20, 70]},
            "layers": [{"colormap": "magma", "contrast_limits": [200, 3000]},
                       {"colormap": "green", "contrast_limits": [200, 3000]}]}
    params = {"columns": 3, "rows": 2, "size": 48, "format": fmt, "view": view}
    assert call(s, "PUT", "/api/v1/jobs/tiles", {"kind": "orbit", "params": params})[0] == 202
    wait_state(s, "tiles", {"succeeded"})
    check_orbit_tiles(s, "tiles", run_ok, tmp_path, min_psnr)
    code, headers, body = call(s, "GET", "/api/v1/jobs/tiles/files/index.html")
    page = body.decode()
    assert code == 200 and headers["Content-Type"].startswith("text/html")
    assert '<voxcast-orbit' in page and 'src="orbit.json"' in page, page[:500]
    assert "customElements.define('voxcast-orbit'" in page or \
        'customElements.define("voxcast-orbit"' in page, "the component is not inlined"


def test_jobs_run_side_by_side_and_the_queue_keeps_its_order(serve, tmp_path):
    """--jobs 2: two big orbits run at once; jobs submitted behind them wait in submission
    order (queue positions 1, 2, 3) and start in that order. Judged by states and
    positions, not by time."""
    s = serve(DATA, "--data-dir", tmp_path / "d", "--jobs", "2", "--max-jobs", "8")
    for jid in ("big1", "big2"):
        assert call(s, "PUT", f"/api/v1/jobs/{jid}", {"kind": "orbit", "params": BIG})[0] == 202
    wait_state(s, "big1", {"running"})
    wait_state(s, "big2", {"running"})  # both at once: the second did not wait for the first
    for i, jid in enumerate(("q1", "q2", "q3"), start=1):
        code, _, body = call(s, "PUT", f"/api/v1/jobs/{jid}", {"kind": "orbit", "params": SMALL})
        assert code == 202 and json.loads(body)["job"]["queue_position"] == i, body
    assert [job(s, j)["state"] for j in ("q1", "q2", "q3")] == ["queued"] * 3
    # One slot frees: the first in line starts, the others move up.
    call(s, "DELETE", "/api/v1/jobs/big1")
    wait_state(s, "big1", {"canceled"})
    q1 = wait_state(s, "q1", {"running", "succeeded"})
    assert job(s, "big2")["state"] == "running"
    # q1 may already be done and q2 started meanwhile: read q3 first, then q2. States only
    # move forward, so a q2 still queued at the second read was queued at the first, and q3
    # was then behind it.
    q3 = job(s, "q3")
    q2 = job(s, "q2")
    if q2["state"] == "queued":
        assert q2["queue_position"] == 1 and q3["queue_position"] == 2, (q2, q3)
    call(s, "DELETE", "/api/v1/jobs/big2")
    done = [wait_state(s, j, {"succeeded"}) for j in ("q1", "q2", "q3")]
    assert done[0]["started"] <= done[1]["started"] <= done[2]["started"], done
    assert q1["started"] <= done[1]["started"]
