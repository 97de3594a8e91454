"""`voxcast serve --wire`: raw sub-volumes and raw RGBA frames over UCX, checked against
data written by python3-zarr and against `voxcast render`."""

import asyncio
import json
import os
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pytest

import fixtures
from vxhelpers import import_wire

ROOT = Path(__file__).resolve().parents[2]
wire = import_wire()  # the module of the tree under test, or fail

import voxcast  # noqa: E402
from voxcast.fastpath import WireRequestError  # noqa: E402

pytestmark = pytest.mark.asyncio


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("wire-serve")
    return fixtures.build_zarr2(root, shape=(37, 90, 70), dtype="uint16", chunks=(16, 32, 32),
                                compressor=None, nlevels=2, seed=5)


@pytest.fixture
def served(serve, dataset):
    server = serve(dataset.path, "--wire", "0")
    assert server.wire_port, "serve printed no wire port"
    return server


@pytest.mark.parametrize("tls", ["tcp", "shm"])
async def test_read_region_matches_python3_zarr(served, dataset, tls):
    truth0, truth1 = dataset.levels
    async with voxcast.wire_client("127.0.0.1", served.wire_port, tls=tls) as w:
        info = await w.info()
        assert info[0]["dtype"] == "uint16"
        # Boxes across chunk borders, a whole level, and a single voxel.
        for start, shape in [((3, 17, 5), (20, 40, 50)), ((0, 0, 0), truth0.shape),
                             ((36, 89, 69), (1, 1, 1))]:
            got = await w.read_region(0, start, shape)
            want = truth0[tuple(slice(s, s + n) for s, n in zip(start, shape))]
            assert got.dtype == np.uint16 and got.shape == tuple(shape)
            np.testing.assert_array_equal(got, want)
        got1 = await w.read_region(1, (0, 0, 0), truth1.shape)
        np.testing.assert_array_equal(got1, truth1)
        # Requests run concurrently on one connection.
        boxes = [((z, 0, 0), (1, 90, 70)) for z in range(0, 37, 4)]
        results = await asyncio.gather(*(w.read_region(0, s, n) for s, n in boxes))
        for (s, n), got in zip(boxes, results):
            np.testing.assert_array_equal(got, truth0[s[0]:s[0] + 1])


async def test_bad_requests_get_errors_and_the_connection_stays(served, dataset):
    async with voxcast.wire_client("127.0.0.1", served.wire_port) as w:
        with pytest.raises(WireRequestError, match="level 7 does not exist"):
            await w.read_region(7, (0, 0, 0), (1, 1, 1))
        with pytest.raises(WireRequestError, match="outside level 0"):
            await w.read_region(0, (30, 0, 0), (10, 5, 5))
        with pytest.raises(WireRequestError, match="outside level 0"):
            await w.read_region(0, (-1, 0, 0), (1, 1, 1))
        with pytest.raises(WireRequestError, match="'start'"):
            await w.read_region(0, (0, 0), (1, 1))
        with pytest.raises(WireRequestError, match="'dataset'"):
            await w.read_region(0, (0, 0, 0), (1, 1, 1), dataset=3)
        with pytest.raises(WireRequestError, match="'op'"):
            await w._request({"op": "delete-everything"})
        # Not JSON at all, sent with the raw API.
        c = w._client
        seq = 999
        reply = bytearray(4096)
        recv = asyncio.ensure_future(c.arecv(reply, (c.id << 32) | (2 << 24) | seq, wire.FULL_MASK))
        await c.asend(b"\xff{not json", (c.id << 32) | (1 << 24) | seq)
        _, n = await asyncio.wait_for(recv, 30)
        assert json.loads(reply[:n])["error"]["message"] == "request is not a JSON object"
        # A wrong-typed op, and a request larger than the 64 KiB limit.
        with pytest.raises(WireRequestError, match="op"):
            await w._request({"op": 5})
        reply = bytearray(4096)
        recv = asyncio.ensure_future(
            c.arecv(reply, (c.id << 32) | (2 << 24) | (seq + 1), wire.FULL_MASK))
        await c.asend(bytes(100_000), (c.id << 32) | (1 << 24) | (seq + 1))
        _, n = await asyncio.wait_for(recv, 30)
        assert "is larger than 65536 bytes" in json.loads(reply[:n])["error"]["message"]
        # Still served.
        got = await w.read_region(0, (0, 0, 0), (2, 3, 4))
        np.testing.assert_array_equal(got, dataset.levels[0][:2, :3, :4])


