"""Several datasets in the web client, and the small things of issue 14: the dataset picker,
`?dataset=` (an index or a name; old links without it open the first), the dataset's name in
the page title, the status line and each job; a misspelt key in the URL hash reported; the
contrast slider's range the same after a reload; the layer panel's labels whole at 1280x800.

    VOXCAST_BIN=build/asan/apps/voxcast/voxcast /usr/bin/python3 -m pytest tests/browser/test_datasets.py -q
"""

from __future__ import annotations

import json
import time
import urllib.parse

import numpy as np
import pytest
from conftest import Server
from selenium.webdriver.support.ui import Select
from test_jobs_panel import call, js, wait

FIRST_FRAME_S = 60
SECOND = "second.npy"


@pytest.fixture(scope="module")
def two(voxcast_bin, tmp_path_factory):
    d = tmp_path_factory.mktemp("two-datasets")
    rng = np.random.default_rng(3)
    np.save(d / SECOND, rng.integers(0, 4000, (24, 40, 56), dtype=np.uint16))
    s = Server(voxcast_bin, extra=[str(d / SECOND), "--data-dir", str(d / "data")])
    yield s
    _, _, body = call(s, "GET", "/api/v1/jobs")
    for j in (body or {}).get("jobs", []):
        if j["state"] in ("queued", "running"):
            call(s, "DELETE", f"/api/v1/jobs/{j['id']}")
    s.check_clean_exit()


def open_page(d, url: str):
    d.get(url)
    wait(d, "the welcome", lambda: js(d, "window.voxcast && window.voxcast.welcome !== null"),
         timeout=FIRST_FRAME_S)
    wait(d, "the first frame", lambda: (js(d, "window.voxcast.framesDecoded") or 0) >= 1,
         timeout=FIRST_FRAME_S)


def page(d) -> dict:
    return d.execute_script("""
      const q = (s) => document.querySelector(s);
      return {title: document.title, status: q('#st-dataset').textContent,
              msg: q('#st-msg').textContent, rowHidden: q('#dataset-row').hidden,
              options: [...q('#dataset-picker').options].map((o) => o.textContent),
              picked: q('#dataset-picker').value, dataset: window.voxcast.dataset,
              welcomeDataset: window.voxcast.welcome && window.voxcast.welcome.dataset,
              warnings: window.voxcast.warnings.slice(),
              ndims: window.voxcast.scene ? window.voxcast.scene.dims.point.length : null};""")


def test_picker_lists_names_and_switches(two, browser):
    open_page(browser, two.url("/"))
    p = page(browser)
    assert p["options"] == ["synthetic:cells", SECOND], p
    assert not p["rowHidden"], "two datasets: the picker shows"
    assert p["title"] == "synthetic:cells — voxcast" and p["status"] == "synthetic:cells", p
    assert p["dataset"] == 0 and p["welcomeDataset"] == 0, p
    Select(browser.find_element("css selector", "#dataset-picker")).select_by_visible_text(SECOND)
    wait(browser, "the page on ?dataset=1", lambda: "dataset=1" in browser.current_url)
    open_page(browser, browser.current_url)
    p = page(browser)
    assert p["title"] == f"{SECOND} — voxcast" and p["status"] == SECOND, p
    assert p["picked"] == "1" and p["welcomeDataset"] == 1, p
    # The scene is the second dataset's: its world extent (56 voxels of x), not the first's.
    assert js(browser, "window.voxcast.scene.dims.point[2]") < 56


def test_dataset_by_name_and_old_links(two, browser):
    open_page(browser, two.url("/", dataset=SECOND))
    assert page(browser)["welcomeDataset"] == 1
    open_page(browser, two.url("/") + "#" + urllib.parse.quote(json.dumps({"camera": {"zoom": 2}})))
    p = page(browser)
    assert p["welcomeDataset"] == 0 and p["warnings"] == [], p
    wait(browser, "the linked zoom", lambda: js(browser, "window.voxcast.scene.camera.zoom") == 2)


@pytest.mark.parametrize("bad", ["7", "nope.tif", "-1", "../../etc/passwd"])
def test_unknown_dataset_is_reported(two, browser, bad):
    open_page(browser, two.url("/", dataset=bad))
    p = page(browser)
    assert p["welcomeDataset"] == 0, "an unknown dataset shows the first one"
    assert any(f"?dataset={bad}: no such dataset" in w for w in p["warnings"]), p
    assert f"?dataset={bad}" in p["msg"], p
    logs = " ".join(e["message"] for e in browser.get_log("browser"))
    assert f"?dataset={bad}" in logs


