"""Y'CbCr 4:2:0 <-> RGB conversions in NumPy, exactly as the protocol's codecs use them.

voxcast's H.264 frames are BT.709 limited range with chroma averaged over each 2x2 block
(centre-sited); JPEG frames are BT.601 full range (JFIF). Chroma is upsampled bilinearly
(centre-sited, as libjpeg's "fancy upsampling"), which is closest to the averaged original.
PyAV 10 cannot read a frame's colour matrix, so the client converts here with the matrix
named in the stream's SPS.

Example::

    >>> import numpy as np
    >>> rgb = np.zeros((4, 6, 3), np.uint8); rgb[...] = (200, 30, 90)
    >>> y, cb, cr = rgb_to_yuv420(rgb, "bt709", full_range=False)
    >>> y.shape, cb.shape
    ((4, 6), (2, 3))
    >>> back = yuv420_to_rgb(y, cb, cr, "bt709", full_range=False)
    >>> int(np.abs(back.astype(int) - rgb).max()) <= 1
    True
"""

from __future__ import annotations

import numpy as np

# Kr, Kb of each matrix.
MATRICES = {
    "bt709": (0.2126, 0.0722),
    "bt601": (0.299, 0.114),
    "bt2020": (0.2627, 0.0593),
}
# VUI matrix_coefficients -> our name (2, unspecified: BT.601 as FFmpeg assumes for SD).
VUI_MATRIX = {1: "bt709", 5: "bt601", 6: "bt601", 9: "bt2020", 10: "bt2020", 2: "bt601"}


def _ranges(full_range: bool):
    # (luma offset, luma scale, chroma scale)
    return (0.0, 255.0, 255.0) if full_range else (16.0, 219.0, 224.0)


def upsample_chroma(c: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear 2x upsampling of a centre-sited chroma plane to ``height`` x ``width``
    (float32). Output sample 2i sits at chroma coordinate i - 1/4, 2i+1 at i + 1/4."""
    c = c.astype(np.float32, copy=False)
    p = np.pad(c, 1, mode="edge")
    # Rows.
    mid = p[1:-1]
    even = 0.25 * p[:-2] + 0.75 * mid
    odd = 0.75 * mid + 0.25 * p[2:]
    rows = np.empty((2 * c.shape[0], p.shape[1]), np.float32)
    rows[0::2] = even
    rows[1::2] = odd
    # Columns.
    mid = rows[:, 1:-1]
    out = np.empty((rows.shape[0], 2 * c.shape[1]), np.float32)
    out[:, 0::2] = 0.25 * rows[:, :-2] + 0.75 * mid
    out[:, 1::2] = 0.75 * mid + 0.25 * rows[:, 2:]
    return out[:height, :width]


def yuv420_to_rgb(y: np.ndarray, cb: np.ndarray, cr: np.ndarray, matrix: str = "bt709",
                  full_range: bool = False) -> np.ndarray:
    """RGB (H, W, 3) uint8 from 8-bit planes: ``y`` (H, W), ``cb`` and ``cr`` (ceil(H/2),
    ceil(W/2))."""
    kr, kb = MATRICES[matrix]
    kg = 1.0 - kr - kb
    off, ys, cs = _ranges(full_range)
    h, w = y.shape
    luma = (y.astype(np.float32) - off) * np.float32(255.0 / ys)
    u = upsample_chroma(cb, h, w)
    u -= 128.0
    u *= np.float32(255.0 / cs)
    v = upsample_chroma(cr, h, w)
    v -= 128.0
    v *= np.float32(255.0 / cs)
    out = np.empty((h, w, 3), np.float32)
    out[..., 0] = luma + np.float32(2 * (1 - kr)) * v
    out[..., 2] = luma + np.float32(2 * (1 - kb)) * u
    out[..., 1] = (luma - np.float32(2 * kb * (1 - kb) / kg) * u
                   - np.float32(2 * kr * (1 - kr) / kg) * v)
    np.clip(out, 0, 255, out=out)
    out += 0.5
    return out.astype(np.uint8)


def rgb_to_yuv420(rgb: np.ndarray, matrix: str = "bt709", full_range: bool = False):
    """8-bit planes (y, cb, cr) of an RGB (H, W, 3) image (even H and W), chroma averaged
    over each 2x2 block: what the server's renderer writes for H.264 (BT.709, limited) and
    what JPEG encoders do (BT.601, full). For tests and for comparing pictures."""
    kr, kb = MATRICES[matrix]
    kg = 1.0 - kr - kb
    off, ys, cs = _ranges(full_range)
    f = rgb[..., :3].astype(np.float32) / 255.0
    r, g, b = f[..., 0], f[..., 1], f[..., 2]
    y = off + ys * (kr * r + kg * g + kb * b) + 0.5
    h, w = r.shape

    def mean(c):
        return 0.25 * (c[0:h:2, 0:w:2] + c[1:h:2, 0:w:2] + c[0:h:2, 1:w:2] + c[1:h:2, 1:w:2])

    rm, gm, bm = mean(r), mean(g), mean(b)
    lm = kr * rm + kg * gm + kb * bm
    cb = 128 + cs * (bm - lm) / (2 * (1 - kb)) + 0.5
    cr = 128 + cs * (rm - lm) / (2 * (1 - kr)) + 0.5

    def u8(a):
        return np.clip(np.floor(a), 0, 255).astype(np.uint8)

    return u8(y), u8(cb), u8(cr)


def luma(rgb: np.ndarray, matrix: str = "bt709") -> np.ndarray:
    """Full-scale luma (float32, 0..255) of an RGB image: for comparing pictures without
    counting chroma subsampling."""
    kr, kb = MATRICES[matrix]
    f = rgb[..., :3].astype(np.float32)
    return kr * f[..., 0] + (1 - kr - kb) * f[..., 1] + kb * f[..., 2]


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    """Peak signal-to-noise ratio in dB (``inf`` for identical images).

    >>> import numpy as np
    >>> round(psnr(np.zeros((2, 2)), np.full((2, 2), 1.0)), 2)
    48.13
    """
    if a.shape != b.shape:
        raise ValueError(f"psnr of images of different shapes {a.shape} and {b.shape}")
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(peak * peak / mse)
