"""Derived layers in the view files of `voxcast render` and `voxcast orbit`: a layer whose
source is {"pipeline", "input", "params"} is drawn as the pipeline's result (checked pixel
for pixel against scipy through the contrast mapping), chains (nested, or {"layer": N}
onto another layer of the view) work, and a cycle of layer references is an error that
names it. Bad derived sources are usage errors naming the field."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.ndimage as ndi

from vxhelpers import random_zyx_zarr
from PIL import Image

SHAPE = (5, 40, 60)  # z, y, x
LO, HI = 500.0, 3500.0


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("viewpipes") / "r.ome.zarr"
    return path, random_zyx_zarr(path, SHAPE, (2, 16, 16), seed=11)


def view(tmp_path, layers, z=2):
    p = tmp_path / "view.json"
    p.write_text(json.dumps({
        "canvas": {"width": SHAPE[2], "height": SHAPE[1]},
        "camera": {"zoom": 1.0},
        "dims": {"point": [z, 19.5, 29.5]},
        "layers": layers,
    }))
    return str(p)


def shown(source, **kw):
    return {"source": source, "colormap": "gray", "contrast_limits": [LO, HI],
            "interpolation": "nearest", **kw}


def through_contrast(plane):
    return np.rint(np.clip((plane.astype(float) - LO) / (HI - LO), 0, 1) * 255)


def rendered(run_ok, path, tmp_path, v):
    out = tmp_path / "out.png"
    run_ok("render", path, "--view", v, "-o", out)
    return np.asarray(Image.open(out).convert("RGBA"))[..., 0].astype(int)


def test_render_draws_a_derived_layer(run_ok, store, tmp_path):
    _, data = store
    v = view(tmp_path, [shown({"pipeline": "gaussian", "input": 0, "params": {"sigma": 1.5}})])
    got = rendered(run_ok, store[0], tmp_path, v)
    want = through_contrast(ndi.gaussian_filter(data.astype(np.float64), 1.5)[2])
    # 1: the value is quantized to 4096 steps before the colormap.
    assert np.abs(got - want).max() <= 1


def test_render_chains_onto_another_layer(run_ok, store, tmp_path):
    _, data = store
    gauss = {"pipeline": "gaussian", "input": 0, "params": {"sigma": 1.5}}
    v = view(tmp_path, [
        {"visible": False},
        shown({"pipeline": "median", "input": {"layer": 2}, "params": {"radius": 1}}),
        shown(gauss, visible=False),
    ])
    got = rendered(run_ok, store[0], tmp_path, v)
    g = ndi.gaussian_filter(data.astype(np.float64), 1.5).astype(np.float32)
    want = through_contrast(ndi.median_filter(g, size=3)[2])
    assert np.abs(got - want).max() <= 1
    # The same chain written nested draws the same picture.
    v = view(tmp_path, [{"visible": False},
                        shown({"pipeline": "median", "input": gauss, "params": {"radius": 1}})])
    assert np.abs(rendered(run_ok, store[0], tmp_path, v) - want).max() <= 1


@pytest.mark.parametrize("layers, message", [
    ([shown({"pipeline": "gaussian", "input": {"layer": 1}}),
      shown({"pipeline": "median", "input": {"layer": 0}})],
     "field 'layers[0].source': a cycle of derived sources: layers[0] -> layers[1] -> layers[0]"),
    ([shown({"pipeline": "gaussian", "input": {"layer": 0}})],
     "a cycle of derived sources: layers[0] -> layers[0]"),
    ([{}, shown({"pipeline": "gaussian", "input": {"pipeline": "dog", "input": {"layer": 1}}})],
     "a cycle of derived sources: layers[1] -> layers[1]"),
])
def test_a_cycle_is_an_error_naming_it(run, store, tmp_path, layers, message):
    res = run("render", store[0], "--view", view(tmp_path, layers), "-o", tmp_path / "x.png")
    assert res.returncode == 2, res.stderr
    assert message in res.stderr, res.stderr
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("source, message", [
    ({"pipeline": "sharpen"}, "field 'layers[0].source.pipeline': unknown pipeline 'sharpen'"),
    ({"pipeline": "gaussian", "params": {"sigma": -1}},
     "field 'layers[0].source.params.sigma': must be >= 0"),
    ({"pipeline": "gaussian", "colour": 1}, "field 'layers[0].source.colour': unknown"),
    ({"pipeline": "gaussian", "input": {"layer": 7}}, "names a layer of this view, 0..0"),
    ({"pipeline": "gaussian", "input": {"layer": "x"}}, "field 'layers[0].source.input'"),
    ({"pipeline": "gaussian", "input": 3}, "source 3 is not one of 0..0"),
    ({"pipeline": 5}, "expected a pipeline name"),
])
def test_bad_derived_sources_name_the_field(run, store, tmp_path, source, message):
    res = run("render", store[0], "--view", view(tmp_path, [shown(source)]),
              "-o", tmp_path / "x.png")
    assert res.returncode == 2 and message in res.stderr, res.stderr


def test_orbit_takes_a_view_with_a_derived_layer(run_ok, store, tmp_path):
    p = tmp_path / "orbit.json"
    p.write_text(json.dumps({"layers": [
        {"source": {"pipeline": "gaussian", "input": 0, "params": {"sigma": 1}},
         "contrast_limits": [LO, HI], "colormap": "gray"}]}))
    out = tmp_path / "orbit"
    res = run_ok("orbit", store[0], "--view", p, "--grid", "2x1", "--size", "32", "-o", out, "-q")
    assert "wrote 2 views" in res.stdout, res.stdout
    assert (out / "index.html").exists(), sorted(x.name for x in out.iterdir())


def test_an_orbit_job_over_http_takes_a_derived_layer(run_ok, serve, store, tmp_path):
    # The server's orbit job resolves derived layers as `voxcast orbit` does: same sheets.
    from test_jobs import call, wait_state
    layer = {"source": {"pipeline": "gaussian", "input": 0, "params": {"sigma": 1}},
             "contrast_limits": [LO, HI], "colormap": "gray"}
    p = tmp_path / "orbit.json"
    p.write_text(json.dumps({"layers": [layer]}))
    run_ok("orbit", store[0], "--view", p, "--grid", "2x1", "--size", "32", "--format", "webp",
           "--quality", "100", "-o", tmp_path / "cli", "-q")
    s = serve(store[0], "--data-dir", tmp_path / "d")
    params = {"view": {"layers": [layer]}, "columns": 2, "rows": 1, "size": 32,
              "format": "webp", "quality": 100}
    code, _, body = call(s, "PUT", "/api/v1/jobs/g", {"kind": "orbit", "params": params})
    assert code == 202, body
    j = wait_state(s, "g", {"succeeded", "failed"})
    assert j["state"] == "succeeded", j
    plain = {"view": {"layers": [{"contrast_limits": [LO, HI], "colormap": "gray"}]},
             **{k: v for k, v in params.items() if k != "view"}}
    assert call(s, "PUT", "/api/v1/jobs/p", {"kind": "orbit", "params": plain})[0] == 202
    assert wait_state(s, "p", {"succeeded", "failed"})["state"] == "succeeded"
    sheet = "sheet-0-0.webp"
    got = np.asarray(Image.open(tmp_path / "d" / "jobs" / "g" / "files" / sheet), np.int16)
    want = np.asarray(Image.open(tmp_path / "cli" / sheet), np.int16)
    unfiltered = np.asarray(Image.open(tmp_path / "d" / "jobs" / "p" / "files" / sheet), np.int16)
    assert np.abs(got - want).max() <= 2, "the job's sheet is not the CLI's"
    assert np.abs(got - unfiltered).mean() > 1, "the gaussian changed nothing"
    # A bad derived layer is refused at submit, naming the field.
    bad = {**params, "view": {"layers": [{"source": {"pipeline": "gaussian",
                                                     "params": {"sigma": -1}}}]}}
    code, _, body = call(s, "PUT", "/api/v1/jobs/b", {"kind": "orbit", "params": bad})
    assert code == 400 and "params.view" in str(body) and "sigma" in str(body), body

