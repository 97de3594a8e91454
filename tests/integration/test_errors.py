"""Bad input is an error (exit code 1, one stderr line naming the file or field and the
reason), never a crash or a hang; bad usage is exit code 2; --help shows examples.

Errors that only show when a chunk is read are provoked with `voxcast export`.
"""

from __future__ import annotations

import gzip
import json
import struct
from pathlib import Path

import numcodecs
import numpy as np
import pytest

import fixtures
import zarr3
from vxhelpers import describe, error_line

SHAPE = (10, 10, 10)
CHUNKS = (5, 5, 5)


def data10(dtype="uint16"):
    return fixtures.make_data(SHAPE, dtype, seed=99)


def make_v2(root: Path, compressor=numcodecs.Blosc("lz4", 5, numcodecs.Blosc.SHUFFLE), sep="."):
    import zarr

    path = root / "arr.zarr"
    arr = zarr.open_array(str(path), mode="w", shape=SHAPE, chunks=CHUNKS, dtype="uint16",
                          compressor=compressor, dimension_separator=sep)
    arr[...] = data10()
    return path


def edit_json(path: Path, fn):
    meta = json.loads(path.read_text())
    fn(meta)
    path.write_text(json.dumps(meta))


def _set(key, value):
    return lambda m: m.__setitem__(key, value)


# ---------------------------------------------------------------------------------------
# Missing paths and things that are not datasets.


def test_missing_file(run, tmp_path):
    missing = tmp_path / "does_not_exist.ome.zarr"
    error_line(run("info", missing, "--json"), str(missing),
               scrub=tmp_path)


def test_missing_npy(run, tmp_path):
    missing = tmp_path / "nothing_here.npy"
    error_line(run("export", missing, "-o", tmp_path / "o.npy"), str(missing),
               scrub=tmp_path)


def test_directory_that_is_not_a_dataset(run, tmp_path):
    d = tmp_path / "just_a_folder"
    d.mkdir()
    (d / "notes.txt").write_text("not a dataset\n")
    error_line(run("info", d, "--json"), str(d),
               scrub=tmp_path)


def test_empty_file(run, tmp_path):
    f = tmp_path / "empty.npy"
    f.write_bytes(b"")
    error_line(run("info", f), str(f),
               scrub=tmp_path)


# ---------------------------------------------------------------------------------------
# Zarr v2 metadata.

ZARRAY_EDITS = {
    "shape-string": (_set("shape", "abc"), "shape"),
    "shape-negative": (_set("shape", [-10, 10, 10]), "shape"),
    "shape-missing": (lambda m: m.pop("shape"), "shape"),
    "shape-floats": (_set("shape", [10.5, 10, 10]), "shape"),
    "chunks-wrong-length": (_set("chunks", [5, 5]), "chunks"),
    "chunks-zero": (_set("chunks", [0, 5, 5]), "chunks"),
    "chunks-string": (_set("chunks", "5,5,5"), "chunks"),
    "dtype-complex": (_set("dtype", "<c16"), ("dtype", "<c16")),
    "dtype-void": (_set("dtype", "|V4"), ("dtype", "|V4")),
    "dtype-number": (_set("dtype", 7), "dtype"),
    "compressor-unknown": (_set("compressor", {"id": "snappyx"}), ("compressor", "snappyx")),
    "compressor-not-object": (_set("compressor", "blosc"), "compressor"),
    "filters-non-null": (_set("filters", [{"id": "delta", "dtype": "<u2"}]), "filters"),
    "order-bad": (_set("order", "Z"), "order"),
    "zarr_format-wrong": (_set("zarr_format", 7), "zarr_format"),
    "dimension_separator-bad": (_set("dimension_separator", "-"), "dimension_separator"),
}


@pytest.mark.parametrize("edit", list(ZARRAY_EDITS))
def test_bad_zarray(edit, run, tmp_path):
    path = make_v2(tmp_path)
    fn, field = ZARRAY_EDITS[edit]
    edit_json(path / ".zarray", fn)
    # export: whether the field is checked on open or on the first chunk read, the message
    # must name .zarray and the field.
    error_line(run("export", path, "-o", tmp_path / "o.npy"), ".zarray", field,
               scrub=tmp_path)


def test_zarray_not_json(run, tmp_path):
    path = make_v2(tmp_path)
    (path / ".zarray").write_text('{"shape": [10, 10, 10], "chunks": ')
    error_line(run("info", path, "--json"), ".zarray",
               scrub=tmp_path)


