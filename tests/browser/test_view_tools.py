"""The viewer's everyday tools in headless Chromium against the real `voxcast serve`: the
busy indicator, the probe under the mouse, the layer histograms and auto-contrast, layer
duplicate/reorder/remove, the scale bar and 3D overlays, and play on a non-displayed axis.

    /usr/bin/python3 -m pytest tests/browser/test_view_tools.py -q -rs

Waits are for events (a frame reflecting a state, a reply), never for a duration."""

from __future__ import annotations

import json

import numpy as np
import pytest

import conftest
from conftest import Server
from test_browser import (FIRST_FRAME_S, TOLERANCE, assert_canvas_matches_render, canvas_rgb,
                          final_frame, open_client, psnr, render_reference, vx, wait)


def start_with(voxcast_bin, data, extra=()):
    """A server of `data` (conftest.Server serves conftest.DATA)."""
    old = conftest.DATA
    conftest.DATA = data
    try:
        return Server(voxcast_bin, extra=extra)
    finally:
        conftest.DATA = old


@pytest.fixture
def serve_data(voxcast_bin):
    started = []

    def start(data, extra=()):
        s = start_with(voxcast_bin, data, extra)
        started.append(s)
        return s

    yield start
    for s in started:
        s.check_clean_exit()


def send(d, patch):
    return d.execute_script("return window.voxcast.send(arguments[0]);", patch)


def busy_snapshot(d):
    return d.execute_script("""
      const v = window.voxcast, h = v.lastHeader;
      if (!h || !v.lastAck) return null;
      return {frame: h.stateSeq, refining: h.refining, ack: v.lastAck.seq,
              shown: !document.getElementById('busy').hidden, busy: v.busy,
              text: document.getElementById('busy').innerText};""")


# ---- busy indicator ---------------------------------------------------------------------

def test_busy_indicator_while_refining_and_behind(serve_data, browser):
    """Slow storage (every chunk read waits): new slices come refining first. The overlay
    is shown exactly when the frame drawn is refining or older than the acked state."""
    d = browser
    s = serve_data("synthetic:cells?shape=64x256x256&chunk=32&latency_ms=300")
    open_client(d, s.url("/"))
    wait(d, "an ack", lambda: vx(d, ".lastAck.seq"))
    seen_refining_shown = seen_hidden = False
    z0 = vx(d, ".scene.dims.point")[0]
    for step in range(1, 6):
        # Another slice and another part of it each time: chunks never read before.
        z, sign = z0 + 4 * step * (-1) ** step, (-1) ** step
        seq = send(d, {"dims": {"point": [z, 128, 128]},
                       "camera": {"zoom": 8, "center": [z, 128 + 24 * step * sign, 128 - 24 * step * sign]}})
        assert seq, "not connected"

        def check():
            nonlocal seen_refining_shown, seen_hidden
            snap = busy_snapshot(d)
            if not snap:
                return None
            behind = snap["frame"] < snap["ack"] or snap["refining"]
            assert snap["shown"] == behind, f"busy indicator wrong: {snap}"
            if snap["shown"] and snap["refining"] and snap["frame"] >= snap["ack"]:
                seen_refining_shown = True
                assert "loading" in snap["text"], snap
            if snap["frame"] < snap["ack"]:
                assert "updating" in snap["text"], snap
            if not snap["shown"]:
                seen_hidden = True
            return snap["ack"] >= seq and snap["frame"] >= seq and not snap["refining"]
        wait(d, f"the final frame of state {seq}", check, timeout=FIRST_FRAME_S, poll=0.02)
    assert seen_refining_shown, "never saw the indicator on a refining frame"
    assert seen_hidden, "the indicator never went away"
    assert busy_snapshot(d)["shown"] is False
    assert vx(d, ".busyShown") >= 1


# ---- probe ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def coded_volume(tmp_path_factory):
    """A volume whose value says where it is: z * 10000 + y * 100 + x."""
    z, y, x = np.meshgrid(np.arange(5), np.arange(60), np.arange(80), indexing="ij")
    a = (z * 10000 + y * 100 + x).astype(np.uint16)
    p = tmp_path_factory.mktemp("probe") / "coded.npy"
    np.save(p, a)
    return p, a


