"""The screenshot button of the web client: a PNG of the view at 1x, 2x or 4x the canvas,
rendered by the server at final quality (POST /api/v1/screenshot; its equality with
`voxcast render` is tested in tests/integration/test_screenshot.py), and a failure named in
the status line.

    VOXCAST_BIN=build/asan/apps/voxcast/voxcast /usr/bin/python3 -m pytest tests/browser/test_screenshot.py -q
"""

from __future__ import annotations

import base64
import io
import json
import urllib.request

import numpy as np
from PIL import Image
from selenium.webdriver.support.ui import Select
from test_jobs_panel import js, wait

FIRST_FRAME_S = 60


def open_page(d, url):
    d.get(url)
    wait(d, "the first frame", lambda: (js(d, "window.voxcast && window.voxcast.framesDecoded") or 0) >= 1,
         timeout=FIRST_FRAME_S)


def blob_png(d, url) -> np.ndarray:
    b64 = d.execute_async_script("""
      const done = arguments[arguments.length - 1];
      fetch(arguments[0]).then((r) => r.blob()).then((b) => {
        const fr = new FileReader();
        fr.onload = () => done(fr.result.split(',')[1]);
        fr.readAsDataURL(b);
      });""", url)
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))).convert("RGBA"))


def test_button_saves_a_larger_png_of_the_view(server, browser):
    open_page(browser, server.url("/"))
    canvas = js(browser, "window.voxcast.scene.canvas")
    Select(browser.find_element("css selector", "#screenshot-scale")).select_by_value("2")
    browser.find_element("css selector", "#screenshot").click()
    shot = wait(browser, "the screenshot", lambda: js(browser, "window.voxcast.lastScreenshot"), timeout=120)
    assert "error" not in shot, shot
    assert (shot["width"], shot["height"]) == (2 * canvas["width"], 2 * canvas["height"])
    got = blob_png(browser, shot["url"])
    assert got.shape == (2 * canvas["height"], 2 * canvas["width"], 4)
    assert (got[..., :3].max(axis=2) > 30).mean() > 0.02, "the screenshot is blank"
    assert shot["filename"].startswith("synthetic_cells") and shot["filename"].endswith(".png")
    # What the button asked for is the view on screen, and the server answers it the same way
    # to anyone.
    req = shot["request"]
    assert req["scene"]["camera"] == js(browser, "window.voxcast.scene.camera")
    r = urllib.request.urlopen(urllib.request.Request(
        server.url("/api/v1/screenshot"), data=json.dumps(req).encode(), method="POST"), timeout=120)
    again = np.asarray(Image.open(io.BytesIO(r.read())).convert("RGBA"))
    assert np.array_equal(again, got)
    assert "saved" in browser.find_element("css selector", "#st-msg").text


def test_screenshots_beyond_two_at_once_are_waited_out(server, browser):
    # The server renders 2 at once and answers more with 429; the page asks again.
    open_page(browser, server.url("/"))
    shots = browser.execute_async_script("""
      const done = arguments[arguments.length - 1];
      Promise.all([1, 2, 3, 4].map(() => window.voxcast.screenshot(2))).then(done);""")
    assert all("error" not in s and s["bytes"] > 0 for s in shots), shots
    with urllib.request.urlopen(server.url("/api/v1/health"), timeout=30) as r:
        assert json.loads(r.read())["http"]["overloaded"] > 0, "no 429: nothing was waited out"


def test_failure_is_named_in_the_status_line(server, browser):
    open_page(browser, server.url("/"))
    shot = browser.execute_async_script("""
      const done = arguments[arguments.length - 1];
      window.voxcast.dataset = 9;
      window.voxcast.screenshot(1).then((s) => { window.voxcast.dataset = 0; done(s); });""")
    assert "field 'dataset'" in shot["error"], shot
    assert "field 'dataset'" in browser.find_element("css selector", "#st-msg").text