def _ome_group(tmp_path) -> Path:
    ds = fixtures.build_zarr2(tmp_path, shape=(2, 11, 12, 13), dtype="uint8", chunks=(1, 8, 8, 8),
                              compressor=numcodecs.Zstd(1), seed=5)
    return Path(ds.path)


ZATTRS_EDITS = {
    "dataset-path-missing": (
        lambda a: a["multiscales"][0]["datasets"][1].__setitem__("path", "missing_level"),
        "missing_level"),
    "axes-count-mismatch": (lambda a: a["multiscales"][0].__setitem__(
        "axes", a["multiscales"][0]["axes"][1:]), "axes"),
    "scale-length-mismatch": (lambda a: a["multiscales"][0]["datasets"][0][
        "coordinateTransformations"][0].__setitem__("scale", [1.0, 2.0]), "scale"),
    "axis-type-bad": (lambda a: a["multiscales"][0]["axes"][1].__setitem__("type", 42), "type"),
}


@pytest.mark.parametrize("edit", list(ZATTRS_EDITS))
def test_bad_ome_zattrs(edit, run, tmp_path):
    path = _ome_group(tmp_path)
    fn, needle = ZATTRS_EDITS[edit]
    edit_json(path / ".zattrs", fn)
    error_line(run("info", path, "--json"), needle,
               scrub=tmp_path)


def test_zattrs_not_json(run, tmp_path):
    path = _ome_group(tmp_path)
    (path / ".zattrs").write_text("{multiscales")
    error_line(run("info", path, "--json"), ".zattrs",
               scrub=tmp_path)


# ---------------------------------------------------------------------------------------
# Zarr v2 chunks (seen by export).

V2_COMPRESSORS = {
    "blosc": numcodecs.Blosc("lz4", 5, numcodecs.Blosc.SHUFFLE),
    "zstd": numcodecs.Zstd(3),
    "gzip": numcodecs.GZip(5),
    "zlib": numcodecs.Zlib(5),
    "none": None,
}


def _wrong_size_chunk(compressor, n_elems):
    raw = np.arange(n_elems, dtype="<u2")
    return bytes(compressor.encode(raw)) if compressor is not None else raw.tobytes()


