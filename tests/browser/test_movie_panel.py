"""The movie section of the web client (web/timeline.js) against the real `voxcast serve`, in
headless Chromium: keyframes from the current view, reorder, durations and easing, delete,
render as a `movie` job, then the <video> of the result and its download.

    /usr/bin/python3 -m pytest tests/browser/test_movie_panel.py -q
"""

from __future__ import annotations

import io

import av
import numpy as np
import pytest
from conftest import Server
from test_jobs_panel import call, console, js, wait, wait_job

FIRST_FRAME_S = 60
MOVIE_S = 180


@pytest.fixture(scope="module")
def movie_server(voxcast_bin, tmp_path_factory):
    s = Server(voxcast_bin, extra=["--data-dir", str(tmp_path_factory.mktemp("movie-data"))])
    yield s
    _, _, body = call(s, "GET", "/api/v1/jobs")
    for j in (body or {}).get("jobs", []):
        if j["state"] in ("queued", "running"):
            call(s, "DELETE", f"/api/v1/jobs/{j['id']}")
    s.check_clean_exit()


def click(d, css):
    d.find_element("css selector", css).click()


def open_movie_section(d, s):
    """The page, its first frame, and the movie section open."""
    d.get(s.url("/"))
    wait(d, "the client", lambda: js(d, "!!(window.voxcast && window.voxcast.timeline)"), timeout=15)
    wait(d, "the first frame", lambda: (js(d, "window.voxcast.framesDecoded") or 0) >= 1,
         timeout=FIRST_FRAME_S)
    if not d.execute_script("return document.getElementById('movie-section').open"):
        click(d, "#movie-section > summary")


def small_movie(d):
    """12 fps at 640x360: movies the tests can afford."""
    fps = d.find_element("css selector", "#timeline input[name=fps]")
    fps.clear()
    fps.send_keys("12")
    d.execute_script("const s = document.querySelector('#timeline select[name=movie-size]');"
                     "s.value = '640x360';")


def angles(d):
    return js(d, "window.voxcast.timeline.keyframes.map((k) => k.scene.camera.angles[1])")


