"""Test data written at test time with third-party writers, and the truth to compare with.

Every builder takes an empty directory and returns a ``Dataset``: the path to give to
voxcast, the truth arrays (one per resolution level, native byte order) and the metadata
``voxcast info --json`` must report. Nothing here comes from voxcast itself.

Writers: python3-zarr 2.13 / numcodecs for Zarr v2 and OME-Zarr v0.4; zarr3.py (built
from the Zarr v3 spec, as python3-zarr 2.13 has no v3 writer) for Zarr v3 and OME-Zarr
v0.5; numpy for .npy; tifffile for TIFF; nibabel for NIfTI.
"""

from __future__ import annotations

import itertools
import json
import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np
from numcodecs import GZip, Zlib, Zstd
from numcodecs import Blosc

import zarr3

ANATOMICAL_NII = Path("/usr/lib/python3/dist-packages/nibabel/tests/data/anatomical.nii")

SPACE = "space"
# (name, type, unit)
AXES_ZYX = [("z", SPACE, "micrometer"), ("y", SPACE, "micrometer"), ("x", SPACE, "micrometer")]
AXES_CZYX = [("c", "channel", "")] + AXES_ZYX
AXES_TCZYX = [("t", "time", "second")] + AXES_CZYX

# Axes guessed for plain arrays (no OME metadata), by number of dimensions.
GUESSED_AXES = {
    2: [("y", SPACE, ""), ("x", SPACE, "")],
    3: [("z", SPACE, ""), ("y", SPACE, ""), ("x", SPACE, "")],
    4: [("c", "channel", ""), ("z", SPACE, ""), ("y", SPACE, ""), ("x", SPACE, "")],
    5: [("t", "time", ""), ("c", "channel", ""), ("z", SPACE, ""), ("y", SPACE, ""),
        ("x", SPACE, "")],
}


@dataclass
class Dataset:
    path: str                      # what voxcast is given
    levels: list                   # truth per level, np.ndarray in native byte order
    format: str                    # "ome-zarr", "zarr", "npy", "tiff", "nifti"
    zarr_format: int = 0
    format_version: str = ""
    axes: list = field(default_factory=list)   # [(name, type, unit)]
    chunks: Optional[list] = None              # per level, the read-chunk shape
    scales: Optional[list] = None              # per level
    translations: Optional[list] = None        # per level
    level_paths: Optional[list] = None
    fill_value: Optional[float] = None         # None: not checked
    channels: Optional[list] = None            # expected channel dicts (OME omero)
    codec: Optional[list] = None               # lower-case words the codec string shows
    notes: dict = field(default_factory=dict)

    @property
    def dtype(self) -> str:
        return np.dtype(self.levels[0].dtype).name

    @property
    def spatial_axes(self) -> list:
        return [i for i, a in enumerate(self.axes) if a[1] == SPACE]


# ---------------------------------------------------------------------------------------
# Data and metadata helpers.


def make_data(shape, dtype, seed: int) -> np.ndarray:
    """Deterministic random-ish data covering the dtype's range."""
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    native = dt.newbyteorder("=")
    if dt.kind == "f":
        a = (rng.standard_normal(shape) * 1000.0).astype(native)
    else:
        info = np.iinfo(native)
        a = rng.integers(info.min, info.max, size=shape, dtype=native, endpoint=True)
    return a.astype(dt)


def native(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("="))


def coarser(a: np.ndarray, axes) -> np.ndarray:
    """A second level for the stores: every other voxel on the spatial axes."""
    sl = tuple(slice(None, None, 2) if ax[1] == SPACE else slice(None) for ax in axes)
    return np.ascontiguousarray(a[sl])


def level_transforms(axes, nlevels):
    """OME scale/translation per level: distinct, non-trivial numbers per axis."""
    base_scale = {"t": 0.5, "c": 1.0, "z": 2.0, "y": 0.5, "x": 0.25}
    base_trans = {"t": 0.0, "c": 0.0, "z": 10.0, "y": -5.0, "x": 2.5}
    scales, translations = [], []
    for k in range(nlevels):
        s, t = [], []
        for name, kind, _ in axes:
            f = 2.0**k if kind == SPACE else 1.0
            s.append(base_scale[name] * f)
            t.append(base_trans[name] + (0.5 * base_scale[name] * (f - 1) if kind == SPACE else 0))
        scales.append(s)
        translations.append(t)
    return scales, translations


def ome_axes(axes):
    out = []
    for name, kind, unit in axes:
        d = {"name": name, "type": kind}
        if unit:
            d["unit"] = unit
        out.append(d)
    return out


