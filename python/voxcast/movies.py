"""Movies from a :class:`voxcast.client.Viewer` (docs/movies.md): keyframes of its scene, a
preview the server plays in the live session (``timeline.play``, docs/protocol.md), and
``movie`` jobs rendered on the server and downloaded. A mixin: the Viewer owns the state it
uses.
"""

from __future__ import annotations

import asyncio
import copy
import json
import time
from typing import Any, Dict, List, Optional, Tuple, Union

from . import protocol, rest
from .errors import ServerError


def _timeline_doc(timeline: Union[dict, list, tuple]) -> dict:
    return {"keyframes": list(timeline)} if isinstance(timeline, (list, tuple)) else timeline


class MovieMixin:
    #: The last ``timeline.state`` or ``timeline.event`` of a preview (None before any).
    timeline_state: Optional[Dict[str, Any]] = None

    def keyframe(self, t: float, easing: str = "linear") -> Dict[str, Any]:
        """The current scene as a keyframe of a movie timeline, reached at ``t`` seconds
        (docs/movies.md); ``easing`` (``"linear"`` or ``"ease-in-out"``) shapes the segment
        that arrives at it. The canvas is left out: the movie's size decides."""
        scene = copy.deepcopy(self.scene)
        scene.pop("canvas", None)
        return {"time": float(t), "scene": scene, "easing": easing}

    async def movie(self, timeline: Union[dict, list], fps: int = 30,
                    path: Optional[str] = None, size: Optional[Tuple[int, int]] = None,
                    quality: int = 18, timeout: Optional[float] = None,
                    on_progress=None, format: Optional[str] = None) -> Dict[str, Any]:
        """Renders a movie of ``timeline`` (a list of :meth:`keyframe` results, or a whole
        timeline document) as a server job and, with ``path``, downloads the file there.
        ``format`` is ``"mp4"`` (H.264) or ``"webm"`` (VP9); by default it follows ``path``'s
        extension (``.webm``), else MP4. ``size`` is ``(height, width)`` (default: the
        canvas, rounded down to even); ``quality`` is on x264's CRF scale, 0 to 51 (lower is
        better; WebM maps it onto VP9's). ``on_progress(done, total)`` is called
        as frames are encoded. Returns the finished job; a failed job raises
        :class:`ServerError` with its error, and cancelling the awaiting task cancels the
        job."""
        doc = _timeline_doc(timeline)
        if size is None:
            canvas = self.scene.get("canvas", {})
            size = (int(canvas.get("height", 1080)), int(canvas.get("width", 1920)))
        params = {"dataset": self.dataset, "timeline": doc, "fps": int(fps),
                  "width": int(size[1]) // 2 * 2, "height": int(size[0]) // 2 * 2,
                  "quality": int(quality)}
        if format is None and path is not None and str(path).lower().endswith(".webm"):
            format = "webm"
        if format is not None:
            params["format"] = format
        data, _ = await rest.arequest(self.endpoint, "POST", "/api/v1/jobs",
                                      {"kind": "movie", "params": params})
        job = json.loads(data)["job"]
        jid = job["id"]
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while job["state"] in ("queued", "running"):
                if deadline is not None and time.monotonic() > deadline:
                    raise asyncio.TimeoutError(f"movie job {jid} did not finish in {timeout} s")
                await asyncio.sleep(0.2)
                data, _ = await rest.arequest(self.endpoint, "GET", f"/api/v1/jobs/{jid}")
                job = json.loads(data)["job"]
                if on_progress is not None:
                    on_progress(job.get("done", 0), job.get("total", 0))
        except BaseException:
            if job["state"] in ("queued", "running"):
                try:
                    await rest.arequest(self.endpoint, "DELETE", f"/api/v1/jobs/{jid}")
                except Exception:  # the server is gone: nothing to cancel
                    pass
            raise
        if job["state"] != "succeeded":
            raise ServerError("job_" + job["state"], f"movie job {jid}: {job.get('error')}")
        if path is not None:
            data, _ = await rest.arequest(self.endpoint, "GET",
                                          f"/api/v1/jobs/{jid}/files/movie."
                                          f"{params.get('format', 'mp4')}", None, 600)
            with open(path, "wb") as f:
                f.write(data)
        return job

    async def preview(self, timeline: Union[dict, list], start: Optional[float] = None,
                      speed: float = 1.0, loop: bool = False, wait: bool = True,
                      timeout: Optional[float] = None) -> Dict[str, Any]:
        """Plays ``timeline`` (as for :meth:`movie`) in this session: the server steps the
        scene at the timeline's real speed times ``speed``, from ``start`` seconds (default
        its start), streaming interactive frames while it plays and a final one where it
        stops. Returns the server's ``timeline.state``; with ``wait`` (and not ``loop``), the
        ``timeline.event`` where it stopped (``reason`` ``"ended"``, or ``"state.update"``
        when an update took the view back). A bad timeline raises :class:`ServerError`
        naming the keyframe and field; a step that fails raises it too."""
        self._check_thread()
        waiter = self._loop.create_future()
        self._preview_waiters.append(waiter)
        try:
            msg = protocol.play_message(_timeline_doc(timeline), start, speed, loop)
            fut = self._enqueue("timeline", None, msg)
            reply = self._result(await self._await(fut, 30 if timeout is None else timeout,
                                                   "the reply to timeline.play"))
            self.timeline_state = reply
            if not wait or loop:
                return reply
            deadline = None if timeout is None else time.monotonic() + timeout
            while not waiter.done():
                if self._closed is not None:
                    raise self._closed
                if deadline is not None and time.monotonic() > deadline:
                    raise asyncio.TimeoutError(f"{self.url}: the preview did not end in "
                                               f"{timeout:g} s")
                await asyncio.wait([waiter], timeout=0.25)
            event = waiter.result()
            if event.get("reason") == "error":
                raise ServerError("preview_failed", str(event.get("message")))
            return event
        finally:
            if waiter in self._preview_waiters:
                self._preview_waiters.remove(waiter)

    async def pause_preview(self, timeout: Optional[float] = 30) -> Dict[str, Any]:
        """Stops a preview where it is (``timeline.pause``); the session keeps that scene and
        draws a final frame of it. Returns the server's ``timeline.state``."""
        self._check_thread()
        fut = self._enqueue("timeline", None, protocol.pause_message())
        reply = self._result(await self._await(fut, timeout, "the reply to timeline.pause"))
        self._timeline_stopped(reply)
        return reply

    @property
    def _preview_waiters(self) -> List[asyncio.Future]:
        if "_preview_waiter_list" not in self.__dict__:
            self._preview_waiter_list: List[asyncio.Future] = []
        return self._preview_waiter_list

    def _timeline_event(self, msg: dict) -> None:
        """A ``timeline.event`` from the server (progress, or where a preview stopped)."""
        self.timeline_state = msg
        if msg.get("playing") is False:
            self._timeline_stopped(msg)
            for w in list(self._preview_waiters):
                if not w.done():
                    w.set_result(msg)

    def _timeline_stopped(self, msg: dict) -> None:
        self.timeline_state = msg
        if isinstance(msg.get("scene"), dict):
            self._adopt_scene(msg["scene"])
