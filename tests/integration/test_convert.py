"""`voxcast convert` writes multiscale OME-Zarr that third-party readers read back exactly:
python3-zarr for Zarr v2 / OME-Zarr v0.4, the spec-built reader (zarr3.py) for Zarr v3 /
OME-Zarr v0.5."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import pytest
import zarr

import fixtures
import zarr3
from vxhelpers import assert_equal_arrays, error_line

CONVERT_TIMEOUT = 300
SYNTHETIC = "synthetic:cells?shape=40x70x90&chunk=32"

# Input kinds: a fixture id from fixtures.ALL_CASES, or a synthetic: spec.
INPUTS = {
    "v2-czyx": "v2-blosc-lz4-shuffle-u16-czyx-dot",
    "v2-fill-missing": "v2-fill7-missing-u16-blosc",
    "v3-sharded": "v3-shard-start-transpose-gzip-crc32c-czyx",
    "npy-f32": "npy-f32-fortran-zyx",
    "tiff-u16": "tiff-u16-23pages",
    "nifti-i16": "nifti-anatomical-i16",
    "synthetic": SYNTHETIC,
    "v2-tczyx": "v2-tczyx-gzip-f64",
    "npy-yx": "npy-u8-yx",
}
CODECS = ["zstd", "lz4", "none"]


@dataclass
class Source:
    path: str
    truth: np.ndarray       # level 0
    axes: list              # [(name, type, unit)]
    scale: Optional[list]   # level-0 scale, None where the fixture does not define it

    @property
    def spatial(self):
        return [i for i, a in enumerate(self.axes) if a[1] == "space"]


@pytest.fixture(scope="session")
def source(datasets, info, export):
    cache = {}

    def get(input_id: str) -> Source:
        if input_id not in cache:
            spec = INPUTS[input_id]
            if spec.startswith("synthetic:"):
                meta = info(spec)
                axes = [(a["name"], a["type"], a.get("unit") or "") for a in meta["axes"]]
                cache[input_id] = Source(spec, export(spec), axes, meta["levels"][0]["scale"])
            else:
                ds = datasets.get(spec)
                scale = ds.scales[0] if ds.scales else info(ds.path)["levels"][0]["scale"]
                cache[input_id] = Source(ds.path, ds.levels[0], ds.axes, scale)
        return cache[input_id]

    return get


@pytest.fixture(scope="session")
def convert(run_ok, tmp_path_factory):
    """convert(IN, *options) -> the output path; each distinct call converts once."""
    cache = {}

    def do(src: str, *options) -> Path:
        key = (src, options)
        if key not in cache:
            out = tmp_path_factory.mktemp("convert") / "out.ome.zarr"
            run_ok("convert", src, out, *options, timeout=CONVERT_TIMEOUT)
            cache[key] = out
        return cache[key]

    return do


def expected_chunk(n_axis: int, kind: str, n_chunk: int, allowed_small=True):
    if kind != "space":
        return {1}
    # A chunk may be clipped to a smaller axis, or stay N.
    return {n_chunk, n_axis} if (allowed_small and n_axis < n_chunk) else {n_chunk}


def check_chunks(chunks, shape, axes, n_chunk, what):
    for i, (c, n, a) in enumerate(zip(chunks, shape, axes)):
        assert c in expected_chunk(n, a[1], n_chunk), (
            f"{what}: chunk {list(chunks)} on axis {a[0]} (size {n}), expected "
            f"{sorted(expected_chunk(n, a[1], n_chunk))}")


def check_multiscales(ms: dict, src: Source, nlevels: int, what: str):
    axes = [(a["name"], a.get("type", ""), a.get("unit") or "") for a in ms["axes"]]
    assert [a[:2] for a in axes] == [a[:2] for a in src.axes], f"{what}: axes {ms['axes']}"
    for got, want in zip(axes, src.axes):
        if want[2]:
            assert got[2] == want[2], f"{what}: axis {got[0]} unit {got[2]!r}, expected {want[2]!r}"
    datasets = ms["datasets"]
    assert [d["path"] for d in datasets] == [str(k) for k in range(nlevels)], what
    for k, d in enumerate(datasets):
        transforms = d["coordinateTransformations"]
        assert transforms[0]["type"] == "scale", f"{what}: first transform of level {k}"
        scale = transforms[0]["scale"]
        assert len(scale) == len(src.axes)
        for i, a in enumerate(src.axes):
            want = src.scale[i] * (2.0**k if a[1] == "space" else 1.0)
            assert math.isclose(scale[i], want, rel_tol=1e-6), (
                f"{what}: level {k} scale {scale}, axis {a[0]} expected {want}")
        for t in transforms[1:]:
            assert t["type"] == "translation" and len(t["translation"]) == len(src.axes)


def expected_level_shapes(shape, axes, nlevels):
    shapes = [list(shape)]
    for _ in range(1, nlevels):
        shapes.append([math.ceil(n / 2) if a[1] == "space" else n
                       for n, a in zip(shapes[-1], axes)])
    return shapes


def check_v2_compressor(meta: dict, codec: str, what: str):
    comp = meta["compressor"]
    if codec == "none":
        assert comp is None, f"{what}: compressor {comp}"
    else:
        assert comp is not None, f"{what}: no compressor for --codec {codec}"
        assert comp["id"] == codec or (comp["id"] == "blosc" and comp.get("cname") == codec), (
            f"{what}: compressor {comp} for --codec {codec}")
    assert not meta.get("filters"), f"{what}: filters {meta.get('filters')}"


def check_pyramid(levels, src: Source, what: str):
    """levels: arrays read back by a third-party reader, finest first."""
    assert_equal_arrays(levels[0], src.truth, f"{what} level 0")
    for k in range(1, len(levels)):
        fixtures.check_downsampled(levels[k], levels[k - 1], src.spatial, f"{what} level {k}",
                                   from_truth=(k == 1))


# ---------------------------------------------------------------------------------------
# To Zarr v2 / OME-Zarr v0.4.


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("input_id", list(INPUTS))
def test_convert_v2_level0_equal(input_id, codec, source, convert):
    src = source(input_id)
    out = convert(src.path, "--codec", codec)
    arr = zarr.open(str(out), mode="r")["0"]
    assert arr.dtype.newbyteorder("=") == src.truth.dtype
    assert_equal_arrays(arr[...], src.truth, f"{input_id} -> v2 ({codec}) level 0")


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("input_id", list(INPUTS))
def test_convert_v2_metadata(input_id, codec, source, convert):
    src = source(input_id)
    out = convert(src.path, "--codec", codec)
    attrs = json.loads((out / ".zattrs").read_text())
    assert json.loads((out / ".zgroup").read_text())["zarr_format"] == 2
    ms = attrs["multiscales"][0]
    assert ms.get("version") == "0.4"
    nlevels = len(ms["datasets"])
    assert nlevels >= 1
    check_multiscales(ms, src, nlevels, f"{input_id} -> v2")
    shapes = expected_level_shapes(src.truth.shape, src.axes, nlevels)
    for k in range(nlevels):
        meta = json.loads((out / str(k) / ".zarray").read_text())
        what = f"{input_id} -> v2 level {k}"
        assert meta["zarr_format"] == 2
        assert meta["shape"] == shapes[k], what
        assert np.dtype(meta["dtype"]).newbyteorder("=") == src.truth.dtype, what
        check_chunks(meta["chunks"], shapes[k], src.axes, 64, what)
        check_v2_compressor(meta, codec, what)


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("input_id", list(INPUTS))
def test_convert_v2_pyramid_is_2x_mean(input_id, codec, source, convert):
    src = source(input_id)
    out = convert(src.path, "--codec", codec)
    group = zarr.open(str(out), mode="r")
    nlevels = len(group.attrs["multiscales"][0]["datasets"])
    levels = [group[str(k)][...] for k in range(nlevels)]
    check_pyramid(levels, src, f"{input_id} -> v2 ({codec})")


@pytest.mark.parametrize(
    "input_id,levels,chunk",
    [("synthetic", 1, 16), ("synthetic", 3, 32), ("npy-f32", 2, 24), ("v2-czyx", 3, 16),
     ("nifti-i16", 4, 8), ("v2-tczyx", 2, 8), ("npy-yx", 3, 16)],
    ids=lambda v: str(v))
def test_convert_levels_and_chunk_options(input_id, levels, chunk, source, convert):
    src = source(input_id)
    out = convert(src.path, "--levels", str(levels), "--chunk", str(chunk), "--codec", "lz4")
    group = zarr.open(str(out), mode="r")
    ms = group.attrs["multiscales"][0]
    assert len(ms["datasets"]) == levels, f"--levels {levels}: {len(ms['datasets'])} written"
    assert sorted(k for k in group.array_keys()) == sorted(str(k) for k in range(levels))
    check_multiscales(ms, src, levels, f"{input_id} --levels {levels}")
    shapes = expected_level_shapes(src.truth.shape, src.axes, levels)
    read = []
    for k in range(levels):
        arr = group[str(k)]
        assert list(arr.shape) == shapes[k]
        check_chunks(arr.chunks, shapes[k], src.axes, chunk, f"--chunk {chunk} level {k}")
        read.append(arr[...])
    check_pyramid(read, src, f"{input_id} --levels {levels} --chunk {chunk}")


# ---------------------------------------------------------------------------------------
# To Zarr v3 / OME-Zarr v0.5, and back to v2.


def _codecs_in_chain(codecs: list) -> list:
    names = []
    for c in codecs:
        names.append((c["name"], c.get("configuration", {}).get("cname")))
        if c["name"] == "sharding_indexed":
            names += _codecs_in_chain(c["configuration"]["codecs"])
    return names


def check_v3_codecs(meta: dict, codec: str, what: str):
    names = _codecs_in_chain(meta["codecs"])
    compressors = [n for n in names if n[0] in ("blosc", "zstd", "gzip")]
    if codec == "none":
        assert not compressors, f"{what}: compressing codecs {compressors} for --codec none"
    elif codec == "zstd":
        assert ("zstd", None) in compressors or ("blosc", "zstd") in compressors, (
            f"{what}: {meta['codecs']}")
    else:
        assert ("blosc", "lz4") in compressors, f"{what}: {meta['codecs']}"


V3_CASES = [("v2-czyx", "zstd"), ("v2-czyx", "lz4"), ("v2-czyx", "none"), ("npy-f32", "zstd"),
            ("nifti-i16", "lz4"), ("v3-sharded", "zstd"), ("synthetic", "zstd")]


@pytest.mark.parametrize("input_id,codec", V3_CASES, ids=[f"{i}-{c}" for i, c in V3_CASES])
def test_convert_v3_spec_reader(input_id, codec, source, convert, info):
    src = source(input_id)
    out = convert(src.path, "--zarr-version", "3", "--codec", codec, "--levels", "2")
    assert not (out / ".zgroup").exists() and not (out / ".zattrs").exists()
    root = zarr3.read_meta(out)
    assert root["zarr_format"] == 3 and root["node_type"] == "group", root
    ome = root["attributes"]["ome"]
    assert ome["version"] == "0.5"
    ms = ome["multiscales"][0]
    nlevels = len(ms["datasets"])
    assert nlevels == 2, f"--levels 2 wrote {nlevels} levels"
    check_multiscales(ms, src, nlevels, f"{input_id} -> v3")
    shapes = expected_level_shapes(src.truth.shape, src.axes, nlevels)
    levels = []
    for k in range(nlevels):
        meta = zarr3.read_meta(out / str(k))
        what = f"{input_id} -> v3 level {k}"
        assert meta["zarr_format"] == 3 and meta["node_type"] == "array", what
        assert meta["shape"] == shapes[k], what
        assert np.dtype(meta["data_type"]) == src.truth.dtype, what
        check_v3_codecs(meta, codec, what)
        levels.append(zarr3.read_array(out / str(k)))
    check_pyramid(levels, src, f"{input_id} -> v3 ({codec})")

    meta = info(str(out))
    assert len(meta["levels"]) == nlevels
    for k, lv in enumerate(meta["levels"]):
        check_chunks(lv["chunks"], shapes[k], src.axes, 64, f"{input_id} -> v3 info level {k}")
    assert (meta["format"], meta["zarr_format"], meta["format_version"]) == ("ome-zarr", 3, "0.5")


@pytest.mark.parametrize("input_id,codec", V3_CASES, ids=[f"{i}-{c}" for i, c in V3_CASES])
def test_convert_v3_then_back_to_v2(input_id, codec, source, convert):
    src = source(input_id)
    v3 = convert(src.path, "--zarr-version", "3", "--codec", codec, "--levels", "2")
    v2 = convert(str(v3), "--zarr-version", "2", "--codec", "zstd")
    group = zarr.open(str(v2), mode="r")
    assert_equal_arrays(group["0"][...], src.truth, f"{input_id} -> v3 -> v2 level 0")
    assert group.attrs["multiscales"][0]["version"] == "0.4"


# ---------------------------------------------------------------------------------------
# Bounded memory: a cache of 16 MiB for an input of about 64 MiB.


def test_convert_larger_than_cache(info, run_ok, export, tmp_path):
    probe = info("synthetic:cells?shape=8x512x512")
    itemsize = np.dtype(probe["dtype"]).itemsize
    bytes_per_z = math.prod(probe["levels"][0]["shape"]) * itemsize // 8  # channels included
    z = math.ceil(64 * 2**20 / bytes_per_z)
    spec = f"synthetic:cells?shape={z}x512x512"
    meta = info(spec)
    shape = meta["levels"][0]["shape"]
    names = [a["name"] for a in meta["axes"]]
    assert names[-3:] == ["z", "y", "x"], names
    nbytes = math.prod(shape) * itemsize
    assert 60 * 2**20 <= nbytes <= 80 * 2**20, f"input is {nbytes} bytes"

    out = tmp_path / "big.ome.zarr"
    run_ok("convert", spec, out, "--cache-mb", "16", "--codec", "lz4", "--levels", "2",
           timeout=CONVERT_TIMEOUT)
    group = zarr.open(str(out), mode="r")
    lv0, lv1 = group["0"], group["1"]
    assert list(lv0.shape) == shape
    spatial = [i for i, a in enumerate(meta["axes"]) if a["type"] == "space"]
    lead = tuple(slice(0, n) for n in shape[:-3])  # every channel / time point

    # Spot checks: a corner and a region across chunk boundaries in the middle.
    for zyx in [(slice(0, 9), slice(0, 70), slice(0, 70)),
                (slice(z // 2 - 5, z // 2 + 6), slice(250, 330), slice(190, 270))]:
        box = lead + zyx
        want = export(spec, box=fixtures.box_arg(box))
        assert_equal_arrays(lv0[box], want, f"level 0 {fixtures.box_arg(box)}")
    fine = lv0[lead + (slice(0, 16), slice(128, 192), slice(256, 320))]
    coarse = lv1[lead + (slice(0, 8), slice(64, 96), slice(128, 160))]
    fixtures.check_downsampled(coarse, fine, spatial, "level 1 block", from_truth=True)


SHARD_CASES = [("v2-czyx", "zstd"), ("synthetic", "lz4"), ("npy-f32", "none")]


@pytest.mark.parametrize("input_id,codec", SHARD_CASES, ids=[f"{i}-{c}" for i, c in SHARD_CASES])
def test_convert_v3_sharded_reads_back_by_the_spec(input_id, codec, source, convert, export, tmp_path):
    """--shard 2: 2^n inner chunks of 16 per shard file (partial shards at the edges), read
    back with the spec-based reader and with voxcast."""
    src = source(input_id)
    out = convert(src.path, "--zarr-version", "3", "--codec", codec, "--levels", "2", "--chunk", "16",
                  "--shard", "2")
    levels = []
    for k in range(2):
        meta = zarr3.read_meta(out / str(k))
        (sharding,) = meta["codecs"]
        assert sharding["name"] == "sharding_indexed", meta["codecs"]
        cfg = sharding["configuration"]
        assert cfg["index_location"] == "end"
        assert [c["name"] for c in cfg["index_codecs"]] == ["bytes", "crc32c"]
        for i in src.spatial:
            assert meta["chunk_grid"]["configuration"]["chunk_shape"][i] == 2 * cfg["chunk_shape"][i]
        levels.append(zarr3.read_array(out / str(k)))
        files = list(zarr3.iter_chunk_files(out / str(k)))
        inner = math.prod(-(-s // c) for s, c in zip(meta["shape"], cfg["chunk_shape"]))
        assert 0 < len(files) < inner or inner == 1, f"{len(files)} shard files for {inner} chunks"
    check_pyramid(levels, src, f"{input_id} -> v3 sharded ({codec})")
    assert_equal_arrays(export(str(out)), src.truth, f"{input_id} -> v3 sharded, read by voxcast")


def test_shard_needs_zarr_v3(source, run, tmp_path):
    src = source("v2-czyx")
    res = run("convert", src.path, tmp_path / "x.ome.zarr", "--shard", "2")
    error_line(res, "--shard", "3")
