"""Default display of data without a stored display window: `voxcast render` with no view
shows the 0.5..99.5 percentiles of the data (not 0..dtype max), and channels without colours
in the metadata get napari's channel colormaps (magenta/green for two, cyan/yellow/... for
more). Fixtures by tifffile and numpy."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image


def render_default(run_ok, data, out, size="64x64"):
    run_ok("render", data, "--size", size, "-o", out)
    return np.asarray(Image.open(out).convert("RGB")).astype(np.int32)


def test_a_large_tiff_without_display_range_is_not_black(run_ok, tmp_path):
    import tifffile

    # 20 x 1024 x 1024 uint16 (more voxels than the estimate reads whole), values 1000..2000:
    # at 0..65535 this renders at most 2000 / 65535 * 255 = 7 grey levels.
    rng = np.random.default_rng(3)
    data = rng.integers(1000, 2001, size=(20, 1024, 1024), dtype=np.uint16)
    path = tmp_path / "big.tif"
    tifffile.imwrite(path, data, photometric="minisblack")
    img = render_default(run_ok, str(path), tmp_path / "big.png")
    # Percentile contrast 1005..1995 spreads the uniform values over the whole grey range.
    assert img.mean() > 90, f"mean {img.mean():.1f}: the default contrast is not the data's"
    assert img.max() > 240


def test_npy_channels_get_magenta_and_green(run_ok, tmp_path):
    # c, z, y, x: channel 0 bright on the left half, channel 1 on the right half.
    data = np.zeros((2, 3, 32, 64), np.uint16)
    data[0, :, :, :32] = 3000
    data[1, :, :, 32:] = 3000
    data[:, :, 0, 0] = 1  # some spread so the percentiles are a range
    path = tmp_path / "two.npy"
    np.save(path, data)
    img = render_default(run_ok, str(path), tmp_path / "two.png", "64x32")
    left, right = img[16, 8], img[16, 56]
    assert left[0] > 200 and left[2] > 200 and left[1] < 50, f"channel 0 {left}: not magenta"
    assert right[1] > 200 and right[0] < 50 and right[2] < 50, f"channel 1 {right}: not green"


@pytest.mark.parametrize("channel,rgb", [(0, (0, 1, 1)), (1, (1, 1, 0)), (2, (1, 0, 1))])
def test_three_channels_get_cyan_yellow_magenta(run_ok, tmp_path, channel, rgb):
    data = np.zeros((3, 2, 16, 16), np.uint8)
    data[channel, :, :, 8:] = 200  # half dark, half bright: percentiles 0..200
    path = tmp_path / "three.npy"
    np.save(path, data)
    img = render_default(run_ok, str(path), tmp_path / "three.png", "16x16")
    px = img[8, 12]
    got = tuple(int(v > 128) for v in px)
    assert got == rgb, f"channel {channel} drawn as {px}, expected {rgb}"