def ome_multiscales(axes, scales, translations, version: Optional[str]):
    ms = {
        "name": "test image",
        "axes": ome_axes(axes),
        "datasets": [
            {"path": str(k), "coordinateTransformations": [
                {"type": "scale", "scale": s}, {"type": "translation", "translation": t}]}
            for k, (s, t) in enumerate(zip(scales, translations))
        ],
    }
    if version:
        ms["version"] = version
    return [ms]


CHANNEL_DEFS = [
    {"name": "DAPI", "color": "FF00FF", "window": {"start": 100.0, "end": 3000.0, "min": 0.0,
                                                   "max": 65535.0}, "visible": True},
    {"name": "GFP", "color": "00FF00", "window": {"start": -50.5, "end": 1200.25, "min": -100.0,
                                                  "max": 4095.0}, "visible": False},
]


def channels_for(axes, shape):
    ci = [i for i, a in enumerate(axes) if a[1] == "channel"]
    n = shape[ci[0]] if ci else 1
    return [dict(CHANNEL_DEFS[i % len(CHANNEL_DEFS)], name=f"{CHANNEL_DEFS[i % 2]['name']}{i}")
            for i in range(n)]


def ome_omero(channels):
    return {
        "channels": [
            {"label": c["name"], "color": c["color"], "window": dict(c["window"]),
             "active": c["visible"], "coefficient": 1.0, "family": "linear", "inverted": False}
            for c in channels
        ],
        "rdefs": {"model": "color", "defaultZ": 0, "defaultT": 0},
    }


def chunk_grid(shape, chunks):
    return itertools.product(*[range(math.ceil(s / c)) for s, c in zip(shape, chunks)])


def chunk_slices(coords, chunks, shape):
    return tuple(slice(c * k, min((c + 1) * k, s)) for c, k, s in zip(coords, chunks, shape))


def codec_words_v2(compressor) -> Optional[list]:
    if compressor is None:
        return None
    cid = compressor.codec_id
    if cid == "blosc":
        return ["blosc", compressor.cname.decode() if isinstance(compressor.cname, bytes)
                else compressor.cname]
    return [cid]


# ---------------------------------------------------------------------------------------
# Zarr v2 / OME-Zarr v0.4 (python3-zarr).


def _write_v2_array(create, data, chunks, missing, fill_value):
    """Creates the array with ``create`` and writes every chunk not named by ``missing``.

    Returns the truth (fill value where nothing was written)."""
    arr = create(shape=data.shape, chunks=chunks, dtype=data.dtype)
    if missing is None:
        arr[...] = data
        return native(data)
    truth = np.full(data.shape, fill_value, dtype=data.dtype.newbyteorder("="))
    for coords in chunk_grid(data.shape, chunks):
        if missing(coords):
            continue
        sl = chunk_slices(coords, chunks, data.shape)
        arr[sl] = data[sl]
        truth[sl] = data[sl]
    return truth


def build_zarr2(
    root: Path,
    *,
    shape,
    dtype,
    chunks,
    compressor,
    sep=".",
    order="C",
    fill_value=0,
    missing: Optional[Callable] = None,
    ome: bool = True,
    axes=None,
    nlevels: int = 2,
    seed: int = 0,
) -> Dataset:
    import zarr  # python3-zarr 2.13

    if axes is None:
        axes = {3: AXES_ZYX, 4: AXES_CZYX, 5: AXES_TCZYX}[len(shape)] if ome else GUESSED_AXES[len(shape)]
    data0 = make_data(shape, dtype, seed)
    kwargs = dict(compressor=compressor, dimension_separator=sep, order=order,
                  fill_value=fill_value, write_empty_chunks=True)
    if not ome:
        path = root / "plain.zarr"
        truth = _write_v2_array(
            lambda **kw: zarr.open_array(str(path), mode="w", **kw, **kwargs),
            data0, chunks, missing, fill_value)
        meta = json.loads((path / ".zarray").read_text())
        assert meta["dtype"] == np.dtype(dtype).str, meta
        return Dataset(
            path=str(path), levels=[truth], format="zarr", zarr_format=2, format_version="",
            axes=GUESSED_AXES[len(shape)], chunks=[list(chunks)], scales=[[1.0] * len(shape)],
            translations=[[0.0] * len(shape)], fill_value=fill_value,
            codec=codec_words_v2(compressor))

    path = root / "image.ome.zarr"
    group = zarr.open_group(str(path), mode="w")
    datas = [data0]
    for _ in range(1, nlevels):
        datas.append(coarser(datas[-1], axes))
    truths = []
    for k, d in enumerate(datas):
        truths.append(_write_v2_array(
            lambda **kw: group.create_dataset(str(k), overwrite=True, **kw, **kwargs),
            d, chunks, missing if k == 0 else None, fill_value))
        meta = json.loads((path / str(k) / ".zarray").read_text())
        assert meta["dtype"] == np.dtype(dtype).str and meta["order"] == order, meta
    if missing is not None:
        n_files = sum(1 for p in (path / "0").rglob("*") if p.is_file() and not p.name.startswith("."))
        n_chunks = math.prod(math.ceil(s / c) for s, c in zip(shape, chunks))
        assert 0 < n_files < n_chunks, "the fill-value case needs missing chunks"
    scales, translations = level_transforms(axes, nlevels)
    channels = channels_for(axes, shape)
    group.attrs["multiscales"] = ome_multiscales(axes, scales, translations, "0.4")
    group.attrs["omero"] = ome_omero(channels)
    return Dataset(
        path=str(path), levels=truths, format="ome-zarr", zarr_format=2, format_version="0.4",
        axes=axes, chunks=[list(chunks)] * nlevels, scales=scales, translations=translations,
        level_paths=[str(k) for k in range(nlevels)], fill_value=fill_value,
        channels=channels, codec=codec_words_v2(compressor))