def test_probe_shows_the_voxel_under_the_mouse(serve_data, browser, coded_volume):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    path, a = coded_volume
    d = browser
    s = serve_data(str(path))
    open_client(d, s.url("/"))
    final_frame(d)
    canvas = d.find_element(By.ID, "view")
    # Where the mouse really is (the page's own pointer events), in CSS pixels.
    d.execute_script("""
      window.lastMouse = null;
      document.getElementById('view').addEventListener('pointermove',
          (e) => { window.lastMouse = [e.clientX, e.clientY]; });""")
    for dx, dy in ((0, 0), (-100, 40), (120, -60)):
        ActionChains(d).move_to_element_with_offset(canvas, dx, dy).perform()
        wait(d, "the pointer event", lambda: d.execute_script("return window.lastMouse"))
        mouse = d.execute_script("const m = window.lastMouse; window.lastMouse = null; return m;")
        want = {}

        def answered():
            # The expected voxel through the scene as it is now (its canvas may change size).
            geo = d.execute_script("""
              const r = document.getElementById('view').getBoundingClientRect();
              return {w: r.width, h: r.height, cx: r.left + r.width / 2, cy: r.top + r.height / 2,
                      scene: window.voxcast.scene};""")
            sc = geo["scene"]
            k = min(geo["w"] / sc["canvas"]["width"], geo["h"] / sc["canvas"]["height"])
            c, zoom = sc["camera"]["center"], sc["camera"]["zoom"]
            want.update(y=c[1] + ((mouse[1] - geo["cy"]) / k) / zoom,
                        x=c[2] + ((mouse[0] - geo["cx"]) / k) / zoom,
                        z=round(sc["dims"]["point"][0]))
            p = vx(d, ".probe")
            if not p or not p.get("pixel") or not p["layers"]:
                return None
            wy, wx = p["world"][1], p["world"][2]
            ok = abs(wy - want["y"]) < 2 / zoom + 1e-6 and abs(wx - want["x"]) < 2 / zoom + 1e-6
            return p if ok else None
        p = wait(d, f"a probe at ({dx}, {dy}) from the centre", answered)
        (layer,) = p["layers"]
        assert layer["status"] == "ok" and layer["level"] == 0, p
        vz, vy, vxi = layer["voxel"]
        assert vz == want["z"] and abs(vy - want["y"]) <= 1 and abs(vxi - want["x"]) <= 1, (layer, want)
        assert layer["value"] == int(a[vz, vy, vxi]) == vz * 10000 + vy * 100 + vxi, layer
        text = d.find_element(By.ID, "probe").text
        assert d.find_element(By.ID, "probe").is_displayed(), "probe overlay hidden"
        assert str(layer["value"]) in text and f"y {vy}" in text and f"x {vxi}" in text, text
    # Leaving the canvas hides it.
    ActionChains(d).move_to_element(d.find_element(By.ID, "panel")).perform()
    wait(d, "the probe to hide", lambda: not d.find_element(By.ID, "probe").is_displayed())


# ---- histogram and auto-contrast ------------------------------------------------------------

def hist_state(d, i=0):
    return d.execute_script("""
      const c = document.querySelectorAll('#layers .layer canvas.histogram')[arguments[0]];
      if (!c) return null;
      return {status: c.dataset.status, samples: +c.dataset.samples, lo: +c.dataset.loX,
              hi: +c.dataset.hiX, title: c.title, visible: c.offsetWidth > 0,
              pixels: c.toDataURL()};""", i)