async def test_frame_equals_voxcast_render(served, dataset, run_ok, tmp_path):
    from PIL import Image
    view = {"canvas": {"width": 160, "height": 120}, "dims": {"point": [18, 45, 35]},
            "layers": [{"colormap": "magma", "contrast_limits": [0, 40000]}]}
    (tmp_path / "view.json").write_text(json.dumps(view))
    run_ok("render", dataset.path, "--view", tmp_path / "view.json", "-o", tmp_path / "ref.png")
    ref = np.asarray(Image.open(tmp_path / "ref.png").convert("RGBA"))
    async with voxcast.wire_client("127.0.0.1", served.wire_port) as w:
        rgba = await w.frame(view)
        assert rgba.shape == (120, 160, 4) and rgba.dtype == np.uint8
        assert np.abs(rgba.astype(int) - ref.astype(int)).max() <= 1
        assert rgba[..., :3].std() > 5  # not a blank frame
        with pytest.raises(WireRequestError, match="canvas"):
            await w.frame({"canvas": {"width": 0, "height": 10}})
        with pytest.raises(WireRequestError, match="rendering"):
            await w.frame({"layers": [{"rendering": "sparkles"}]})


async def test_wire_client_reports_a_closed_port():
    with pytest.raises(wire.RefusedError):
        await voxcast.wire_client("127.0.0.1", 1).read_region(0, (0, 0, 0), (1, 1, 1))


async def test_unreceived_replies_are_bounded(serve, dataset):
    # A client that asks without receiving: the server holds at most the budget (1 MiB
    # here; a full level 0 is 466,200 bytes) and refuses beyond it, without dropping
    # the connection; receiving frees it.
    server = serve(dataset.path, "--wire", "0", "--wire-max-inflight-mb", "1")
    truth = dataset.levels[0]
    async with voxcast.wire_client("127.0.0.1", server.wire_port, tls="tcp") as w:
        c = w._client
        req = json.dumps({"op": "read", "level": 0, "start": [0, 0, 0],
                          "shape": list(truth.shape)}).encode()
        headers = []
        for seq in (101, 102, 103):
            buf = bytearray(4096)
            r = asyncio.ensure_future(
                c.arecv(buf, (c.id << 32) | (2 << 24) | seq, wire.FULL_MASK))
            await c.asend(req, (c.id << 32) | (1 << 24) | seq)
            _, n = await asyncio.wait_for(r, 30)
            headers.append(json.loads(buf[:n]))
        assert headers[0]["ok"] and headers[1]["ok"]
        assert not headers[2]["ok"], headers[2]
        assert headers[2]["error"]["code"] == "busy"
        assert "1048576 byte limit" in headers[2]["error"]["message"]
        for seq in (101, 102):
            out = np.empty(truth.shape, np.uint16)
            await asyncio.wait_for(c.arecv(out, (c.id << 32) | (3 << 24) | seq, wire.FULL_MASK), 30)
            np.testing.assert_array_equal(out, truth)
        got = await w.read_region(0, (0, 0, 0), truth.shape)
        np.testing.assert_array_equal(got, truth)



def _wire_health(server) -> dict:
    with urllib.request.urlopen(f"{server.http}/api/v1/health", timeout=10) as r:
        return json.loads(r.read())["wire"]