def _v2(**kw):
    return lambda root: build_zarr2(root, **kw)


S3 = (37, 45, 51)          # not a multiple of the chunks: partial edge chunks
S4 = (2, 37, 45, 51)
C3 = (16, 16, 16)
C4 = (1, 16, 16, 16)

ZARR2_CASES = {
    "v2-blosc-lz4-shuffle-u16-czyx-dot": _v2(
        shape=S4, dtype="uint16", chunks=C4, compressor=Blosc("lz4", 5, Blosc.SHUFFLE), sep=".",
        seed=1),
    "v2-blosc-lz4hc-noshuffle-u8-slash": _v2(
        shape=S3, dtype="uint8", chunks=C3, compressor=Blosc("lz4hc", 7, Blosc.NOSHUFFLE),
        sep="/", seed=2),
    "v2-blosc-zstd-bitshuffle-u16-slash": _v2(
        shape=S3, dtype="uint16", chunks=(10, 20, 16), compressor=Blosc("zstd", 3, Blosc.BITSHUFFLE),
        sep="/", seed=3),
    "v2-blosc-zlib-shuffle-i16-dot": _v2(
        shape=S4, dtype="int16", chunks=(1, 16, 8, 32), compressor=Blosc("zlib", 4, Blosc.SHUFFLE),
        sep=".", seed=4),
    "v2-blosc-blosclz-bitshuffle-f32-dot": _v2(
        shape=S3, dtype="float32", chunks=C3, compressor=Blosc("blosclz", 5, Blosc.BITSHUFFLE),
        sep=".", seed=5),
    "v2-blosc-lz4-shuffle-u32-slash": _v2(
        shape=S3, dtype="uint32", chunks=C3, compressor=Blosc("lz4", 1, Blosc.SHUFFLE), sep="/",
        seed=6),
    "v2-zstd-u32-slash": _v2(
        shape=S3, dtype="uint32", chunks=C3, compressor=Zstd(level=3), sep="/", seed=7),
    "v2-gzip-u16-dot": _v2(
        shape=S3, dtype="uint16", chunks=C3, compressor=GZip(level=5), sep=".", seed=8),
    "v2-zlib-f32-slash": _v2(
        shape=S3, dtype="float32", chunks=C3, compressor=Zlib(level=6), sep="/", seed=9),
    "v2-none-u16-dot": _v2(
        shape=S3, dtype="uint16", chunks=C3, compressor=None, sep=".", seed=10),
    "v2-none-i16-slash": _v2(
        shape=S4, dtype="int16", chunks=C4, compressor=None, sep="/", seed=11),
    "v2-bigendian-u2-blosc-lz4": _v2(
        shape=S3, dtype=">u2", chunks=C3, compressor=Blosc("lz4", 5, Blosc.SHUFFLE), sep=".",
        seed=12),
    "v2-bigendian-f4-zstd-slash": _v2(
        shape=S3, dtype=">f4", chunks=C3, compressor=Zstd(level=1), sep="/", seed=13),
    "v2-order-F-u16-zstd": _v2(
        shape=S3, dtype="uint16", chunks=(16, 8, 32), compressor=Zstd(level=3), sep=".",
        order="F", seed=14),
    "v2-order-F-czyx-blosc-u8": _v2(
        shape=S4, dtype="uint8", chunks=C4, compressor=Blosc("lz4", 5, Blosc.SHUFFLE), sep="/",
        order="F", seed=15),
    "v2-fill7-missing-u16-blosc": _v2(
        shape=S3, dtype="uint16", chunks=C3, compressor=Blosc("zstd", 5, Blosc.SHUFFLE), sep=".",
        fill_value=7, missing=lambda c: (c[0] + 2 * c[1] + c[2]) % 3 == 1, seed=16),
    "v2-fill7-missing-i16-none-slash": _v2(
        shape=S3, dtype="int16", chunks=C3, compressor=None, sep="/",
        fill_value=-7, missing=lambda c: (c[0] + c[1] + c[2]) % 2 == 0, seed=17),
    "v2-tczyx-gzip-f64": _v2(
        shape=(2, 2, 9, 20, 21), dtype="float64", chunks=(1, 1, 4, 8, 8), compressor=GZip(level=1),
        sep="/", seed=18),
    "v2-int8-zlib": _v2(
        shape=S3, dtype="int8", chunks=C3, compressor=Zlib(level=1), sep=".", seed=19),
    "v2-int32-blosc-lz4": _v2(
        shape=S3, dtype="int32", chunks=C3, compressor=Blosc("lz4", 5, Blosc.SHUFFLE), sep=".",
        seed=20),
    # Plain arrays (no OME metadata): format "zarr", axes guessed from ndim.
    "v2-plain-zyx-blosc-u16": _v2(
        shape=S3, dtype="uint16", chunks=C3, compressor=Blosc("lz4", 5, Blosc.SHUFFLE), ome=False,
        seed=21),
    "v2-plain-yx-zstd-u8": _v2(
        shape=(45, 51), dtype="uint8", chunks=(16, 16), compressor=Zstd(level=3), ome=False,
        seed=22),
    "v2-plain-czyx-gzip-f32-slash": _v2(
        shape=(3, 11, 17, 19), dtype="float32", chunks=(1, 8, 8, 8), compressor=GZip(level=5),
        sep="/", ome=False, seed=23),
    "v2-plain-tczyx-none-u16": _v2(
        shape=(2, 3, 7, 9, 10), dtype="uint16", chunks=(1, 2, 4, 4, 4), compressor=None,
        ome=False, seed=24),
}

