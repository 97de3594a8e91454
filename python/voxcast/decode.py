"""Decoding pixel-channel payloads (H.264 Annex B access units, JPEG files) with PyAV.

H.264 needs every frame in order (the decoder keeps references); RGB conversion is lazy,
done only for the frames someone looks at (:meth:`Picture.to_rgb`), in NumPy with the
colour matrix and range the stream's SPS names (:mod:`voxcast.yuv`).

Example::

    >>> import io, numpy as np
    >>> from PIL import Image
    >>> from voxcast import protocol
    >>> buf = io.BytesIO(); Image.new("RGB", (32, 16), (200, 30, 30)).save(buf, "JPEG")
    >>> jpeg = buf.getvalue()
    >>> header = protocol.parse_header(protocol.pack_header(
    ...     codec=protocol.CODEC_JPEG, flags=1, width=32, height=16, payload_length=len(jpeg)))
    >>> picture = FrameDecoder().decode(header, jpeg)[0]
    >>> rgb = picture.to_rgb()
    >>> rgb.shape, rgb.dtype, bool(abs(int(rgb[8, 16, 0]) - 200) < 8)
    ((16, 32, 3), dtype('uint8'), True)
"""

from __future__ import annotations

import collections
import logging
from dataclasses import dataclass, field
from typing import Deque, List, Optional

import av
import numpy as np

from . import h264, protocol, yuv

log = logging.getLogger("voxcast")


class DecodeError(RuntimeError):
    """A payload the decoder could not turn into a picture."""


@dataclass
class Picture:
    """One decoded frame: its header and its planes; ``to_rgb()`` converts (and caches)."""

    header: protocol.FrameHeader
    y: np.ndarray
    cb: np.ndarray
    cr: np.ndarray
    matrix: str
    full_range: bool
    _rgb: Optional[np.ndarray] = field(default=None, repr=False)

    def to_rgb(self) -> np.ndarray:
        """(H, W, 3) uint8, read-only (shared by everyone who asks)."""
        if self._rgb is None:
            rgb = yuv.yuv420_to_rgb(self.y, self.cb, self.cr, self.matrix, self.full_range)
            rgb.flags.writeable = False
            self._rgb = rgb
        return self._rgb


def _planes(frame: "av.VideoFrame"):
    out = []
    for p in frame.planes[:3]:
        a = np.frombuffer(p, np.uint8).reshape(p.height, p.line_size)[:, :p.width]
        out.append(a.copy())
    return out


