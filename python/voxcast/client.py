"""The asyncio client: one :class:`Viewer` per session of a ``voxcast serve``.

Example (against a running server)::

    import asyncio, voxcast

    async def main():
        async with await voxcast.connect("ws://localhost:8080") as v:
            v.dims.ndisplay = 3
            v.camera.angles = (0, 30, 120)
            v.layers[0].colormap = "magma"
            img = await v.screenshot()          # (H, W, 3) uint8 of the final frame
            print(img.shape, v.stats)

    asyncio.run(main())

Two WebSockets on one port (docs/protocol.md): ``/ws/state`` carries JSON (``hello``,
``state.update`` ... and their replies), ``/ws/pixels`` carries frames. Background tasks
write state messages in order (paced below the server's rate limit), read replies, and read
and decode frames; attribute assignments only queue a message and return.
"""

from __future__ import annotations

import asyncio
import collections
import copy
import logging
import threading
import time
from typing import Any, Deque, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import websockets
import websockets.exceptions

from . import protocol, rest
from .components import Camera, Canvas, Colormap, Dims, LayerList  # noqa: F401
from .decode import FrameDecoder, Picture
from .connection import Endpoint, close_text, open_ws, parse_url
from .errors import ServerError, VoxcastConnectionError
from .frames import FrameStream
from .movies import MovieMixin
from .outgoing import _Outgoing, _Site
from .scene import merge_patch, to_json_value

log = logging.getLogger("voxcast")

CLIENT_NAME = "voxcast-python/0.1"
_ACKED_SCENES_KEPT = 256
KEEPALIVE_S = 240.0  # a protocol `ping` after this long without a message (servers close at 600)

