"""Assertion helpers shared by the integration tests (no fixtures here)."""

from __future__ import annotations

import os
import subprocess
import urllib.error
import urllib.request
import sys
from pathlib import Path

import numpy as np
import pytest


def describe(res: subprocess.CompletedProcess) -> str:
    def tail(s, n=3000):
        return s if len(s) <= n else "..." + s[-n:]

    return (f"$ {' '.join(map(str, res.args))}\nexit code {res.returncode}\n"
            f"--- stdout ---\n{tail(res.stdout)}\n--- stderr ---\n{tail(res.stderr)}")


def load_npy_strict(path: Path) -> np.ndarray:
    """Loads an exported .npy, asserting it is C order and little-endian (or 1-byte)."""
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                else np.lib.format.read_array_header_2_0)
        shape, fortran_order, dtype = read(f)
    assert not fortran_order, f"{path}: exported in Fortran order"
    assert dtype.byteorder in ("<", "|") or (dtype.byteorder == "=" and sys.byteorder == "little"), (
        f"{path}: exported dtype {dtype.str} is not little-endian")
    arr = np.load(path)
    assert arr.shape == tuple(shape)
    return arr


def assert_equal_arrays(got: np.ndarray, want: np.ndarray, what: str) -> None:
    assert got.shape == want.shape, f"{what}: shape {got.shape}, expected {want.shape}"
    assert got.dtype.newbyteorder("=") == want.dtype.newbyteorder("="), (
        f"{what}: dtype {got.dtype}, expected {want.dtype}")
    if not np.array_equal(got, want, equal_nan=want.dtype.kind == "f"):
        bad = np.argwhere(got != want)
        first = tuple(int(i) for i in bad[0])
        pytest.fail(f"{what}: {len(bad)} voxels differ, first at {first}: "
                    f"got {got[first]}, expected {want[first]}", pytrace=False)


def error_line(res: subprocess.CompletedProcess, *needles, scrub=(), code=1) -> str:
    """Asserts exit code `code` (1, a runtime error; 2, a usage error) and that ONE stderr
    line names every needle (case-insensitive).

    A needle is a string or a tuple of alternatives. ``scrub`` lists strings (the test's
    temporary directory, a synthetic spec) that do not count as naming a field: a needle
    that is not itself a path under them must appear in the line outside them, so that a
    field name that happens to be part of a directory name does not match. Returns the
    line."""
    kind = "usage error" if code == 2 else "runtime error"
    assert res.returncode == code, f"expected exit code {code} ({kind})\n" + describe(res)
    if isinstance(scrub, (str, Path)):
        scrub = (scrub,)
    scrub = [str(s).lower() for s in scrub]

    def names(low: str, scrubbed: str, alt: str) -> bool:
        alt = alt.lower()
        if any(s in alt for s in scrub):
            return alt in low
        return alt in scrubbed

    for line in res.stderr.splitlines():
        low = line.lower()
        scrubbed = low
        for s in sorted(scrub, key=len, reverse=True):
            scrubbed = scrubbed.replace(s, "<scrubbed>")
        if all(any(names(low, scrubbed, alt) for alt in (n if isinstance(n, tuple) else (n,)))
               for n in needles):
            return line
    pytest.fail(f"no stderr line names all of {needles} (outside {scrub})\n" + describe(res),
                pytrace=False)


def wire_module_dir() -> Path:
    """The folder of the compiled _voxcast_wire module under test: $VOXCAST_WIRE_PATH, else
    the `python` folder of the build tree that $VOXCAST_BIN comes from (build/asan by
    default). Never another tree: a stale release build must not stand in for it."""
    root = Path(__file__).resolve().parents[2]
    if os.environ.get("VOXCAST_WIRE_PATH"):
        return Path(os.environ["VOXCAST_WIRE_PATH"]).resolve()
    binary = Path(os.environ.get("VOXCAST_BIN", str(root / "build/asan/apps/voxcast/voxcast")))
    if not binary.is_absolute():
        binary = root / binary
    return (binary.parent.parent.parent / "python").resolve()