def test_timeline_to_movie(movie_server, browser):
    d, s = browser, movie_server
    open_movie_section(d, s)
    if not d.execute_script("return document.getElementById('orbit-section').open"):
        click(d, "#orbit-section > summary")  # where the job's progress and result show
    wait(d, "the + keyframe button",
         lambda: d.find_element("css selector", "#timeline .add-keyframe").is_displayed())

    # Three keyframes of the current view at yaw 0, 40, 80.
    for yaw in (0, 40, 80):
        d.execute_script("window.voxcast.send({dims: {ndisplay: 3}, camera: {angles: [0, arguments[0], 90]}})",
                         yaw)
        click(d, "#timeline .add-keyframe")
    assert angles(d) == [0, 40, 80], console(d)
    # Reorder: the last one up, then back down.
    click(d, '#timeline li[data-index="2"] .up')
    assert angles(d) == [0, 80, 40]
    click(d, '#timeline li[data-index="1"] .down')
    assert angles(d) == [0, 40, 80]
    # Delete the middle one; durations and easing of the last.
    click(d, '#timeline li[data-index="1"] .delete')
    assert angles(d) == [0, 80]
    dur = d.find_element("css selector", '#timeline li[data-index="1"] .duration')
    dur.clear()
    dur.send_keys("0.5")
    d.execute_script("""const s = document.querySelector('#timeline li[data-index="1"] .easing');
                        s.value = 'ease-in-out'; s.dispatchEvent(new Event('change'));""")
    small_movie(d)
    tl = js(d, "window.voxcast.timeline.timeline")
    assert [k["time"] for k in tl["keyframes"]] == [0, 0.5], tl
    assert tl["keyframes"][1]["easing"] == "ease-in-out"
    assert "canvas" not in tl["keyframes"][0]["scene"]

    click(d, "#timeline .render-movie")
    cur = wait(d, "the movie job", lambda: js(d, "window.voxcast.jobs.current"))
    assert cur["kind"] == "movie", cur
    j = wait_job(s, cur["id"], {"succeeded", "failed", "canceled"}, timeout=MOVIE_S)
    assert j["state"] == "succeeded", j
    assert j["total"] == 6 and j["params"]["width"] == 640 and j["params"]["fps"] == 12, j
    # The result: a <video> of movie.mp4 with a download link.
    src = wait(d, "the <video>", lambda: js(
        d, "(() => { const v = document.querySelector('#jobs .movie-result video');"
           " const box = document.querySelector('#jobs .movie-result');"
           " return v && !box.hidden && v.getAttribute('src'); })()"))
    assert src.endswith(f"/api/v1/jobs/{cur['id']}/files/movie.mp4"), src
    link = js(d, "document.querySelector('#jobs .movie-result a.download').getAttribute('href')")
    assert link == src
    if js(d, "document.querySelector('#jobs video').canPlayType('video/mp4; codecs=\"avc1.64001e\"')"):
        # This Chromium plays H.264: the video loads and lasts the movie's length.
        dur = wait(d, "the video's metadata", lambda: js(
            d, "(() => { const v = document.querySelector('#jobs video');"
               " return v.readyState >= 1 && v.duration; })()"), timeout=30)
        assert abs(dur - 0.5) < 0.1, dur
    # The download is the movie: decodes with PyAV, 6 frames of 640x360.
    import urllib.request
    with urllib.request.urlopen(s.url(src), timeout=30) as r:
        raw = r.read()
    with av.open(io.BytesIO(raw)) as c:
        st = c.streams.video[0]
        frames = list(c.decode(st))
    assert len(frames) == 6 and (frames[0].width, frames[0].height) == (640, 360)

    # The same timeline as WebM (VP9): Chromium plays it in the page.
    d.execute_script("const s = document.querySelector('#timeline select[name=movie-format]');"
                     "s.value = 'webm';")
    click(d, "#timeline .render-movie")
    cur2 = wait(d, "the WebM job", lambda: (lambda c: c if c and c["id"] != cur["id"] else None)(
        js(d, "window.voxcast.jobs.current")))
    j = wait_job(s, cur2["id"], {"succeeded", "failed", "canceled"}, timeout=MOVIE_S)
    assert j["state"] == "succeeded" and j["files"] == ["movie.webm"], j
    assert j["params"]["format"] == "webm", j
    src = wait(d, "the WebM <video>", lambda: (lambda v: v if v and v.endswith("movie.webm") else None)(
        js(d, "document.querySelector('#jobs .movie-result video').getAttribute('src')")))
    assert src.endswith(f"/api/v1/jobs/{cur2['id']}/files/movie.webm"), src
    assert js(d, "document.querySelector('#jobs .movie-result a.download').getAttribute('download')") \
        == f"{cur2['id']}.webm"
    assert js(d, "document.querySelector('#jobs video').canPlayType('video/webm; codecs=\"vp9\"')")
    dur = wait(d, "the WebM video's metadata", lambda: js(
        d, "(() => { const v = document.querySelector('#jobs video');"
           " return v.readyState >= 1 && v.duration; })()"), timeout=30)
    assert abs(dur - 0.5) < 0.1, dur