def test_histogram_with_limits_and_auto_contrast(server, browser):
    from selenium.webdriver.common.by import By
    d = browser
    open_client(d, server.url("/"))
    final_frame(d)
    h = wait(d, "layer histograms", lambda: (lambda s: s if s and s["samples"] > 0 else None)(hist_state(d)))
    assert h["visible"] and h["status"] in ("ok", "partial"), h
    server_h = vx(d, ".histograms")
    assert len(server_h) == len(vx(d, ".scene.layers")) and server_h[0]["samples"] == h["samples"]
    # Moving the high limit moves its marker on the histogram (and redraws it).
    cl = vx(d, ".scene.layers[0].contrast_limits")
    n = len(vx(d, ".scene.layers"))
    send(d, {"layers": [{"contrast_limits": [cl[0], cl[1] * 0.5]}] + [{}] * (n - 1)})
    h2 = wait(d, "the marker to move", lambda: (lambda s: s if s and s["hi"] < h["hi"] else None)(hist_state(d)))
    assert h2["pixels"] != h["pixels"] and h2["lo"] == h["lo"], (h2["lo"], h["lo"])
    # Auto-contrast: the percentiles of what is on screen become the limits.
    d.find_elements(By.CSS_SELECTOR, "#layers .layer button.auto")[0].click()
    res = wait(d, "the auto-contrast answer", lambda: vx(d, ".autoContrastResult"))
    assert res["layer"] == 0 and res["limits"][0] < res["limits"][1], res
    wait(d, "the scene to take the limits",
         lambda: vx(d, ".scene.layers[0].contrast_limits") == res["limits"])
    assert res["limits"] != [cl[0], cl[1] * 0.5]
    assert_canvas_matches_render(d)


# ---- layers ------------------------------------------------------------------------------

def layer_names(d):
    return [l["name"] for l in vx(d, ".scene.layers")]


def click_op(d, i, op):
    from selenium.webdriver.common.by import By
    cards = d.find_elements(By.CSS_SELECTOR, "#layers .layer")
    cards[i].find_element(By.CSS_SELECTOR, f"button.op.{op}").click()


def test_layer_duplicate_reorder_remove_change_the_frame(server, browser):
    d = browser
    open_client(d, server.url("/"))
    final_frame(d)
    names = layer_names(d)
    assert len(names) == 2, names
    # Opaque layers: the later one covers the earlier, so the order shows.
    send(d, {"layers": [{"blending": "opaque", "colormap": "green"},
                        {"blending": "opaque", "colormap": "magenta"}]})
    final_frame(d)
    before = canvas_rgb(d)
    click_op(d, 0, "down")
    wait(d, "the reorder", lambda: layer_names(d) == [names[1], names[0]])
    final_frame(d)
    after = canvas_rgb(d)
    diff = np.abs(after.astype(int) - before.astype(int)).mean()
    assert diff > 2, f"reordering opaque layers did not change the frame (mean diff {diff:.2f})"
    assert_canvas_matches_render(d)
    # Duplicate the (now) first layer: three layers, the copy after it, same channel.
    click_op(d, 0, "duplicate")
    wait(d, "the duplicate", lambda: len(layer_names(d)) == 3)
    layers = vx(d, ".scene.layers")
    assert layers[1]["name"] == f"{names[1]} copy" and layers[1]["channel"] == layers[0]["channel"]
    # Show the copy on top with another colormap: the frame changes.
    final_frame(d)
    before = canvas_rgb(d)
    send(d, {"layers": [{}, {"colormap": "yellow", "blending": "additive"}, {"visible": False}]})
    final_frame(d)
    assert np.abs(canvas_rgb(d).astype(int) - before.astype(int)).mean() > 2
    assert_canvas_matches_render(d)
    # Remove the copy.
    click_op(d, 1, "remove")
    wait(d, "the removal", lambda: len(layer_names(d)) == 2)
    assert layer_names(d) == [names[1], names[0]]
    # Add a layer of channel 0 from the panel.
    d.execute_script("document.getElementById('add-layer-channel').value = '0';"
                     "document.getElementById('add-layer').click();")
    wait(d, "the added layer", lambda: len(layer_names(d)) == 3)
    assert vx(d, ".scene.layers[2].channel") == 0
    assert_canvas_matches_render(d)
    # Remove two and reload the link: the one layer left, not the default's two.
    click_op(d, 0, "remove")
    wait(d, "the removal", lambda: len(layer_names(d)) == 2)
    click_op(d, 0, "remove")
    wait(d, "the removal", lambda: len(layer_names(d)) == 1)
    want = vx(d, ".scene.layers")
    from urllib.parse import unquote
    wait(d, "the link to hold one layer",
         lambda: len(json.loads(unquote(d.execute_script("return location.hash")[1:]))["layers"]) == 1)
    d.execute_script("window.oldPage = true;")
    d.refresh()
    wait(d, "the reloaded page", lambda: d.execute_script("return !window.oldPage && !!window.voxcast"))
    wait(d, "the first frame", lambda: (vx(d, ".framesDecoded") or 0) >= 1, timeout=FIRST_FRAME_S)
    wait(d, "the linked layers", lambda: [l["name"] for l in vx(d, ".scene.layers")] == [l["name"] for l in want])
    assert [l["colormap"] for l in vx(d, ".scene.layers")] == [l["colormap"] for l in want]
    # `voxcast render --view` merges a view into the default scene (2 layers here): nulls
    # remove the default layers past the view's.
    for _ in range(10):  # the state acked may move on (a resize) while the canvas is read
        ack = final_frame(d)
        got = canvas_rgb(d)
        if (vx(d, ".lastAck.seq"), vx(d, ".lastHeader.stateSeq")) == (ack["seq"], ack["seq"]):
            break
    scene = dict(ack["scene"], layers=ack["scene"]["layers"] + [None])
    p = psnr(got, render_reference(scene))
    assert p >= TOLERANCE[vx(d, ".lastHeader.codec")]["psnr_db"], f"PSNR {p:.1f} dB"


