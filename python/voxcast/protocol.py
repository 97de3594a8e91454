"""The wire format of voxcast's streaming protocol, version 1 (docs/protocol.md).

Pure functions and constants, no networking: the 48-byte frame header of the pixel
channel, the JSON messages of the state channel, and the error codes.

Example::

    >>> from voxcast import protocol
    >>> raw = protocol.pack_header(codec=protocol.CODEC_JPEG, flags=protocol.FLAG_KEYFRAME,
    ...                            frame_seq=1, state_seq=0, width=64, height=32,
    ...                            payload_length=3) + b"abc"
    >>> header, payload = protocol.split_frame(raw)
    >>> header.codec_name, header.keyframe, header.width, header.height, bytes(payload)
    ('jpeg', True, 64, 32, b'abc')
    >>> protocol.update_message(3, {"camera": {"zoom": 2}})
    '{"type": "state.update", "seq": 3, "patch": {"camera": {"zoom": 2}}}'
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Any, Iterable, Optional, Tuple

PROTOCOL_VERSION = 1

# --- pixel channel ---------------------------------------------------------------------

MAGIC = b"VXF1"
HEADER_VERSION = 1
HEADER_SIZE = 48
# magic, version, codec, flags, frame seq, state seq, width, height, render us, encode us,
# server us, payload length, wall clock us, reserved
HEADER_STRUCT = struct.Struct("<4sHBBIIHHIIIIQI")
assert HEADER_STRUCT.size == HEADER_SIZE

CODEC_H264 = 1
CODEC_JPEG = 2
CODEC_NAMES = {CODEC_H264: "h264", CODEC_JPEG: "jpeg"}
CODEC_IDS = {name: cid for cid, name in CODEC_NAMES.items()}

FLAG_KEYFRAME = 1 << 0
FLAG_REFINING = 1 << 1
FLAG_INTERACTIVE = 1 << 2
KNOWN_FLAGS = FLAG_KEYFRAME | FLAG_REFINING | FLAG_INTERACTIVE


class ProtocolError(ValueError):
    """The server sent something protocol.md does not allow (a bad header, a bad message)."""


@dataclass(frozen=True)
class FrameHeader:
    """The fixed little-endian header before every frame on ``/ws/pixels``.

    Times are in microseconds. ``state_seq`` is the ``seq`` of the last ``state.update``
    applied before the frame was rendered (0: none yet)."""

    version: int
    codec: int
    flags: int
    frame_seq: int
    state_seq: int
    width: int
    height: int
    render_us: int
    encode_us: int
    server_us: int
    payload_length: int
    wall_clock_us: int
    reserved: int = 0

    @property
    def codec_name(self) -> str:
        """``"h264"`` or ``"jpeg"`` (``"unknown(N)"`` for anything else)."""
        return CODEC_NAMES.get(self.codec, f"unknown({self.codec})")

    @property
    def keyframe(self) -> bool:
        return bool(self.flags & FLAG_KEYFRAME)

    @property
    def refining(self) -> bool:
        """Drawn from coarser data; better frames follow without any client action."""
        return bool(self.flags & FLAG_REFINING)

    @property
    def interactive(self) -> bool:
        """A reduced-cost frame for a moving camera."""
        return bool(self.flags & FLAG_INTERACTIVE)

    @property
    def final(self) -> bool:
        """Neither refining nor interactive: the picture a still render gives."""
        return not (self.flags & (FLAG_REFINING | FLAG_INTERACTIVE))


def parse_header(data: bytes | bytearray | memoryview) -> FrameHeader:
    """Parses and checks the 48-byte frame header at the start of ``data``.

    Raises :class:`ProtocolError` naming the field for a short message, a wrong magic or
    version, an unknown codec, or a payload length that does not match the message
    length (when ``data`` holds the whole message; pass exactly 48 bytes to skip that).

    >>> h = parse_header(pack_header(codec=1, flags=3, frame_seq=7, state_seq=5, width=16,
    ...                              height=8, payload_length=0))
    >>> (h.codec_name, h.keyframe, h.refining, h.interactive, h.frame_seq, h.state_seq)
    ('h264', True, True, False, 7, 5)
    """
    if len(data) < HEADER_SIZE:
        raise ProtocolError(f"frame of {len(data)} bytes is shorter than the "
                            f"{HEADER_SIZE}-byte header")
    (magic, version, codec, flags, frame_seq, state_seq, width, height, render_us, encode_us,
     server_us, payload_length, wall_us, reserved) = HEADER_STRUCT.unpack_from(data, 0)
    if magic != MAGIC:
        raise ProtocolError(f"frame header field 'magic': {bytes(magic)!r}, expected {MAGIC!r}")
    if version != HEADER_VERSION:
        raise ProtocolError(f"frame header field 'version': {version}, expected {HEADER_VERSION}")
    if codec not in CODEC_NAMES:
        raise ProtocolError(f"frame header field 'codec': {codec} is not 1 (h264) or 2 (jpeg)")
    if len(data) != HEADER_SIZE and len(data) != HEADER_SIZE + payload_length:
        raise ProtocolError(f"frame header field 'payload_length': {payload_length}, but the "
                            f"message holds {len(data) - HEADER_SIZE} bytes after the header")
    return FrameHeader(version, codec, flags, frame_seq, state_seq, width, height, render_us,
                       encode_us, server_us, payload_length, wall_us, reserved)


def split_frame(message: bytes | bytearray | memoryview) -> Tuple[FrameHeader, memoryview]:
    """Splits one pixel-channel message into its parsed header and its payload."""
    header = parse_header(message)
    if len(message) != HEADER_SIZE + header.payload_length:
        raise ProtocolError(f"frame header field 'payload_length': {header.payload_length}, "
                            f"but the message holds {len(message) - HEADER_SIZE} bytes")
    return header, memoryview(message)[HEADER_SIZE:]


def pack_header(*, codec: int, flags: int = 0, frame_seq: int = 1, state_seq: int = 0,
                width: int, height: int, payload_length: int, render_us: int = 0,
                encode_us: int = 0, server_us: int = 0, wall_clock_us: int = 0,
                version: int = HEADER_VERSION, magic: bytes = MAGIC,
                reserved: int = 0) -> bytes:
    """Builds a frame header (what the server sends; for tests and tools)."""
    return HEADER_STRUCT.pack(magic, version, codec, flags, frame_seq, state_seq, width,
                              height, render_us, encode_us, server_us, payload_length,
                              wall_clock_us, reserved)


# --- state channel ---------------------------------------------------------------------

# Error codes of `error` replies.
BAD_JSON = "bad_json"
BAD_MESSAGE = "bad_message"
BAD_PATCH = "bad_patch"
BAD_SEQ = "bad_seq"
TOO_LARGE = "too_large"
RATE_LIMITED = "rate_limited"
UNSUPPORTED = "unsupported"
ERROR_CODES = (BAD_JSON, BAD_MESSAGE, BAD_PATCH, BAD_SEQ, TOO_LARGE, RATE_LIMITED, UNSUPPORTED)

# Replies: every client message gets exactly one, in order.
REPLY_TYPES = ("welcome", "ack", "pong", "timeline.state", "error")
# Sent by the server on its own.
EVENT_TYPES = ("scene", "stats", "warning", "timeline.event")

DEFAULT_LIMITS = {
    "max_clients": 32,
    "max_message_bytes": 65536,
    "max_messages_per_s": 240,
    "max_canvas": [3840, 2160],
}


def _json_default(o: Any) -> Any:
    # numpy scalars and arrays, tuples of them: whatever has tolist() or item().
    if hasattr(o, "tolist"):
        return o.tolist()
    if hasattr(o, "item"):
        return o.item()
    raise TypeError(f"{type(o).__name__} is not JSON serializable")


def dumps(obj: Any) -> str:
    """JSON text of a message; numpy values become plain numbers and lists."""
    return json.dumps(obj, default=_json_default, allow_nan=False)


def hello_message(dataset: int = 0, codecs: Iterable[str] = ("h264", "jpeg"),
                  client: Optional[str] = None) -> str:
    """The first message of a session.

    >>> hello_message(0, ["jpeg"])
    '{"type": "hello", "dataset": 0, "codecs": ["jpeg"]}'
    """
    msg: dict = {"type": "hello", "dataset": int(dataset), "codecs": list(codecs)}
    if client is not None:
        msg["client"] = client
    return dumps(msg)


def update_message(seq: int, patch: dict, interactive: bool = False) -> str:
    """A ``state.update``; ``interactive`` is written only when true (its default is false)."""
    msg: dict = {"type": "state.update", "seq": int(seq), "patch": patch}
    if interactive:
        msg["interactive"] = True
    return dumps(msg)


def keyframe_message() -> str:
    return dumps({"type": "keyframe.request"})


def play_message(timeline: dict, start: Optional[float] = None, speed: float = 1.0,
                 loop: bool = False) -> str:
    """A ``timeline.play``: the server previews ``timeline`` in this session."""
    msg: dict = {"type": "timeline.play", "timeline": timeline, "speed": float(speed),
                 "loop": bool(loop)}
    if start is not None:
        msg["from"] = float(start)
    return dumps(msg)


def pause_message() -> str:
    return dumps({"type": "timeline.pause"})


def ping_message(t: Any) -> str:
    return dumps({"type": "ping", "t": t})


def parse_message(text: str | bytes) -> dict:
    """Parses one state-channel message from the server: a JSON object with a ``type``."""
    if isinstance(text, (bytes, bytearray)):
        raise ProtocolError("the state channel sent a binary message (expected JSON text)")
    try:
        msg = json.loads(text)
    except json.JSONDecodeError as e:
        raise ProtocolError(f"the state channel sent text that is not JSON: {e}") from None
    if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
        raise ProtocolError(f"the state channel sent a message without a 'type': {text[:200]!r}")
    return msg