def test_misspelt_hash_key_is_reported_and_the_rest_applies(two, browser):
    view = {"camera": {"zoon": 3, "zoom": 2}, "layer": [], "layers": [{"colourmap": "magma",
                                                                      "colormap": "magma"}]}
    open_page(browser, two.url("/") + "#" + urllib.parse.quote(json.dumps(view)))
    wait(browser, "the linked zoom", lambda: js(browser, "window.voxcast.scene.camera.zoom") == 2)
    assert js(browser, "window.voxcast.scene.layers[0].colormap") == "magma"
    p = page(browser)
    msg = " ".join(p["warnings"])
    for key in ("'camera.zoon'", "'layer'", "'layers[0].colourmap'"):
        assert key in msg, msg
    assert "camera.zoon" in p["msg"], p
    assert "camera.zoon" in " ".join(e["message"] for e in browser.get_log("browser"))


def test_hash_that_is_not_json_is_reported(two, browser):
    open_page(browser, two.url("/") + "#%7Bnot-json")
    assert any("URL hash ignored" in w for w in page(browser)["warnings"])


def slider_ranges(d):
    return d.execute_script("""
      return [...document.querySelectorAll('#layers .layer')].map((card) =>
        [...card.querySelectorAll('input[type=range]')].slice(0, 2).map((r) => [+r.min, +r.max]));""")


def test_contrast_range_survives_a_reload(two, browser):
    open_page(browser, two.url("/", dataset=1))
    wait(browser, "the layer panel", lambda: slider_ranges(browser))
    before = slider_ranges(browser)
    lo, hi = before[0][1]
    clim = js(browser, "window.voxcast.scene.layers[0].contrast_limits")
    # Limits narrower than the default: the old client derived the range from them.
    new = [clim[0], clim[0] + (clim[1] - clim[0]) / 4]
    browser.execute_script("window.voxcast.send({layers: [{contrast_limits: arguments[0]}]})", new)
    wait(browser, "the new limits in the hash", lambda: urllib.parse.quote(json.dumps(new[1]))[:4]
         in browser.current_url and js(browser, "window.voxcast.scene.layers[0].contrast_limits")[1] == new[1])
    time.sleep(0.6)  # the hash follows acks at most 4 times a second
    url = browser.current_url
    assert "#" in url
    open_page(browser, url)
    wait(browser, "the linked limits", lambda: js(browser, "window.voxcast.scene.layers[0].contrast_limits")[1] == new[1])
    wait(browser, "the layer panel", lambda: slider_ranges(browser))
    time.sleep(0.3)
    assert slider_ranges(browser) == before, (before, slider_ranges(browser), lo, hi)


def test_layer_panel_labels_are_whole(two, browser):
    """At 1280x800 (the fixture's window) no label of the layer panel is cut ("rend…"), in 2D
    and in 3D, nor the picker's."""
    open_page(browser, two.url("/"))
    for ndisplay in (2, 3):
        browser.execute_script("window.voxcast.send({dims: {ndisplay: arguments[0]}})", ndisplay)
        wait(browser, f"ndisplay {ndisplay}", lambda: js(browser, "window.voxcast.scene.dims.ndisplay") == ndisplay)
        time.sleep(0.2)
        cut = browser.execute_script("""
          return [...document.querySelectorAll('#panel label, #panel .row > *')]
            .filter((e) => e.getClientRects().length && e.scrollWidth > e.clientWidth + 0.5 &&
                           getComputedStyle(e).overflow !== 'visible')
            .map((e) => `${e.tagName} '${e.textContent}' ${e.scrollWidth}>${e.clientWidth}`);""")
        labels = browser.execute_script(
            "return [...document.querySelectorAll('#layers .row > label')].map((e) => e.textContent)")
        assert "rendering" in labels
        assert cut == [], f"cut in {ndisplay}D: {cut}"


def test_jobs_say_their_dataset(two, browser):
    open_page(browser, two.url("/", dataset=1))
    job = browser.execute_async_script("""
      const done = arguments[arguments.length - 1];
      window.voxcast.jobs.submit({columns: 2, rows: 1, size: 32}).then((j) => done(j));""")
    assert job and job["params"]["dataset"] == 1, job
    assert job["dataset"] == {"id": 1, "name": SECOND, "location": job["dataset"]["location"]}, job
    assert job["dataset"]["location"].endswith(SECOND)
    if not browser.execute_script("return document.getElementById('orbit-section').open"):
        browser.find_element("css selector", "#orbit-section > summary").click()
    wait(browser, "the job listed with its dataset", lambda: browser.execute_script(
        "const li = document.querySelector(`#jobs li.job[data-id='${arguments[0]}'] .dataset`);"
        "return li && li.textContent;", job["id"]) == SECOND)
    status, _, body = call(two, "GET", f"/api/v1/jobs/{job['id']}")
    assert status == 200 and body["job"]["dataset"]["name"] == SECOND