CORRUPTIONS = {
    "truncated": lambda blob, comp: blob[: len(blob) // 2],
    "garbage": lambda blob, comp: np.random.default_rng(5).integers(0, 256, 300, np.uint8).tobytes(),
    "wrong-size-small": lambda blob, comp: _wrong_size_chunk(comp, 5 * 5 * 4),
    "wrong-size-large": lambda blob, comp: _wrong_size_chunk(comp, 5 * 5 * 9),
    "empty-file": lambda blob, comp: b"",
}


@pytest.mark.parametrize("corruption", list(CORRUPTIONS))
@pytest.mark.parametrize("comp", list(V2_COMPRESSORS))
def test_bad_v2_chunk(comp, corruption, run, tmp_path):
    path = make_v2(tmp_path, V2_COMPRESSORS[comp])
    chunk = path / "0.1.0"
    chunk.write_bytes(CORRUPTIONS[corruption](chunk.read_bytes(), V2_COMPRESSORS[comp]))
    error_line(run("export", path, "-o", tmp_path / "o.npy"), "0.1.0",
               scrub=tmp_path)
    # Reading around the bad chunk still works.
    ok = run("export", path, "-o", tmp_path / "ok.npy", "--box", "0:5,0:5,0:10")
    assert ok.returncode == 0, describe(ok)
    assert np.array_equal(np.load(tmp_path / "ok.npy"), data10()[0:5, 0:5, 0:10])


@pytest.mark.parametrize("corruption", ["truncated", "garbage"])
def test_bad_v2_chunk_nested_key(corruption, run, tmp_path):
    path = make_v2(tmp_path, V2_COMPRESSORS["blosc"], sep="/")
    chunk = path / "0" / "1" / "0"
    chunk.write_bytes(CORRUPTIONS[corruption](chunk.read_bytes(), None))
    error_line(run("export", path, "-o", tmp_path / "o.npy"), "0/1/0",
               scrub=tmp_path)


def test_chunk_that_is_a_directory(run, tmp_path):
    path = make_v2(tmp_path)
    (path / "0.1.0").unlink()
    (path / "0.1.0").mkdir()
    error_line(run("export", path, "-o", tmp_path / "o.npy"), "0.1.0",
               scrub=tmp_path)


# ---------------------------------------------------------------------------------------
# Zarr v3 metadata and chunks.

B = zarr3.bytes_codec


def make_v3(root: Path, codecs, chunk_shape=CHUNKS) -> Path:
    path = root / "arr_v3.zarr"
    zarr3.write_array(path, data10(), chunk_shape, codecs)
    return path


def _codecs(fn):
    return lambda m: m.__setitem__("codecs", fn(m["codecs"]))


ZARR_JSON_EDITS = {
    "codec-unknown": (_codecs(lambda c: c + [{"name": "snappyx"}]), ("snappyx", "codec")),
    "no-array-to-bytes-codec": (_codecs(lambda c: [zarr3.zstd_codec(1)]), ("codec", "bytes")),
    "bytes-endian-bad": (_codecs(lambda c: [{"name": "bytes", "configuration": {"endian": "middle"}}]),
                         ("endian", "middle")),
    "transpose-order-bad": (_codecs(lambda c: [zarr3.transpose_codec([0, 0, 1])] + c),
                            ("transpose", "order")),
    "blosc-shuffle-bad": (_codecs(lambda c: c + [{"name": "blosc", "configuration": {
        "cname": "lz4", "clevel": 5, "shuffle": "sideways", "typesize": 2, "blocksize": 0}}]),
        ("shuffle", "sideways")),
    "data_type-complex": (_set("data_type", "complex64"), ("data_type", "complex64")),
    "chunk_grid-unknown": (_set("chunk_grid", {"name": "rectilinear", "configuration": {}}),
                           ("chunk_grid", "rectilinear")),
    "chunk_shape-wrong-length": (_set("chunk_grid", {"name": "regular", "configuration": {
        "chunk_shape": [5, 5]}}), "chunk_shape"),
    "chunk_key_encoding-unknown": (_set("chunk_key_encoding", {"name": "weird"}),
                                   ("chunk_key_encoding", "weird")),
    "shape-negative": (_set("shape", [10, -1, 10]), "shape"),
    "node_type-bad": (_set("node_type", "table"), "node_type"),
    "zarr_format-wrong": (_set("zarr_format", 9), "zarr_format"),
    "sharding-inner-not-dividing": (_codecs(lambda c: [zarr3.sharding_codec((3, 5, 5), [B()])]),
                                    ("chunk_shape", "shard")),
}


@pytest.mark.parametrize("edit", list(ZARR_JSON_EDITS))
def test_bad_zarr_json(edit, run, tmp_path):
    path = make_v3(tmp_path, [B("little")])
    fn, field = ZARR_JSON_EDITS[edit]
    edit_json(path / "zarr.json", fn)
    error_line(run("export", path, "-o", tmp_path / "o.npy"), "zarr.json", field,
               scrub=tmp_path)


def test_zarr_json_not_json(run, tmp_path):
    path = make_v3(tmp_path, [B("little")])
    (path / "zarr.json").write_text('{"zarr_format": 3, ')
    error_line(run("info", path, "--json"), "zarr.json",
               scrub=tmp_path)


def test_v3_ome_dataset_path_missing(run, tmp_path):
    ds = fixtures.build_zarr3(tmp_path, shape=(11, 12, 13), dtype="uint8", chunk_shape=(8, 8, 8),
                              codecs=[B(None)], seed=3)
    edit_json(Path(ds.path) / "zarr.json",
              lambda m: m["attributes"]["ome"]["multiscales"][0]["datasets"][1].__setitem__(
                  "path", "missing_level"))
    error_line(run("info", ds.path, "--json"), "missing_level",
               scrub=tmp_path)


def _flip_byte(f: Path, pos: int):
    b = bytearray(f.read_bytes())
    b[pos] ^= 0x5A
    f.write_bytes(bytes(b))


@pytest.mark.parametrize("where", ["data", "checksum"])
def test_v3_crc32c_mismatch(where, run, tmp_path):
    path = make_v3(tmp_path, [B("little"), zarr3.crc32c_codec()])
    chunk = path / "c" / "0" / "1" / "0"
    _flip_byte(chunk, 17 if where == "data" else -2)
    error_line(run("export", path, "-o", tmp_path / "o.npy"), "c/0/1/0", "checksum",
               scrub=tmp_path)


def test_v3_crc32c_after_zstd_mismatch(run, tmp_path):
    path = make_v3(tmp_path, [B("little"), zarr3.zstd_codec(3), zarr3.crc32c_codec()])
    _flip_byte(path / "c" / "1" / "1" / "1", -1)
    error_line(run("export", path, "-o", tmp_path / "o.npy"), "c/1/1/1", "checksum",
               scrub=tmp_path)


@pytest.mark.parametrize("corruption", ["truncated", "garbage", "wrong-size-large"])
@pytest.mark.parametrize("codec", ["zstd", "gzip", "blosc", "bytes"])
def test_bad_v3_chunk(codec, corruption, run, tmp_path):
    comp = {"zstd": zarr3.zstd_codec(3), "gzip": zarr3.gzip_codec(5),
            "blosc": zarr3.blosc_codec("zstd", 5, "shuffle", 2), "bytes": None}[codec]
    codecs = [B("little")] + ([comp] if comp else [])
    path = make_v3(tmp_path, codecs)
    chunk = path / "c" / "1" / "0" / "1"
    if corruption == "wrong-size-large":
        blob = zarr3.encode_chunk(np.zeros((5, 5, 9), "<u2"), codecs)
    else:
        blob = CORRUPTIONS[corruption](chunk.read_bytes(), None)
    chunk.write_bytes(blob)
    error_line(run("export", path, "-o", tmp_path / "o.npy"), "c/1/0/1",
               scrub=tmp_path)


# Sharding: one shard of 10^3 with inner chunks of 5^3 (8 inner chunks).
SHARD = [zarr3.sharding_codec(CHUNKS, [B("little"), zarr3.zstd_codec(1)], "end")]
SHARD_START = [zarr3.sharding_codec(CHUNKS, [B("little"), zarr3.zstd_codec(1)], "start")]


def _rewrite_index(shard: Path, location: str, fn):
    """Applies fn to the decoded (8, 2) index and writes it back with a valid crc32c."""
    blob = shard.read_bytes()
    size = 8 * 16 + 4
    raw = blob[:size] if location == "start" else blob[-size:]
    index = np.frombuffer(raw[:-4], "<u8").reshape(8, 2).copy()
    fn(index)
    new = index.astype("<u8").tobytes()
    new += struct.pack("<I", zarr3.crc32c(new))
    shard.write_bytes(new + blob[size:] if location == "start" else blob[:-size] + new)


SHARD_BREAKS = {
    "index-truncated": (SHARD, lambda f: f.write_bytes(f.read_bytes()[:40]), ("index", "shard")),
    "index-only-partial": (SHARD, lambda f: f.write_bytes(f.read_bytes()[-100:]),
                           ("index", "shard")),
    "index-checksum": (SHARD, lambda f: _flip_byte(f, -10), "checksum"),
    "index-start-checksum": (SHARD_START, lambda f: _flip_byte(f, 3), "checksum"),
    "offset-beyond-file": (SHARD, lambda f: _rewrite_index(
        f, "end", lambda i: i.__setitem__((3, 0), 10**9)), ("c/0/0/0",)),
    "nbytes-beyond-file": (SHARD_START, lambda f: _rewrite_index(
        f, "start", lambda i: i.__setitem__((5, 1), 10**7)), ("c/0/0/0",)),
    "offset-overflow": (SHARD, lambda f: _rewrite_index(
        f, "end", lambda i: i.__setitem__(2, (2**64 - 8, 16))), ("c/0/0/0",)),
    "half-missing-entry": (SHARD, lambda f: _rewrite_index(
        f, "end", lambda i: i.__setitem__((1, 1), 2**64 - 1)), ("c/0/0/0",)),
    "data-truncated": (SHARD_START, lambda f: f.write_bytes(f.read_bytes()[:8 * 16 + 4 + 20]),
                       ("c/0/0/0",)),
    "inner-garbage": (SHARD, lambda f: f.write_bytes(
        bytes(200) + f.read_bytes()[200:]), ("c/0/0/0",)),
}


@pytest.mark.parametrize("brk", list(SHARD_BREAKS))
def test_bad_shard(brk, run, tmp_path):
    codecs, fn, needle = SHARD_BREAKS[brk]
    path = make_v3(tmp_path, codecs, chunk_shape=SHAPE)
    shard = path / "c" / "0" / "0" / "0"
    assert shard.exists()
    fn(shard)
    error_line(run("export", path, "-o", tmp_path / "o.npy"), "c/0/0/0", needle,
               scrub=tmp_path)


# ---------------------------------------------------------------------------------------
# NumPy, TIFF, NIfTI.


def _npy_with_header(header: str) -> bytes:
    body = header.encode("latin1")
    pad = 64 - (10 + len(body) + 1) % 64
    body += b" " * pad + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(body)) + body + bytes(2000)


