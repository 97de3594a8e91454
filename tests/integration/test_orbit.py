"""`voxcast orbit`: the sheets and orbit.json agree, and every tile is what `voxcast render`
draws for that yaw and pitch (lossless WebP, so exactly); several sheets past 4096 px;
bad arguments."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from vxhelpers import error_line

DATA = "synthetic:cells?shape=48x64x64&chunk=32"


def tile(doc, out, row, col):
    for s in doc["sheets"]:
        if s["column"] <= col < s["column"] + s["columns"] and s["row"] <= row < s["row"] + s["rows"]:
            im = np.asarray(Image.open(out / s["file"]).convert("RGB"))
            assert im.shape == (s["height"], s["width"], 3)
            w, h = doc["tile"]["width"], doc["tile"]["height"]
            x, y = (col - s["column"]) * w, (row - s["row"]) * h
            return im[y:y + h, x:x + w]
    raise AssertionError(f"no sheet holds tile {row},{col}")


def test_tiles_are_the_renders_of_their_yaw_and_pitch(run_ok, tmp_path):
    out = tmp_path / "orbit"
    view = tmp_path / "view.json"
    view.write_text(json.dumps({"layers": [{"rendering": "mip"}, {"rendering": "translucent"}]}))
    run_ok("orbit", DATA, "--view", view, "--grid", "4x3", "--size", "64", "--yaw", "-30:30",
           "--pitch", "-20:20", "--format", "webp", "--quality", "100", "-o", out, "-q")
    doc = json.loads((out / "orbit.json").read_text())
    assert doc["grid"] == {"columns": 4, "rows": 3} and doc["tile"] == {"width": 64, "height": 64}
    assert doc["yaw"] == [-30, -10, 10, 30] and doc["pitch"] == [-20, 0, 20]
    assert len(doc["sheets"]) == 1 and doc["format"] == "webp"
    html = (out / "index.html").read_text()
    assert "<voxcast-orbit" in html and "customElements.define" in html  # component inlined
    base = doc["view"]
    tiles = {}
    for row, col in [(0, 0), (1, 2), (2, 3)]:
        scene = json.loads(json.dumps(base))
        a = base["camera"]["angles"]
        scene["camera"]["angles"] = [a[0], a[1] + doc["yaw"][col], a[2] + doc["pitch"][row]]
        v = tmp_path / f"v{row}{col}.json"
        v.write_text(json.dumps(scene))
        png = tmp_path / f"r{row}{col}.png"
        run_ok("render", DATA, "--view", v, "-o", png)
        want = np.asarray(Image.open(png).convert("RGB")).astype(int)
        got = tile(doc, out, row, col).astype(int)
        assert np.abs(got - want).max() <= 1, (row, col)
        assert want.max() > 50  # not an empty picture
        tiles[(row, col)] = got
    assert not np.array_equal(tiles[(0, 0)], tiles[(2, 3)])  # the views differ


def test_sheets_split_past_4096_pixels(run_ok, tmp_path):
    out = tmp_path / "wide"
    run_ok("orbit", DATA, "--grid", "70x2", "--size", "64", "--format", "jpeg", "-o", out, "-q")
    doc = json.loads((out / "orbit.json").read_text())
    assert [(s["column"], s["columns"], s["width"]) for s in doc["sheets"]] == [(0, 35, 2240), (35, 35, 2240)]
    for s in doc["sheets"]:
        assert Image.open(out / s["file"]).size == (s["width"], s["height"])
    assert tile(doc, out, 1, 69).shape == (64, 64, 3)


@pytest.mark.parametrize("args,what", [
    (["--grid", "0x3"], "--grid"),
    (["--grid", "wide"], "--grid"),
    (["--yaw", "60"], "--yaw"),
    (["--pitch", "a:b"], "--pitch"),
])
def test_bad_arguments_name_the_option(run, tmp_path, args, what):
    res = run("orbit", DATA, *args, "-o", tmp_path / "x", "-q")
    error_line(res, what, code=2)


def test_bad_format_and_2d_data(run, tmp_path):
    res = run("orbit", DATA, "--format", "gif", "-o", tmp_path / "x")
    assert res.returncode == 2 and "--format" in res.stderr
    np.save(tmp_path / "plane.npy", np.zeros((16, 16), dtype=np.uint8))
    res = run("orbit", tmp_path / "plane.npy", "-o", tmp_path / "y", "-q")
    error_line(res, "three spatial axes")