# ---- scale bar, 3D axes and bounding box ----------------------------------------------------

def hud_pixels(d):
    """(lit fraction of the hud canvas, lit fraction of its bottom-right corner)."""
    return d.execute_script("""
      const c = document.getElementById('hud');
      const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      let lit = 0, corner = 0, nc = 0;
      for (let y = 0; y < c.height; y += 2) for (let x = 0; x < c.width; x += 2) {
        const a = px[(y * c.width + x) * 4 + 3] > 0;
        lit += a;
        if (x > c.width * 0.7 && y > c.height * 0.85) { corner += a; ++nc; }
      }
      return [lit / (c.width * c.height / 4), corner / nc];""")


def test_coalescer_keeps_one_request_in_flight(server, browser):
    """Unit checks of web/tools.js: a moving mouse costs one probe per round trip, the latest
    position waiting; an error with the id (rate_limited) frees the slot too."""
    d = browser
    d.get(server.url("/"))
    r = d.execute_async_script("""
      const done = arguments[arguments.length - 1];
      import('./tools.js' + location.search).then((t) => {
        const sent = [], got = [];
        const c = new t.Coalescer('probe', (m) => { sent.push(m); return true; }, (r, q) => got.push([r.v, q.pixel]));
        for (let i = 0; i < 5; ++i) c.ask({pixel: [i, 0]});
        const first = sent.length;
        const stray = c.answer({type: 'probe', id: 'probe-9', v: 'x'});
        c.answer({type: 'probe', id: sent[0].id, v: 'a'});
        c.answer({type: 'error', id: sent[1].id, code: 'rate_limited'});
        c.ask({pixel: [7, 7]});
        done({first, stray, sent: sent.map((m) => [m.id, m.pixel]), got, inFlight: !!c.inFlight,
              text: t.probeText({world: [2, 10.25, 3], layers: [{layer: 0, name: 'n', status: 'ok', value: 7, level: 1, voxel: [2, 10, 3]},
                                                               {layer: 1, name: 'm', status: 'loading', voxel: [2, 10, 3]}]},
                                [{name: 'z', unit: 'micrometer'}, {name: 'y', unit: 'micrometer'}, {name: 'x', unit: ''}])});
      }, (e) => done({error: String(e)}));""")
    assert "error" not in r, r
    assert r["first"] == 1 and r["stray"] is False, r
    # The first, then the latest waiting (4, not 1..3), then the one after the error.
    assert r["sent"] == [["probe-1", [0, 0]], ["probe-2", [4, 0]], ["probe-3", [7, 7]]], r["sent"]
    assert r["got"] == [["a", [0, 0]]] and r["inFlight"] is True, r
    assert r["text"] == "z 2 (2 µm)  y 10 (10.25 µm)  x 3 (3)\nn: 7 (level 1)\nm: loading…", r["text"]


