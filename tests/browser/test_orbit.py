"""The <voxcast-orbit> web component (web/voxcast-orbit.js) in headless Chromium.

    /usr/bin/python3 -m pytest tests/browser/test_orbit.py -q -rs

No voxcast binary is needed: the tests write their own orbits (solid-colour tiles, one
colour per tile, packed into several sprite sheets) into a temporary site, serve it with
Python's http.server and read the component's canvas back through its shadow root. The
`browser` fixture (headless Chromium through chromedriver) comes from conftest.py.
"""

from __future__ import annotations

import functools
import http.server
import json
import shutil
import threading
import time
from pathlib import Path

import pytest

from PIL import Image as PIL  # noqa: E402  python3-pil (scripts/bootstrap): never a skip
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.actions import interaction  # noqa: E402
from selenium.webdriver.common.actions.action_builder import ActionBuilder  # noqa: E402
from selenium.webdriver.common.actions.pointer_input import PointerInput  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPONENT = REPO_ROOT / "web" / "voxcast-orbit.js"

# Orbit A: 6 columns x 4 rows of 32x24 tiles, lossless WebP, packed into sheets of at most
# 4x3 tiles, so four sheets of different sizes (4x3, 2x3, 4x1, 2x1) cover the grid.
A_COLS, A_ROWS, A_TW, A_TH = 6, 4, 32, 24
A_SHEET_COLS, A_SHEET_ROWS = 4, 3
# Orbit B (the src-change test): 3x3 tiles of 16x16, JPEG, one sheet, in a sub-folder.
B_COLS, B_ROWS, B_TW, B_TH = 3, 3, 16, 16
VIEW_W, VIEW_H = 320, 240  # the element's size on the main page; 10x the tiles of orbit A

READY_S = 20
SETTLE_S = 10
JPEG_TOL = 12
SLOW_S = 2.0


def colour_a(c: int, r: int) -> tuple[int, int, int]:
    return (20 + 45 * c, 20 + 70 * r, 230 - 35 * c)


def colour_b(c: int, r: int) -> tuple[int, int, int]:
    return (240 - 100 * r, 40 + 90 * c, 100)


def write_orbit(folder: Path, cols, rows, tw, th, sheet_cols, sheet_rows, colour, fmt, sheet_names=None):
    """Writes sheets and orbit.json into folder; returns the manifest."""
    folder.mkdir(parents=True, exist_ok=True)
    ext = {"webp": "webp", "jpeg": "jpg"}[fmt]
    sheets = []
    for r0 in range(0, rows, sheet_rows):
        for c0 in range(0, cols, sheet_cols):
            nc, nr = min(sheet_cols, cols - c0), min(sheet_rows, rows - r0)
            img = PIL.new("RGB", (nc * tw, nr * th))
            for r in range(r0, r0 + nr):
                for c in range(c0, c0 + nc):
                    img.paste(colour(c, r), ((c - c0) * tw, (r - r0) * th, (c - c0 + 1) * tw, (r - r0 + 1) * th))
            name = f"sheet-{r0}-{c0}.{ext}"
            if fmt == "webp":
                img.save(folder / name, "WEBP", lossless=True)
            else:
                img.save(folder / name, "JPEG", quality=95)
            sheets.append({"file": name, "column": c0, "row": r0, "columns": nc, "rows": nr,
                           "width": nc * tw, "height": nr * th})
    manifest = {
        "version": 1,
        "grid": {"columns": cols, "rows": rows},
        "tile": {"width": tw, "height": th},
        "yaw": [-60.0 + 120.0 * i / max(1, cols - 1) for i in range(cols)],
        "pitch": [-45.0 + 90.0 * i / max(1, rows - 1) for i in range(rows)],
        "format": fmt,
        "sheets": sheets,
        "dataset": "synthetic:test",
        "view": {},
    }
    (folder / "orbit.json").write_text(json.dumps(manifest, indent=1))
    return manifest


PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>voxcast-orbit test</title>
<style>body {{ margin: 0; }}</style>
<script>
window.__errors = []; window.__events = [];
addEventListener('error', (e) => __errors.push(String(e.message || e)));
addEventListener('unhandledrejection', (e) => __errors.push('unhandled rejection: ' + ((e.reason && e.reason.message) || e.reason)));
document.addEventListener('voxcast-orbit-ready', (e) => __events.push(['ready', e.detail]));
document.addEventListener('voxcast-orbit-error', (e) => __events.push(['error', e.detail]));
</script>
<script type="module" src="voxcast-orbit.js"></script>
</head><body><voxcast-orbit {attrs}></voxcast-orbit></body></html>
"""


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map,
                      ".js": "text/javascript", ".webp": "image/webp", ".json": "application/json"}

    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_GET(self):
        if self.path.startswith("/slow/"):  # /slow/X is X, answered late (the spinner test)
            time.sleep(SLOW_S)
            self.path = self.path[len("/slow"):]
        super().do_GET()


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """Base URL of a static site with the component, the orbits and one page per case."""
    root = tmp_path_factory.mktemp("orbit-site")
    shutil.copy(COMPONENT, root / "voxcast-orbit.js")
    write_orbit(root, A_COLS, A_ROWS, A_TW, A_TH, A_SHEET_COLS, A_SHEET_ROWS, colour_a, "webp")
    write_orbit(root / "b", B_COLS, B_ROWS, B_TW, B_TH, B_COLS, B_ROWS, colour_b, "jpeg")
    broken = write_orbit(root / "broken", 2, 2, 8, 8, 1, 2, colour_a, "webp")
    (root / "broken" / broken["sheets"][1]["file"]).unlink()  # one sheet is missing
    (root / "badjson").mkdir()
    (root / "badjson" / "orbit.json").write_text("{not json")
    pages = {
        "index.html": f'src="orbit.json" width="{VIEW_W}" height="{VIEW_H}"',
        "plain.html": 'src="orbit.json"',
        "missing.html": f'src="nowhere/orbit.json" width="{VIEW_W}" height="{VIEW_H}"',
        "broken.html": 'src="broken/orbit.json"',
        "badjson.html": 'src="badjson/orbit.json"',
        "slow.html": 'src="slow/orbit.json"',
    }
    for name, attrs in pages.items():
        (root / name).write_text(PAGE.format(attrs=attrs))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


# ---- helpers --------------------------------------------------------------------------

def state(d) -> dict:
    return d.execute_script("""
        const el = document.querySelector('voxcast-orbit');
        const sr = el.shadowRoot, cv = sr.querySelector('canvas');
        const err = sr.querySelector('[part=error]'), spin = sr.querySelector('[part=spinner]');
        const vis = (n) => !!n && getComputedStyle(n).display !== 'none';
        const box = el.getBoundingClientRect();
        return {ready: el.ready, column: el.column, row: el.row, columns: el.columns, rows: el.rows,
                yaw: el.yaw, pitch: el.pitch,
                error: el.error, errorText: err.innerText, errorVisible: vis(err), spinnerVisible: vis(spin),
                canvas: [cv.width, cv.height], css: [box.width, box.height],
                dpr: window.devicePixelRatio, label: el.getAttribute('aria-label'), tabIndex: el.tabIndex,
                focused: document.activeElement === el,
                errors: window.__errors, events: window.__events};""")


def pixel(d, fx: float = 0.5, fy: float = 0.5) -> list[int]:
    """RGBA of the canvas backing store at a fraction of its size."""
    return d.execute_script("""
        const cv = document.querySelector('voxcast-orbit').shadowRoot.querySelector('canvas');
        const x = Math.min(cv.width - 1, Math.floor(cv.width * arguments[0]));
        const y = Math.min(cv.height - 1, Math.floor(cv.height * arguments[1]));
        return Array.from(cv.getContext('2d').getImageData(x, y, 1, 1).data);""", fx, fy)


def wait_for(d, what: str, cond, timeout: float = SETTLE_S):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = cond()
        if last:
            return last
        time.sleep(0.05)
    pytest.fail(f"timed out after {timeout} s waiting for {what}\nlast: {last!r}\nstate: {state(d)!r}")


def open_page(d, site: str, page: str = "index.html", expect_ready: bool = True) -> dict:
    d.get(f"{site}/{page}")
    if expect_ready:
        return wait_for(d, "the orbit to become ready", lambda: (s := state(d))["ready"] and s, READY_S)
    return wait_for(d, "the orbit's error state", lambda: (s := state(d))["error"] and s, READY_S)


def assert_colour(got, want, tol: int = 2, where: str = ""):
    assert got[3] == 255, f"{where}: pixel is not opaque: {got}"
    assert all(abs(g - w) <= tol for g, w in zip(got[:3], want)), f"{where}: got {got[:3]}, want {want}"


def assert_tile(d, c: int, r: int):
    """The whole canvas shows tile (c, r) of orbit A (it fills the 320x240 view exactly)."""
    for fx, fy in ((0.5, 0.5), (0.05, 0.05), (0.95, 0.05), (0.05, 0.95), (0.95, 0.95)):
        assert_colour(pixel(d, fx, fy), colour_a(c, r), where=f"tile ({c},{r}) at ({fx},{fy})")


def shows(d, c: int, r: int):
    s = state(d)
    return s if (s["column"], s["row"]) == (c, r) and pixel(d)[:3] == list(colour_a(c, r)) else None


def move_to(d, fx: float, fy: float):
    """Moves the mouse to a fraction of the element's box (Selenium offsets are from its centre)."""
    el = d.find_element(By.CSS_SELECTOR, "voxcast-orbit")
    ActionChains(d).move_to_element_with_offset(
        el, round((fx - 0.5) * VIEW_W), round((fy - 0.5) * VIEW_H)).perform()