def test_a_derived_layer_keyframed_in_the_page_blurs_in_the_movie(movie_server, browser):
    """Keyframes taken in the page carry a derived layer's pipeline source; between them its
    live parameter (sigma) interpolates in the rendered movie, which gets blurrier."""
    d, s = browser, movie_server
    open_movie_section(d, s)
    n = len(js(d, "window.voxcast.scene.layers"))
    limits = js(d, "window.voxcast.scene.layers[0].contrast_limits")
    layer = {"source": {"pipeline": "gaussian", "input": 0, "params": {"sigma": 0.5}},
             "colormap": "gray", "contrast_limits": limits}
    d.execute_script("window.voxcast.send({dims: {ndisplay: 2}, layers: arguments[0]})",
                     [{"visible": False}] * n + [layer])

    def sigma():
        layers = js(d, "(window.voxcast.view || window.voxcast.scene).layers")
        src = layers[n].get("source") if len(layers) > n else None
        return src["params"]["sigma"] if isinstance(src, dict) else None

    wait(d, "the derived layer in the view", lambda: sigma() == 0.5)
    click(d, "#timeline .add-keyframe")
    d.execute_script("window.voxcast.send({layers: arguments[0]})",
                     [{}] * n + [{"source": {"params": {"sigma": 4}}}])
    wait(d, "sigma 4 in the view", lambda: sigma() == 4)
    click(d, "#timeline .add-keyframe")
    dur = d.find_element("css selector", '#timeline li[data-index="1"] .duration')
    dur.clear()
    dur.send_keys("0.5")
    small_movie(d)
    tl = js(d, "window.voxcast.timeline.timeline")
    got = [k["scene"]["layers"][n]["source"]["params"]["sigma"] for k in tl["keyframes"]]
    assert got == [0.5, 4], tl
    before = js(d, "window.voxcast.jobs.current && window.voxcast.jobs.current.id")
    click(d, "#timeline .render-movie")
    cur = wait(d, "the movie job", lambda: (lambda c: c if c and c["id"] != before else None)(
        js(d, "window.voxcast.jobs.current")))
    j = wait_job(s, cur["id"], {"succeeded", "failed", "canceled"}, timeout=MOVIE_S)
    assert j["state"] == "succeeded", j
    import urllib.request
    url = s.url(f"/api/v1/jobs/{cur['id']}/files/movie.{j['params'].get('format', 'mp4')}")
    with urllib.request.urlopen(url, timeout=30) as r:
        raw = r.read()
    with av.open(io.BytesIO(raw)) as c:
        frames = [f.to_ndarray(format="gray").astype(float) for f in c.decode(video=0)]
    assert len(frames) == 6
    # Detail (the mean absolute difference of neighbouring pixels) falls as sigma grows.
    detail = [np.abs(np.diff(f, axis=1)).mean() for f in frames]
    assert detail[0] > 1, "the first frame shows nothing"
    assert all(a >= b for a, b in zip(detail, detail[1:])), detail
    assert detail[-1] < 0.6 * detail[0], detail


def test_preview_interpolates_like_the_server(movie_server, browser):
    """The page's interpolation (the preview) against the server's (the movie): the same
    timeline at the same time gives the same camera; slerp takes the short way."""
    d, s = browser, movie_server
    d.get(s.url("/"))
    wait(d, "the client", lambda: js(d, "!!(window.voxcast && window.voxcast.timeline)"), timeout=15)
    got = d.execute_async_script("""
      const done = arguments[arguments.length - 1];
      import('./timeline.js' + location.search).then((m) => {
        const tl = {keyframes: [
          {time: 0, scene: {camera: {angles: [0, 0, 90], zoom: 1, center: [0, 0, 0]},
                            layers: [{opacity: 1, colormap: 'gray'}]}},
          {time: 2, easing: 'ease-in-out',
           scene: {camera: {angles: [0, 350, 90], zoom: 4, center: [10, 20, 30]},
                   layers: [{opacity: 0, colormap: 'viridis'}]}}]};
        done([0, 0.5, 1, 1.5, 2].map((t) => m.sceneAt(tl, t)));
      }, (e) => done(String(e)));""")
    assert isinstance(got, list), got
    yaw = [round(sc["camera"]["angles"][1], 6) for sc in got]
    # Smoothstep at 1/4, 1/2, 3/4 of the way: 0.15625, 0.5, 0.84375 of -10 degrees.
    assert yaw == [0, -1.5625, -5, -8.4375, 350], yaw
    assert [round(sc["camera"]["zoom"], 6) for sc in got][2] == 2  # geometric: sqrt(1 * 4)
    assert [sc["layers"][0]["colormap"] for sc in got] == ["gray", "gray", "viridis", "viridis", "viridis"]
    assert got[1]["camera"]["center"] == [1.5625, 3.125, 4.6875]


