"""JSON nested too deeply, wherever voxcast parses JSON from outside: the state channel, the
HTTP bodies and dataset metadata (the wire fast path: test_wire_serve.py). nlohmann::json copies and destroys
values recursively, so 20,000 levels (40 KB of '[') overflowed a thread's stack and ended the
server; such text is now refused like text that is not JSON (core/json_text.hpp: 64 levels)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

import fixtures
from test_serve import open_session, reply

DATA = "synthetic:cells?shape=32x64x64&chunk=32"
DEEP = 30_000


def nested(n: int) -> str:
    return "[" * n + "]" * n


def post(s, path: str, data: bytes):
    req = urllib.request.Request(f"{s.http}{path}", data=data, method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def health(s) -> dict:
    with urllib.request.urlopen(f"{s.http}/api/v1/health", timeout=10) as r:
        return json.loads(r.read())


def test_http_bodies_nested_too_deeply_are_bad_json(serve, tmp_path):
    s = serve(DATA, "--data-dir", tmp_path / "d")
    for path, body in [
        ("/api/v1/jobs", '{"kind": "orbit", "params": {"view": %s}}' % nested(DEEP)),
        ("/api/v1/screenshot", '{"scene": {"x": %s}}' % nested(DEEP)),
        ("/api/v1/region", '{"level": 0, "start": %s}' % nested(DEEP)),
        ("/api/v1/jobs", '{"kind": "orbit", "params": {"view": %s}}' % nested(65)),
    ]:
        status, raw = post(s, path, body.encode())
        assert status == 400, (path, status, raw[:300])
        err = json.loads(raw)["error"]
        assert err["code"] == "bad_json" and "64 levels" in err["message"], (path, err)
    # 64 levels are JSON like any other: the job is refused for its field, not for the text.
    status, raw = post(s, "/api/v1/jobs",
                       ('{"kind": "orbit", "params": {"view": %s}}' % nested(62)).encode())
    assert status == 400 and json.loads(raw)["error"]["code"] != "bad_json", raw[:300]
    assert health(s)["status"] == "ok"


@pytest.mark.asyncio
async def test_state_messages_nested_too_deeply_are_bad_json(serve):
    s = serve(DATA)
    st, px, _ = await open_session(s, codecs=("jpeg",))
    for text in ('{"type": "ping", "t": %s}' % nested(20_000),
                 '{"type": "state.update", "seq": 1, "patch": {"camera": %s}}' % nested(DEEP)):
        await st.send(text)
        r = await reply(st)
        assert r["type"] == "error" and r["code"] == "bad_json", r
        assert "64 levels" in r["message"], r
    # The session goes on.
    await st.send(json.dumps({"type": "state.update", "seq": 2, "patch": {"camera": {"zoom": 2}}}))
    r = await reply(st)
    assert r["type"] == "ack" and r["seq"] == 2, r
    await st.close()
    await px.close()
    assert health(s)["status"] == "ok"


def test_metadata_nested_too_deeply_names_the_file(run, tmp_path):
    ds = fixtures.build_zarr2(tmp_path, shape=(4, 8, 8), dtype="uint8", chunks=(4, 8, 8),
                              compressor=None, nlevels=1, seed=1)
    attrs = next(p for p in (tmp_path.rglob(".zattrs")))
    attrs.write_text('{"multiscales": %s}' % nested(100_000))
    res = run("info", ds.path)
    assert res.returncode != 0
    assert ".zattrs" in res.stderr and "nested deeper than 64 levels" in res.stderr, res.stderr
