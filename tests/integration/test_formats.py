"""voxcast reads every supported format exactly: `info --json` metadata and `export` voxels
against data and metadata written by third-party writers (fixtures.py)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

import fixtures
import zarr3
from vxhelpers import assert_equal_arrays

CASE_IDS = list(fixtures.ALL_CASES)
SYNTHETIC = "synthetic:cells?shape=40x70x90&chunk=32"


def _approx_list(got, want, what):
    assert got is not None and len(got) == len(want), f"{what}: {got!r}, expected {want!r}"
    for g, w in zip(got, want):
        assert math.isclose(float(g), float(w), rel_tol=1e-6, abs_tol=1e-9), (
            f"{what}: {got!r}, expected {want!r}")


def check_info(meta: dict, ds: fixtures.Dataset) -> None:
    assert meta["location"] == ds.path
    assert meta["format"] == ds.format
    assert meta["zarr_format"] == ds.zarr_format
    assert meta["format_version"] == ds.format_version
    assert meta["dtype"] == ds.dtype
    # Metadata from the writers is valid: no warning is a false alarm.
    assert meta["warnings"] == [], meta["warnings"]
    got_axes = [(a["name"], a["type"], a.get("unit") or "") for a in meta["axes"]]
    assert got_axes == [tuple(a) for a in ds.axes]

    levels = meta["levels"]
    assert len(levels) == len(ds.levels), f"levels: {len(levels)}, expected {len(ds.levels)}"
    for k, (lv, truth) in enumerate(zip(levels, ds.levels)):
        assert list(lv["shape"]) == list(truth.shape), f"level {k} shape"
        assert len(lv["chunks"]) == truth.ndim and all(int(c) >= 1 for c in lv["chunks"]), (
            f"level {k} chunks {lv['chunks']}")
        if ds.chunks is not None:
            assert list(lv["chunks"]) == list(ds.chunks[k]), f"level {k} chunks"
        if ds.level_paths is not None:
            assert lv["path"] == ds.level_paths[k]
        if ds.scales is not None:
            _approx_list(lv["scale"], ds.scales[k], f"level {k} scale")
        else:
            assert len(lv["scale"]) == truth.ndim and all(float(s) > 0 for s in lv["scale"])
        if ds.translations is not None:
            _approx_list(lv["translation"], ds.translations[k], f"level {k} translation")
        else:
            assert len(lv["translation"]) == truth.ndim
        assert isinstance(lv["codec"], str)
        if ds.codec:
            for word in ds.codec:
                assert word in lv["codec"].lower(), f"level {k} codec {lv['codec']!r} lacks {word!r}"

    if ds.fill_value is not None:
        assert meta["fill_value"] == pytest.approx(ds.fill_value)

    channels = meta["channels"]
    if ds.channels is not None:
        assert len(channels) == len(ds.channels)
        for got, want in zip(channels, ds.channels):
            assert got["name"] == want["name"]
            assert got["color"] is not None and got["color"].upper() == want["color"]
            assert got["visible"] is want["visible"]
            assert got["window"] is not None
            for key in ("start", "end", "min", "max"):
                assert got["window"][key] == pytest.approx(want["window"][key]), key
    else:
        # One channel per index of the channel axis, or one.
        names = [a[0] for a in ds.axes]
        n = ds.levels[0].shape[names.index("c")] if "c" in names else 1
        assert len(channels) == n


@pytest.mark.parametrize("case_id", CASE_IDS)
def test_info_json(case_id, datasets, info):
    ds = datasets.get(case_id)
    check_info(info(ds.path), ds)


@pytest.mark.parametrize("case_id", CASE_IDS)
def test_export_every_level(case_id, datasets, export):
    ds = datasets.get(case_id)
    # Default level is 0.
    assert_equal_arrays(export(ds.path), ds.levels[0], f"{case_id} export (default level)")
    for k, truth in enumerate(ds.levels):
        assert_equal_arrays(export(ds.path, level=k), truth, f"{case_id} export --level {k}")


@pytest.mark.parametrize("which", ["edge", "inner"])
@pytest.mark.parametrize("case_id", CASE_IDS)
def test_export_box(case_id, which, datasets, export):
    """Boxes crossing chunk boundaries; the edge box takes the partial edge chunks (every
    level), the inner one stays inside (level 0)."""
    ds = datasets.get(case_id)
    for k, truth in enumerate(ds.levels if which == "edge" else ds.levels[:1]):
        chunks = ds.chunks[k] if ds.chunks else None
        box = fixtures.boxes_for(truth.shape, chunks)[which]
        got = export(ds.path, level=k, box=fixtures.box_arg(box))
        assert_equal_arrays(got, np.ascontiguousarray(truth[box]),
                            f"{case_id} level {k} --box {fixtures.box_arg(box)}")


@pytest.mark.parametrize("case_id", ["v2-blosc-lz4-shuffle-u16-czyx-dot", "v3-shard-end-blosc-u16",
                                     "npy-u16-zyx", "tiff-u16-23pages", "nifti-anatomical-i16"])
def test_info_text(case_id, datasets, run_ok):
    """The human-readable form names the dtype and the level-0 shape's sizes."""
    ds = datasets.get(case_id)
    out = run_ok("info", ds.path).stdout
    assert ds.dtype in out
    for n in ds.levels[0].shape:
        assert str(n) in out