# ---------------------------------------------------------------------------------------
# Zarr v3 / OME-Zarr v0.5 (zarr3.py, from the spec).


def build_zarr3(
    root: Path,
    *,
    shape,
    dtype,
    chunk_shape,
    codecs: list,
    read_chunks=None,
    fill_value=0,
    key_encoding=("default", "/"),
    missing: Optional[Callable] = None,
    ome: bool = True,
    nlevels: int = 2,
    seed: int = 0,
    codec_words=None,
    reverse_inner_order=False,
    expect_absent_keys=(),
) -> Dataset:
    data0 = make_data(shape, dtype, seed)
    read_chunks = list(read_chunks or chunk_shape)
    if not ome:
        axes = GUESSED_AXES[len(shape)]
        path = root / "plain_v3.zarr"
        truth = zarr3.write_array(path, data0, chunk_shape, codecs, fill_value, key_encoding,
                                  missing, reverse_inner_order=reverse_inner_order)
        return Dataset(
            path=str(path), levels=[truth], format="zarr", zarr_format=3, format_version="",
            axes=axes, chunks=[read_chunks], scales=[[1.0] * len(shape)],
            translations=[[0.0] * len(shape)], fill_value=fill_value, codec=codec_words)

    axes = {3: AXES_ZYX, 4: AXES_CZYX, 5: AXES_TCZYX}[len(shape)]
    path = root / "image_v3.ome.zarr"
    datas = [data0]
    for _ in range(1, nlevels):
        datas.append(coarser(datas[-1], axes))
    scales, translations = level_transforms(axes, nlevels)
    channels = channels_for(axes, shape)
    zarr3.write_group(path, {"ome": {
        "version": "0.5",
        "multiscales": ome_multiscales(axes, scales, translations, None),
        "omero": ome_omero(channels),
    }})
    truths = []
    for k, d in enumerate(datas):
        truths.append(zarr3.write_array(
            path / str(k), d, chunk_shape, codecs, fill_value, key_encoding,
            missing if k == 0 else None, dimension_names=[a[0] for a in axes],
            reverse_inner_order=reverse_inner_order))
    for key in expect_absent_keys:
        assert not (path / "0" / key).exists(), f"fixture expects {key} to be absent"
    if missing is not None:
        assert (truths[0] != datas[0]).any(), "missing chunks must change the truth"
    return Dataset(
        path=str(path), levels=truths, format="ome-zarr", zarr_format=3, format_version="0.5",
        axes=axes, chunks=[read_chunks] * nlevels, scales=scales, translations=translations,
        level_paths=[str(k) for k in range(nlevels)], fill_value=fill_value, channels=channels,
        codec=codec_words)


