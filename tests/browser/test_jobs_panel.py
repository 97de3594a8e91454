"""The orbit section of the web client (web/jobs.js) against the real `voxcast serve`, in
headless Chromium: render an orbit of the current view, follow its progress, embed the
result; cancel; the past jobs after a reload; errors (400, 429); polling when /ws/events
is unavailable; a server with a token.

    /usr/bin/python3 -m pytest tests/browser/test_jobs_panel.py -q

Servers here keep their job results in a temporary --data-dir (the `server` fixture of
conftest.py would write them into ./voxcast-data).
"""

from __future__ import annotations

import base64
import json
import math
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from conftest import Server, voxcast_path
from PIL import Image

FIRST_FRAME_S = 60   # an ASan server renders the first frames slowly
ORBIT_S = 120        # a small orbit, submitted to ready in the page
STEP_S = 30
SMALL = {"columns": 4, "rows": 3, "size": 64}
BIG = {"columns": 40, "rows": 40, "size": 256}


# ---- helpers --------------------------------------------------------------------------

def call(s, method, path, body=None):
    """(status, headers, parsed JSON body or None) of a request to server `s`."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(s.url(path), data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            status, headers, raw = r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        status, headers, raw = e.code, dict(e.headers or {}), e.read()
    try:
        return status, headers, json.loads(raw)
    except ValueError:
        return status, headers, None


def console(d) -> str:
    try:
        return "\n".join(f"{e['level']}: {e['message']}" for e in d.get_log("browser"))[-4000:]
    except Exception as e:  # noqa: BLE001 - diagnostics only
        return f"(no browser log: {e})"


def js(d, expr: str):
    """An expression evaluated in the page (JSON round trip)."""
    return d.execute_script(f"return JSON.parse(JSON.stringify(({expr}) ?? null));")


def panel(d) -> dict:
    """What the orbit section shows."""
    return d.execute_script("""
      const q = (s) => document.querySelector('#jobs ' + s);
      const vis = (n) => !!n && !n.hidden && n.getClientRects().length > 0;
      const orbit = q('voxcast-orbit');
      const jobs = window.voxcast && window.voxcast.jobs;
      return {
        current: jobs ? JSON.parse(JSON.stringify(jobs.current)) : null,
        events: jobs ? jobs.events : null,
        error: vis(q('.jobs-error')) ? q('.jobs-error').textContent : null,
        progress: vis(q('.job-progress')) ? q('.job-state').textContent : null,
        bar: q('progress') ? [q('progress').value, q('progress').max] : null,
        cancelVisible: vis(q('.job-progress .cancel')),
        embedVisible: vis(q('.orbit-embed')),
        orbit: orbit ? {src: orbit.getAttribute('src'), ready: orbit.ready, error: orbit.error} : null,
        snippet: q('.snippet') ? q('.snippet').value : null,
        page: q('.page-link') ? q('.page-link').href : null,
        list: [...document.querySelectorAll('#jobs .jobs-list li.job')].map((li) => ({
          id: li.dataset.id, state: li.dataset.state, text: li.textContent,
          show: !!li.querySelector('button.show')})),
      };""")


def wait(d, what: str, cond, timeout=STEP_S, poll=0.1):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = cond()
        if last:
            return last
        time.sleep(poll)
    pytest.fail(f"timed out after {timeout} s waiting for {what}\nlast: {last!r}\n"
                f"panel: {panel(d)!r}\nbrowser console:\n{console(d)}", pytrace=False)


def open_client(d, url: str, frames=True):
    d.get(url)
    wait(d, "window.voxcast.jobs", lambda: d.execute_script("return !!(window.voxcast && window.voxcast.jobs)"),
         timeout=15)
    if frames:
        wait(d, "state 'open'", lambda: js(d, "window.voxcast.state") == "open", timeout=FIRST_FRAME_S)
        wait(d, "the first frame", lambda: (js(d, "window.voxcast.framesDecoded") or 0) >= 1,
             timeout=FIRST_FRAME_S)
    # The section starts collapsed: open it.
    if not d.execute_script("return document.getElementById('orbit-section').open"):
        d.find_element("css selector", "#orbit-section > summary").click()
    wait(d, "the Render orbit button", lambda: d.find_element("css selector", "#jobs .render").is_displayed())


def set_grid(d, columns, rows, size):
    for name, v in (("columns", columns), ("rows", rows), ("size", size)):
        box = d.find_element("css selector", f"#jobs input[name={name}]")
        box.clear()
        box.send_keys(str(v))


def click(d, css):
    d.find_element("css selector", css).click()


def orbit_canvas(d, scope="#jobs "):
    """(column, row) the <voxcast-orbit> shows and its canvas, (h, w, 3) uint8."""
    c, r, w, h, b64 = d.execute_script("""
      const el = document.querySelector(arguments[0] + 'voxcast-orbit');
      const cv = el.shadowRoot.querySelector('canvas');
      const px = cv.getContext('2d').getImageData(0, 0, cv.width, cv.height).data;
      const rgb = new Uint8Array(cv.width * cv.height * 3);
      for (let i = 0, j = 0; i < px.length; i += 4, j += 3) {
        rgb[j] = px[i]; rgb[j + 1] = px[i + 1]; rgb[j + 2] = px[i + 2];
      }
      let s = '';
      for (let i = 0; i < rgb.length; i += 0x8000)
        s += String.fromCharCode.apply(null, rgb.subarray(i, i + 0x8000));
      return [el.column, el.row, cv.width, cv.height, btoa(s)];""", scope)
    return c, r, np.frombuffer(base64.b64decode(b64), np.uint8).reshape(h, w, 3)


# A tile through lossy WebP and the component's canvas against `voxcast render` of its
# angles: 64-pixel tiles of this fine-grained data measured 24.8-27.9 dB, the same render
# flipped 15.6-20.3 dB. So: at least 22 dB, and 4 dB closer to the render than to the
# render flipped or mirrored.
MIN_TILE_PSNR_DB = 22.0
MIN_MARGIN_DB = 4.0


def assert_orbit_shows_its_tile(d, s, jid, scope="#jobs "):
    """The component (in the panel, or alone on the job's index.html) shows the tile it says,
    and that tile is `voxcast render` of the job's view at the tile's yaw and pitch
    (docs/orbit.md: angles + (0, yaw[c], pitch[r]))."""
    c, r, got = orbit_canvas(d, scope)
    status, _, m = call(s, "GET", f"/api/v1/jobs/{jid}/files/orbit.json")
    assert status == 200, m
    assert (c, r) == (m["grid"]["columns"] // 2, m["grid"]["rows"] // 2), "not the middle tile"
    view = json.loads(json.dumps(m["view"]))
    a = view["camera"]["angles"]
    view["camera"]["angles"] = [a[0], a[1] + m["yaw"][c], a[2] + m["pitch"][r]]
    with tempfile.TemporaryDirectory() as tmp:
        v, out = Path(tmp) / "v.json", Path(tmp) / "tile.png"
        v.write_text(json.dumps(view))
        res = subprocess.run([str(voxcast_path()), "render", m["dataset"], "--view", str(v), "-o", str(out)],
                             capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
        assert res.returncode == 0, res.stderr[-3000:]
        want = np.asarray(Image.open(out).convert("RGB"))
    k = got.shape[0] // want.shape[0]
    if k > 1 and got.shape == (want.shape[0] * k, want.shape[1] * k, 3):  # index.html: 2x
        got = got.reshape(want.shape[0], k, want.shape[1], k, 3).mean(axis=(1, 3))
    assert got.shape == want.shape, (got.shape, want.shape)
    assert (want.max(axis=2) > 30).mean() > 0.02, "the reference tile is blank"

    def psnr(ref):
        mse = np.mean((got.astype(float) - ref.astype(float)) ** 2)
        return float("inf") if mse == 0 else 10 * math.log10(255 ** 2 / mse)

    p, other = psnr(want), max(psnr(want[::-1]), psnr(want[:, ::-1]))
    assert p >= MIN_TILE_PSNR_DB and p >= other + MIN_MARGIN_DB, (
        f"tile ({c}, {r}) differs from its render: PSNR {p:.1f} dB (flipped or mirrored: "
        f"{other:.1f} dB)")
    return p


def wait_job(s, jid, states, timeout=ORBIT_S):
    deadline = time.monotonic() + timeout
    j = None
    while time.monotonic() < deadline:
        status, _, body = call(s, "GET", f"/api/v1/jobs/{jid}")
        assert status == 200, body
        j = body["job"]
        if j["state"] in states:
            return j
        time.sleep(0.2)
    pytest.fail(f"job {jid} never reached {states}: {j}", pytrace=False)


def render_and_wait_ready(d):
    """Clicks Render orbit (grid already set) and waits for the embed; returns the job id."""
    seen = set()

    def running_or_done():
        p = panel(d)
        if p["current"]:
            seen.add(p["current"]["state"])
        return p if p["progress"] and p["current"] else None

    click(d, "#jobs .render")
    p = wait(d, "the progress box", running_or_done)
    jid = p["current"]["id"]
    wait(d, "the job to succeed", lambda: (running_or_done() or {}).get("current", {}).get("state") == "succeeded",
         timeout=ORBIT_S)
    p = wait(d, "the <voxcast-orbit> to be ready", lambda: (q := panel(d))["orbit"] and q["orbit"]["ready"] and q,
             timeout=STEP_S)
    assert p["current"]["id"] == jid
    assert p["orbit"]["error"] is None, p
    return jid, p, seen


@pytest.fixture(scope="module")
def jobs_server(voxcast_bin, tmp_path_factory):
    s = Server(voxcast_bin, extra=["--data-dir", str(tmp_path_factory.mktemp("jobs-data"))])
    yield s
    # A job still running would slow the exit down: cancel whatever is left.
    _, _, body = call(s, "GET", "/api/v1/jobs")
    for j in (body or {}).get("jobs", []):
        if j["state"] in ("queued", "running"):
            call(s, "DELETE", f"/api/v1/jobs/{j['id']}")
    s.check_clean_exit()


# ---- tests ----------------------------------------------------------------------------

def test_render_small_orbit_then_reload(jobs_server, browser):
    d, s = browser, jobs_server
    open_client(d, s.url("/"))
    set_grid(d, **SMALL)
    jid, p, seen = render_and_wait_ready(d)
    assert p["progress"].startswith("done: 12/12"), p["progress"]
    assert p["bar"] == [12, 12], p["bar"]
    assert not p["cancelVisible"], "Cancel is for jobs under way"
    assert seen & {"queued", "running", "succeeded"}, seen
    # The job is the one asked for: grid, tile and the client's layers.
    j = p["current"]
    assert {k: j["params"][k] for k in SMALL} == SMALL, j["params"]
    scene = js(d, "window.voxcast.scene")
    assert j["params"]["view"]["layers"][0]["colormap"] == scene["layers"][0]["colormap"]
    # The embed: the component shows the orbit, the snippet and the page link.
    assert p["embedVisible"]
    assert p["orbit"]["src"].endswith(f"/api/v1/jobs/{jid}/files/orbit.json"), p["orbit"]
    assert orbit_canvas(d)[2].shape == (64, 64, 3)
    assert_orbit_shows_its_tile(d, s, jid)
    assert "voxcast-orbit" in p["snippet"] and 'src="orbit.json"' in p["snippet"], p["snippet"]
    assert p["page"].endswith(f"/api/v1/jobs/{jid}/files/index.html"), p["page"]
    # The page link: the job's index.html shows the same orbit on its own.
    d.get(p["page"])
    wait(d, "the orbit on index.html", lambda: d.execute_script(
        "const el = document.querySelector('voxcast-orbit'); return !!el && el.ready === true;"))
    assert_orbit_shows_its_tile(d, s, jid, scope="")
    d.back()
    # Past jobs: this one, succeeded, with a show button.
    item = wait(d, "the job in the list", lambda: next((i for i in panel(d)["list"] if i["id"] == jid), None))
    assert item["state"] == "succeeded" and item["show"] and "12/12" in item["text"], item
    # Copy: the clipboard, or the selected text.
    click(d, "#jobs .copy")
    # A reload lists it again (from GET /api/v1/jobs and /ws/events), and "show" embeds it.
    open_client(d, s.url("/"), frames=False)
    item = wait(d, "the job listed after a reload",
                lambda: next((i for i in panel(d)["list"] if i["id"] == jid), None))
    assert item["state"] == "succeeded", item
    wait(d, "the events socket", lambda: panel(d)["events"] == "open")
    click(d, f'#jobs li[data-id="{jid}"] button.show')
    wait(d, "the shown orbit to be ready", lambda: (q := panel(d))["orbit"] and q["orbit"]["ready"])
    assert_orbit_shows_its_tile(d, s, jid)


def test_cancel_big_job(jobs_server, browser):
    d, s = browser, jobs_server
    open_client(d, s.url("/"), frames=False)
    set_grid(d, **BIG)
    click(d, "#jobs .render")
    p = wait(d, "the big job under way", lambda: (q := panel(d))["current"] and
             q["current"]["state"] in ("queued", "running") and q["cancelVisible"] and q)
    jid = p["current"]["id"]
    assert p["current"]["total"] in (0, 1600) and p["current"]["params"]["columns"] == 40
    wait(d, "progress", lambda: (q := panel(d))["current"]["done"] > 0 and "running" in q["progress"] and q,
         timeout=ORBIT_S)
    click(d, "#jobs .job-progress .cancel")
    # The page's state turns first, the panel is drawn up to 30 ms later: wait for both.
    p = wait(d, "the job shown canceled", lambda: (q := panel(d))["current"]["state"] == "canceled"
             and (q["progress"] or "").startswith("canceled") and q)
    assert not p["cancelVisible"] and not p["embedVisible"]
    wait(d, "canceled in the list", lambda: any(i["id"] == jid and i["state"] == "canceled" for i in panel(d)["list"]))
    assert wait_job(s, jid, {"canceled"}, timeout=10)["done"] < 1600


def test_errors_shown(start_server, browser, tmp_path):
    d = browser
    s = start_server(extra=["--data-dir", str(tmp_path / "data"), "--max-jobs", "1"])
    open_client(d, s.url("/"), frames=False)
    # 400: the server names the field.
    assert d.execute_async_script("""
      const done = arguments[arguments.length - 1];
      window.voxcast.jobs.submit({columns: 0}).then((j) => done(j === null));""")
    err = wait(d, "the 400 message", lambda: panel(d)["error"])
    assert "params.columns" in err, err
    # 429: the queue holds one job; the next is refused with Retry-After.
    set_grid(d, **BIG)
    click(d, "#jobs .render")
    first = wait(d, "the first job", lambda: (q := panel(d))["current"] and not q["error"] and q["current"])
    click(d, "#jobs .render")
    err = wait(d, "the 429 message", lambda: panel(d)["error"])
    assert "busy" in err and "try again in 5 s" in err, err
    assert not d.find_element("css selector", "#jobs .render").is_enabled(), "Render waits out Retry-After"
    assert panel(d)["current"]["id"] == first["id"]
    click(d, "#jobs .job-progress .cancel")
    wait(d, "the first job canceled", lambda: panel(d)["current"]["state"] == "canceled")
    wait(d, "Render enabled again", lambda: d.find_element("css selector", "#jobs .render").is_enabled(), timeout=10)


def test_polling_without_events(jobs_server, browser):
    """/ws/events refused: the panel polls GET /api/v1/jobs/{id} and still sees the end."""
    d, s = browser, jobs_server
    d.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": """
      const Real = window.WebSocket;
      window.WebSocket = function (url, ...rest) {
        if (String(url).includes('/ws/events')) throw new DOMException('blocked by the test', 'SecurityError');
        return new Real(url, ...rest);
      };
      Object.assign(window.WebSocket, {CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3});
      window.WebSocket.prototype = Real.prototype;"""})
    open_client(d, s.url("/"))
    assert panel(d)["events"] in ("polling", "connecting")
    set_grid(d, **SMALL)
    jid, p, _ = render_and_wait_ready(d)
    assert p["events"] != "open"
    assert_orbit_shows_its_tile(d, s, jid)


def test_token_and_3d_view(start_server, browser, tmp_path):
    """With a token every request carries it, the sheets the component loads included."""
    d = browser
    s = start_server(token="orbit-token", extra=["--data-dir", str(tmp_path / "data")])
    open_client(d, s.url("/"))
    click(d, "#toggle-3d")
    wait(d, "a 3D scene", lambda: js(d, "window.voxcast.scene.dims.ndisplay") == 3, timeout=FIRST_FRAME_S)
    set_grid(d, 3, 2, 64)
    jid, p, _ = render_and_wait_ready(d)
    assert p["events"] == "open"
    j = p["current"]
    scene = js(d, "window.voxcast.scene")
    assert j["params"]["view"]["camera"]["angles"] == scene["camera"]["angles"]
    assert_orbit_shows_its_tile(d, s, jid)
    assert "token=orbit-token" in p["page"]


def test_a_job_waiting_in_slurm_says_so(jobs_server, browser):
    """A job the server handed to Slurm is `running` from then on; while Slurm keeps it
    pending, the panel's line says so and why (the job's `scheduler` field)."""
    d, s = browser, jobs_server
    open_client(d, s.url("/"), frames=False)
    texts = d.execute_async_script("""
      const done = arguments[arguments.length - 1];
      import('./jobs.js').then((m) => {
        const base = {kind: 'orbit', state: 'running', done: 0, total: 96, rate: 0};
        done([
          m.progressText({...base, scheduler: {name: 'slurm', job: '42', state: 'PENDING',
                                               reason: 'Resources'}}),
          m.progressText({...base, scheduler: {name: 'slurm', job: '42', state: 'SUBMITTED'}}),
          m.progressText({...base, done: 12, rate: 3, eta_s: 28,
                          scheduler: {name: 'slurm', job: '42', state: 'RUNNING'}}),
          m.progressText({...base, done: 12, rate: 3, eta_s: 28}),
        ]);
      }, (e) => done(String(e)));""")
    assert texts[0] == "waiting in slurm (job 42, pending: Resources)", texts
    assert texts[1] == "waiting in slurm (job 42, submitted)", texts
    assert texts[2].startswith("running 12/96") and texts[2].endswith("· slurm job 42"), texts
    assert texts[3].startswith("running 12/96") and "slurm" not in texts[3], texts