def wire_child_env(pythonpath: bool = False) -> dict:
    """The environment for a python3 child that imports voxcast.wire: in the ASan tree
    the sanitizer runtime preloaded (conftest.py took it away from other children), with
    leak checks off for the interpreter; with ``pythonpath`` the module's folder and
    python/ on PYTHONPATH."""
    env = dict(os.environ)
    root = Path(__file__).resolve().parents[2]
    preload = os.environ.get("VOXCAST_WIRE_PRELOAD")
    if preload:
        env["LD_PRELOAD"] = preload
        env["ASAN_OPTIONS"] = f"detect_leaks=0:suppressions={root}/tests/asan_ucx.supp"
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join([str(wire_module_dir()), str(root / "python")])
    return env


def import_wire():
    """Puts the module folder and python/ first on sys.path and imports voxcast.wire,
    failing (never falling back to another build) unless _voxcast_wire comes from
    wire_module_dir()."""
    import importlib
    root = Path(__file__).resolve().parents[2]
    where = wire_module_dir()
    for p in (str(where), str(root / "python")):
        if p in sys.path:
            sys.path.remove(p)
        sys.path.insert(0, p)
    try:
        core = importlib.import_module("_voxcast_wire")
    except ImportError as e:
        if "runtime" in str(e) and "ASan" in str(e):
            raise ImportError(
                f"{where}/_voxcast_wire is built with AddressSanitizer: run python3 with "
                "LD_PRELOAD=$(clang++ -print-file-name=libclang_rt.asan-x86_64.so) and "
                "ASAN_OPTIONS=detect_leaks=0 (ctest does this)") from e
        raise ImportError(f"no _voxcast_wire module in {where} (build the target voxcast_wire_py "
                          f"of that tree, or set VOXCAST_WIRE_PATH): {e}") from e
    got = Path(core.__file__).resolve().parent
    if got != where:
        raise ImportError(f"_voxcast_wire was loaded from {got}, not from {where}")
    return importlib.import_module("voxcast.wire")


def http_get(url, headers=None):
    """(status, body) of a GET; HTTP errors are answers, not exceptions."""
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def random_zyx_zarr(path: Path, shape, chunks, seed: int) -> np.ndarray:
    """A one-level OME-Zarr v0.4 (z, y, x in micrometres, scale 1) of random uint16 in
    0..3999 written by python3-zarr; returns the array written."""
    import zarr
    data = np.random.default_rng(seed).integers(0, 4000, size=shape, dtype=np.uint16)
    g = zarr.open_group(str(path), mode="w")
    g.create_dataset("0", data=data, chunks=chunks, dimension_separator="/")
    g.attrs["multiscales"] = [{
        "version": "0.4",
        "axes": [{"name": n, "type": "space", "unit": "micrometer"} for n in "zyx"],
        "datasets": [{"path": "0",
                      "coordinateTransformations": [{"type": "scale", "scale": [1, 1, 1]}]}],
    }]
    return data


def host_budget(resources: dict) -> dict:
    """The "host" budget of a GET /api/v1/resources reply (a GPU server lists "device" too)."""
    named = {b["name"]: b for b in resources["budgets"]}
    assert "host" in named, resources
    return named["host"]


def cache_sources(base: str) -> int:
    """How many sources the server's chunk cache holds now (GET /api/v1/health)."""
    import json
    code, body = http_get(f"{base}/api/v1/health")
    assert code == 200, body
    return json.loads(body)["cache"]["sources"]


def wait_cache_sources(base: str, want: int, timeout: float = 15) -> int:
    """Polls until the cache holds `want` sources (a frame still rendering, or a job
    finishing, holds its sources for a moment); returns the last count seen."""
    import time
    deadline = time.monotonic() + timeout
    while True:
        n = cache_sources(base)
        if n == want or time.monotonic() > deadline:
            return n
        time.sleep(0.1)