class Viewer(FrameStream, MovieMixin):
    """One streaming session. Create it with :func:`connect`.

    Attributes mirror napari: ``camera``, ``dims``, ``canvas``, ``layers``; ``scene`` is the
    local scene (acknowledged state plus updates in flight). ``stats`` is the last ``stats``
    message, ``welcome`` the server's ``welcome``, ``protocol_violations`` a list of what the
    server did that docs/protocol.md does not allow (empty, normally)."""

    def __init__(self, endpoint: Endpoint):
        self.endpoint = endpoint
        self.url = endpoint.display
        self.welcome: Dict[str, Any] = {}
        self.session: Optional[str] = None
        self.codec: Optional[str] = None
        self.limits: Dict[str, Any] = dict(protocol.DEFAULT_LIMITS)
        self.stats: Optional[Dict[str, Any]] = None
        self.protocol_violations: List[str] = []
        #: The index of the session's dataset (``connect(..., dataset=)``, by index or name).
        self.dataset = 0
        self._datasets_full: Optional[list] = None  # GET /api/v1/datasets, with ``info``
        self.frames_received = 0
        self.decode_errors = 0
        #: Headers of the last 256 frames received, oldest first.
        self.recent_headers: Deque[protocol.FrameHeader] = collections.deque(maxlen=256)
        self.camera = Camera(self)
        self.dims = Dims(self)
        self.canvas = Canvas(self)
        self.layers = LayerList(self)

        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._thread: Optional[int] = None
        self._state_ws = None
        self._pixel_ws = None
        self._tasks: List[asyncio.Task] = []
        self._outq: "asyncio.Queue[Optional[_Outgoing]]" = None  # type: ignore[assignment]
        self._inflight: Deque[_Outgoing] = collections.deque()
        self._sent_times: Deque[float] = collections.deque()
        self._last_message_t = time.monotonic()
        self._seq = 0
        self._last_future: Optional[asyncio.Future] = None
        self._confirmed: Dict[str, Any] = {}
        self._pending: "collections.OrderedDict[int, dict]" = collections.OrderedDict()
        self._local_cache: Optional[Dict[str, Any]] = None
        self._acked_scenes: "collections.OrderedDict[int, dict]" = collections.OrderedDict()
        self._last_acked = 0
        self._unreported: List[ServerError] = []
        self._decoder = FrameDecoder()
        self._latest: Optional[Picture] = None
        self._last_frame_seq = 0
        self._last_state_seq = 0
        self._min_final_frame_seq = 0  # final_frame(): the first frame that may show the scene
        self._frame_cond: Optional[asyncio.Condition] = None
        self._closed: Optional[BaseException] = None
        self._closing = False

    # --- opening ------------------------------------------------------------------------

    async def _open(self, dataset: int, codecs: Sequence[str], timeout: float) -> None:
        self._loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()
        self._outq = asyncio.Queue()
        self._frame_cond = asyncio.Condition()
        ep = self.endpoint
        self._state_ws = await open_ws(ep, ep.state_url, timeout, max_size=2 ** 24)
        try:
            await self._state_ws.send(protocol.hello_message(dataset, codecs, CLIENT_NAME))
            try:
                text = await asyncio.wait_for(self._state_ws.recv(), timeout)
            except asyncio.TimeoutError:
                raise VoxcastConnectionError(ep.state_url, f"no welcome within {timeout:g} s") \
                    from None
            except websockets.exceptions.ConnectionClosed as e:
                raise VoxcastConnectionError(ep.state_url, f"closed before welcome ({e})") \
                    from None
            msg = protocol.parse_message(text)
            if msg["type"] == "error":
                raise ServerError(msg.get("code", "?"), msg.get("message", ""), msg.get("seq"))
            if msg["type"] != "welcome":
                raise protocol.ProtocolError(f"expected welcome after hello, got {msg['type']!r}")
            self._take_welcome(msg, codecs)
            self._pixel_ws = await open_ws(ep, ep.pixels_url(self.session), timeout,
                                            max_size=None, max_queue=2, compression=None)
        except BaseException:
            await self._state_ws.close()
            if self._pixel_ws is not None:
                await self._pixel_ws.close()
            raise
        self._tasks = [
            asyncio.create_task(self._writer(), name="voxcast-writer"),
            asyncio.create_task(self._state_reader(), name="voxcast-state"),
            asyncio.create_task(self._pixel_reader(), name="voxcast-pixels"),
            asyncio.create_task(self._keepalive(), name="voxcast-keepalive"),
        ]

    def _take_welcome(self, msg: dict, codecs: Sequence[str]) -> None:
        self.welcome = msg
        session = msg.get("session")
        if not isinstance(session, str) or not session:
            raise protocol.ProtocolError(f"welcome without a session: {str(msg)[:200]}")
        self.session = session
        if msg.get("protocol") != protocol.PROTOCOL_VERSION:
            self._violation(f"welcome.protocol is {msg.get('protocol')!r}, expected 1")
        self.codec = msg.get("codec")
        if self.codec not in codecs:
            self._violation(f"welcome.codec {self.codec!r} is not one the client asked for "
                            f"{list(codecs)}")
        if isinstance(msg.get("limits"), dict):
            self.limits.update(msg["limits"])
        else:
            self._violation("welcome has no limits object")
        scene = msg.get("scene")
        if not isinstance(scene, dict):
            raise protocol.ProtocolError("welcome without a scene object")
        self._confirmed = scene
        self._acked_scenes[0] = scene
        self._local_cache = None
        if isinstance(msg.get("dataset"), int):
            self.dataset = msg["dataset"]

    # --- public API ---------------------------------------------------------------------

    @property
    def datasets(self) -> list:
        return list(self.welcome.get("datasets") or [])

    @property
    def dataset_name(self) -> Optional[str]:
        """The name of the session's dataset (as the web client's picker shows it)."""
        for d in self.datasets:
            if d.get("id") == self.dataset:
                return d.get("name") or d.get("location")
        return None

    def _dataset_info(self) -> Optional[dict]:
        """``voxcast info --json`` of the session's dataset, or None when the server did not
        say (components use it for axis labels, steps and scales)."""
        for d in self._datasets_full or ():
            if d.get("id") == self.dataset:
                return d.get("info")
        return None

    @property
    def encoder(self) -> Optional[str]:
        return self.welcome.get("encoder")

    @property
    def scene(self) -> Dict[str, Any]:
        """A copy of the local scene: the last acknowledged one with pending updates applied."""
        return copy.deepcopy(self._local_scene())

    @property
    def confirmed_scene(self) -> Dict[str, Any]:
        """A copy of the scene of the last ``ack`` (or ``welcome``, or ``scene`` message)."""
        return copy.deepcopy(self._confirmed)

    @property
    def last_seq(self) -> int:
        """The seq of the last ``state.update`` queued."""
        return self._seq

    @property
    def latest_frame(self) -> Optional[Tuple[protocol.FrameHeader, Picture]]:
        return (self._latest.header, self._latest) if self._latest is not None else None

    @property
    def h264_sps(self):
        """The SPS of the last H.264 keyframe (:class:`voxcast.h264.SPS`), or None."""
        return self._decoder.sps

    @property
    def closed(self) -> bool:
        return self._closed is not None

    def add_layer(self, pipeline: str, input: Any = 0, layer: Optional[dict] = None,
                  **params: Any):
        """napari's ``add_image`` for processed data: a layer showing ``pipeline`` applied
        to ``input`` (0: this session's dataset), e.g. ``v.add_layer(pipeline="gaussian",
        input=0, sigma=2.0)``; change it live with ``v.layers[-1].params.sigma = 3.0``.
        ``GET /api/v1/pipelines`` (or ``voxcast pipelines``) lists pipelines and parameters."""
        return self.layers.add(pipeline, input, layer, **params)

    def set(self, patch: dict, interactive: bool = False) -> int:
        """Queues a ``state.update`` and returns its seq at once (no waiting for the reply).
        An ``error`` reply is raised later by :meth:`sync` or :meth:`screenshot`, pointing at
        the line that called this."""
        return self._queue_update(patch, interactive, awaited=False, site=_Site.here())[0]

    async def update(self, patch: dict, interactive: bool = False,
                     timeout: Optional[float] = 30) -> Dict[str, Any]:
        """Sends a ``state.update`` and returns the full scene of its ``ack``; raises
        :class:`ServerError` on an ``error`` reply (the scene stays as it was)."""
        self._check_thread()
        _, fut = self._queue_update(patch, interactive, awaited=True)
        return self._result(await self._await(fut, timeout, "the ack"))

    async def sync(self, timeout: Optional[float] = 30) -> None:
        """Waits until every update sent so far is answered; raises the first ``error``
        reply to an attribute assignment or :meth:`set` that nobody has seen yet. The error
        names the assignment (``err.assignment``, ``err.filename``, ``err.lineno``) and its
        traceback ends at that line, as if the assignment had raised it."""
        self._check_thread()
        if self._last_future is not None:
            await self._await(asyncio.shield(self._last_future), timeout, "replies")
            if isinstance(self._last_future.result(), BaseException) \
                    and not isinstance(self._last_future.result(), ServerError):
                raise self._last_future.result()
        if self._unreported:
            err = self._unreported[0]
            self._unreported.clear()
            raise err.with_traceback(err.__traceback__)

    async def ping(self, timeout: Optional[float] = 30) -> float:
        """Round-trip time of a ``ping`` on the state channel, in seconds."""
        self._check_thread()
        t0 = time.perf_counter()
        fut = self._enqueue("ping", None, protocol.ping_message(t0))
        echoed = self._result(await self._await(fut, timeout, "pong"))
        if echoed != t0:
            self._violation(f"pong.t is {echoed!r}, expected the ping's {t0!r}")
        return time.perf_counter() - t0

    async def request_keyframe(self, timeout: Optional[float] = 30) -> None:
        """Sends ``keyframe.request`` (the next frame is an IDR) and waits for its reply."""
        self._check_thread()
        fut = self._enqueue("keyframe", None, protocol.keyframe_message())
        self._result(await self._await(fut, timeout, "the reply to keyframe.request"))

    async def send_raw(self, text: str, timeout: Optional[float] = 30) -> Dict[str, Any]:
        """Sends any text on the state channel and returns the server's reply message (for
        tests and experiments; the client's seq bookkeeping does not see it)."""
        self._check_thread()
        fut = self._enqueue("raw", None, text)
        return self._result(await self._await(fut, timeout, "the reply"))

    async def screenshot(self, path: Optional[str] = None,
                         size: Optional[Tuple[int, int]] = None,
                         timeout: Optional[float] = 30) -> np.ndarray:
        """The picture of the current scene as an (H, W, 3) uint8 array.

        Without ``path`` and ``size``: waits for the replies to all updates sent, then for
        the first streamed frame whose state seq reaches the last one applied and that is
        neither refining nor interactive (decoded from the stream: H.264 or JPEG).

        With ``size`` (napari's order: ``(height, width)``) or ``path``: the server renders
        the scene at final quality, lossless, at that size (default: the canvas's; a larger
        size shows the same view with more pixels), as ``voxcast render`` would
        (``POST /api/v1/screenshot``); ``path`` gets the PNG. A bad size raises
        :class:`ServerError` naming the field."""
        if path is None and size is None:
            return (await self.final_frame(timeout))[1]
        await self.sync(timeout)
        body = {"dataset": self.dataset, "scene": self.confirmed_scene, **rest.size_fields(size)}
        # At most 2 render at once on the server: a busy one is waited out (within timeout).
        data, _ = await rest.arequest(self.endpoint, "POST", "/api/v1/screenshot", body,
                                      timeout if timeout is not None else 600, patient=True)
        if path is not None:
            with open(path, "wb") as f:
                f.write(data)
        return rest.decode_png(data)

    async def close(self) -> None:
        """Closes both channels and stops the background tasks (idempotent)."""
        if self._closing:
            return
        self._closing = True
        self._fail_all(VoxcastConnectionError(self.url, "the client closed the session"))
        if self._outq is not None:
            self._outq.put_nowait(None)
        for ws in (self._pixel_ws, self._state_ws):
            if ws is not None:
                try:
                    await asyncio.wait_for(ws.close(), 5)
                except Exception:  # noqa: BLE001 - closing is best effort
                    pass
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._decoder.close()

    async def __aenter__(self) -> "Viewer":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    def __repr__(self) -> str:
        return (f"Viewer({self.url!r}, session={self.session!r}, codec={self.codec!r}, "
                f"seq={self._seq}, frames={self.frames_received})")

    # --- scene bookkeeping (also used by the components) ---------------------------------

    def _local_scene(self) -> Dict[str, Any]:
        if self._local_cache is None:
            scene = self._confirmed
            for patch in self._pending.values():
                scene = merge_patch(scene, patch)
            self._local_cache = scene
        return self._local_cache

    def _send_patch(self, patch: dict) -> None:
        site = _Site.here()
        if self._thread is not None and threading.get_ident() != self._thread:
            self._loop.call_soon_threadsafe(self._queue_update, patch, False, False, site)
            return
        self._queue_update(patch, False, False, site)

    def _queue_update(self, patch: dict, interactive: bool, awaited: bool,
                      site: Optional[_Site] = None) -> Tuple[int, asyncio.Future]:
        if not isinstance(patch, dict):
            raise TypeError(f"a patch is a dict (JSON object), not {type(patch).__name__}")
        if self._closed is not None:
            raise self._closed
        patch = to_json_value(patch)
        seq = self._seq + 1
        text = protocol.update_message(seq, patch, interactive)
        limit = int(self.limits.get("max_message_bytes") or 0)
        if limit and len(text.encode()) > limit:
            raise ValueError(f"state.update of {len(text.encode())} bytes is over the server's "
                             f"max_message_bytes {limit}")
        self._seq = seq
        self._pending[seq] = patch
        self._local_cache = None
        fut = self._enqueue("update", seq, text, awaited, site)
        self._last_future = fut
        return seq, fut

    def _enqueue(self, kind: str, seq: Optional[int], text: str,
                 awaited: bool = True, site: Optional[_Site] = None) -> asyncio.Future:
        if self._closed is not None:
            raise self._closed
        fut = self._loop.create_future()
        self._outq.put_nowait(_Outgoing(kind, seq, text, fut, awaited, site))
        return fut

    def _check_thread(self) -> None:
        if self._closed is not None:
            raise self._closed
        if threading.get_ident() != self._thread:
            raise RuntimeError("await the viewer's coroutines on the event loop it was "
                               "connected on")

    @staticmethod
    def _result(value: Any) -> Any:
        if isinstance(value, BaseException):
            raise value
        return value

    async def _await(self, fut, timeout: Optional[float], what: str):
        try:
            return await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            raise TimeoutError(f"{self.url}: no {what} within {timeout:g} s "
                               f"({len(self._inflight)} messages unanswered)") from None

    def _violation(self, what: str) -> None:
        log.warning("protocol violation from %s: %s", self.url, what)
        self.protocol_violations.append(what)

    # --- background tasks ---------------------------------------------------------------

    async def _writer(self) -> None:
        try:
            while True:
                out = await self._outq.get()
                if out is None:
                    return
                limit = float(self.limits.get("max_messages_per_s") or 0)
                if limit > 0:
                    budget = max(1, int(limit * 0.9))
                    while True:
                        now = time.monotonic()
                        while self._sent_times and now - self._sent_times[0] > 1.0:
                            self._sent_times.popleft()
                        if len(self._sent_times) < budget:
                            break
                        await asyncio.sleep(1.0 - (now - self._sent_times[0]) + 0.001)
                    self._sent_times.append(time.monotonic())
                self._inflight.append(out)
                self._last_message_t = time.monotonic()
                await self._state_ws.send(out.text)
        except websockets.exceptions.ConnectionClosed as e:
            self._disconnected(f"the state channel closed while sending ({close_text(e)})")
        except asyncio.CancelledError:
            raise

    async def _keepalive(self) -> None:
        while True:
            await asyncio.sleep(KEEPALIVE_S / 4)
            if self._closed is None and time.monotonic() - self._last_message_t > KEEPALIVE_S:
                self._enqueue("ping", None, protocol.ping_message("keepalive"), awaited=False)

    async def _state_reader(self) -> None:
        reason = "the server closed the state channel"
        try:
            async for text in self._state_ws:
                try:
                    msg = protocol.parse_message(text)
                except protocol.ProtocolError as e:
                    self._violation(str(e))
                    continue
                self._on_message(msg)
        except websockets.exceptions.ConnectionClosed as e:
            reason = f"the state channel closed ({close_text(e)})"
        else:
            rcvd = self._state_ws.close_code
            reason = f"the server closed the state channel (code {rcvd})"
        self._disconnected(reason)

    def _on_message(self, msg: dict) -> None:
        kind = msg["type"]
        if kind == "stats":
            self.stats = msg
            return
        if kind == "timeline.event":
            self._timeline_event(msg)
            return
        if kind == "scene":
            scene = self._scene_of(msg)
            if isinstance(scene, dict):
                self._adopt_scene(scene)
            else:
                self._violation("a scene message without a scene object")
            return
        if kind not in protocol.REPLY_TYPES:
            log.debug("ignoring a state message of type %r", kind)
            return
        if not self._inflight:
            self._violation(f"a {kind} reply to no message: {str(msg)[:200]}")
            if kind == "error":
                self._unreported.append(ServerError(msg.get("code", "?"), msg.get("message", ""),
                                                    msg.get("seq")))
            return
        out = self._inflight.popleft()
        if out.kind == "raw":
            _resolve(out.future, msg)
            return
        if kind == "error":
            err = ServerError(str(msg.get("code")), str(msg.get("message")), msg.get("seq"))
            if err.code not in protocol.ERROR_CODES:
                self._violation(f"error code {err.code!r} is not in the protocol's table")
            if out.kind == "update":
                if msg.get("seq") != out.seq:
                    self._violation(f"error.seq {msg.get('seq')!r} answers update {out.seq}")
                self._pending.pop(out.seq, None)
                self._local_cache = None
                if not out.awaited:
                    self._unreported.append(out.site.attach(err) if out.site else err)
            _resolve(out.future, err)
            return
        expected = {"update": "ack", "ping": "pong", "keyframe": None,
                    "timeline": "timeline.state"}[out.kind]
        if expected is not None and kind != expected:
            self._violation(f"a {kind} answers a {out.kind} message (expected {expected})")
        if kind == "ack":
            seq = msg.get("seq")
            if out.kind == "update" and seq != out.seq:
                self._violation(f"ack.seq {seq!r} answers update {out.seq}")
            scene = self._scene_of(msg)
            if isinstance(msg.get("timeline"), dict):  # this update stopped a preview
                self.timeline_state = {**msg["timeline"], "type": "ack", "seq": seq}
            if isinstance(scene, dict):
                self._confirmed = scene
                if isinstance(seq, int):
                    self._acked_scenes[seq] = scene
                    while len(self._acked_scenes) > _ACKED_SCENES_KEPT:
                        self._acked_scenes.popitem(last=False)
            elif out.kind == "update":
                self._violation(f"ack {seq} without a scene or changes object")
            out.site = None  # answered: the caller's frame is no longer needed
            if out.seq is not None:
                self._pending.pop(out.seq, None)
                self._last_acked = max(self._last_acked, out.seq)
            self._local_cache = None
            _resolve(out.future, scene)
        elif kind == "pong":
            _resolve(out.future, msg.get("t"))
        else:
            _resolve(out.future, msg)

    def _adopt_scene(self, scene: dict) -> None:
        """A scene the server set on its own (a ``scene`` message, where a preview stopped)."""
        self._confirmed = scene
        self._acked_scenes.clear()  # frames' seqs no longer say which scene they show
        self._local_cache = None
        self._min_final_frame_seq = self._last_frame_seq + 1

    def _scene_of(self, msg: dict):
        """The scene a server message carries: whole (``scene``), or as the top-level members
        that changed (``changes``) over the last confirmed one."""
        changes = msg.get("changes")
        if isinstance(changes, dict) and isinstance(self._confirmed, dict):
            return {**self._confirmed, **changes}
        return msg.get("scene")

    def _disconnected(self, reason: str) -> None:
        if self._closed is None and not self._closing:
            log.info("%s: %s", self.url, reason)
        self._fail_all(VoxcastConnectionError(self.url, reason))

    def _fail_all(self, exc: BaseException) -> None:
        if self._closed is None:
            self._closed = exc
        while self._inflight:
            _resolve(self._inflight.popleft().future, exc)
        if self._outq is not None:
            while not self._outq.empty():
                out = self._outq.get_nowait()
                if out is not None:
                    _resolve(out.future, exc)
            if self._closing:
                self._outq.put_nowait(None)
        if self._frame_cond is not None and self._loop is not None:
            async def wake():
                async with self._frame_cond:
                    self._frame_cond.notify_all()
            if not self._loop.is_closed():
                self._loop.create_task(wake())