class FrameDecoder:
    """Turns (header, payload) pairs into :class:`Picture` objects.

    ``decode`` returns the pictures that came out (normally exactly one: the protocol's
    H.264 has no reordering). After a decode error it returns nothing until the next
    keyframe and sets ``needs_keyframe`` so the caller can send ``keyframe.request``."""

    def __init__(self) -> None:
        self._h264: Optional[av.CodecContext] = None
        self._headers: Deque[protocol.FrameHeader] = collections.deque()
        self._matrix = "bt709"
        self._full_range = False
        self.sps: Optional[h264.SPS] = None
        self.needs_keyframe = False
        #: What the stream did that docs/protocol.md does not allow (the caller drains it).
        self.violations: List[str] = []
        self.frames_in = 0
        self.frames_out = 0

    def close(self) -> None:
        self._h264 = None
        self._headers.clear()

    def decode(self, header: protocol.FrameHeader, payload) -> List[Picture]:
        self.frames_in += 1
        if header.codec == protocol.CODEC_JPEG:
            pics = [self._decode_jpeg(header, bytes(payload))]
        elif header.codec == protocol.CODEC_H264:
            pics = self._decode_h264(header, bytes(payload))
        else:
            raise DecodeError(f"frame {header.frame_seq}: unknown codec {header.codec}")
        self.frames_out += len(pics)
        return pics

    # --- JPEG -------------------------------------------------------------------------

    def _decode_jpeg(self, header, data: bytes) -> Picture:
        ctx = av.CodecContext.create("mjpeg", "r")
        try:
            frames = ctx.decode(av.Packet(data))
        except av.AVError as e:
            raise DecodeError(f"frame {header.frame_seq}: JPEG does not decode: {e}") from None
        if not frames:
            raise DecodeError(f"frame {header.frame_seq}: JPEG decoded to nothing")
        frame = frames[0]
        if frame.format.name not in ("yuvj420p", "yuv420p"):
            self.violations.append(f"frame {header.frame_seq}: JPEG in {frame.format.name}, "
                                   f"expected 4:2:0")
            # Not the protocol's 4:2:0 (a grey or 4:4:4 JPEG): let swscale do it.
            rgb = frame.to_ndarray(format="rgb24")
            pic = Picture(header, rgb[..., 0], rgb[..., 0], rgb[..., 0], "bt601", True)
            pic._rgb = rgb
            return self._check_size(pic, frame)
        y, cb, cr = _planes(frame)
        return self._check_size(Picture(header, y, cb, cr, "bt601", True), frame)

    # --- H.264 ------------------------------------------------------------------------

    def _open_h264(self) -> None:
        ctx = av.CodecContext.create("h264", "r")
        ctx.thread_type = "SLICE"  # frame threading would hold frames back
        ctx.low_delay = True
        self._h264 = ctx
        self._headers.clear()

    def _check_h264(self, header, data: bytes) -> None:
        types = [h264.nal_type(u) for u in h264.split_nal_units(data)]
        if not types:
            self.violations.append(f"frame {header.frame_seq}: H.264 payload without NAL units")
        elif header.keyframe and not {h264.NAL_SPS, h264.NAL_PPS, h264.NAL_IDR} <= set(types):
            self.violations.append(f"frame {header.frame_seq}: keyframe without SPS, PPS and IDR "
                                   f"(NAL types {types})")
        elif not header.keyframe and h264.NAL_IDR in types:
            self.violations.append(f"frame {header.frame_seq}: an IDR access unit without the "
                                   f"keyframe flag")

    def _decode_h264(self, header, data: bytes) -> List[Picture]:
        self._check_h264(header, data)
        if header.keyframe:
            try:
                sps = h264.find_sps(data)
            except ValueError as e:
                log.warning("frame %d: cannot read its SPS (%s)", header.frame_seq, e)
                sps = None
            if sps is not None:
                self.sps = sps
                self._matrix = yuv.VUI_MATRIX.get(sps.matrix_coefficients, "bt709") \
                    if sps.vui_present else "bt601"
                self._full_range = sps.full_range
            if self._h264 is None or self.needs_keyframe:
                self._open_h264()
                self.needs_keyframe = False
        if self._h264 is None or self.needs_keyframe:
            # Nothing to decode against until a keyframe.
            self.needs_keyframe = True
            return []
        self._headers.append(header)
        try:
            frames = self._h264.decode(av.Packet(data))
        except av.AVError as e:
            self.needs_keyframe = True
            self._h264 = None
            raise DecodeError(f"frame {header.frame_seq}: H.264 does not decode: {e}") from None
        pics = []
        for frame in frames:
            # The protocol has no reordering: pictures come out in the order they went in.
            h = self._headers.popleft() if self._headers else header
            if frame.format.name not in ("yuv420p", "yuvj420p"):
                raise DecodeError(f"frame {h.frame_seq}: H.264 in {frame.format.name}, "
                                  f"expected 4:2:0 8-bit")
            y, cb, cr = _planes(frame)
            full = self._full_range or frame.format.name == "yuvj420p"
            pics.append(self._check_size(Picture(h, y, cb, cr, self._matrix, full), frame))
        return pics

    def _check_size(self, pic: Picture, frame) -> Picture:
        h = pic.header
        if (frame.width, frame.height) != (h.width, h.height):
            self.violations.append(f"frame {h.frame_seq}: header says {h.width}x{h.height}, "
                                   f"the payload is {frame.width}x{frame.height}")
        return pic
