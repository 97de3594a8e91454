"""Several datasets on one server (issue 14): names in /api/v1/datasets and in the welcome,
the dataset a session is on, a bad dataset refused naming the field; each job records its
dataset; the default data directory is one per set of datasets, printed at start, and
--data-dir overrides it."""

from __future__ import annotations

import asyncio
import json
import re
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import websockets

SYN = "synthetic:cells?shape=32x64x64&chunk=32"


def call(s, method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"{s.http}{path}", data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def npy(folder: Path, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / name
    np.save(p, np.arange(8 * 16 * 16, dtype=np.uint16).reshape(8, 16, 16))
    return p


async def hello(s, dataset):
    async with websockets.connect(f"{s.ws}/ws/state") as ws:
        await ws.send(json.dumps({"type": "hello", "dataset": dataset, "codecs": ["jpeg"]}))
        return json.loads(await asyncio.wait_for(ws.recv(), 30))


def test_names_welcome_and_bad_index(serve, tmp_path):
    a = npy(tmp_path / "x", "img.npy")
    b = npy(tmp_path / "y", "img.npy")
    s = serve(SYN, a, b, "--data-dir", tmp_path / "d")
    # Each dataset's own link is printed at start, after the folder of job results.
    assert f"job results in {tmp_path / 'd'}\n" in s.printed
    for i, name in enumerate(["synthetic:cells", "x/img.npy", "y/img.npy"]):
        assert f"[{i}] {name}  {s.http}/?dataset={i}\n" in s.printed, s.printed
    status, body = call(s, "GET", "/api/v1/datasets")
    assert status == 200
    assert [d["name"] for d in body["datasets"]] == ["synthetic:cells", "x/img.npy", "y/img.npy"]
    w = asyncio.run(hello(s, 2))
    assert w["type"] == "welcome" and w["dataset"] == 2, w
    assert [d["name"] for d in w["datasets"]] == ["synthetic:cells", "x/img.npy", "y/img.npy"]
    for bad in (3, -1, "1"):
        e = asyncio.run(hello(s, bad))
        assert e["type"] == "error" and "field 'dataset'" in e["message"], e


def wait_done(s, jid, timeout=120):
    end = time.time() + timeout
    while time.time() < end:
        status, body = call(s, "GET", f"/api/v1/jobs/{jid}")
        assert status == 200
        if body["job"]["state"] in ("succeeded", "failed", "canceled"):
            return body["job"]
        time.sleep(0.1)
    raise AssertionError(f"job {jid} did not finish")


def test_jobs_record_their_dataset_across_restarts(serve, tmp_path):
    a = npy(tmp_path, "second.npy")
    args = (SYN, a, "--data-dir", tmp_path / "d")
    s = serve(*args)
    small = {"columns": 2, "rows": 1, "size": 16}
    status, body = call(s, "PUT", "/api/v1/jobs/of-second", {"kind": "orbit", "params": {**small, "dataset": 1}})
    assert status == 202, body
    assert body["job"]["dataset"] == {"id": 1, "name": "second.npy", "location": str(a)}
    status, body = call(s, "PUT", "/api/v1/jobs/of-first", {"kind": "orbit", "params": small})
    assert body["job"]["dataset"]["name"] == "synthetic:cells"
    assert wait_done(s, "of-second")["state"] == "succeeded"
    wait_done(s, "of-first")
    for bad in (2, -1, "../../etc/passwd", 1.5):
        status, body = call(s, "POST", "/api/v1/jobs", {"kind": "orbit", "params": {**small, "dataset": bad}})
        assert status == 400 and "params.dataset" in body["error"]["message"], body
    code, _ = s.stop()
    assert code == 0
    s2 = serve(*args)
    status, body = call(s2, "GET", "/api/v1/jobs")
    by_id = {j["id"]: j for j in body["jobs"]}
    assert by_id["of-second"]["dataset"]["name"] == "second.npy"
    assert by_id["of-first"]["dataset"]["name"] == "synthetic:cells"


def data_dir_of(s) -> Path:
    m = re.search(r"job results in (\S+)", s.printed)
    assert m, s.printed
    return Path(m.group(1))


def test_default_data_dir_per_datasets(serve, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    a = npy(tmp_path, "a.npy")
    b = npy(tmp_path, "b.npy")
    s1 = serve(a)
    d1 = data_dir_of(s1)
    assert "--data-dir" in s1.printed
    assert d1.parent == tmp_path / "state" / "voxcast" and d1.name.startswith("a.npy-"), d1
    assert (d1 / "jobs").is_dir()
    s2 = serve(b)
    d2 = data_dir_of(s2)
    assert d2 != d1 and d2.name.startswith("b.npy-")
    # The same dataset again (from another working directory, by another spelling): the
    # same folder, so its jobs survive a restart.
    s3 = serve(tmp_path / "." / "a.npy")
    assert data_dir_of(s3) == d1
    s4 = serve(a, "--data-dir", tmp_path / "mine")
    assert data_dir_of(s4) == tmp_path / "mine"
    assert (tmp_path / "mine" / "jobs").is_dir()