def test_overlay_modules(server, browser):
    """Unit checks of web/overlay.js: 1-2-5 lengths and unit prefixes."""
    d = browser
    d.get(server.url("/"))
    r = d.execute_async_script("""
      const done = arguments[arguments.length - 1];
      import('./overlay.js' + location.search).then((o) => done({
        nice: [7.3, 199, 0.031, 1, 2, 5, 10, 4.99, 1e-7, 0, -1, Infinity].map(o.niceLength),
        labels: [o.lengthLabel(1000, 'micrometer'), o.lengthLabel(0.5, 'micrometer'),
                 o.lengthLabel(20, ''), o.lengthLabel(2, 'second'), o.lengthLabel(5, 'nanometer'),
                 o.lengthLabel(2000, 'millimeter'), o.lengthLabel(0.2, 'angstrom')],
        bar: o.scaleBar(3, 'micrometer', 160)}), (e) => done({error: String(e)}));""")
    assert "error" not in r, r
    assert r["nice"] == pytest.approx([5, 100, 0.02, 1, 2, 5, 10, 2, 1e-7, 0, 0, 0])
    assert r["labels"] == ["1 mm", "500 nm", "20", "2 second", "5 nm", "2 m", "20 pm"], r["labels"]
    assert r["bar"] == {"length": 50, "px": 150, "label": "50 µm"}, r["bar"]


def test_scale_bar_and_3d_overlays_leave_the_frame_exact(server, browser):
    d = browser
    open_client(d, server.url("/"))
    final_frame(d)
    wait(d, "the scale bar", lambda: vx(d, ".hud.scaleBar"))
    bar = vx(d, ".hud.scaleBar")
    zoom = vx(d, ".lastAck.scene.camera.zoom") if vx(d, ".lastAck") else vx(d, ".scene.camera.zoom")
    m = bar["length"] / 10 ** np.floor(np.log10(bar["length"]))
    assert round(m, 6) in (1, 2, 5), bar
    assert bar["px"] == pytest.approx(bar["length"] * zoom) and bar["label"].endswith("µm"), bar
    lit, corner = hud_pixels(d)
    assert corner > 0.005 and lit < 0.05, (lit, corner)
    assert vx(d, ".hud.axes") is None and vx(d, ".hud.box") is None
    # The frame itself has no overlay in it.
    assert_canvas_matches_render(d)
    # Zoom in 4x: the bar stays a 1-2-5 length and scales with the zoom.
    seq = send(d, {"camera": {"zoom": zoom * 4}})
    final_frame(d, seq)
    wait(d, "the scale bar of the new zoom",
         lambda: (lambda b: b if b and b["px"] == pytest.approx(b["length"] * zoom * 4) else None)(vx(d, ".hud.scaleBar")))
    # 3D: axes marker and the bounding box around what is drawn.
    seq = send(d, {"dims": {"ndisplay": 3}, "camera": {"zoom": zoom, "angles": [0, 0, 90]}})
    final_frame(d, seq)
    hud = wait(d, "the 3D overlay", lambda: (lambda h: h if h and h["box"] else None)(vx(d, ".hud")))
    assert sorted(a["name"] for a in hud["axes"]) == ["x", "y", "z"], hud["axes"]
    ax = {a["name"]: a for a in hud["axes"]}
    # Looking down z: x points right, y down, z at the viewer (no length on screen).
    assert ax["x"]["dx"] > 10 and abs(ax["x"]["dy"]) < 1, ax
    assert ax["y"]["dy"] > 10 and abs(ax["y"]["dx"]) < 1, ax
    assert abs(ax["z"]["dx"]) < 1 and abs(ax["z"]["dy"]) < 1, ax
    box = np.array(hud["box"])
    sc = vx(d, ".lastAck.scene")
    w, h = sc["canvas"]["width"], sc["canvas"]["height"]
    # 256 x 256 voxels of 1 µm around the centre: the box's edges on screen.
    assert box[:, 0].min() == pytest.approx(w / 2 - 128 * zoom, abs=0.6)
    assert box[:, 0].max() == pytest.approx(w / 2 + 128 * zoom, abs=0.6)
    assert box[:, 1].max() - box[:, 1].min() == pytest.approx(256 * zoom, abs=0.6)
    rgb = canvas_rgb(d)
    ys, xs = np.nonzero(rgb.max(axis=2) > 40)
    assert len(xs) > 100
    assert xs.min() >= box[:, 0].min() - 2 and xs.max() <= box[:, 0].max() + 2, (xs.min(), xs.max(), box)
    assert ys.min() >= box[:, 1].min() - 2 and ys.max() <= box[:, 1].max() + 2, (ys.min(), ys.max(), box)
    assert_canvas_matches_render(d)
    # Turned: the box and the marker follow the camera.
    seq = send(d, {"camera": {"angles": [0, 35, 120]}})
    final_frame(d, seq)
    hud2 = wait(d, "the turned overlay",
                lambda: (lambda h: h if h and h["box"] and h["box"] != hud["box"] else None)(vx(d, ".hud")))
    assert abs({a["name"]: a for a in hud2["axes"]}["z"]["dx"]) > 5