def _v3(**kw):
    return lambda root: build_zarr3(root, **kw)


B = zarr3.bytes_codec
T = zarr3.transpose_codec

ZARR3_CASES = {
    "v3-bytes-le-u16": _v3(
        shape=S3, dtype="uint16", chunk_shape=C3, codecs=[B("little")], seed=31),
    "v3-bytes-be-u16-v2key-czyx": _v3(
        shape=S4, dtype="uint16", chunk_shape=C4, codecs=[B("big")], key_encoding=("v2", "."),
        seed=32),
    "v3-bytes-u8-noendian-dotsep": _v3(
        shape=S3, dtype="uint8", chunk_shape=(16, 32, 8), codecs=[B(None)],
        key_encoding=("default", "."), seed=33),
    "v3-transpose210-blosc-lz4-shuffle-u16": _v3(
        shape=S3, dtype="uint16", chunk_shape=(16, 8, 32),
        codecs=[T([2, 1, 0]), B("little"), zarr3.blosc_codec("lz4", 5, "shuffle", 2)],
        codec_words=["blosc", "lz4"], seed=34),
    "v3-transpose120-zstd-f32": _v3(
        shape=S3, dtype="float32", chunk_shape=(16, 8, 32),
        codecs=[T([1, 2, 0]), B("little"), zarr3.zstd_codec(3)], codec_words=["zstd"], seed=35),
    "v3-transpose-czyx-be-blosc-bitshuffle-i16": _v3(
        shape=S4, dtype="int16", chunk_shape=(1, 16, 8, 32),
        codecs=[T([3, 1, 0, 2]), B("big"), zarr3.blosc_codec("zstd", 3, "bitshuffle", 2)],
        codec_words=["blosc", "zstd"], seed=36),
    "v3-blosc-noshuffle-u8": _v3(
        shape=S3, dtype="uint8", chunk_shape=C3,
        codecs=[B(None), zarr3.blosc_codec("lz4hc", 5, "noshuffle", 1)],
        codec_words=["blosc", "lz4hc"], seed=37),
    "v3-blosc-blosclz-bitshuffle-u32": _v3(
        shape=S3, dtype="uint32", chunk_shape=C3,
        codecs=[B("little"), zarr3.blosc_codec("blosclz", 5, "bitshuffle", 4)],
        codec_words=["blosc", "blosclz"], seed=38),
    "v3-gzip-i16": _v3(
        shape=S3, dtype="int16", chunk_shape=C3, codecs=[B("little"), zarr3.gzip_codec(5)],
        codec_words=["gzip"], seed=39),
    "v3-zstd-crc32c-u16": _v3(
        shape=S3, dtype="uint16", chunk_shape=C3,
        codecs=[B("little"), zarr3.zstd_codec(3), zarr3.crc32c_codec()],
        codec_words=["zstd", "crc32c"], seed=40),
    "v3-crc32c-only-f64": _v3(
        shape=(9, 20, 21), dtype="float64", chunk_shape=(4, 8, 8),
        codecs=[B("little"), zarr3.crc32c_codec()], codec_words=["crc32c"], seed=41),
    "v3-fill7-missing-zstd-u16": _v3(
        shape=S3, dtype="uint16", chunk_shape=C3, codecs=[B("little"), zarr3.zstd_codec(1)],
        fill_value=7, missing=lambda c: (c[0] + 2 * c[1] + c[2]) % 3 == 1,
        codec_words=["zstd"], seed=42),
    # Sharding: shard (16, 32, 32) of inner (8, 16, 16) over (37, 45, 51): 3x2x2 shards,
    # the last ones partial (inner chunks entirely outside the array are absent), some
    # inner chunks missing, inner chunks stored in reverse order in the shard file.
    "v3-shard-end-blosc-u16": _v3(
        shape=S3, dtype="uint16", chunk_shape=(16, 32, 32), read_chunks=(8, 16, 16),
        codecs=[zarr3.sharding_codec((8, 16, 16), [B("little"),
                                                   zarr3.blosc_codec("lz4", 5, "shuffle", 2)],
                                     "end")],
        fill_value=3, missing=lambda c: (c[1] + c[2]) % 3 == 0, reverse_inner_order=True,
        codec_words=["shard", "blosc"], seed=43),
    # Index at the start, inner chunks transposed + gzip + crc32c, a whole shard absent
    # (shard c/0/0/1/1 holds only missing inner chunks).
    "v3-shard-start-transpose-gzip-crc32c-czyx": _v3(
        shape=S4, dtype="uint16", chunk_shape=(1, 16, 32, 32), read_chunks=(1, 8, 16, 16),
        codecs=[zarr3.sharding_codec((1, 8, 16, 16),
                                     [T([0, 3, 2, 1]), B("little"), zarr3.gzip_codec(3),
                                      zarr3.crc32c_codec()], "start")],
        fill_value=0,
        missing=lambda c: (c[1] < 2 and c[2] >= 2 and c[3] >= 2) or (c[2] + c[3] + c[0]) % 4 == 1,
        expect_absent_keys=("c/0/0/1/1", "c/1/0/1/1"),
        codec_words=["shard", "gzip"], seed=44),
    # v2 chunk keys, index without crc32c, big-endian inner chunks with zstd, float32.
    "v3-shard-v2key-zstd-be-f32": _v3(
        shape=S3, dtype="float32", chunk_shape=(16, 16, 32), read_chunks=(8, 8, 8),
        codecs=[zarr3.sharding_codec((8, 8, 8), [B("big"), zarr3.zstd_codec(2)], "end",
                                     index_codecs=[B("little")])],
        key_encoding=("v2", "."), fill_value=0, missing=lambda c: c[2] == 1,
        codec_words=["shard", "zstd"], seed=45),
    "v3-plain-zyx-zstd-u16": _v3(
        shape=S3, dtype="uint16", chunk_shape=C3, codecs=[B("little"), zarr3.zstd_codec(3)],
        ome=False, codec_words=["zstd"], seed=46),
    "v3-plain-shard-crc32c-u8": _v3(
        shape=(33, 40, 20), dtype="uint8", chunk_shape=(16, 32, 16), read_chunks=(8, 8, 16),
        codecs=[zarr3.sharding_codec((8, 8, 16), [B(None), zarr3.gzip_codec(1)], "start")],
        ome=False, codec_words=["shard"], seed=47),
}