def _resolve(fut: asyncio.Future, value: Any) -> None:
    # Values, never exceptions: a future nobody awaits must not warn about its exception.
    if not fut.done():
        fut.set_result(value)


async def connect(url: str, dataset: Union[int, str] = 0,
                  codecs: Sequence[str] = ("h264", "jpeg"),
                  token: Optional[str] = None, timeout: float = 30) -> Viewer:
    """Opens a session: ``/ws/state`` (``hello`` -> ``welcome``), then ``/ws/pixels``.

    ``dataset`` is the index of one of the server's datasets or its name (``"b.ome.zarr"``,
    as ``/api/v1/datasets`` lists it; a name not served raises ``ValueError`` listing them).

    ``url`` is ``ws://host:port`` or ``http://host:port`` (a path prefix and ``?token=`` are
    allowed). Raises :class:`AuthenticationError` (a ``PermissionError``) on HTTP 401,
    :class:`VoxcastConnectionError` (a ``ConnectionError``) when the server cannot be
    reached or refuses, :class:`ServerError` when ``hello`` is answered with an ``error``.

    >>> async def main():                                          # doctest: +SKIP
    ...     async with await connect("ws://localhost:8080", codecs=["jpeg"]) as v:
    ...         v.camera.zoom = 2
    ...         return await v.screenshot()
    """
    if isinstance(codecs, str):
        codecs = [codecs]
    codecs = list(codecs)
    viewer = Viewer(parse_url(url, token))
    if not isinstance(dataset, (int, np.integer)) or isinstance(dataset, bool):
        viewer._datasets_full = await rest.datasets(viewer.endpoint, timeout)
        dataset = rest.resolve_dataset(dataset, viewer._datasets_full)
    await viewer._open(int(dataset), codecs, timeout)
    if viewer._datasets_full is None:
        try:
            viewer._datasets_full = await rest.datasets(viewer.endpoint, timeout)
        except Exception as e:  # noqa: BLE001 - only axis labels and scales need it
            log.info("%s: no dataset descriptions (%s)", viewer.url, e)
    return viewer