NPY_BREAKS = {
    "header-shape-not-int": _npy_with_header(
        "{'descr': '<u2', 'fortran_order': False, 'shape': (10, ab, 10), }"),
    "header-not-a-dict": _npy_with_header("[1, 2, 3]"),
    "header-missing-descr": _npy_with_header("{'fortran_order': False, 'shape': (10, 10), }"),
    "header-length-too-big": b"\x93NUMPY\x01\x00" + struct.pack("<H", 60000) + b"{'descr'",
    "bad-magic": b"\x93NUMPX\x01\x00" + bytes(200),
    "unsupported-complex": _npy_with_header(
        "{'descr': '<c8', 'fortran_order': False, 'shape': (4, 4), }"),
    "unsupported-bytes": _npy_with_header(
        "{'descr': '|S4', 'fortran_order': False, 'shape': (4, 4), }"),
    "negative-shape": _npy_with_header(
        "{'descr': '<u2', 'fortran_order': False, 'shape': (4, -4), }"),
}


@pytest.mark.parametrize("brk", list(NPY_BREAKS))
def test_bad_npy(brk, run, tmp_path):
    f = tmp_path / "broken.npy"
    f.write_bytes(NPY_BREAKS[brk])
    error_line(run("export", f, "-o", tmp_path / "o.npy"), str(f),
               scrub=tmp_path)