# ---------------------------------------------------------------------------------------
# NumPy .npy.


def build_npy(root: Path, *, shape, dtype, fortran=False, seed=0) -> Dataset:
    data = make_data(shape, dtype, seed)
    if fortran:
        data = np.asfortranarray(data)
    path = root / "volume.npy"
    np.save(path, data)
    with open(path, "rb") as f:  # the case is what it says
        version = np.lib.format.read_magic(f)
        read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                else np.lib.format.read_array_header_2_0)
        hdr = read(f)
        assert hdr[1] == fortran and hdr[2] == np.dtype(dtype), hdr
    return Dataset(path=str(path), levels=[native(data)], format="npy",
                   axes=GUESSED_AXES[len(shape)], scales=[[1.0] * len(shape)],
                   translations=[[0.0] * len(shape)])


def _npy(**kw):
    return lambda root: build_npy(root, **kw)


NPY_CASES = {
    "npy-u16-zyx": _npy(shape=(23, 31, 47), dtype="uint16", seed=51),
    "npy-f32-fortran-zyx": _npy(shape=(19, 28, 33), dtype="float32", fortran=True, seed=52),
    "npy-bigendian-i2-zyx": _npy(shape=(17, 20, 25), dtype=">i2", seed=53),
    "npy-bigendian-fortran-u4-zyx": _npy(shape=(9, 10, 11), dtype=">u4", fortran=True, seed=54),
    "npy-u8-yx": _npy(shape=(61, 77), dtype="uint8", seed=55),
    "npy-f64-czyx": _npy(shape=(3, 9, 14, 15), dtype="float64", seed=56),
    "npy-i8-tczyx": _npy(shape=(2, 2, 5, 6, 7), dtype="int8", seed=57),
}

# ---------------------------------------------------------------------------------------
# TIFF (tifffile).


