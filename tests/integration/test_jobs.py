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
    ({"kind": "movie", "params": {}}, "kind"),
    ({"kind": "orbit", "params": {"size": 5}}, "params.size"),
    ({"kind": "orbit", "params": {"grid": "3x3"}}, "params.grid"),
    ({"kind": "orbit", "params": {"yaw": 30}}, "params.yaw"),
    ({"kind": "orbit", "params": {"format": "gif"}}, "params.format"),
    ({"kind": "orbit", "params": {"view": []}}, "params.view"),
    ({"kind": 1, "params": {}}, "kind"),
    ({"kind": "orbit", "params": {"columns": 100, "rows": 100, "size": 1024}}, "Mpx"),
], ids=["kind", "size", "unknown", "yaw", "format", "view", "kind-type", "too-many-pixels"])
def test_bad_submissions_name_the_field(serve, tmp_path, body, field):
    s = serve(DATA, "--data-dir", tmp_path / "d")
    code, _, resp = call(s, "PUT", "/api/v1/jobs/x", body)
    assert code == 400
    assert field in json.loads(resp)["error"]["message"]


def test_bad_ids_and_bodies(serve, tmp_path):
    s = serve(DATA, "--data-dir", tmp_path / "d")
    code, _, _ = call(s, "PUT", "/api/v1/jobs/" + "x" * 80, {"params": SMALL})
    assert code == 400
    req = urllib.request.Request(f"{s.http}/api/v1/jobs", data=b"{not json", method="POST")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=10)
    assert e.value.code == 400
    assert call(s, "GET", "/api/v1/jobs/none")[0] == 404
    assert call(s, "DELETE", "/api/v1/jobs/none")[0] == 404


def test_failure_keeps_the_error(serve, tmp_path):
    s = serve(DATA, "--data-dir", tmp_path / "d")
    body = {"kind": "orbit", "params": {**SMALL, "view": {"layers": [{"colormap": "nope"}]}}}
    assert call(s, "PUT", "/api/v1/jobs/bad", body)[0] == 202
    j = wait_state(s, "bad", {"failed"})
    assert "colormap" in j["error"]


def test_cancel_overload_and_queue_position(serve, tmp_path):
    s = serve(DATA, "--data-dir", tmp_path / "d", "--max-jobs", "2")
    assert call(s, "PUT", "/api/v1/jobs/big", {"params": BIG})[0] == 202
    wait_state(s, "big", {"running"})  # then "next" waits behind it, first in line
    code, _, body = call(s, "PUT", "/api/v1/jobs/next", {"params": SMALL})
    assert code == 202 and json.loads(body)["job"]["queue_position"] == 1
    code, headers, body = call(s, "PUT", "/api/v1/jobs/third", {"params": SMALL})
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
    assert call(s, "PUT", "/api/v1/jobs/big2", {"params": BIG})[0] == 202
    assert call(s, "PUT", "/api/v1/jobs/q", {"params": SMALL})[0] == 202
    assert json.loads(call(s, "DELETE", "/api/v1/jobs/q")[2])["job"]["state"] == "canceled"
    call(s, "DELETE", "/api/v1/jobs/big2")


def test_history_survives_a_restart_and_a_crash_marks_running_jobs_failed(serve, tmp_path):
    d = tmp_path / "d"
    # Damaged history is skipped, not fatal.
    for name, text in (("broken", "{not json"), ("typed", '{"id": 5}'), ("other", '{"id": "x"}')):
        (d / "jobs" / name).mkdir(parents=True)
        (d / "jobs" / name / "job.json").write_text(text)
    s = serve(DATA, "--data-dir", d)
    assert call(s, "PUT", "/api/v1/jobs/kept", {"params": SMALL})[0] == 202
    wait_state(s, "kept", {"succeeded"})
    assert call(s, "PUT", "/api/v1/jobs/crashed", {"params": BIG})[0] == 202
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


def test_events_push_progress(serve, tmp_path):
    s = serve(DATA, "--data-dir", tmp_path / "d")

    async def go():
        ws = await websockets.connect(f"{s.ws}/ws/events")
        first = json.loads(await ws.recv())
        assert first["type"] == "jobs" and first["jobs"] == []
        await asyncio.get_running_loop().run_in_executor(
            None, call, s, "PUT", "/api/v1/jobs/e", {"params": SMALL})
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