def test_timeline_travels_in_the_url_hash(movie_server, browser):
    """The timeline is saved in the URL hash with the view and restored from it on load; a
    malformed timeline in a link is reported and left out, and the view still applies."""
    import json
    import urllib.parse
    d, s = browser, movie_server
    d.get(s.url("/"))
    wait(d, "the client", lambda: js(d, "!!(window.voxcast && window.voxcast.timeline)"), timeout=15)
    wait(d, "the first frame", lambda: (js(d, "window.voxcast.framesDecoded") or 0) >= 1,
         timeout=FIRST_FRAME_S)
    for yaw in (10, 50):
        d.execute_script("window.voxcast.send({dims: {ndisplay: 3}, camera: {angles: [0, arguments[0], 90]}})",
                         yaw)
        wait(d, f"the view at yaw {yaw}",
             lambda: js(d, "(window.voxcast.scene || {}).camera.angles[1]") == yaw)
        js(d, "window.voxcast.timeline.add()")

    def hashed():
        h = js(d, "location.hash")
        try:
            return json.loads(urllib.parse.unquote(h[1:]))
        except ValueError:
            return {}

    link = wait(d, "the timeline in the hash",
                lambda: len(hashed().get("timeline", {}).get("keyframes", [])) == 2 and hashed())
    assert [k["scene"]["camera"]["angles"][1] for k in link["timeline"]["keyframes"]] == [10, 50], link
    assert link["camera"]["angles"][1] == 50, link  # the view travels beside it
    url = js(d, "location.href")

    # A fresh page from the link: the strip holds the two keyframes again.
    d.get("about:blank")
    d.get(url)
    wait(d, "the restored timeline", lambda: js(
        d, "window.voxcast && window.voxcast.timeline && window.voxcast.timeline.keyframes.length") == 2,
         timeout=FIRST_FRAME_S)
    assert js(d, "window.voxcast.timeline.keyframes.map((k) => k.scene.camera.angles[1])") == [10, 50]
    assert js(d, "window.voxcast.timeline.keyframes[1].duration") == 2

    # A malformed timeline (out of order): reported, not loaded; the view still applies.
    bad = {"camera": {"angles": [0, 30, 90]}, "dims": {"ndisplay": 3},
           "timeline": {"keyframes": [{"time": 2, "scene": {}}, {"time": 1, "scene": {}}]}}
    d.get("about:blank")
    d.get(s.url("/") + "#" + urllib.parse.quote(json.dumps(bad)))
    wait(d, "the warning", lambda: any("timeline ignored" in w for w in
                                       (js(d, "window.voxcast && window.voxcast.warnings") or [])),
         timeout=FIRST_FRAME_S)
    warn = [w for w in js(d, "window.voxcast.warnings") if "timeline ignored" in w]
    assert "keyframes[1].time" in warn[0], warn
    assert js(d, "window.voxcast.timeline.keyframes.length") == 0
    wait(d, "the linked view", lambda: js(d, "(window.voxcast.scene || {camera: {angles: [0, 0]}}).camera.angles[1]") == 30)


def test_preview_plays_on_the_server_and_pauses(movie_server, browser):
    """"preview" asks the server to play the timeline (timeline.play): frames stream while it
    plays, the button pauses it, and the view is then where the server stopped; played to
    the end, the view is the last keyframe's."""
    d, s = browser, movie_server
    open_movie_section(d, s)
    for yaw in (0, 60):
        d.execute_script("window.voxcast.send({dims: {ndisplay: 3}, camera: {angles: [0, arguments[0], 90]}})",
                         yaw)
        wait(d, f"the view at yaw {yaw}",
             lambda: js(d, "(window.voxcast.scene || {}).camera.angles[1]") == yaw)
        click(d, "#timeline .add-keyframe")
    # A long second segment, so that the pause lands mid-way.
    js(d, "window.voxcast.timeline.keyframes[1].duration = 30")
    before = js(d, "window.voxcast.framesDecoded")
    click(d, "#timeline .preview")
    assert js(d, "window.voxcast.timeline.playing") is True
    wait(d, "the button to say pause",
         lambda: d.find_element("css selector", "#timeline .preview").text == "pause")
    wait(d, "frames while it plays", lambda: js(d, "window.voxcast.framesDecoded") > before + 2,
         timeout=FIRST_FRAME_S)
    click(d, "#timeline .preview")  # pause
    wait(d, "the preview to stop", lambda: js(d, "window.voxcast.timeline.playing") is False)
    yaw = js(d, "window.voxcast.scene.camera.angles[1]")
    assert 0 < yaw < 60, yaw
    assert js(d, "window.voxcast.view.camera.angles[1]") == yaw
    assert d.find_element("css selector", "#timeline .preview").text == "preview"
    # Played to the end: the last keyframe's view.
    js(d, "window.voxcast.timeline.keyframes[1].duration = 0.5")
    click(d, "#timeline .preview")
    wait(d, "the preview to end", lambda: js(d, "window.voxcast.timeline.playing") is False
         and abs(js(d, "window.voxcast.scene.camera.angles[1]") - 60) < 1e-6, timeout=30)