def test_box_single_voxel_and_whole(datasets, export):
    ds = datasets.get("v2-fill7-missing-u16-blosc")
    truth = ds.levels[0]
    z, y, x = (s - 1 for s in truth.shape)
    one = export(ds.path, box=f"{z}:{z + 1},{y}:{y + 1},{x}:{x + 1}")
    assert_equal_arrays(one, truth[z:z + 1, y:y + 1, x:x + 1], "last voxel")
    whole = export(ds.path, box=",".join(f"0:{s}" for s in truth.shape))
    assert_equal_arrays(whole, truth, "box covering everything")


def test_missing_chunks_read_as_fill(datasets, export):
    """A box lying entirely inside a chunk that was never written is all fill value."""
    ds = datasets.get("v2-fill7-missing-u16-blosc")
    # Chunk (0, 0, 1) of 16^3 is missing: (0 + 0 + 1) % 3 == 1.
    root = Path(ds.path) / "0"
    assert not (root / "0.0.1").exists() and (root / "0.0.0").exists()
    got = export(ds.path, box="2:14,3:15,17:30")
    assert got.shape == (12, 12, 13) and (got == 7).all()


# ---------------------------------------------------------------------------------------
# The built-in synthetic dataset: no third-party truth, so check it against itself.


def test_synthetic_info(info):
    meta = info(SYNTHETIC)
    assert meta["format"] == "synthetic"
    assert meta["location"] == SYNTHETIC
    assert meta["zarr_format"] == 0
    assert meta["dtype"] in ("uint8", "int8", "uint16", "int16", "uint32", "int32", "float32",
                             "float64")
    lv0 = meta["levels"][0]
    assert [a["name"] for a in meta["axes"]][-3:] == ["z", "y", "x"]
    assert lv0["shape"][-3:] == [40, 70, 90]
    assert lv0["chunks"][-3:] == [32, 32, 32]
    for k in range(1, len(meta["levels"])):  # coarser levels halve the spatial axes
        prev, cur = meta["levels"][k - 1]["shape"], meta["levels"][k]["shape"]
        assert cur[-3:] == [math.ceil(n / 2) for n in prev[-3:]]


def test_synthetic_channels_param(info):
    meta = info("synthetic:cells?shape=20x30x40&channels=2")
    names = [a["name"] for a in meta["axes"]]
    assert "c" in names, names
    assert meta["levels"][0]["shape"][names.index("c")] == 2
    assert len(meta["channels"]) == 2


def test_synthetic_export_consistent(info, export):
    """Deterministic, not empty, and a box equals the same part of the whole level."""
    meta = info(SYNTHETIC)
    full = export(SYNTHETIC)
    assert list(full.shape) == meta["levels"][0]["shape"]
    assert full.dtype.name == meta["dtype"]
    assert np.unique(full).size > 1, "the synthetic volume is constant"
    assert_equal_arrays(export(SYNTHETIC), full, "second export")
    box = fixtures.boxes_for(full.shape, meta["levels"][0]["chunks"])["edge"]
    assert_equal_arrays(export(SYNTHETIC, box=fixtures.box_arg(box)), full[box], "box")
    if len(meta["levels"]) > 1:
        lv1 = export(SYNTHETIC, level=1)
        assert list(lv1.shape) == meta["levels"][1]["shape"]


# ---------------------------------------------------------------------------------------
# The test tooling itself: the spec-built Zarr v3 writer and reader agree (a test of this
# suite, which needs no voxcast binary).


def test_crc32c_known_answers():
    assert zarr3.crc32c(b"123456789") == 0xE3069283
    assert zarr3.crc32c(b"") == 0
    assert zarr3.crc32c(bytes(32)) == 0x8A9136AA  # RFC 3720 B.4: 32 bytes of zeros
    assert zarr3.crc32c(b"\xff" * 32) == 0x62A8AB43  # RFC 3720 B.4: 32 bytes of 0xFF


@pytest.mark.parametrize("case_id", [c for c in CASE_IDS if c.startswith("v3-")])
def test_v3_fixture_roundtrip(case_id, datasets):
    ds = datasets.get(case_id)
    paths = ds.level_paths or [""]
    for k, truth in enumerate(ds.levels):
        got = zarr3.read_array(Path(ds.path) / paths[k])
        assert_equal_arrays(got, truth, f"{case_id} level {k} via the test reader")
