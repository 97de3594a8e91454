"""Calibration: ImageJ and OME-TIFF (written by python3-tifffile) and NIfTI (nibabel) voxel
sizes and units come out as the level's scale and the axes' units in `voxcast info`, and 3D
renders use them (an anisotropic stack is not squashed)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

tifffile = pytest.importorskip("tifffile")

ZYX_UM = [("z", "space", "micrometer"), ("y", "space", "micrometer"),
          ("x", "space", "micrometer")]


def axes_of(meta):
    return [(a["name"], a["type"], a["unit"]) for a in meta["axes"]]


def imagej_stack(path, unit="um", spacing=2.0, pixel=0.5, data=None, **meta):
    if data is None:
        data = np.arange(4 * 8 * 8, dtype=np.uint16).reshape(4, 8, 8)
    tifffile.imwrite(path, data, imagej=True, resolution=(1 / pixel, 1 / pixel),
                     metadata={"spacing": spacing, "unit": unit, "axes": "ZYX", **meta})
    return str(path)


@pytest.mark.parametrize("unit", ["um", "micron", "\\u00B5m", b"\xb5m", "µm".encode()],
                         ids=["um", "micron", "escaped", "latin1", "utf8"])
def test_imagej_spacing_and_resolution_give_scale_and_unit(info, tmp_path, unit):
    if isinstance(unit, bytes):
        # tifffile writes ASCII descriptions only; ImageJ itself writes the micro sign too.
        path = str(tmp_path / "ij.tif")
        tifffile.imwrite(path, np.zeros((4, 8, 8), np.uint16), photometric="minisblack",
                         resolution=(2.0, 2.0), metadata=None,
                         description=b"ImageJ=1.53t\nimages=4\nslices=4\nunit=" + unit +
                         b"\nspacing=2.0\n")
    else:
        path = imagej_stack(tmp_path / "ij.tif", unit=unit)
    with tifffile.TiffFile(path) as tif:  # the writer wrote what this test claims
        assert tif.is_imagej and tif.imagej_metadata["spacing"] == 2.0
    meta = info(path)
    assert meta["levels"][0]["scale"] == pytest.approx([2.0, 0.5, 0.5])
    assert axes_of(meta) == ZYX_UM
    assert meta["warnings"] == []


def test_imagej_nanometres_and_display_range(info, tmp_path):
    path = imagej_stack(tmp_path / "nm.tif", unit="nm", spacing=300.0, pixel=40.0,
                        min=100.0, max=400.0)
    meta = info(path)
    assert meta["levels"][0]["scale"] == pytest.approx([300.0, 40.0, 40.0])
    assert {a["unit"] for a in meta["axes"]} == {"nanometer"}
    window = meta["channels"][0]["window"]
    assert (window["start"], window["end"]) == (100.0, 400.0)


def test_imagej_broken_calibration_opens_with_warnings(run, info, tmp_path):
    data = np.zeros((2, 8, 8), np.uint16)
    path = tmp_path / "broken.tif"
    tifffile.imwrite(path, data, resolution=(2.0, 2.0),
                     description="ImageJ=1.53t\nimages=2\nslices=2\nunit=furlong\nspacing=oops\n")
    meta = info(str(path))
    assert meta["levels"][0]["scale"] == pytest.approx([1.0, 0.5, 0.5])
    fields = sorted(w["field"] for w in meta["warnings"])
    assert fields == ["ImageDescription: spacing", "ImageDescription: unit"]
    assert all(w["file"] == str(path) for w in meta["warnings"])
    strict = run("info", str(path), "--strict")
    assert strict.returncode == 1, strict.stderr
    assert "spacing" in strict.stderr and "furlong" in strict.stderr


def test_ome_tiff_physical_sizes(info, tmp_path):
    data = np.zeros((4, 8, 8), np.uint16)
    path = tmp_path / "a.ome.tif"
    tifffile.imwrite(path, data, ome=True, metadata={
        "axes": "ZYX", "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5, "PhysicalSizeZ": 2.0,
        "PhysicalSizeXUnit": "µm", "PhysicalSizeYUnit": "µm", "PhysicalSizeZUnit": "µm"})
    with tifffile.TiffFile(path) as tif:
        assert tif.is_ome
    meta = info(str(path))
    assert meta["levels"][0]["scale"] == pytest.approx([2.0, 0.5, 0.5])
    assert axes_of(meta) == ZYX_UM


def test_ome_tiff_nanometres_and_default_unit(info, tmp_path):
    data = np.zeros((3, 8, 8), np.uint8)
    path = tmp_path / "b.ome.tif"
    # No unit for y and x: the OME schema's default, the micrometre.
    tifffile.imwrite(path, data, ome=True, metadata={
        "axes": "ZYX", "PhysicalSizeX": 0.1, "PhysicalSizeY": 0.1, "PhysicalSizeZ": 250,
        "PhysicalSizeZUnit": "nm"})
    meta = info(str(path))
    assert meta["levels"][0]["scale"] == pytest.approx([250, 0.1, 0.1])
    assert [a["unit"] for a in meta["axes"]] == ["nanometer", "micrometer", "micrometer"]


def test_plain_tiff_stays_uncalibrated(info, tmp_path):
    path = tmp_path / "plain.tif"
    tifffile.imwrite(path, np.zeros((2, 8, 8), np.uint8), photometric="minisblack")
    meta = info(str(path))
    assert meta["levels"][0]["scale"] == [1, 1, 1]
    assert [a["unit"] for a in meta["axes"]] == ["", "", ""]


def test_nifti_time_unit_from_xyzt_units(info, tmp_path):
    nib = pytest.importorskip("nibabel")
    img = nib.Nifti1Image(np.zeros((4, 5, 6, 3), np.uint8), np.diag([0.5, 0.5, 2.0, 1.0]))
    img.header.set_xyzt_units("micron", "msec")
    img.header.set_zooms((0.5, 0.5, 2.0, 40.0))
    path = tmp_path / "t.nii"
    nib.save(img, str(path))
    meta = info(str(path))
    assert axes_of(meta)[0] == ("t", "time", "millisecond")
    assert meta["levels"][0]["scale"] == pytest.approx([40.0, 2.0, 0.5, 0.5])


def test_3d_render_uses_the_anisotropic_scale(run_ok, tmp_path):
    # A solid block of 8 x 32 x 32 voxels at 2 x 0.5 x 0.5 um is a 16 um cube; seen from the
    # side (looking along x) at 4 pixels per um it is a square, not a 1:4 slab.
    block = np.full((8, 32, 32), 200, np.uint8)
    calibrated = imagej_stack(tmp_path / "cube.tif", data=block)
    plain = tmp_path / "slab.tif"
    tifffile.imwrite(plain, block, photometric="minisblack")
    view = tmp_path / "side.json"
    view.write_text(json.dumps({
        "canvas": {"width": 128, "height": 128}, "dims": {"ndisplay": 3},
        "camera": {"angles": [0, -90, 0], "zoom": 4},
        "layers": [{"rendering": "mip", "contrast_limits": [0, 255]}]}))

    def extent(data):
        out = tmp_path / "side.png"
        run_ok("render", data, "--view", view, "-o", out)
        ys, xs = np.nonzero(np.asarray(Image.open(out).convert("L")) > 50)
        return ys.max() - ys.min() + 1, xs.max() - xs.min() + 1

    h, w = extent(calibrated)
    assert abs(h - 64) <= 4 and abs(w - 64) <= 4, f"calibrated cube drawn {w}x{h}"
    h, w = extent(str(plain))
    assert min(h, w) / max(h, w) < 0.3, f"uncalibrated slab drawn {w}x{h}"


def test_imagej_hyperstack_is_t_c_z_y_x(info, export, tmp_path):
    rng = np.random.default_rng(2)
    data = rng.integers(0, 4000, size=(3, 4, 2, 16, 20), dtype=np.uint16)  # T Z C Y X
    path = tmp_path / "hyper.tif"
    tifffile.imwrite(path, data, imagej=True, resolution=(2.0, 2.0),
                     metadata={"axes": "TZCYX", "spacing": 3.0, "unit": "um", "finterval": 0.5})
    with tifffile.TiffFile(path) as tif:
        assert tif.imagej_metadata["channels"] == 2 and len(tif.pages) == 24
    meta = info(str(path))
    assert axes_of(meta) == [("t", "time", "second"), ("c", "channel", "")] + ZYX_UM
    assert meta["levels"][0]["scale"] == pytest.approx([0.5, 1, 3.0, 0.5, 0.5])
    assert len(meta["channels"]) == 2
    got = export(str(path))
    assert np.array_equal(got, data.transpose(0, 2, 1, 3, 4))


def test_ome_tiff_channels_follow_the_dimension_order(info, export, tmp_path):
    rng = np.random.default_rng(3)
    data = rng.integers(0, 4000, size=(2, 5, 16, 20), dtype=np.uint16)  # C Z Y X
    path = tmp_path / "cz.ome.tif"
    tifffile.imwrite(path, data, ome=True, metadata={"axes": "CZYX", "PhysicalSizeZ": 2.0})
    meta = info(str(path))
    assert [a["name"] for a in meta["axes"]] == ["c", "z", "y", "x"]
    assert meta["levels"][0]["scale"] == pytest.approx([1, 2.0, 1, 1])
    assert np.array_equal(export(str(path)), data)


def test_hyperstack_sizes_that_do_not_fit_the_pages_warn(info, tmp_path):
    path = tmp_path / "liar.tif"
    tifffile.imwrite(path, np.zeros((4, 8, 8), np.uint8), photometric="minisblack",
                     metadata=None,
                     description="ImageJ=1.53t\nimages=6\nchannels=3\nslices=2\n")
    meta = info(str(path))
    assert [a["name"] for a in meta["axes"]] == ["z", "y", "x"]
    assert meta["levels"][0]["shape"] == [4, 8, 8]
    assert [w["field"] for w in meta["warnings"]] == ["ImageDescription: channels/slices/frames"]
