"""Pipelines against their scipy / scikit-image references, through `voxcast convert
--pipeline`: the input is an OME-Zarr of 16^3 chunks, so every result crosses chunk borders
(each chunk is computed alone from its halo) and array borders (scipy's 'reflect')."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.ndimage as ndi
import skimage.filters
import zarr

SHAPE = (37, 41, 45)  # not multiples of the chunk: edge chunks too


@pytest.fixture(scope="module")
def volume(tmp_path_factory, run_ok):
    """(array, path of an OME-Zarr of it with 16^3 chunks and a pyramid)."""
    rng = np.random.default_rng(15)
    base = ndi.gaussian_filter(rng.normal(1000, 300, SHAPE), 1.5)  # blobs, not just noise
    a = np.clip(base + rng.normal(0, 100, SHAPE), 0, 65535).astype(np.uint16)
    root = tmp_path_factory.mktemp("pipelines")
    np.save(root / "in.npy", a)
    out = root / "in.ome.zarr"
    run_ok("convert", root / "in.npy", out, "--chunk", "16", "-q")
    return a, out


def processed(run_ok, tmp_path, src, *pipelines):
    out = tmp_path / "out.ome.zarr"
    args = ["convert", src, out, "--chunk", "16", "--levels", "1", "-q"]
    for p in pipelines:
        args += ["--pipeline", p]
    run_ok(*args)
    return np.asarray(zarr.open(str(out), mode="r")["0"])


def test_gaussian_equals_scipy(volume, run_ok, tmp_path):
    a, src = volume
    got = processed(run_ok, tmp_path, src, "gaussian:sigma=2")
    want = ndi.gaussian_filter(a.astype(np.float64), 2.0)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=2e-2)


def test_gaussian_per_axis(volume, run_ok, tmp_path):
    a, src = volume
    got = processed(run_ok, tmp_path, src, "gaussian:sigma=0.5/1/3")
    want = ndi.gaussian_filter(a.astype(np.float64), (0.5, 1.0, 3.0))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=2e-2)


def test_median_equals_scipy(volume, run_ok, tmp_path):
    a, src = volume
    got = processed(run_ok, tmp_path, src, "median:radius=1")
    assert got.dtype == np.uint16
    np.testing.assert_array_equal(got, ndi.median_filter(a, size=3))


def test_difference_of_gaussians(volume, run_ok, tmp_path):
    a, src = volume
    got = processed(run_ok, tmp_path, src, "dog:low_sigma=1,high_sigma=3")
    f = a.astype(np.float64)
    want = ndi.gaussian_filter(f, 1.0) - ndi.gaussian_filter(f, 3.0)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=2e-2)


def test_tophat_equals_scipy(volume, run_ok, tmp_path):
    a, src = volume
    got = processed(run_ok, tmp_path, src, "tophat:radius=3")
    np.testing.assert_array_equal(got, ndi.white_tophat(a, size=7))


def test_otsu_threshold_on_the_coarsest_level(volume, run_ok, tmp_path):
    a, src = volume
    levels = zarr.open(str(src), mode="r")
    coarsest = np.asarray(levels[str(len(levels) - 1)])
    t = skimage.filters.threshold_otsu(coarsest)
    got = processed(run_ok, tmp_path, src, "threshold:method=otsu")
    assert got.dtype == np.uint8
    want = (a > t).astype(np.uint8)
    assert 0 < want.sum() < want.size
    np.testing.assert_array_equal(got, want)


def test_chain(volume, run_ok, tmp_path):
    a, src = volume
    got = processed(run_ok, tmp_path, src, "median:radius=1", "gaussian:sigma=1.5")
    want = ndi.gaussian_filter(ndi.median_filter(a, size=3).astype(np.float64), 1.5)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=2e-2)


def test_bad_pipelines_are_usage_errors(volume, run, tmp_path):
    _, src = volume
    res = run("convert", src, tmp_path / "x.zarr", "--pipeline", "sharpen:amount=2")
    assert res.returncode == 2
    assert "unknown pipeline 'sharpen'" in res.stderr and "gaussian" in res.stderr
    res = run("convert", src, tmp_path / "y.zarr", "--pipeline", "gaussian:sigma=-1")
    assert res.returncode == 2
    assert "gaussian.params.sigma" in res.stderr and ">= 0" in res.stderr
    res = run("convert", src, tmp_path / "z.zarr", "--pipeline", "median:size=3")
    assert res.returncode == 2
    assert "median.params.size: unknown parameter" in res.stderr


def test_memory_exhaustion_is_a_clear_error(volume, run, tmp_path):
    """A chunk whose working memory cannot fit the budget fails with out_of_memory naming
    the budget and what holds it; the process exits cleanly (no crash, no sanitizer report)."""
    _, src = volume
    # sigma 8: a 16^3 chunk needs its 80^3 float32 block (2 MiB) in a 1 MiB budget.
    res = run("--cache-mb", "1", "convert", src, tmp_path / "oom.zarr", "-q",
              "--pipeline", "gaussian:sigma=8")
    assert res.returncode == 1, res.stderr
    assert "out of memory" in res.stderr and "budget 'host'" in res.stderr, res.stderr
    assert "scratch gaussian" in res.stderr and "held by" in res.stderr, res.stderr


def test_pipelines_lists_schemas(run_ok):
    out = json.loads(run_ok("pipelines", "--json").stdout)
    by_name = {p["name"]: p for p in out}
    assert {"gaussian", "median", "dog", "tophat", "threshold"} <= set(by_name)
    sigma = by_name["gaussian"]["schema"]["properties"]["sigma"]
    assert sigma["default"] == 1.0 and sigma["x-unit"] == "physical"
    assert by_name["threshold"]["schema"]["properties"]["method"]["enum"] == ["otsu", "manual"]
    text = run_ok("pipelines").stdout
    assert "median 1.0" in text and "radius = 1" in text


def _post(url):
    import urllib.error
    import urllib.request
    req = urllib.request.Request(url, data=b"", method="POST")
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_server_lists_loads_and_unloads_pipelines(serve):
    from vxhelpers import http_get, host_budget
    s = serve("synthetic:cells?shape=32x64x64&chunk=32", "--cache-mb", "64")
    code, body = http_get(f"{s.http}/api/v1/pipelines")
    assert code == 200
    listed = {p["name"]: p for p in json.loads(body)["pipelines"]}
    assert all(p["status"] == "not_loaded" for p in listed.values())  # lazy: nothing yet
    assert listed["median"]["schema"]["properties"]["radius"]["type"] == "integer"

    code, body = _post(f"{s.http}/api/v1/pipelines/gaussian/load")
    assert (code, body["status"]) == (200, "loaded")
    code, body = http_get(f"{s.http}/api/v1/pipelines")
    listed = {p["name"]: p for p in json.loads(body)["pipelines"]}
    assert listed["gaussian"]["status"] == "loaded" and listed["gaussian"]["loads"] == 1
    assert listed["median"]["status"] == "not_loaded"

    code, body = _post(f"{s.http}/api/v1/pipelines/gaussian/unload")
    assert (code, body["status"]) == (200, "not_loaded")
    code, body = _post(f"{s.http}/api/v1/pipelines/sharpen/load")
    assert code == 404 and "unknown pipeline 'sharpen'" in body["error"]["message"]
    code, body = _post(f"{s.http}/api/v1/pipelines/gaussian/explode")
    assert code == 404
    code, _ = http_get(f"{s.http}/api/v1/pipelines/gaussian/load")
    assert code == 405

    code, body = http_get(f"{s.http}/api/v1/resources")
    assert code == 200
    host = host_budget(json.loads(body))
    assert host["name"] == "host" and host["limit_bytes"] == 64 << 20
    names = {h["name"] for h in host["holders"]}
    assert "chunk_cache" in names and "pipeline gaussian" in names
    assert host["used_bytes"] <= host["limit_bytes"]


def test_server_unloads_pipelines_left_idle(serve):
    import time
    from vxhelpers import http_get

    def status():
        code, body = http_get(f"{s.http}/api/v1/pipelines")
        assert code == 200
        return {p["name"]: p["status"] for p in json.loads(body)["pipelines"]}

    s = serve("synthetic:cells?shape=32x64x64&chunk=32", "--unload-idle", "1")
    code, body = _post(f"{s.http}/api/v1/pipelines/median/load")
    assert (code, body["status"]) == (200, "loaded")
    deadline = time.monotonic() + 30  # a bound against a hang; idle is 1 s, checked each 1 s
    while status()["median"] == "loaded" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert status()["median"] == "not_loaded", "a pipeline idle past --unload-idle stayed loaded"


# Richardson-Lucy: skimage.restoration.richardson_lucy (clip=False) with the 'reflect'
# boundary of the other built-ins, i.e. skimage on the array extended by reflection far
# enough (2 r n voxels) that its own zero boundary cannot reach the original array.
# Chunks use the halo min(2 r n, 3 r), not 2 r n: they differ from the whole-array result by
# less than RL_TOLERANCE of the data's range (docs/pipelines.md).
RL_TOLERANCE = 1e-3


def richardson_lucy_reference(a, psf, iterations):
    from skimage.restoration import richardson_lucy
    pad = [2 * (s // 2) * iterations + s // 2 for s in psf.shape]
    big = np.pad(a.astype(np.float64), [(p, p) for p in pad], mode="symmetric")
    out = richardson_lucy(big, psf / psf.sum(), num_iter=iterations, clip=False)
    return out[tuple(slice(p, p + s) for p, s in zip(pad, a.shape))]


def gaussian_psf(sigmas, truncate=4.0):
    k = []
    for s in sigmas:
        r = int(truncate * s + 0.5)
        x = np.arange(-r, r + 1)
        w = np.exp(-0.5 * x * x / (s * s))
        k.append(w / w.sum())
    return np.einsum("i,j,k->ijk", *k)


def test_richardson_lucy_gaussian_psf_equals_skimage(volume, run_ok, tmp_path):
    a, src = volume
    got = processed(run_ok, tmp_path, src, "richardson_lucy:sigma=1,iterations=6")
    want = richardson_lucy_reference(a, gaussian_psf((1.0, 1.0, 1.0)), 6)
    assert got.dtype == np.float32
    err = np.abs(got - want).max() / (want.max() - want.min())
    assert err < RL_TOLERANCE, f"max error {err:.2e} of the range (16^3 chunks, halo 3 r)"


def test_richardson_lucy_psf_file_equals_skimage(volume, run_ok, tmp_path):
    a, src = volume
    psf = gaussian_psf((0.8, 1.2, 0.6))[:, :, 1:-1]  # not a Gaussian of the schema's kind
    psf = (psf * np.linspace(0.5, 1.5, psf.size).reshape(psf.shape)).astype(np.float32)
    np.save(tmp_path / "psf.npy", psf)
    got = processed(run_ok, tmp_path, src,
                    f"richardson_lucy:psf_file={tmp_path / 'psf.npy'},iterations=5")
    want = richardson_lucy_reference(a, psf.astype(np.float64), 5)
    err = np.abs(got - want).max() / (want.max() - want.min())
    assert err < RL_TOLERANCE, f"max error {err:.2e} of the range"


def test_richardson_lucy_rejects_bad_psf_files(volume, run, tmp_path):
    _, src = volume
    cases = {
        "missing.npy": (None, "is not a readable file"),
        "even.npy": (np.ones((4, 3, 3), np.float32), "each side odd"),
        "zero.npy": (np.zeros((3, 3, 3), np.float32), "sums to 0"),
        "negative.npy": (-np.ones((3, 3, 3), np.float32), "not finite and non-negative"),
        "ints.npy": (np.ones((3, 3, 3), np.int32), "float32 or float64"),
        "huge.npy": (np.ones((65, 65, 65), np.float32), "at most 1048576 bytes"),
        "line.npy": (np.ones(5, np.float32), "does not have 2 or 3 axes"),
    }
    for name, (arr, message) in cases.items():
        if arr is not None:
            np.save(tmp_path / name, arr)
        res = run("convert", src, tmp_path / f"{name}.zarr", "-q",
                  "--pipeline", f"richardson_lucy:psf_file={tmp_path / name}")
        assert res.returncode != 0, name
        assert "params.psf_file" in res.stderr and message in res.stderr, (name, res.stderr)
    (tmp_path / "text.npy").write_bytes(b"not numpy at all")
    res = run("convert", src, tmp_path / "text.zarr", "-q",
              "--pipeline", f"richardson_lucy:psf_file={tmp_path / 'text.npy'}")
    assert res.returncode != 0 and "params.psf_file" in res.stderr, res.stderr
    res = run("convert", src, tmp_path / "notnpy.zarr", "-q",
              "--pipeline", "richardson_lucy:psf_file=/etc/passwd")
    assert res.returncode != 0 and "is not a .npy file" in res.stderr, res.stderr
    # What a file holds is never told: neither its size, nor its header's complaint.
    (tmp_path / "secret.npy").write_bytes(b"x" * 3_000_000)
    res = run("convert", src, tmp_path / "secret.zarr", "-q",
              "--pipeline", f"richardson_lucy:psf_file={tmp_path / 'secret.npy'}")
    assert res.returncode != 0 and "too large" in res.stderr and "3000000" not in res.stderr
    res = run("convert", src, tmp_path / "text2.zarr", "-q",
              "--pipeline", f"richardson_lucy:psf_file={tmp_path / 'text.npy'}")
    assert "is not a valid .npy file" in res.stderr and "magic" not in res.stderr, res.stderr