# ---- play on non-displayed axes ----------------------------------------------------------------

@pytest.fixture(scope="module")
def timelapse(tmp_path_factory):
    """An OME-Zarr t, c, z, y, x time series: 4 time points of 5 slices."""
    import sys
    sys.path.insert(0, str(conftest.REPO_ROOT / "tests" / "integration"))
    import fixtures  # noqa: E402
    root = tmp_path_factory.mktemp("timelapse")
    return fixtures.build_zarr2(root, shape=(4, 1, 5, 40, 48), dtype="uint16", chunks=(1, 1, 5, 40, 48),
                                compressor=None, nlevels=1)


def test_play_steps_time_and_wraps(serve_data, browser, timelapse):
    from selenium.webdriver.common.by import By
    d = browser
    s = serve_data(timelapse.path)
    open_client(d, s.url("/"))
    final_frame(d)
    wait(d, "the dims sliders with play buttons",
         lambda: len(d.find_elements(By.CSS_SELECTOR, "#dims .dim button.play")) == 2)
    labels = [e.text for e in d.find_elements(By.CSS_SELECTOR, "#dims .dim label")]
    assert labels == ["t", "z"], labels
    t_axis = 0
    t0 = vx(d, ".scene.dims.point")[t_axis]
    fps = d.find_elements(By.CSS_SELECTOR, "#dims .dim input.fps")[0]
    fps.clear()
    fps.send_keys("30")
    play = d.find_elements(By.CSS_SELECTOR, "#dims .dim button.play")[0]
    play.click()
    assert vx(d, ".dims.playing.axis") == t_axis and vx(d, ".dims.playing.fps") == 30
    seen = set()

    def stepped():
        p = vx(d, ".lastAck.scene.dims.point")
        if p:
            seen.add(p[t_axis])
        return seen >= want
    # t: 4 points, 0.5 s apart (the fixture's scale).
    want = {0.0, 0.5, 1.0, 1.5}
    wait(d, "every time point, wrapping around", stepped)
    # The opening point (0.75, the middle of the extent) is seen only if a poll ran before
    # the first step's ack, so it is allowed, never required.
    assert seen - {t0} == want, (seen, t0)
    play.click()
    assert vx(d, ".dims.playing") is None and play.text == "▶"
    # Stopped: the last step reaches the screen as the server renders it.
    final_frame(d)
    assert_canvas_matches_render(d, data=timelapse.path)


def test_layer_patches_follow_the_server(server, browser):
    """Unit checks of web/protocol.js: the client's optimistic scene applies `layers` as the
    server does (element-wise, layers past the array kept, null removes), and layersPatch
    turns one list into another."""
    d = browser
    d.get(server.url("/"))
    r = d.execute_async_script("""
      const done = arguments[arguments.length - 1];
      import('./protocol.js' + location.search).then((p) => {
        const scene = {layers: [{name: 'a', gamma: 1}, {name: 'b'}, {name: 'c'}]};
        const next = [{name: 'c'}, {name: 'a', gamma: 2}];
        const patch = p.layersPatch(scene.layers, next);
        done({patch, applied: p.applyPatch(scene, patch).layers,
              partial: p.applyPatch(scene, {layers: [{gamma: 3}]}).layers,
              removed: p.applyPatch(scene, {layers: [{}, null]}).layers});
      }, (e) => done({error: String(e)}));""")
    assert "error" not in r, r
    assert r["patch"] == {"layers": [{"name": "c"}, {"name": "a", "gamma": 2}, None]}
    assert r["applied"] == [{"name": "c", "gamma": 1}, {"name": "a", "gamma": 2}], r["applied"]
    assert r["partial"] == [{"name": "a", "gamma": 3}, {"name": "b"}, {"name": "c"}]
    assert r["removed"] == [{"name": "a", "gamma": 1}, {"name": "c"}]
