"""2D images and colour: PNG (written by PIL) and RGB(A) TIFF (tifffile) open as 2D images
whose samples are channels (c, y, x): red, green and blue, additive, with the type's full
range as their window, so `render` reproduces the image's own colours; alpha is a hidden
channel. `info`, `export`, `render` and `serve` all take them; broken files are errors, not
crashes."""

from __future__ import annotations

import asyncio
import json
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vxhelpers import describe, error_line, http_get

tifffile = pytest.importorskip("tifffile")

H, W = 40, 60
RGB_NAMES = [("red", "FF0000"), ("green", "00FF00"), ("blue", "0000FF")]


def rgb_image(seed=1, dtype=np.uint8, samples=3):
    rng = np.random.default_rng(seed)
    top = np.iinfo(dtype).max
    return rng.integers(0, top, size=(H, W, samples), dtype=dtype, endpoint=True)


def check_export(export, path, want):
    got = export(path)
    assert got.dtype == want.dtype and got.shape == want.shape, (got.dtype, got.shape)
    assert np.array_equal(got, want)


def channels(meta):
    return [(c["name"], c["color"]) for c in meta["channels"]]


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "P"])
def test_colour_png_is_channels_y_x(info, export, tmp_path, mode):
    rgba = rgb_image(samples=4)
    img = Image.fromarray(rgba, "RGBA") if mode == "RGBA" else \
        Image.fromarray(rgba[..., :3], "RGB").convert(mode)  # a palette without transparency
    path = tmp_path / f"img-{mode}.png"
    img.save(path)
    want = np.asarray(img.convert("RGBA" if mode == "RGBA" else "RGB"))
    meta = info(str(path))
    assert meta["format"] == "png"
    assert [(a["name"], a["type"]) for a in meta["axes"]] == [
        ("c", "channel"), ("y", "space"), ("x", "space")]
    assert channels(meta)[:3] == RGB_NAMES
    assert all(c["window"]["start"] == 0 and c["window"]["end"] == 255
               for c in meta["channels"])
    if mode == "RGBA":
        assert channels(meta)[3][0] == "alpha" and not meta["channels"][3]["visible"]
    else:
        assert len(meta["channels"]) == 3
    check_export(export, str(path), np.moveaxis(want, -1, 0))


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_gray_png_is_a_2d_image(info, export, tmp_path, dtype):
    data = rgb_image(dtype=dtype, samples=1)[..., 0]
    path = tmp_path / "gray.png"
    Image.fromarray(data).save(path)
    meta = info(str(path))
    assert [a["name"] for a in meta["axes"]] == ["y", "x"]
    assert meta["dtype"] == np.dtype(dtype).name
    assert meta["channels"][0]["window"] is None  # contrast from the data's percentiles
    check_export(export, str(path), data)


TIFF_LAYOUTS = {
    "contig": dict(photometric="rgb"),
    "planar": dict(photometric="rgb", planarconfig="separate"),
    "tiled": dict(photometric="rgb", tile=(16, 16)),
    "strips7": dict(photometric="rgb", rowsperstrip=7),
}


@pytest.mark.parametrize("layout", list(TIFF_LAYOUTS))
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_rgb_tiff_is_channels_y_x(info, export, tmp_path, layout, dtype):
    data = rgb_image(dtype=dtype)
    path = tmp_path / "rgb.tif"
    stored = np.moveaxis(data, -1, 0) if layout == "planar" else data
    tifffile.imwrite(path, stored, **TIFF_LAYOUTS[layout])
    with tifffile.TiffFile(path) as tif:
        assert tif.pages[0].photometric == 2 and tif.pages[0].samplesperpixel == 3
    meta = info(str(path))
    assert [a["name"] for a in meta["axes"]] == ["c", "y", "x"]
    assert channels(meta) == RGB_NAMES
    check_export(export, str(path), np.moveaxis(data, -1, 0))


