"""The state channel's view tools (docs/protocol.md, "Probe and histogram") and layer
operations, against the real `voxcast serve`: the probe's voxel values against NumPy, hostile
probes (outside, huge, malformed, a flood), the histogram and its percentiles against NumPy,
and layers added, duplicated, reordered and removed through state.update, within limits."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest
import websockets

from test_serve import frame_for, open_session, reply

SHAPE = (6, 40, 56)  # z, y, x: small enough that the default view shows a whole slice


@pytest.fixture(scope="module")
def volume(tmp_path_factory):
    rng = np.random.default_rng(14)
    a = rng.integers(0, 4000, size=SHAPE, dtype=np.uint16)
    a[2, 10, 20] = 65000  # one bright voxel, the probe's target
    p = tmp_path_factory.mktemp("tools") / "vol.npy"
    np.save(p, a)
    return p, a


async def settled(st, px, patch=None, seq=1):
    """Applies `patch` (or nothing), waits for the final frame of it, returns the scene."""
    await st.send(json.dumps({"type": "state.update", "seq": seq, "patch": patch or {}}))
    ack = await reply(st)
    assert ack["type"] == "ack", ack
    await frame_for(px, seq)
    return ack


async def ask(st, msg):
    await st.send(json.dumps(msg))
    return await reply(st)


def world_to_pixel(scene, z, y, x):
    """The canvas pixel (continuous) at the centre of voxel (y, x) of a 2D view."""
    c, zoom = scene["camera"]["center"], scene["camera"]["zoom"]
    w, h = scene["canvas"]["width"], scene["canvas"]["height"]
    return [(x - c[2]) * zoom + w / 2, (y - c[1]) * zoom + h / 2]


def test_probe_answers_the_voxel_value(serve, volume):
    path, a = volume

    async def go():
        s = serve(str(path))
        st, px, welcome = await open_session(s, codecs=("jpeg",))
        scene = welcome["scene"]
        await settled(st, px, {"dims": {"point": [2, 20, 28]}}, seq=1)
        r = await ask(st, {"type": "probe", "id": "w", "world": [2, 10, 20]})
        assert r["type"] == "probe" and r["id"] == "w", r
        (layer,) = r["layers"]
        assert layer["status"] == "ok" and layer["level"] == 0, layer
        assert layer["voxel"] == [2, 10, 20] and layer["value"] == 65000, layer
        # Canvas pixels, through the camera, at several voxels of the slice shown.
        rng = np.random.default_rng(1)
        for k in range(12):
            y, x = int(rng.integers(0, SHAPE[1])), int(rng.integers(0, SHAPE[2]))
            pix = world_to_pixel(scene, 2, y, x)
            r = await ask(st, {"type": "probe", "id": k, "pixel": pix})
            assert r["id"] == k and r["world"] == pytest.approx([2, y, x], abs=1e-6), (r, pix)
            (layer,) = r["layers"]
            assert layer["status"] == "ok" and layer["voxel"] == [2, y, x], layer
            assert layer["value"] == int(a[2, y, x]), (layer, int(a[2, y, x]))
        # Outside the data: not an error, `outside`.
        for bad in ([-1, 10, 10], [2, 10, 56], [6, 0, 0], [2, -0.6, 3], [1e308, -1e308, 0]):
            r = await ask(st, {"type": "probe", "id": "o", "world": bad})
            assert r["type"] == "probe" and r["layers"][0]["status"] == "outside", (bad, r)
            assert r["layers"][0]["value"] is None and r["layers"][0]["voxel"] is None
        for pix in ([-5, -5], [1e308, 1e308], [-1e308, 3]):
            r = await ask(st, {"type": "probe", "id": "p", "pixel": pix})
            assert r["type"] == "probe" and r["layers"][0]["status"] == "outside", (pix, r)
        await st.close()
        await px.close()

    asyncio.run(go())


def test_probe_never_waits_for_data(serve):
    """A voxel whose level-0 chunk was never read: the answer comes at once from a coarser
    level in memory, or says `loading`; never a value read for the probe."""
    async def go():
        s = serve("synthetic:cells?shape=512x4096x4096&chunk=64&latency_ms=200")
        st, px, welcome = await open_session(s, codecs=("jpeg",))
        r = await ask(st, {"type": "probe", "id": 1, "world": [5, 4000, 10]})
        assert r["type"] == "probe", r
        for layer in r["layers"]:
            assert layer["status"] in ("ok", "loading"), layer
            assert layer["voxel"] == [5, 4000, 10], layer
            if layer["status"] == "ok":
                assert layer["level"] > 0, f"level 0 was not read, yet answered: {layer}"
            else:
                assert layer["value"] is None and layer["level"] is None
        await st.close()
        await px.close()

    asyncio.run(go())


def test_hostile_probes_are_errors_naming_the_field(serve, volume):
    path, _ = volume

    async def go():
        s = serve(str(path))
        st, px, _ = await open_session(s, codecs=("jpeg",))
        cases = [
            ({"pixel": [1, 2, 3]}, "pixel"),
            ({"pixel": ["1", 2]}, "pixel"),
            ({"pixel": [1e400, 2]}, None),  # json: 1e400 is inf -> not finite (or bad_json)
            ({"world": [1, 2]}, "world"),
            ({"world": [1, 2, None]}, "world"),
            ({}, "pixel"),
            ({"pixel": [1, 2], "world": [1, 2, 3]}, "pixel"),
            ({"pixel": {"x": 1}}, "pixel"),
        ]
        for i, (fields, field) in enumerate(cases):
            r = await ask(st, dict({"type": "probe", "id": i}, **fields))
            assert r["type"] == "error", (fields, r)
            assert r["code"] in ("bad_message", "bad_json"), r
            if field:
                assert r["code"] == "bad_message" and r["id"] == i, r
                assert f"'{field}'" in r["message"], r
        # NaN is not JSON: the message is not parsed.
        await st.send('{"type": "probe", "id": 9, "pixel": [NaN, 1]}')
        r = await reply(st)
        assert r["type"] == "error" and r["code"] == "bad_json", r
        # The session is unharmed.
        r = await ask(st, {"type": "probe", "id": "ok", "world": [0, 0, 0]})
        assert r["type"] == "probe" and r["id"] == "ok", r
        await st.close()
        await px.close()

    asyncio.run(go())


def test_a_flood_of_probes_gets_one_answer_each(serve, volume):
    """Probes count against max_messages_per_s like any message: each gets exactly one
    reply (the probe, or rate_limited with its id), in order, and the session goes on."""
    path, _ = volume

    async def go():
        s = serve(str(path))
        st, px, _ = await open_session(s, codecs=("jpeg",))
        # Batches of 400 until the limit answers (240 a second: a loaded machine may
        # deliver one batch over more than a second, which is no flood).
        limited = False
        sent = 0
        for batch in range(10):
            ids = list(range(sent, sent + 400))
            sent += 400
            for i in ids:
                await st.send(json.dumps({"type": "probe", "id": i, "pixel": [i % 300, 100]}))
            got = [await reply(st) for _ in ids]
            assert [m.get("id") for m in got] == ids, [m.get("id") for m in got][:20]
            kinds = {(m["type"], m.get("code")) for m in got}
            assert kinds <= {("probe", None), ("error", "rate_limited")}, kinds
            assert batch > 0 or got[0]["type"] == "probe", got[0]  # the first is answered
            if ("error", "rate_limited") in kinds:
                limited = True
                break
        assert limited, "400 probes at once were never rate-limited"
        # Once the window has passed, the session answers as before (a rate-limited update
        # is not applied, so its seq may be sent again).
        for k in range(100000):
            r = await ask(st, {"type": "state.update", "seq": 1, "patch": {"camera": {"zoom": 3}}})
            if r.get("code") != "rate_limited":
                break
            await asyncio.sleep(0.05)
        assert r["type"] == "ack" and r["changes"]["camera"]["zoom"] == 3, r
        await st.close()
        await px.close()

    asyncio.run(go())


def test_histogram_of_the_view_and_its_percentiles(serve, volume):
    path, a = volume

    async def go():
        s = serve(str(path))
        st, px, _ = await open_session(s, codecs=("jpeg",))
        await settled(st, px, {"dims": {"point": [3, 20, 28]}}, seq=1)
        r = await ask(st, {"type": "histogram", "id": "h", "bins": 16})
        assert r["type"] == "histogram" and r["id"] == "h", r
        (h,) = r["layers"]
        sl = a[3].astype(np.float64).ravel()  # the whole slice is on screen
        assert h["status"] == "ok" and h["level"] == 0, h
        assert h["samples"] == sl.size and sum(h["counts"]) == sl.size, h
        assert h["range"] == [sl.min(), sl.max()]
        want, _ = np.histogram(sl, bins=16, range=(sl.min(), sl.max()))
        assert np.abs(np.array(h["counts"]) - want).sum() <= 2, (h["counts"], want.tolist())
        srt = np.sort(sl)
        rank = lambda q: srt[int(q / 100 * (sl.size - 1))]  # noqa: E731
        assert h["percentiles"] == [rank(0.5), rank(99.5)], h["percentiles"]
        r = await ask(st, {"type": "histogram", "id": 2, "layers": [0], "percentiles": [10, 90]})
        assert r["layers"][0]["percentiles"] == [rank(10), rank(90)], r
        # A layer listed many times is answered once.
        r = await ask(st, {"type": "histogram", "id": 4, "layers": [0] * 1000})
        assert len(r["layers"]) == 1 and r["layers"][0]["samples"] == sl.size, len(r["layers"])
        # Zoomed into a corner: only what is on screen counts.
        sc = await settled(st, px, {"camera": {"zoom": 40, "center": [3, 5, 5]},
                                    "canvas": {"width": 320, "height": 320}}, seq=2)
        r = await ask(st, {"type": "histogram", "id": 3})
        h = r["layers"][0]
        assert h["status"] == "ok" and 0 < h["samples"] < sl.size / 4, h
        vis = a[3, 1:10, 1:10].astype(np.float64)
        assert vis.min() <= h["range"][0] and h["range"][1] <= vis.max() + 0, (h["range"], sc)
        # Bad requests name the field; the slice past the data is `empty`.
        for req, field in (({"bins": 0}, "bins"), ({"bins": 5000}, "bins"),
                           ({"percentiles": [90, 10]}, "percentiles"),
                           ({"percentiles": [1, 2, 3]}, "percentiles"),
                           ({"layers": [7]}, "layers"), ({"layers": "all"}, "layers")):
            r = await ask(st, dict({"type": "histogram", "id": field}, **req))
            assert r["type"] == "error" and r["code"] == "bad_message", (req, r)
            assert r["id"] == field and f"'{field}'" in r["message"], r
        # A list over the cap says the cap.
        r = await ask(st, {"type": "histogram", "id": 9, "layers": [0] * 1025})
        assert r["type"] == "error" and "1025 entries, over the 1024" in r["message"], r
        await st.close()
        await px.close()

    asyncio.run(go())


def layer_of(scene, i):
    return dict(scene["layers"][i])


def test_layers_added_duplicated_reordered_removed_within_limits(serve):
    async def go():
        s = serve("synthetic:cells?shape=16x64x64&chunk=32&channels=2", "--max-layers", "3")
        st, px, welcome = await open_session(s, codecs=("jpeg",))
        l0, l1 = layer_of(welcome["scene"], 0), layer_of(welcome["scene"], 1)
        dup = dict(l0, name="copy", colormap="magma", rendering="iso")
        seq = 0

        async def update(layers):
            nonlocal seq
            seq += 1
            return await ask(st, {"type": "state.update", "seq": seq, "patch": {"layers": layers}})

        # Duplicate layer 0 after itself: the whole new list, element by element.
        r = await update([l0, dup, l1])
        assert r["type"] == "ack", r
        got = r["changes"]["layers"]
        assert [x["name"] for x in got] == [l0["name"], "copy", l1["name"]], got
        assert got[1]["channel"] == 0 and got[1]["colormap"] == "magma" and got[1]["rendering"] == "iso"
        # Reorder: the copy first.
        r = await update([got[1], got[0], got[2]])
        assert [x["name"] for x in r["changes"]["layers"]] == ["copy", l0["name"], l1["name"]], r
        # Remove the middle one: the rest whole, null past the end.
        cur = r["changes"]["layers"]
        r = await update([cur[0], cur[2], None])
        assert [x["name"] for x in r["changes"]["layers"]] == ["copy", l1["name"]], r
        cur = r["changes"]["layers"]
        # Validation names the field; nothing changes.
        r = await update([cur[0], cur[1], dict(l0, channel=5)])
        assert r["type"] == "error" and r["code"] == "bad_patch", r
        assert "layers[2].channel" in r["message"], r
        r = await update([cur[0], cur[1], dict(l0, colormap="nope")])
        assert r["code"] == "bad_patch" and "layers[2].colormap" in r["message"], r
        # More visible layers than --max-layers: refused, naming the option.
        r = await update([cur[0], cur[1], l0, l1])
        assert r["type"] == "error" and r["code"] == "unsupported", r
        assert "--max-layers" in r["message"], r
        # Hidden layers are allowed up to 4 x --max-layers in all.
        hidden = dict(l0, visible=False)
        r = await update([cur[0], cur[1]] + [hidden] * 10)
        assert r["type"] == "ack" and len(r["changes"]["layers"]) == 12, r
        r = await update([cur[0], cur[1]] + [hidden] * 11)
        assert r["type"] == "error" and r["code"] == "unsupported" and "layers" in r["message"], r
        # The session still renders the last good scene.
        h, _ = await frame_for(px, seq - 1)
        assert h["state_seq"] == seq - 1
        await st.close()
        await px.close()

    asyncio.run(go())


def test_probe_and_histogram_in_3d_and_at_extreme_zoom(serve, volume):
    path, a = volume

    async def go():
        s = serve(str(path))
        st, px, welcome = await open_session(s, codecs=("jpeg",))
        # One voxel fills the screen: the histogram holds it (and only it).
        await settled(st, px, {"dims": {"point": [1, 20, 28]},
                               "camera": {"zoom": 5000, "center": [1, 7.2, 9.1]}}, seq=1)
        h = (await ask(st, {"type": "histogram", "id": 0}))["layers"][0]
        assert h["status"] == "ok" and h["samples"] == 1 and h["range"] == [a[1, 7, 9]] * 2, h
        # 3D, looking down z: the centre pixel is the camera's centre; the histogram is the
        # whole volume at the level drawn (one level here).
        sc = await settled(st, px, {"dims": {"ndisplay": 3},
                                    "camera": {"zoom": 4, "center": [2.5, 20, 28], "angles": [0, 0, 90]},
                                    "canvas": {"width": 320, "height": 240}}, seq=2)
        r = await ask(st, {"type": "probe", "id": 1, "pixel": [160, 120]})
        assert r["world"] == pytest.approx([2.5, 20, 28]), r
        (layer,) = r["layers"]
        assert layer["status"] == "ok" and layer["voxel"][1:] == [20, 28], layer
        assert layer["value"] == int(a[tuple(layer["voxel"])]), layer
        # Perspective: the centre pixel's ray still crosses the centre plane at the centre.
        await settled(st, px, {"camera": {"perspective": 40, "angles": [0, 30, 60]}}, seq=3)
        r = await ask(st, {"type": "probe", "id": 2, "pixel": [160, 120]})
        assert r["world"] == pytest.approx([2.5, 20, 28], abs=1e-6), r
        h = (await ask(st, {"type": "histogram", "id": 3}))["layers"][0]
        assert h["status"] == "ok" and h["samples"] == a.size, (h["samples"], a.size, sc)
        assert h["range"] == [a.min(), a.max()]
        await st.close()
        await px.close()

    asyncio.run(go())


def test_probe_and_histogram_per_channel(serve, tmp_path):
    """Two channels, two layers: each layer's probe and histogram read its own channel."""
    rng = np.random.default_rng(3)
    a = rng.integers(0, 1000, size=(2, 4, 20, 24), dtype=np.uint16)
    a[1] += 5000  # channel 1 is brighter everywhere
    path = tmp_path / "two.npy"
    np.save(path, a)

    async def go():
        s = serve(str(path))
        st, px, welcome = await open_session(s, codecs=("jpeg",))
        assert [l["channel"] for l in welcome["scene"]["layers"]] == [0, 1]
        await settled(st, px, {"dims": {"point": [1, 10, 12]}}, seq=1)
        r = await ask(st, {"type": "probe", "id": 0, "world": [1, 7, 9]})
        assert [l["value"] for l in r["layers"]] == [int(a[0, 1, 7, 9]), int(a[1, 1, 7, 9])], r
        r = await ask(st, {"type": "histogram", "id": 1, "percentiles": [0, 100]})
        for c, h in enumerate(r["layers"]):
            sl = a[c, 1]
            assert h["layer"] == c and h["status"] == "ok" and h["samples"] == sl.size, h
            assert h["range"] == [sl.min(), sl.max()] == h["percentiles"], (c, h["range"])
        # Duplicating a layer gives the same answers for the copy.
        l1 = welcome["scene"]["layers"][1]
        ack = await ask(st, {"type": "state.update", "seq": 2,
                             "patch": {"layers": [{}, {}, dict(l1, colormap="magma")]}})
        assert ack["type"] == "ack", ack
        r = await ask(st, {"type": "probe", "id": 2, "world": [1, 7, 9]})
        assert [l["value"] for l in r["layers"]] == [int(a[0, 1, 7, 9])] + [int(a[1, 1, 7, 9])] * 2
        await st.close()
        await px.close()

    asyncio.run(go())


def test_float_data_nan_voxels(serve, tmp_path):
    a = np.linspace(-1, 1, 3 * 10 * 12, dtype=np.float32).reshape(3, 10, 12)
    a[1, 4, 5] = np.nan
    path = tmp_path / "float.npy"
    np.save(path, a)

    async def go():
        s = serve(str(path))
        st, px, _ = await open_session(s, codecs=("jpeg",))
        await settled(st, px, {"dims": {"point": [1, 5, 6]}}, seq=1)
        r = await ask(st, {"type": "probe", "id": 0, "world": [1, 4, 5]})
        assert r["layers"][0]["status"] == "ok" and r["layers"][0]["value"] is None, r
        r = await ask(st, {"type": "probe", "id": 1, "world": [1, 4, 6]})
        assert r["layers"][0]["value"] == pytest.approx(float(a[1, 4, 6]), abs=0), r
        h = (await ask(st, {"type": "histogram", "id": 2}))["layers"][0]
        sl = a[1][~np.isnan(a[1])]
        assert h["samples"] == sl.size == a[1].size - 1, h
        assert h["range"] == pytest.approx([float(sl.min()), float(sl.max())], abs=0), h
        await st.close()
        await px.close()

    asyncio.run(go())
