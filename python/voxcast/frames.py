"""The pixel channel of a :class:`voxcast.client.Viewer`: reading ``/ws/pixels``, checking each
frame header against docs/protocol.md, decoding (PyAV, on a small thread pool) and waiting
for the frame that shows a given state. A mixin: the Viewer owns the state it uses.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from typing import Optional, Tuple

import numpy as np
import websockets
import websockets.exceptions

from . import protocol
from .connection import close_text
from .decode import DecodeError, Picture

log = logging.getLogger("voxcast")

_decode_pool: Optional[concurrent.futures.ThreadPoolExecutor] = None
_decode_pool_lock = threading.Lock()


def _pool() -> concurrent.futures.ThreadPoolExecutor:
    global _decode_pool
    with _decode_pool_lock:
        if _decode_pool is None:
            _decode_pool = concurrent.futures.ThreadPoolExecutor(
                max_workers=4, thread_name_prefix="voxcast-decode")
        return _decode_pool


class FrameStream:
    """Frames of the session: :meth:`next_frame`, :meth:`final_frame` and the reader task."""

    async def next_frame(self, timeout: Optional[float] = 30, after: Optional[int] = None
                         ) -> Tuple[protocol.FrameHeader, np.ndarray]:
        """The next frame: ``(header, rgb)``, rgb (H, W, 3) uint8. "Next" is the first frame
        whose frame seq is above ``after`` (default: the latest frame at the time of the
        call; -1 accepts the latest frame already received). If several arrived before the
        caller ran, the newest."""
        if after is None:
            after = self._latest.header.frame_seq if self._latest is not None else 0
        pic = await self._wait_frame(lambda p: p.header.frame_seq > after, timeout,
                                     f"a frame after frame {after}")
        return pic.header, pic.to_rgb().copy()

    async def final_frame(self, timeout: Optional[float] = 30
                          ) -> Tuple[protocol.FrameHeader, np.ndarray]:
        """Like :meth:`screenshot`, with the frame's header."""
        deadline = None if timeout is None else time.monotonic() + timeout
        await self.sync(timeout)
        target = self._last_acked
        target_scene = self._acked_scenes.get(target)

        def shows_target(p: Picture) -> bool:
            h = p.header
            # A scene the server set (a preview's end) carries no seq: a frame after it.
            if not h.final or h.frame_seq < self._min_final_frame_seq:
                return False
            if h.state_seq >= target:
                return True
            # An update that changed nothing need not cause a frame: an earlier frame of an
            # identical scene shows it.
            return target_scene is not None and self._acked_scenes.get(h.state_seq) == target_scene

        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        pic = await self._wait_frame(shows_target, left,
                                     f"a final frame with state seq >= {target}")
        return pic.header, pic.to_rgb().copy()

    async def _pixel_reader(self) -> None:
        loop = asyncio.get_running_loop()
        reason = "the server closed the pixel channel"
        try:
            async for data in self._pixel_ws:
                if isinstance(data, str):
                    self._violation("a text message on the pixel channel")
                    continue
                try:
                    header, payload = protocol.split_frame(data)
                except protocol.ProtocolError as e:
                    self._violation(str(e))
                    continue
                self._check_frame(header)
                self.recent_headers.append(header)
                self._last_frame_seq = header.frame_seq
                self._last_state_seq = header.state_seq
                try:
                    pics = await loop.run_in_executor(_pool(), self._decoder.decode, header,
                                                      payload)
                except DecodeError as e:
                    self.decode_errors += 1
                    log.warning("%s", e)
                    pics = []
                while self._decoder.violations:
                    self._violation(self._decoder.violations.pop(0))
                if self._decoder.needs_keyframe and self._closed is None:
                    self._decoder.needs_keyframe = False  # one request per loss
                    self._enqueue("keyframe", None, protocol.keyframe_message(), awaited=False)
                if pics:
                    self._latest = pics[-1]
                    self.frames_received += len(pics)
                    async with self._frame_cond:
                        self._frame_cond.notify_all()
        except websockets.exceptions.ConnectionClosed as e:
            reason = f"the pixel channel closed ({close_text(e)})"
        self._disconnected(reason)

    def _check_frame(self, h: protocol.FrameHeader) -> None:
        if self._last_frame_seq == 0 and not h.keyframe:
            self._violation(f"frame {h.frame_seq}, the first on the pixel channel, is not a "
                            f"keyframe")
        # Frame seqs count 1, 2, ... per session; skipping happens before rendering, so a
        # channel sees every number after its first frame.
        if self._last_frame_seq and h.frame_seq != self._last_frame_seq + 1:
            self._violation(f"frame seq {h.frame_seq} after {self._last_frame_seq}")
        if h.state_seq < self._last_state_seq:
            self._violation(f"frame {h.frame_seq}: state seq {h.state_seq} after "
                            f"{self._last_state_seq}")
        if h.state_seq > self._seq:
            self._violation(f"frame {h.frame_seq}: state seq {h.state_seq}, but the last "
                            f"update sent was {self._seq}")
        if h.codec_name != self.codec:
            self._violation(f"frame {h.frame_seq} is {h.codec_name}, the session's codec is "
                            f"{self.codec}")
        if h.flags & ~protocol.KNOWN_FLAGS or h.reserved:
            self._violation(f"frame {h.frame_seq}: unknown flags {h.flags:#x} or reserved "
                            f"{h.reserved}")
        if h.codec == protocol.CODEC_JPEG and not h.keyframe:
            self._violation(f"frame {h.frame_seq}: a JPEG frame without the keyframe flag")

    async def _wait_frame(self, pred, timeout: Optional[float], what: str) -> Picture:
        self._check_thread()

        def ready():
            return self._closed is not None or (self._latest is not None and pred(self._latest))

        try:
            async with self._frame_cond:
                await asyncio.wait_for(self._frame_cond.wait_for(ready), timeout)
        except asyncio.TimeoutError:
            last = self._latest.header if self._latest is not None else None
            raise TimeoutError(f"{self.url}: no {what} within {timeout:g} s (last frame: "
                               f"{last})") from None
        if self._latest is not None and pred(self._latest):
            return self._latest
        raise self._closed  # type: ignore[misc]