def no_page_errors(d):
    assert state(d)["errors"] == [], "uncaught errors on the page"


# ---- tests ----------------------------------------------------------------------------

def test_becomes_ready(browser, site):
    s = open_page(browser, site)
    assert (s["columns"], s["rows"]) == (A_COLS, A_ROWS)
    assert s["error"] is None and not s["errorVisible"]
    assert not s["spinnerVisible"], "spinner still shown after ready"
    assert s["canvas"] == [VIEW_W, VIEW_H] and s["css"] == [VIEW_W, VIEW_H]
    assert s["tabIndex"] == 0
    assert "arrow keys" in s["label"] and "synthetic:test" in s["label"]
    assert [e[0] for e in s["events"]] == ["ready"]
    assert s["events"][0][1]["columns"] == A_COLS
    no_page_errors(browser)


def test_spinner_until_ready(browser, site):
    browser.get(f"{site}/slow.html")
    s = wait_for(browser, "the element to upgrade",
                 lambda: (s := state(browser)) and s["spinnerVisible"] and s, READY_S)
    assert s["ready"] is False and s["column"] is None and not s["errorVisible"]
    anim = browser.execute_script("""
        const sp = document.querySelector('voxcast-orbit').shadowRoot.querySelector('.spinner');
        return getComputedStyle(sp).animationName;""")
    assert anim == "voxcast-orbit-spin"
    s = wait_for(browser, "ready", lambda: (s := state(browser))["ready"] and s, READY_S + 3 * SLOW_S)
    assert not s["spinnerVisible"]
    assert_tile(browser, A_COLS // 2, A_ROWS // 2)


def test_initial_view_is_the_middle_tile(browser, site):
    s = open_page(browser, site)
    assert (s["column"], s["row"]) == (A_COLS // 2, A_ROWS // 2)
    assert_tile(browser, A_COLS // 2, A_ROWS // 2)


def test_pointer_top_left_shows_first_tile(browser, site):
    open_page(browser, site)
    move_to(browser, 0.03, 0.03)
    s = wait_for(browser, "tile (0,0) after moving to the top left", lambda: shows(browser, 0, 0))
    assert_tile(browser, 0, 0)
    assert (s["yaw"], s["pitch"]) == (-60.0, -45.0)
    no_page_errors(browser)


def test_pointer_bottom_right_shows_last_tile(browser, site):
    open_page(browser, site)
    move_to(browser, 0.97, 0.97)
    wait_for(browser, "the last tile after moving to the bottom right",
             lambda: shows(browser, A_COLS - 1, A_ROWS - 1))
    assert_tile(browser, A_COLS - 1, A_ROWS - 1)


def test_pointer_reaches_every_tile_of_every_sheet(browser, site):
    """The pointer's position maps to (column, row) bands; every tile is drawn from its sheet."""
    open_page(browser, site)
    for r in range(A_ROWS):
        for c in range(A_COLS):
            move_to(browser, (c + 0.5) / A_COLS, (r + 0.5) / A_ROWS)
            wait_for(browser, f"tile ({c},{r})", lambda: shows(browser, c, r))
            assert_tile(browser, c, r)
    no_page_errors(browser)


def test_pointer_motion_is_eased(browser, site):
    """A jump of the pointer across the view passes through the tiles in between, one
    animation frame at a time, and never overshoots."""
    open_page(browser, site)
    browser.execute_script("""
        const el = document.querySelector('voxcast-orbit');
        window.__seq = [];
        (function sample() { window.__seq.push(el.column); requestAnimationFrame(sample); })();""")
    move_to(browser, 0.02, 0.5)
    wait_for(browser, "tile (0,2)", lambda: shows(browser, 0, 2))
    seq = browser.execute_script("return window.__seq;")
    cols = [c for i, c in enumerate(seq) if i == 0 or c != seq[i - 1]]
    assert cols[0] == A_COLS // 2 and cols[-1] == 0, cols
    assert cols == sorted(cols, reverse=True), f"eased motion went back and forth: {cols}"
    assert len(cols) > 2, f"no intermediate tile shown (no easing?): {cols}"


def test_touch_drag(browser, site):
    """A finger drag picks tiles as the mouse does (touch-action: none keeps the page still)."""
    open_page(browser, site)
    assert browser.execute_script(
        "return getComputedStyle(document.querySelector('voxcast-orbit')).touchAction;") == "none"
    el = browser.find_element(By.CSS_SELECTOR, "voxcast-orbit")
    ab = ActionBuilder(browser, mouse=PointerInput(interaction.POINTER_TOUCH, "finger"))
    ab.pointer_action.move_to(el, 0, 0).pointer_down()
    ab.pointer_action.move_to(el, round(0.2 * VIEW_W), -round(0.3 * VIEW_H))
    ab.pointer_action.move_to(el, round(0.45 * VIEW_W), -round(0.45 * VIEW_H))
    ab.pointer_action.pause(0.5)
    ab.pointer_action.pointer_up()
    ab.perform()
    wait_for(browser, "the top-right tile after a drag", lambda: shows(browser, A_COLS - 1, 0))
    assert_tile(browser, A_COLS - 1, 0)
    assert browser.execute_script("return window.scrollY;") == 0
    no_page_errors(browser)


def test_keyboard_arrows_step_column_and_row(browser, site):
    s = open_page(browser, site)
    c0, r0 = s["column"], s["row"]
    browser.execute_script("document.querySelector('voxcast-orbit').focus();")
    assert state(browser)["focused"]

    def press(key, n=1):
        ActionChains(browser).send_keys(*([key] * n)).perform()

    press(Keys.ARROW_LEFT)
    wait_for(browser, "ArrowLeft", lambda: shows(browser, c0 - 1, r0))
    press(Keys.ARROW_UP)
    wait_for(browser, "ArrowUp", lambda: shows(browser, c0 - 1, r0 - 1))
    press(Keys.ARROW_RIGHT, 10)  # clamps at the last column
    wait_for(browser, "ArrowRight x10", lambda: shows(browser, A_COLS - 1, r0 - 1))
    press(Keys.ARROW_DOWN, 10)   # clamps at the last row
    wait_for(browser, "ArrowDown x10", lambda: shows(browser, A_COLS - 1, A_ROWS - 1))
    assert_tile(browser, A_COLS - 1, A_ROWS - 1)
    press(Keys.HOME)
    wait_for(browser, "Home", lambda: shows(browser, A_COLS // 2, A_ROWS // 2))
    # The page did not scroll or lose focus.
    assert state(browser)["focused"]
    assert browser.execute_script("return window.scrollY;") == 0
    no_page_errors(browser)


def test_missing_orbit_json_shows_an_error(browser, site):
    s = open_page(browser, site, "missing.html", expect_ready=False)
    assert s["ready"] is False and s["column"] is None
    assert "404" in s["error"] and "nowhere/orbit.json" in s["error"]
    assert s["errorVisible"] and "Could not load the orbit" in s["errorText"] and "404" in s["errorText"]
    assert not s["spinnerVisible"]
    assert [e[0] for e in s["events"]] == ["error"]
    no_page_errors(browser)


def test_missing_sheet_shows_an_error(browser, site):
    s = open_page(browser, site, "broken.html", expect_ready=False)
    assert s["ready"] is False
    assert "sheet" in s["error"] and "broken/sheet-0-1.webp" in s["error"], s["error"]
    assert s["errorVisible"] and not s["spinnerVisible"]
    no_page_errors(browser)


def test_invalid_json_shows_an_error(browser, site):
    s = open_page(browser, site, "badjson.html", expect_ready=False)
    assert s["ready"] is False and "not valid JSON" in s["error"]
    assert s["errorVisible"]
    no_page_errors(browser)


def test_src_change_reloads(browser, site):
    """Setting src loads the new orbit: another grid, JPEG sheets, in a sub-folder (sheet
    URLs resolve against the new orbit.json), letterboxed into the 320x240 box."""
    open_page(browser, site)
    browser.execute_script("document.querySelector('voxcast-orbit').setAttribute('src', 'b/orbit.json');")
    s = wait_for(browser, "orbit B to be ready",
                 lambda: (s := state(browser))["ready"] and s["columns"] == B_COLS and s)
    assert (s["column"], s["row"]) == (B_COLS // 2, B_ROWS // 2)
    assert [e[0] for e in s["events"]] == ["ready", "ready"]
    assert_colour(pixel(browser), colour_b(1, 1), tol=JPEG_TOL, where="orbit B centre")
    # 16x16 tiles in a 320x240 box: a 240x240 image centred, transparent bars left and right.
    assert pixel(browser, 0.02, 0.5)[3] == 0 and pixel(browser, 0.98, 0.5)[3] == 0
    assert_colour(pixel(browser, 0.2, 0.5), colour_b(1, 1), tol=JPEG_TOL, where="orbit B left edge")
    # Back to a missing file: the error state replaces the view.
    browser.execute_script("document.querySelector('voxcast-orbit').src = 'gone.json';")
    s = wait_for(browser, "the error state", lambda: (s := state(browser))["error"] and s)
    assert not s["ready"] and s["errorVisible"] and pixel(browser)[3] == 0
    no_page_errors(browser)


def test_default_size_and_device_pixel_ratio(browser, site):
    """Without width/height the element is one tile big (CSS pixels), and the canvas backing
    store is scaled by devicePixelRatio."""
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                            {"width": 800, "height": 600, "deviceScaleFactor": 2, "mobile": False})
    s = open_page(browser, site, "plain.html")
    assert s["dpr"] == 2
    assert s["css"] == [A_TW, A_TH]
    assert s["canvas"] == [2 * A_TW, 2 * A_TH]
    assert_tile(browser, A_COLS // 2, A_ROWS // 2)