@pytest.mark.parametrize("tls", ["tcp", "shm"])
async def test_messages_of_other_kinds_are_read_and_dropped(serve, dataset, tls):
    # A client sends what only servers send (reply headers, payloads) and kinds that do not
    # exist, with no token and no request: the server must read every one and drop it. Left
    # unread, each would wait in UCX's unexpected queue for good (820 MB held for 200,000 of
    # 1 KiB, docs/benchmarks.md) and every request after them would walk the queue.
    server = serve(dataset.path, "--wire", "0")
    assert _wire_health(server) == {"port": server.wire_port, "requests": 0, "discarded": 0,
                                    "discarded_bytes": 0}
    kinds = [0, 2, 3, 0x7F, 0xFF]
    per_kind, size = 2_000, 512
    async with voxcast.wire_client("127.0.0.1", server.wire_port, tls=tls) as w:
        c = w._client
        junk = bytes(range(256)) * (size // 256)
        ops = []
        for i in range(per_kind):
            for k in kinds:
                ops.append(c.post_send(junk, (c.id << 32) | (k << 24) | (i & 0xFFFFFF)))
            if len(ops) >= 256:
                await asyncio.gather(*ops)
                ops = []
        await asyncio.gather(*ops)
        # A kind that claims another client's id, larger than the server's receive buffer.
        await c.asend(bytes(2 << 20), ((c.id + 1) << 32) | (3 << 24) | 1)
        sent = per_kind * len(kinds) + 1
        deadline = asyncio.get_running_loop().time() + 60
        while (h := _wire_health(server))["discarded"] < sent:
            assert asyncio.get_running_loop().time() < deadline, f"not all read: {h}, sent {sent}"
            await asyncio.sleep(0.2)
        assert h["discarded"] == sent and h["requests"] == 0, h
        assert h["discarded_bytes"] >= per_kind * len(kinds) * size, h
        # Requests are served as before, on the same connection.
        got = await w.read_region(0, (0, 0, 0), (2, 3, 4))
        np.testing.assert_array_equal(got, dataset.levels[0][:2, :3, :4])
    h = _wire_health(server)
    assert h["requests"] >= 1 and h["discarded"] == sent, h
    code, err = server.stop()
    assert code == 0
    assert "event=wire.discarded" in err and "kind=" in err, err[-2000:]


async def test_requests_nested_too_deeply_get_an_error(serve, dataset):
    # 30,000 levels overflowed a worker's stack (nlohmann copies recursively): refused.
    s = serve(dataset.path, "--wire", "0")
    async with voxcast.wire_client("127.0.0.1", s.wire_port) as w:
        c = w._client
        buf = bytearray(4096)
        r = asyncio.ensure_future(c.arecv(buf, (c.id << 32) | (2 << 24) | 5, wire.FULL_MASK))
        deep = "[" * 30_000 + "]" * 30_000
        await c.asend(('{"op": "info", "x": %s}' % deep).encode(),
                      (c.id << 32) | (1 << 24) | 5)
        _, n = await asyncio.wait_for(r, 30)
        h = json.loads(buf[:n])
        assert not h["ok"] and "not a JSON object" in h["error"]["message"], h
        assert (await w.info())[0]["dtype"]  # served as before
    assert _wire_health(s)["requests"] >= 2


async def _raw_request(c, seq, message: dict):
    """Sends `message` with the raw API on client `c`; returns the reply header."""
    buf = bytearray(1 << 16)
    r = asyncio.ensure_future(c.arecv(buf, (c.id << 32) | (2 << 24) | seq, wire.FULL_MASK))
    await c.asend(json.dumps(message).encode(), (c.id << 32) | (1 << 24) | seq)
    _, n = await asyncio.wait_for(r, 30)
    return json.loads(buf[:n])


async def test_token_is_required_on_the_first_request(serve, dataset):
    # A server with a token (required beyond loopback, given here on loopback) asks the wire
    # path for it too: the first request of each connection carries it, or the connection
    # gets `unauthorized` replies and nothing else.
    token = "wire-" + os.urandom(6).hex()
    server = serve(dataset.path, "--wire", "0", "--token", token)
    truth = dataset.levels[0]
    read = {"op": "read", "level": 0, "start": [0, 0, 0], "shape": [2, 3, 4]}
    for given in (None, "wrong", token[:-1], token + "x"):
        async with voxcast.wire_client("127.0.0.1", server.wire_port, token=given) as w:
            for call in (w.info(), w.read_region(0, (0, 0, 0), (1, 1, 1)), w.frame()):
                with pytest.raises(WireRequestError) as e:
                    await call
                assert e.value.code == "unauthorized", (given, e.value)
            # The first request decided: the right token later does not open it.
            c = w._client
            h = await _raw_request(c, 500, {**read, "token": token})
            assert not h["ok"] and h["error"]["code"] == "unauthorized", h
            # Nothing but the header: no payload follows a refused read.
            out = np.empty(truth[:2, :3, :4].shape, np.uint16)
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(
                    c.arecv(out, (c.id << 32) | (3 << 24) | 500, wire.FULL_MASK), 1.0)
    # Refused before its size is even looked at: an oversized first request.
    async with voxcast.wire_client("127.0.0.1", server.wire_port) as w:
        c = w._client
        buf = bytearray(4096)
        r = asyncio.ensure_future(c.arecv(buf, (c.id << 32) | (2 << 24) | 7, wire.FULL_MASK))
        await c.asend(bytes(100_000), (c.id << 32) | (1 << 24) | 7)
        _, n = await asyncio.wait_for(r, 30)
        assert json.loads(buf[:n])["error"]["code"] == "unauthorized"
    # The right token: served, and later requests of the connection need not repeat it.
    async with voxcast.wire_client("127.0.0.1", server.wire_port, token=token) as w:
        got = await w.read_region(0, (0, 0, 0), (2, 3, 4))
        np.testing.assert_array_equal(got, truth[:2, :3, :4])
        h = await _raw_request(w._client, 600, {"op": "info"})
        assert h["ok"] and h["datasets"][0]["dtype"] == "uint16", h
        rgba = await w.frame({"canvas": {"width": 32, "height": 24}})
        assert rgba.shape == (24, 32, 4)
    code, err = server.stop()
    assert code == 0 and token not in err


async def test_no_token_on_loopback_needs_none(served, dataset):
    async with voxcast.wire_client("127.0.0.1", served.wire_port, token="anything") as w:
        got = await w.read_region(0, (0, 0, 0), (1, 2, 2))
        np.testing.assert_array_equal(got, dataset.levels[0][:1, :2, :2])


async def test_generated_token_beyond_loopback_guards_the_wire_path_too(serve, dataset):
    # Bound beyond loopback with no --token: the token generated for HTTP is the wire's too.
    server = serve(dataset.path, "--host", "0.0.0.0", "--wire", "0")
    assert server.token, "a token is generated beyond loopback"
    async with voxcast.wire_client("127.0.0.1", server.wire_port) as w:
        with pytest.raises(WireRequestError) as e:
            await w.info()
        assert e.value.code == "unauthorized"
    async with voxcast.wire_client("127.0.0.1", server.wire_port, token=server.token) as w:
        assert (await w.info())[0]["dtype"] == "uint16"
    code, err = server.stop()
    assert code == 0 and server.token not in err