def build_tiff(root: Path, *, shape, dtype, compression=None, separate_pages=False, seed=0,
               **layout):
    import tifffile

    data = make_data(shape, dtype, seed)
    path = root / "stack.tif"
    if separate_pages:
        # One page at a time, no shape metadata: a plain multi-page TIFF.
        with tifffile.TiffWriter(path) as tif:
            for page in data:
                tif.write(page, photometric="minisblack", contiguous=False, metadata=None,
                          compression=compression)
    else:
        # layout: tile=(h, w) for a tiled TIFF, rowsperstrip=N for many strips per chunk.
        tifffile.imwrite(path, data, photometric="minisblack", compression=compression, **layout)
    with tifffile.TiffFile(path) as tif:
        if "tile" in layout:
            assert tif.pages[0].is_tiled
        assert len(tif.pages) == shape[0]
        back = np.stack([p.asarray() for p in tif.pages])
        assert np.array_equal(back, data)
        comp = tif.pages[0].compression
    if compression:
        assert int(comp) != 1, "expected a compressed TIFF"
    return Dataset(path=str(path), levels=[native(data)], format="tiff",
                   axes=GUESSED_AXES[3])


def _tiff(**kw):
    return lambda root: build_tiff(root, **kw)


def _tiff_zlib_missing() -> Optional[str]:
    """None where tifffile writes zlib (Debian's python3-tifffile does, through Python's
    zlib); else why not. Only a missing codec counts: any other error is raised, and under
    CI=true the skip is a failure (tests/skip_policy.py)."""
    import tempfile

    import tifffile

    try:
        with tempfile.TemporaryDirectory() as d:
            tifffile.imwrite(Path(d) / "t.tif", np.zeros((2, 4, 4), np.uint16), compression="zlib")
        return None
    except (ImportError, ValueError) as e:  # no imagecodecs and no zlib fallback
        return f"tifffile cannot write zlib here ({type(e).__name__}: {e})"


TIFF_CASES = {
    "tiff-u16-23pages": _tiff(shape=(23, 40, 33), dtype="uint16", seed=61),
    "tiff-u8-23pages": _tiff(shape=(23, 40, 33), dtype="uint8", seed=62),
    "tiff-u16-separate-pages": _tiff(shape=(13, 40, 33), dtype="uint16", separate_pages=True,
                                     seed=63),
    "tiff-u16-zlib": _tiff(shape=(23, 40, 33), dtype="uint16", compression="zlib", seed=64),
    # Partial edge tiles on both axes.
    "tiff-u16-tiled": _tiff(shape=(5, 40, 33), dtype="uint16", tile=(16, 16), seed=65),
    # 7-row strips: a chunk spans many strips and the last strip is short.
    "tiff-u16-strips7": _tiff(shape=(3, 300, 20), dtype="uint16", rowsperstrip=7, seed=66),
}
TIFF_ZLIB_SKIP = _tiff_zlib_missing()

# ---------------------------------------------------------------------------------------
# NIfTI (nibabel).

NIFTI_UNITS = {"mm": "millimeter", "micron": "micrometer", "meter": "meter"}


def _nifti_dataset(path: Path) -> Dataset:
    import nibabel as nib

    img = nib.load(str(path))
    raw = np.asanyarray(img.dataobj.get_unscaled())  # stored ints, no scaling, (x, y, z)
    assert raw.ndim == 3
    truth = native(np.ascontiguousarray(raw.transpose()))  # C order (z, y, x)
    zooms = [float(z) for z in img.header.get_zooms()[:3]]
    unit = NIFTI_UNITS[img.header.get_xyzt_units()[0]]
    return Dataset(path=str(path), levels=[truth], format="nifti",
                   axes=[("z", SPACE, unit), ("y", SPACE, unit), ("x", SPACE, unit)],
                   scales=[zooms[::-1]])


def build_nifti_anatomical(root: Path) -> Dataset:
    # The real MRI volume shipped with nibabel's tests (big-endian int16, vox_offset 0 in
    # the header, which NIfTI-1 readers treat as 352).
    path = root / "anatomical.nii"
    shutil.copyfile(ANATOMICAL_NII, path)
    return _nifti_dataset(path)


def build_nifti(root: Path, *, shape_xyz, dtype, zooms, units, gz, seed=0) -> Dataset:
    import nibabel as nib

    data = native(make_data(shape_xyz, dtype, seed))
    affine = np.diag(list(zooms) + [1.0])
    affine[:3, 3] = [-3.0, 4.0, 5.5]
    img = nib.Nifti1Image(data, affine)
    img.header.set_data_dtype(data.dtype)
    img.header.set_xyzt_units(units, "sec")
    path = root / ("volume.nii.gz" if gz else "volume.nii")
    nib.save(img, str(path))
    ds = _nifti_dataset(path)
    assert np.array_equal(ds.levels[0], data.transpose())
    return ds


