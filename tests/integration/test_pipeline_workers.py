"""Python pipelines in worker processes (voxcast.pipeline, `--pipelines FILE`): the examples
through convert and a live server session, equal to the same function called in process
(chunk borders included); a killed worker restarted; faults (a raise, a wrong shape or
dtype, a hang, a death mid-chunk, a malformed schema, a missing command), each with an
error that names the worker and the pipeline while the server stays up."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import signal
import struct
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import scipy.ndimage as ndi
import zarr

from vxhelpers import http_get as get, host_budget

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "pipelines"
FAULTS = Path(__file__).resolve().parent / "workers" / "faults.py"
SHAPE = (21, 37, 41)  # 16^3 chunks: interior and edge chunks, every border crossed
HEADER = struct.Struct("<4sHBBIIHHIIIIQI")
if str(ROOT / "python") not in sys.path:
    sys.path.insert(0, str(ROOT / "python"))


def worker_env(extra=None) -> dict:
    """What a worker needs: the voxcast package and the wire module (and, in the ASan tree,
    the sanitizer runtime first: tests/CMakeLists.txt)."""
    wire = ROOT / os.environ.get("VOXCAST_WIRE_PATH", "build/release/python")  # abs. stays
    env = {"PYTHONPATH": f"{ROOT / 'python'}:{wire}", "PYTHONDONTWRITEBYTECODE": "1",
           "OMP_NUM_THREADS": "1"}
    if os.environ.get("VOXCAST_WIRE_PRELOAD"):
        env["LD_PRELOAD"] = os.environ["VOXCAST_WIRE_PRELOAD"]
        env["ASAN_OPTIONS"] = f"detect_leaks=0:suppressions={ROOT / 'tests' / 'asan_ucx.supp'}"
    env.update(extra or {})
    return env


def manifest(tmp_path, *workers, name="pipelines.json") -> Path:
    """workers: (name, script, {extra fields})."""
    ws = []
    for wname, script, extra in workers:
        w = {"name": wname, "command": ["/usr/bin/python3", str(script)], "env": worker_env(),
             "memory_mb": 64}
        env = extra.pop("env", {}) if extra else {}
        w["env"].update(env)
        w.update(extra or {})
        ws.append(w)
    p = tmp_path / name
    p.write_text(json.dumps({"workers": ws}))
    return p


def load_module(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def volume(tmp_path_factory, run_ok):
    rng = np.random.default_rng(15)
    a = ndi.gaussian_filter(rng.normal(1000, 300, SHAPE), 1.0)
    a = np.clip(a + rng.normal(0, 50, SHAPE), 0, 65535).astype(np.uint16)
    root = tmp_path_factory.mktemp("workers")
    np.save(root / "in.npy", a)
    run_ok("convert", root / "in.npy", root / "in.ome.zarr", "--chunk", "16", "-q")
    return a, root / "in.ome.zarr"


def converted(run_ok, tmp_path, src, man, pipeline):
    out = tmp_path / "out.ome.zarr"
    run_ok("convert", src, out, "--chunk", "16", "--levels", "1", "-q", "--pipelines", man,
           "--pipeline", pipeline, timeout=300)
    return np.asarray(zarr.open(str(out), mode="r")["0"])


# ---- results equal the in-process function, across chunk borders ----

def test_scipy_example_equals_in_process(volume, run_ok, tmp_path):
    a, src = volume
    man = manifest(tmp_path, ("scipy", EXAMPLES / "scipy_example.py", {}))
    mod = load_module(EXAMPLES / "scipy_example.py")
    got = converted(run_ok, tmp_path, src, man, "scipy_log:sigma=1.2")
    want = mod.vp.call_in_process("scipy_log", a, {"sigma": 1.2})  # the whole array at once
    assert got.dtype == np.float32 and got.shape == a.shape
    np.testing.assert_array_equal(got, want)
    got = converted(run_ok, tmp_path / "m", src, man, "scipy_median:radius=1")
    assert got.dtype == np.uint16
    np.testing.assert_array_equal(got, ndi.median_filter(a, size=3))
    # The same over wire messages instead of shared memory (shm_mb 0: the fallback path).
    wired = manifest(tmp_path, ("scipy", EXAMPLES / "scipy_example.py", {"shm_mb": 0}),
                     name="wired.json")
    got = converted(run_ok, tmp_path / "w", src, wired, "scipy_log:sigma=1.2")
    np.testing.assert_array_equal(got, want)


def test_torch_example_equals_in_process(volume, run_ok, tmp_path):
    a, src = volume
    man = manifest(tmp_path, ("torch", EXAMPLES / "torch_example.py", {"timeout_s": 120}))
    mod = load_module(EXAMPLES / "torch_example.py")
    got = converted(run_ok, tmp_path, src, man, "torch_cnn:gain=500")
    # The model on the whole array, with the array's edges mirrored as voxcast does
    # (scipy's 'reflect' = numpy's 'symmetric') for the 2-voxel halo.
    padded = np.pad(a.astype(np.float32), 2, mode="symmetric")
    want = mod.apply(padded, 1000.0, 500.0)
    assert got.shape == want.shape == a.shape
    # Close, not byte-equal: torch may sum a convolution in another order for another size.
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3 * float(np.abs(want).max()))


# ---- a live session ----

async def _reply(st, timeout=120):
    while True:
        m = json.loads(await asyncio.wait_for(st.recv(), timeout))
        if m["type"] not in ("stats",):
            return m


async def _final_frame(px, state_seq, timeout=180):
    from PIL import Image
    import io

    async def loop():
        while True:
            m = await px.recv()
            (_, _, _, flags, _, sseq, _, _, _, _, _, n, _, _) = HEADER.unpack_from(m, 0)
            if sseq >= state_seq and not flags & (2 | 4):
                return np.asarray(Image.open(io.BytesIO(m[48:48 + n])).convert("L"), np.float64), flags
    return await asyncio.wait_for(loop(), timeout)


async def _session(s):
    import websockets
    st = await websockets.connect(f"{s.ws}/ws/state", max_size=None)
    await st.send(json.dumps({"type": "hello", "codecs": ["jpeg"], "client": "test"}))
    welcome = await _reply(st)
    assert welcome["type"] == "welcome", welcome
    px = await websockets.connect(f"{s.ws}/ws/pixels?session={welcome['session']}", max_size=None)
    return st, px, welcome


def _pipelines(s) -> dict:
    code, body = get(f"{s.http}/api/v1/pipelines")
    assert code == 200, body
    return {p["name"]: p for p in json.loads(body)["pipelines"]}


def _post(s, path):
    import urllib.request
    req = urllib.request.Request(f"{s.http}{path}", data=b"", method="POST")
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def _wait_for(pred, what, timeout=15.0):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        ok, last = pred()
        if ok:
            return last
        time.sleep(0.1)
    pytest.fail(f"{what} within {timeout} s; last seen: {last}", pytrace=False)


def test_session_lazy_start_live_params_and_killed_worker(volume, serve, run_ok, tmp_path):
    a, src = volume
    man = manifest(tmp_path, ("scipy", EXAMPLES / "scipy_example.py", {}))
    listed = run_ok("pipelines", "--pipelines", man, "--json")
    names = {p["name"]: p for p in json.loads(listed.stdout)}
    assert names["scipy_log"]["schema"]["properties"]["sigma"]["maximum"] == 8
    assert "gaussian" in names  # the built-ins are still there

    s = serve(src, "--pipelines", man, "--cache-mb", "256")
    p = _pipelines(s)["scipy_log"]
    assert p["status"] == "not_loaded" and p["worker"]["pid"] is None, p  # lazy: not started

    # The worker starts on load; a SIGKILL is noticed and reported with its reason.
    code, body = _post(s, "/api/v1/pipelines/scipy_log/load")
    assert code == 200, body
    p = _pipelines(s)["scipy_log"]
    assert p["status"] == "loaded" and isinstance(p["worker"]["pid"], int), p
    assert p["worker"]["memory_bytes"] == 64 << 20, p  # charged while the process runs
    os.kill(p["worker"]["pid"], signal.SIGKILL)
    dead = _wait_for(lambda: ((q := _pipelines(s)["scipy_log"])["status"] == "error", q),
                     "the killed worker reported")
    assert "worker 'scipy'" in dead["error"] and "signal 9" in dead["error"], dead
    assert dead["worker"]["deaths"] == 1, dead

    async def go():
        st, px, welcome = await _session(s)
        limits = [0, 200]
        layer = {"source": {"pipeline": "scipy_log", "input": 0, "params": {"sigma": 1.0}},
                 "contrast_limits": limits, "colormap": "gray", "blending": "translucent"}
        await st.send(json.dumps({"type": "state.update", "seq": 1, "patch": {
            "canvas": {"width": 128, "height": 128},
            "layers": [{"visible": False}, layer]}}))
        ack = await _reply(st)
        assert ack["type"] == "ack", ack
        first, _ = await _final_frame(px, 1)  # the worker was restarted for it
        q = _pipelines(s)["scipy_log"]
        assert q["status"] == "loaded" and q["worker"]["starts"] == 2, q
        # A live parameter change reaches the frames.
        await st.send(json.dumps({"type": "state.update", "seq": 2, "patch": {
            "layers": [{}, {"source": {"params": {"sigma": 3.0}}}]}}))
        ack = await _reply(st)
        assert ack["type"] == "ack" and ack["changes"]["layers"][1]["source"]["params"]["sigma"] == 3
        wide, _ = await _final_frame(px, 2)
        assert np.abs(wide - first).mean() > 1.0, "sigma 3 drew the same frame as sigma 1"
        # Killed again while idle; the first parameters again: recomputed or cached, the
        # same frame (nothing cached was corrupted).
        os.kill(_pipelines(s)["scipy_log"]["worker"]["pid"], signal.SIGKILL)
        await st.send(json.dumps({"type": "state.update", "seq": 3, "patch": {
            "layers": [{}, {"source": {"params": {"sigma": 1.0}}}]}}))
        await _reply(st)
        again, _ = await _final_frame(px, 3)
        np.testing.assert_array_equal(again, first)
        # That frame may have come from the cache, leaving the worker stopped. New parameters
        # must be computed: a worker runs again, the one the unload below must stop.
        await st.send(json.dumps({"type": "state.update", "seq": 4, "patch": {
            "layers": [{}, {"source": {"params": {"sigma": 2.0}}}]}}))
        await _reply(st)
        await _final_frame(px, 4)
        await st.close()
        await px.close()

    asyncio.run(go())
    # Unloaded (as when idle, or offloaded when memory is short): the worker stops.
    pid = _pipelines(s)["scipy_log"]["worker"]["pid"]
    assert pid is not None, _pipelines(s)["scipy_log"]
    # (busy, 409, while the closed session's last computations finish)
    _wait_for(lambda: ((r := _post(s, "/api/v1/pipelines/scipy_log/unload"))[0] == 200, r),
              "unloaded", timeout=60)
    p = _pipelines(s)["scipy_log"]
    assert p["status"] == "not_loaded" and p["worker"]["pid"] is None, p
    assert p["worker"]["memory_bytes"] == 0, p
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # stopped and reaped before the unload returned


def test_torch_example_in_a_session(volume, serve, tmp_path):
    a, src = volume
    man = manifest(tmp_path, ("torch", EXAMPLES / "torch_example.py", {"timeout_s": 120}))
    s = serve(src, "--pipelines", man)

    async def go():
        st, px, _ = await _session(s)
        await st.send(json.dumps({"type": "state.update", "seq": 1, "patch": {
            "canvas": {"width": 96, "height": 96},
            "layers": [{"visible": False}, {"source": {"pipeline": "torch_cnn", "input": 0,
                                                       "params": {"gain": 300}},
                                            "contrast_limits": [-300, 300]}]}}))
        ack = await _reply(st)
        assert ack["type"] == "ack", ack
        img, flags = await _final_frame(px, 1)
        assert not flags & 8, "degraded: a torch chunk failed (see the server log)"
        assert img.std() > 1.0, "a flat frame"
        await st.close()
        await px.close()

    asyncio.run(go())
    p = _pipelines(s)["torch_cnn"]
    assert p["status"] == "loaded" and p["worker"]["starts"] == 1 and p["worker"]["deaths"] == 0, p


def test_idle_worker_stopped_when_memory_is_short(volume, serve, tmp_path):
    a, src = volume
    man = manifest(tmp_path, ("scipy", EXAMPLES / "scipy_example.py", {"memory_mb": 40}),
                   ("faults", FAULTS, {"memory_mb": 40}))
    s = serve(src, "--pipelines", man, "--cache-mb", "64")
    code, body = _post(s, "/api/v1/pipelines/scipy_log/load")
    assert code == 200, body
    first = _pipelines(s)["scipy_log"]["worker"]
    assert isinstance(first["pid"], int) and first["memory_bytes"] == 40 << 20, first
    # 40 + 40 MiB do not fit in 64: the idle scipy worker is stopped for the faults worker.
    code, body = _post(s, "/api/v1/pipelines/fault_raise/load")
    assert code == 200, body
    p = _pipelines(s)
    assert p["fault_raise"]["worker"]["memory_bytes"] == 40 << 20, p["fault_raise"]
    assert p["scipy_log"]["worker"]["pid"] is None, p["scipy_log"]
    assert p["scipy_log"]["worker"]["memory_bytes"] == 0 and p["scipy_log"]["status"] == "loaded"
    with pytest.raises(ProcessLookupError):
        os.kill(first["pid"], 0)
    code, body = get(f"{s.http}/api/v1/resources")
    holders = {h["name"]: h for h in host_budget(json.loads(body))["holders"]}
    assert holders["worker faults"]["bytes"] == 40 << 20, holders
    assert holders["worker scipy"]["bytes"] == 0, holders


# ---- faults ----

@pytest.fixture(scope="module")
def faults_manifest(tmp_path_factory):
    root = tmp_path_factory.mktemp("faults")
    return manifest(root, ("faults", FAULTS, {
        "timeout_s": 5, "env": {"VOXCAST_TEST_MARKER": str(root / "died-once")}}))


@pytest.mark.parametrize("pipeline, message", [
    ("fault_raise", "ValueError: boom: x=1.0 is too spicy"),
    ("fault_shape", "returned a chunk of shape"),
    ("fault_dtype", 'returned dtype "float64" where "float32" was expected'),
    ("fault_hang", "did not answer within 5000 ms"),
    ("fault_die_always", "died twice computing it"),
    ("fault_schema", "malformed description: schema.properties.x"),
])
def test_fault_is_an_error_naming_worker_and_pipeline(volume, run, faults_manifest, tmp_path,
                                                      pipeline, message):
    a, src = volume
    res = run("convert", src, tmp_path / "o.ome.zarr", "--chunk", "16", "-q", "--pipelines",
              faults_manifest, "--pipeline", pipeline, timeout=120)
    assert res.returncode != 0, res.stderr[-2000:]
    assert message in res.stderr, res.stderr[-3000:]
    if pipeline != "fault_schema":
        assert f"pipeline '{pipeline}' (worker 'faults')" in res.stderr, res.stderr[-3000:]


def test_worker_dying_mid_chunk_is_restarted_and_the_chunk_computed(volume, run_ok,
                                                                    faults_manifest, tmp_path):
    a, src = volume
    marker = Path(json.loads(faults_manifest.read_text())["workers"][0]["env"]["VOXCAST_TEST_MARKER"])
    marker.unlink(missing_ok=True)
    got = converted(run_ok, tmp_path, src, faults_manifest, "fault_die_once")
    assert marker.exists()  # it did die once
    np.testing.assert_array_equal(got, a.astype(np.float32) * 2)


def test_missing_command_and_bad_manifest(volume, run, tmp_path):
    man = tmp_path / "ghost.json"
    man.write_text(json.dumps({"workers": [{"name": "ghost", "command": ["no-such-worker-cmd"]}]}))
    res = run("pipelines", "--pipelines", man)
    assert res.returncode != 0
    assert "worker 'ghost'" in res.stderr and "command 'no-such-worker-cmd' not found on PATH" \
        in res.stderr, res.stderr
    man.write_text(json.dumps({"workers": [{"name": "x", "command": "python3 a.py"}]}))
    res = run("pipelines", "--pipelines", man)
    assert res.returncode != 0 and "workers[0].command" in res.stderr, res.stderr
    man.write_text(json.dumps({"workers": [{"name": "x", "command": ["/usr/bin/python3", "-c",
                                                                      "print('not json')"]}]}))
    res = run("pipelines", "--pipelines", man)
    assert res.returncode != 0 and "printed no JSON object" in res.stderr, res.stderr


def test_faults_in_a_session_leave_the_server_and_other_sessions_up(volume, serve, tmp_path,
                                                                    faults_manifest):
    a, src = volume
    man = manifest(tmp_path, ("scipy", EXAMPLES / "scipy_example.py", {}))
    both = json.loads(man.read_text())["workers"] + json.loads(faults_manifest.read_text())["workers"]
    (tmp_path / "both.json").write_text(json.dumps({"workers": both}))
    s = serve(src, "--pipelines", tmp_path / "both.json")
    p = _pipelines(s)
    assert p["fault_schema"]["status"] == "error", p["fault_schema"]
    assert "schema.properties.x" in p["fault_schema"]["error"]

    async def go():
        bad_st, bad_px, _ = await _session(s)
        good_st, good_px, _ = await _session(s)
        await bad_st.send(json.dumps({"type": "state.update", "seq": 1, "patch": {
            "canvas": {"width": 96, "height": 96},
            "layers": [{"visible": False}, {"source": {"pipeline": "fault_raise", "input": 0}}]}}))
        await _reply(bad_st)
        deadline = time.time() + 120
        warned = None
        while warned is None and time.time() < deadline:
            m = await _reply(bad_st, timeout=max(1, deadline - time.time()))
            if m["type"] == "warning" and "boom" in m.get("message", ""):
                warned = m
        assert warned is not None
        assert "fault_raise" in warned["message"] and "worker 'faults'" in warned["message"], warned
        # The malformed one: an error naming it, and nothing changes.
        await bad_st.send(json.dumps({"type": "state.update", "seq": 2, "patch": {
            "layers": [{}, {"source": {"pipeline": "fault_schema", "params": None}}]}}))
        err = await _reply(bad_st)
        while err["type"] == "warning":
            err = await _reply(bad_st)
        assert err["type"] == "error" and "fault_schema" in err["message"], err
        assert "malformed description: schema.properties.x" in err["message"], err
        # Another session, another worker: untouched.
        await good_st.send(json.dumps({"type": "state.update", "seq": 1, "patch": {
            "canvas": {"width": 96, "height": 96},
            "layers": [{"visible": False}, {"source": {"pipeline": "scipy_log", "input": 0},
                                            "contrast_limits": [0, 200]}]}}))
        ack = await _reply(good_st)
        assert ack["type"] == "ack", ack
        _, flags = await _final_frame(good_px, 1)
        assert not flags & 8, "the good session's frame is degraded"
        for w in (bad_st, bad_px, good_st, good_px):
            await w.close()

    asyncio.run(go())
    assert s.proc.poll() is None


def test_a_stuck_pipeline_added_without_a_window_holds_its_update_at_most_5_s(volume, serve,
                                                                              tmp_path):
    """A processed layer added without contrast_limits gets its window from its coarsest
    level, computed while the update is applied (the session locked). A worker that never
    answers (here: 120 s before the server gives up on it) must not hold the update, and so
    the session, for longer than the window's 5 s wait; the layer keeps the default window
    and the server logs why. The server then stops on SIGTERM with the request still stuck."""
    a, src = volume
    man = manifest(tmp_path, ("faults", FAULTS, {"timeout_s": 120}))
    s = serve(src, "--pipelines", man)

    async def go():
        st, px, _ = await _session(s)
        t0 = time.monotonic()
        await st.send(json.dumps({"type": "state.update", "seq": 1, "patch": {
            "canvas": {"width": 96, "height": 96},
            "layers": [{"visible": False}, {"source": {"pipeline": "fault_hang", "input": 0}}]}}))
        m = await _reply(st, timeout=100)
        while m["type"] == "warning":
            m = await _reply(st, timeout=100)
        waited = time.monotonic() - t0
        assert m["type"] == "ack", m
        # 5 s and the time to apply the rest; far from the worker's 120 s either way.
        assert waited < 60, f"the update waited {waited:.1f} s for a worker that never answers"
        # The session still answers.
        await st.send(json.dumps({"type": "state.update", "seq": 2, "patch": {
            "layers": [{"visible": True}]}}))
        m = await _reply(st, timeout=60)
        while m["type"] == "warning":
            m = await _reply(st, timeout=60)
        assert m["type"] == "ack", m
        for w in (st, px):
            await w.close()

    asyncio.run(go())
    code, err = s.stop()
    assert code == 0, err[-3000:]
    assert "session.derived_contrast" in err and "not ready within" in err, err[-3000:]