def test_truncated_npy(run, tmp_path):
    f = tmp_path / "short.npy"
    np.save(f, fixtures.make_data((10, 20, 30), "uint16", 1))
    f.write_bytes(f.read_bytes()[:5000])
    error_line(run("export", f, "-o", tmp_path / "o.npy"), str(f),
               scrub=tmp_path)


def test_not_a_tiff(run, tmp_path):
    f = tmp_path / "stack.tif"
    f.write_bytes(b"this is not a TIFF file\n" * 20)
    error_line(run("info", f, "--json"), str(f),
               scrub=tmp_path)


def test_truncated_tiff(run, tmp_path):
    """Every page directory intact, the last page's pixels cut short."""
    import tifffile

    f = tmp_path / "stack.tif"
    with tifffile.TiffWriter(f) as tif:
        for page in fixtures.make_data((6, 40, 33), "uint16", 2):
            tif.write(page, photometric="minisblack", contiguous=False, metadata=None)
    with tifffile.TiffFile(f) as tif:
        last = tif.pages[-1]
        assert last.offset < last.dataoffsets[0]  # directory before its data
        cut = last.dataoffsets[0] + last.databytecounts[0] // 2
    f.write_bytes(f.read_bytes()[:cut])
    error_line(run("export", f, "-o", tmp_path / "o.npy"), str(f),
               scrub=tmp_path)


@pytest.mark.parametrize("cut", [100, 20000])
def test_truncated_nifti(cut, run, tmp_path):
    f = tmp_path / "anatomical.nii"
    f.write_bytes(fixtures.ANATOMICAL_NII.read_bytes()[:cut])
    error_line(run("export", f, "-o", tmp_path / "o.npy"), str(f),
               scrub=tmp_path)


def test_nifti_bad_sizeof_hdr(run, tmp_path):
    f = tmp_path / "bad.nii"
    b = bytearray(fixtures.ANATOMICAL_NII.read_bytes())
    b[0:4] = struct.pack("<i", 123)  # neither 348 little- nor big-endian
    f.write_bytes(bytes(b))
    error_line(run("info", f, "--json"), str(f),
               scrub=tmp_path)


def test_nifti_gz_corrupt(run, tmp_path):
    f = tmp_path / "bad.nii.gz"
    good = gzip.compress(fixtures.ANATOMICAL_NII.read_bytes())
    f.write_bytes(good[:200] + bytes(1000))
    error_line(run("export", f, "-o", tmp_path / "o.npy"), str(f),
               scrub=tmp_path)


# ---------------------------------------------------------------------------------------
# Synthetic specs.