NIFTI_CASES = {
    "nifti-anatomical-i16": build_nifti_anatomical,
    "nifti-f32-gz-micron": lambda root: build_nifti(
        root, shape_xyz=(21, 17, 13), dtype="float32", zooms=(0.5, 0.75, 1.25), units="micron",
        gz=True, seed=71),
    "nifti-u8-mm": lambda root: build_nifti(
        root, shape_xyz=(30, 20, 10), dtype="uint8", zooms=(1.0, 1.0, 3.0), units="mm", gz=False,
        seed=72),
    "nifti-i16-gz-mm": lambda root: build_nifti(
        root, shape_xyz=(25, 26, 27), dtype="int16", zooms=(0.9, 0.8, 0.7), units="mm", gz=True,
        seed=73),
}

ALL_CASES = {**ZARR2_CASES, **ZARR3_CASES, **NPY_CASES, **TIFF_CASES, **NIFTI_CASES}


def skip_reason(case_id: str) -> Optional[str]:
    if case_id == "tiff-u16-zlib":
        return TIFF_ZLIB_SKIP
    return None


# ---------------------------------------------------------------------------------------
# Boxes and downsampling references.


def boxes_for(shape, chunks):
    """Two boxes per array: one from inside the first chunk to the array's end (crossing
    chunk boundaries and taking the partial edge chunk), one inner box."""
    chunks = chunks or [max(1, n // 3) for n in shape]
    edge, inner = [], []
    for n, c in zip(shape, chunks):
        if n > c:
            start = max(0, c - 3) if c > 3 else c - 1
            edge.append(slice(start, n))
        else:
            edge.append(slice(n // 3, n))
        s = min(1, n - 1)
        inner.append(slice(s, max(s + 1, min(n - 1, 2 * c + 1))))
    return {"edge": tuple(edge), "inner": tuple(inner)}


def box_arg(slices) -> str:
    return ",".join(f"{s.start}:{s.stop}" for s in slices)


def downsample_mean(a: np.ndarray, spatial_axes) -> np.ndarray:
    """2x mean over the spatial axes, edge blocks averaging whatever voxels exist
    (float64)."""
    out = a.astype(np.float64)
    for ax in spatial_axes:
        n = out.shape[ax]
        starts = np.arange(0, n, 2)
        counts = np.diff(np.append(starts, n)).astype(np.float64)
        sums = np.add.reduceat(out, starts, axis=ax)
        shape = [1] * out.ndim
        shape[ax] = len(starts)
        out = sums / counts.reshape(shape)
    return out


def full_block_mask(finer_shape, spatial_axes) -> np.ndarray:
    """True where the coarse voxel averages a full 2x2x2 block (not an edge block)."""
    coarse = [math.ceil(n / 2) if ax in spatial_axes else n for ax, n in enumerate(finer_shape)]
    mask = np.ones(coarse, dtype=bool)
    for ax in spatial_axes:
        n = finer_shape[ax]
        full = (2 * np.arange(coarse[ax]) + 1) < n
        shape = [1] * len(coarse)
        shape[ax] = coarse[ax]
        mask &= full.reshape(shape)
    return mask


def check_downsampled(got: np.ndarray, finer: np.ndarray, spatial_axes, what: str,
                      from_truth: bool) -> None:
    """Asserts ``got`` is the 2x mean of ``finer`` over the spatial axes.

    Integers: within 1 everywhere (ties may round either way, edges, and a coarser level
    may be computed from any finer one). When ``finer`` is the exact input (level 1 from
    level 0, ``from_truth``), full interior blocks must be rounded to nearest: within 0.5
    (a tie either way) for at least 98% of them, which rules out truncation or
    subsampling. Floats: within a relative 1e-5.
    """
    ref = downsample_mean(finer, spatial_axes)
    assert got.shape == ref.shape, f"{what}: shape {got.shape}, expected {ref.shape}"
    if np.issubdtype(got.dtype, np.integer):
        diff = np.abs(got.astype(np.float64) - ref)
        worst = float(diff.max()) if diff.size else 0.0
        assert worst <= 1.0 + 1e-9, (
            f"{what}: differs from the 2x mean by up to {worst} "
            f"(at {np.unravel_index(int(diff.argmax()), diff.shape)})")
        inner = diff[full_block_mask(finer.shape, spatial_axes)]
        if from_truth and inner.size:
            frac = float((inner > 0.5 + 1e-9).mean())
            assert frac < 0.02, f"{what}: {frac:.1%} of full blocks not rounded to nearest"
    else:
        scale = float(np.abs(ref).max()) if ref.size else 1.0
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5 * max(scale, 1.0),
                                   err_msg=what)
