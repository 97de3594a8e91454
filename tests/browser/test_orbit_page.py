"""The index.html that `voxcast orbit` writes, itself, in headless Chromium: over HTTP (a
static server on the output folder) and opened from disk (file://, as a double-click does).
The page must run its inlined component (not show it as text), draw a tile, and turn when
the pointer moves over it.

    VOXCAST_BIN=build/asan/apps/voxcast/voxcast /usr/bin/python3 -m pytest tests/browser/test_orbit_page.py -q

From file:// the sheets are images of another origin to the page, so the canvas cannot be
read back: there the test reads the element's screenshot instead (both ways over HTTP).
"""

from __future__ import annotations

import functools
import http.server
import io
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import voxcast_path
from PIL import Image
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By

DATA = "synthetic:cells?shape=32x64x64&chunk=32"
COLS, ROWS, SIZE = 5, 3, 48
READY_S = 30


def write_orbit(out: Path, data: str = DATA) -> None:
    res = subprocess.run([str(voxcast_path()), "orbit", data, "--grid", f"{COLS}x{ROWS}",
                          "--size", str(SIZE), "--quality", "100", "-q", "-o", str(out)],
                         capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert res.returncode == 0, res.stderr[-3000:]


@pytest.fixture(scope="module")
def orbit_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("orbit-page") / "site"
    write_orbit(out)
    return out


@pytest.fixture(scope="module")
def http_site(orbit_dir):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(orbit_dir))
    handler.log_message = lambda *a: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def state(d) -> dict:
    return d.execute_script("""
      const el = document.querySelector('voxcast-orbit');
      return {defined: !!customElements.get('voxcast-orbit'), ready: el ? el.ready : null,
              error: el ? el.error : null, column: el ? el.column : null, row: el ? el.row : null,
              text: document.body.innerText, title: document.title};""")


def wait_ready(d) -> dict:
    deadline = time.monotonic() + READY_S
    s = state(d)
    while time.monotonic() < deadline:
        s = state(d)
        if s["ready"] or s["error"]:
            break
        time.sleep(0.05)
    logs = "\n".join(e["message"] for e in d.get_log("browser"))
    assert s["defined"], f"the inlined component did not run: {s}\n{logs}"
    assert s["error"] is None, f"the orbit failed: {s['error']}\n{logs}"
    assert s["ready"], f"not ready after {READY_S} s: {s}\n{logs}"
    return s


def shot(d) -> np.ndarray:
    """The element as it is on screen, (h, w, 3)."""
    png = d.find_element(By.CSS_SELECTOR, "voxcast-orbit").screenshot_as_png
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)


def move_to(d, fx: float):
    el = d.find_element(By.CSS_SELECTOR, "voxcast-orbit")
    w = el.size["width"]
    ActionChains(d).move_to_element_with_offset(el, round((fx - 0.5) * w * 0.98), 0).perform()


def wait_column(d, c: int) -> dict:
    deadline = time.monotonic() + 10
    s = state(d)
    while time.monotonic() < deadline:
        s = state(d)
        if s["column"] == c:
            return s
        time.sleep(0.05)
    pytest.fail(f"the pointer did not turn the view to column {c}: {s}", pytrace=False)


def check_page(d, url: str):
    d.get(url)
    s = wait_ready(d)
    # The component ran instead of showing its source as text.
    assert "customElements" not in s["text"] and "voxcast-orbit.js" not in s["text"], s["text"][:500]
    assert "Move the pointer" in s["text"]
    assert s["title"].startswith("synthetic:cells"), s["title"]
    assert (s["column"], s["row"]) == (COLS // 2, ROWS // 2)
    middle = shot(d)
    assert (middle.max(axis=2) > 30).mean() > 0.02, "the tile on screen is blank"
    # Moving over it turns it: the leftmost column, then the rightmost, each a new picture.
    move_to(d, 0.0)
    wait_column(d, 0)
    time.sleep(0.2)
    left = shot(d)
    move_to(d, 1.0)
    wait_column(d, COLS - 1)
    time.sleep(0.2)
    right = shot(d)
    assert np.abs(left - middle).mean() > 2, "column 0 looks like the middle column"
    assert np.abs(right - left).mean() > 2, "the last column looks like the first"


def test_generated_page_over_http(browser, http_site):
    check_page(browser, f"{http_site}/index.html")


def test_generated_page_from_disk(browser, orbit_dir):
    check_page(browser, (orbit_dir / "index.html").as_uri())


def test_page_carries_orbit_json_and_escapes_it(orbit_dir):
    html = (orbit_dir / "index.html").read_text()
    # Two <script> elements (the manifest, the component), so two end tags: nothing inlined
    # closes one early, nor opens an HTML comment inside one.
    assert html.lower().count("</script") == 2 and "<!--" not in html
    assert 'id="voxcast-orbit-manifest"' in html and 'manifest="voxcast-orbit-manifest"' in html


def test_hostile_dataset_name_stays_text(browser, tmp_path):
    """A dataset path with '</script>' in it (a folder named 'x<') lands in orbit.json and
    the page title: it must neither end the inlined manifest nor become markup."""
    folder = tmp_path / "x<"
    folder.mkdir()
    rng = np.random.default_rng(1)
    np.save(folder / "script><b>bold.npy", rng.integers(0, 255, (16, 24, 24), dtype=np.uint8))
    out = tmp_path / "evil"
    write_orbit(out, str(folder / "script><b>bold.npy"))
    html = (out / "index.html").read_text()
    assert html.lower().count("</script") == 2
    browser.get((out / "index.html").as_uri())
    s = wait_ready(browser)
    assert s["title"].startswith("script><b>bold.npy"), s["title"]
    assert browser.execute_script("return document.querySelectorAll('b').length") == 0


def test_component_from_disk_without_manifest_says_why(browser, orbit_dir, tmp_path):
    """The component alone, opened from disk with src= only: fetch() is refused there, and
    the error says so and what works."""
    page = orbit_dir / "bare.html"
    js = (Path(__file__).resolve().parents[2] / "web" / "voxcast-orbit.js").read_text()
    js = js.replace("</script", "<\\/script")
    page.write_text('<!doctype html><voxcast-orbit src="orbit.json"></voxcast-orbit>'
                    f'<script type="module">{js}</script>')
    try:
        browser.get(page.as_uri())
        deadline = time.monotonic() + READY_S
        while time.monotonic() < deadline and not state(browser)["error"]:
            time.sleep(0.05)
        err = state(browser)["error"] or ""
        assert "file://" in err and "http.server" in err, err
    finally:
        page.unlink()