@pytest.mark.parametrize("spec,needle", [
    ("synthetic:nope", "nope"),
    ("synthetic:cells?shape=abc", "shape"),
    ("synthetic:cells?shape=10x0x10", "shape"),
    ("synthetic:cells?shape=10x10x10&chunk=0", "chunk"),
    ("synthetic:cells?shape=10x10x10&chunk=abc", "chunk"),
], ids=["unknown-name", "shape-not-numbers", "shape-zero", "chunk-zero", "chunk-not-number"])
def test_bad_synthetic(spec, needle, run):
    # The field must be named outside an echo of the spec itself (except for the unknown
    # name, where naming it is the point).
    error_line(run("info", spec, "--json"), needle, scrub=() if needle == "nope" else (spec,))


# ---------------------------------------------------------------------------------------
# Bad export requests and output paths.


@pytest.fixture
def npy_input(tmp_path):
    f = tmp_path / "in.npy"
    np.save(f, fixtures.make_data((6, 7, 8), "uint8", 3))
    return f


@pytest.mark.parametrize("box", ["0:2,0:2", "0:2,0:2,0:9", "4:2,0:2,0:2", "a:b,0:1,0:1",
                                 "0:2,0:2,0:2,0:1", "-1:2,0:2,0:2"],
                         ids=["too-few-axes", "beyond-shape", "reversed", "not-numbers",
                              "too-many-axes", "negative"])
def test_bad_box(box, run, npy_input, tmp_path):
    out = tmp_path / "o.npy"
    res = run("export", npy_input, "-o", out, "--box", box)
    assert res.returncode == 2, describe(res)  # a usage error
    assert "box" in res.stderr.lower(), describe(res)
    assert not out.exists()


def test_bad_level(run, npy_input, tmp_path):
    out = tmp_path / "o.npy"
    res = run("export", npy_input, "-o", out, "--level", "7")
    assert res.returncode == 2, describe(res)  # a usage error
    assert "level" in res.stderr.lower(), describe(res)
    assert not out.exists()


def test_export_into_missing_directory(run, npy_input, tmp_path):
    out = tmp_path / "no" / "such" / "dir" / "o.npy"
    error_line(run("export", npy_input, "-o", out), str(out.parent),
               scrub=tmp_path)


def test_convert_into_a_file(run, npy_input, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    out = blocker / "out.ome.zarr"
    error_line(run("convert", npy_input, out), str(blocker),
               scrub=tmp_path)


def test_convert_corrupt_input(run, tmp_path):
    path = make_v2(tmp_path, V2_COMPRESSORS["zstd"])
    (path / "1.0.1").write_bytes(b"\x28\xb5\x2f\xfd garbage garbage")
    error_line(run("convert", path, tmp_path / "out.ome.zarr"), "1.0.1",
               scrub=tmp_path)


def test_convert_missing_input(run, tmp_path):
    missing = tmp_path / "missing.npy"
    out = tmp_path / "out.ome.zarr"
    error_line(run("convert", missing, out), str(missing),
               scrub=tmp_path)
    assert not out.exists()


# ---------------------------------------------------------------------------------------
# Usage errors and help.


USAGE = {
    "unknown-command": lambda f, o: ["frobnicate"],
    "info-without-data": lambda f, o: ["info"],
    "info-unknown-flag": lambda f, o: ["info", f, "--no-such-flag"],
    "export-without-output": lambda f, o: ["export", f],
    "export-level-not-number": lambda f, o: ["export", f, "-o", o, "--level", "abc"],
    "convert-without-output": lambda f, o: ["convert", f],
    "convert-codec-unknown": lambda f, o: ["convert", f, o, "--codec", "bogus"],
    "convert-zarr-version-4": lambda f, o: ["convert", f, o, "--zarr-version", "4"],
    "convert-chunk-not-number": lambda f, o: ["convert", f, o, "--chunk", "abc"],
    "convert-levels-not-number": lambda f, o: ["convert", f, o, "--levels", "many"],
}


@pytest.mark.parametrize("case", list(USAGE))
def test_usage_error(case, run, npy_input, tmp_path):
    out = tmp_path / "out.ome.zarr"
    res = run(*USAGE[case](npy_input, out))
    assert res.returncode == 2, "expected exit code 2 (usage error)\n" + describe(res)
    assert res.stderr.strip(), "a usage error says what is wrong on stderr\n" + describe(res)
    assert not out.exists(), "a usage error must not write output"


@pytest.mark.parametrize("command", ["info", "export", "convert"])
def test_help(command, run):
    res = run(command, "--help")
    assert res.returncode == 0, describe(res)
    assert "Example" in res.stdout, describe(res)
    assert command in res.stdout