def test_rgba_tiff_stack_and_gray_single_page(info, export, tmp_path):
    rng = np.random.default_rng(4)
    stack = rng.integers(0, 256, size=(5, H, W, 4), dtype=np.uint8)
    path = tmp_path / "rgba.tif"
    tifffile.imwrite(path, stack, photometric="rgb", extrasamples=["unassalpha"])
    meta = info(str(path))
    assert [a["name"] for a in meta["axes"]] == ["c", "z", "y", "x"]
    assert channels(meta)[3][0] == "alpha" and not meta["channels"][3]["visible"]
    check_export(export, str(path), np.moveaxis(stack, -1, 0))

    page = rng.integers(0, 4000, size=(H, W), dtype=np.uint16)
    single = tmp_path / "page.tif"
    tifffile.imwrite(single, page, photometric="minisblack")
    meta = info(str(single))
    assert [a["name"] for a in meta["axes"]] == ["y", "x"]  # one page: a 2D image
    check_export(export, str(single), page)


def test_render_reproduces_the_colours(run_ok, tmp_path):
    data = rgb_image(seed=9)
    png = tmp_path / "in.png"
    tif = tmp_path / "in.tif"
    Image.fromarray(data).save(png)
    tifffile.imwrite(tif, data, photometric="rgb")
    view = tmp_path / "v.json"
    view.write_text(json.dumps({
        "canvas": {"width": W, "height": H}, "camera": {"zoom": 1},
        "layers": [{"interpolation": "nearest"}] * 3}))
    for src in (png, tif):
        out = tmp_path / "out.png"
        run_ok("render", src, "--view", view, "-o", out)
        got = np.asarray(Image.open(out).convert("RGB")).astype(int)
        diff = np.abs(got - data.astype(int))
        assert diff.max() <= 2, f"{src.name}: differs by up to {diff.max()}"


def test_3d_of_a_2d_image_is_a_usage_error(run, tmp_path):
    png = tmp_path / "in.png"
    Image.fromarray(rgb_image()).save(png)
    view = tmp_path / "v.json"
    view.write_text(json.dumps({"dims": {"ndisplay": 3}}))
    res = run("render", png, "--view", view, "-o", tmp_path / "o.png")
    error_line(res, "ndisplay", code=2)


def png_bytes(width, height, raw, color_type=2, depth=8):
    def chunk(kind, body):
        return (struct.pack(">I", len(body)) + kind + body +
                struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))
    ihdr = struct.pack(">IIBBBBB", width, height, depth, color_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) +
            chunk(b"IEND", b""))


BROKEN = {
    "truncated": lambda good: good[: len(good) // 2],
    "bad-crc": lambda good: good[:29] + bytes([good[29] ^ 0xFF]) + good[30:],
    "short-data": lambda good: png_bytes(W, H, b"\x00" * 10),
    "huge": lambda good: png_bytes(200000, 200000, b"\x00" * 10),
    "zero-size": lambda good: png_bytes(0, 5, b""),
    "bad-depth": lambda good: png_bytes(4, 4, b"\x00" * 20, color_type=2, depth=3),
    "magic-only": lambda good: b"\x89PNG\r\n\x1a\n",
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_broken_png_is_an_error_naming_the_file(run, tmp_path, case):
    good = tmp_path / "good.png"
    Image.fromarray(rgb_image()).save(good)
    bad = tmp_path / f"{case}.png"
    bad.write_bytes(BROKEN[case](good.read_bytes()))
    res = run("info", bad)
    error_line(res, bad.name, "reading PNG")


def test_serve_streams_a_png(serve, tmp_path):
    data = np.zeros((H, W, 3), np.uint8)
    data[:, : W // 2, 0] = 255  # left half red
    data[:, W // 2:, 2] = 255   # right half blue
    png = tmp_path / "in.png"
    Image.fromarray(data).save(png)
    s = serve(png, "--port", "0", "--data-dir", tmp_path / "vd")
    status, body = http_get(f"{s.http}/api/v1/datasets")
    assert status == 200, body

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "python"))
    import voxcast

    async def shot():
        v = await voxcast.connect(s.ws)
        try:
            return await v.screenshot()
        finally:
            await v.close()

    img = asyncio.run(asyncio.wait_for(shot(), 60)).astype(int)
    h, w = img.shape[:2]
    left, right = img[h // 2, w // 2 - 40], img[h // 2, w // 2 + 40]
    assert left[0] > 200 and left[2] < 60, f"left {left}: not red"
    assert right[2] > 200 and right[0] < 60, f"right {right}: not blue"
