"""voxcast.wire: zero-copy tagged messaging over UCX with an asyncio API.

Example::

    import asyncio, numpy as np
    from voxcast import wire

    async def main():
        server = wire.Server("0.0.0.0", 13337)
        client = wire.Client()
        await client.aconnect("127.0.0.1", server.port)
        out = np.arange(1 << 20, dtype=np.float32)
        inbuf = np.empty_like(out)
        recv = asyncio.ensure_future(server.arecv(inbuf, tag=7, tag_mask=~0))
        await client.asend(out, tag=7)
        sender_tag, nbytes = await recv          # inbuf now holds out's bytes
        await client.aclose(); await server.aclose()

    asyncio.run(main())

Buffers are any buffer-protocol objects (NumPy arrays, bytearray, memoryview); receive
buffers must be writable. They are never copied: a send reads the caller's memory, a
receive writes into it. Keep a buffer alive and unchanged until its operation completes.

Progress runs in a C++ thread by default (``mode="thread"``). Completions are queued
without taking the GIL and the event loop is woken once per batch. ``mode="eventfd"``
has no thread: the event loop watches UCX's event fd and progresses UCX itself.

Cancelling a task that awaits ``asend``/``arecv`` cancels the UCX request; a receive
that had already matched a message when the cancel came has consumed it (it is in the
buffer, but the task only sees ``CancelledError``). Where that matters, post with
``post_recv``/``post_send``: ``op.cancel()`` asks UCX to cancel and ``await op`` then says
what happened, the message (``(tag, nbytes)``) or ``Cancelled``; a cancelled receive
never writes its buffer afterwards. For a stream of messages, ``receiver()`` keeps
receives posted into a ring of buffers and hands out messages without a future per
message (``async for msg in rx``).

Fork safety: UCX objects belong to the process that made them. A child of ``fork()``
(``multiprocessing`` with the fork start method included) must not use, close or
garbage-collect its parent's ``Server``/``Client``; create new ones in the child, or use
the ``spawn`` start method.

The compiled core is the ``_voxcast_wire`` extension (CMake target ``voxcast_wire_py``);
put its folder (``build/release/python``) on ``PYTHONPATH``.
"""

from __future__ import annotations

import asyncio
import os
from typing import Callable, Optional

try:
    import _voxcast_wire as _core
except ImportError as exc:  # pragma: no cover - depends on the build
    raise ImportError(
        "voxcast.wire needs the compiled _voxcast_wire module: build the CMake target "
        "voxcast_wire_py (cmake --build build/release --target voxcast_wire_py) and put "
        "build/release/python on PYTHONPATH"
    ) from exc

__all__ = [
    "Client", "Endpoint", "Server", "WireError", "AddressError", "RefusedError",
    "PeerFailure", "TruncatedError", "ClosedError", "WireTimeout", "Cancelled",
    "Operation", "Receiver", "Message", "address_of",
]

from .wire_errors import (  # noqa: F401  (re-exported: the public names of voxcast.wire)
    ANY_TAG_MASK, FULL_MASK, AddressError, Cancelled, ClosedError, PeerFailure, RefusedError,
    TruncatedError, WireError, WireTimeout, _check_mode, _error, _mask, _reraise)
from .wire_streams import Message, Operation, Receiver  # noqa: F401


def address_of(buffer) -> int:
    """The address of a buffer's first byte (to check that nothing was copied)."""
    return _core.address_of(buffer)


class _Node:
    """What Server and Client share: a core, its futures, and the loop's readers."""

    def __init__(self, core, spin_us: Optional[float] = None):
        self._core = core
        # When an operation is awaited, wait for completions for up to this long before
        # yielding to the loop: in eventfd mode progressing UCX on this thread, in thread
        # mode watching the progress thread's queue. A reply about to arrive then costs no
        # loop wake-up. None: 50 us in thread mode where a core is spare (more than two),
        # else 0 (on two cores the spinning threads would starve the ones doing the work).
        if spin_us is None:
            spin_us = 50.0 if core.event_fd < 0 and (os.cpu_count() or 1) > 2 else 0.0
        self._spin_us = float(spin_us)
        # Pending operations by id: an asyncio future, or a callable taking
        # (ok, tag, nbytes, code, message) (Operation, Receiver: no future per message).
        self._futures: dict[int, object] = {}
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._closed = False

    # ---- plumbing ----
    def _attach(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
            loop.add_reader(self._core.fd, self._on_ready)
            if self._core.event_fd >= 0:
                loop.add_reader(self._core.event_fd, self._on_event)
        elif self._loop is not loop:
            raise RuntimeError("a wire object is bound to the event loop that first awaited it")
        return loop

    def _detach(self):
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(self._core.fd)
            if self._core.event_fd >= 0:
                self._loop.remove_reader(self._core.event_fd)
        self._loop = None

    def _on_event(self):
        self._dispatch(self._core.progress_drain())

    def _on_ready(self):
        self._dispatch(self._core.drain())

    def _dispatch(self, items):
        for op_id, kind, ok, tag, nbytes, code, message in items:
            if kind == 0:
                waiter = self._futures.pop(op_id, None)
                if waiter is None:
                    continue
                if not isinstance(waiter, asyncio.Future):
                    waiter(ok, tag, nbytes, code, message)
                elif waiter.done():
                    continue
                elif ok:
                    waiter.set_result((tag, nbytes))
                else:
                    waiter.set_exception(_error(code, message))
            else:
                self._on_endpoint_event(op_id, kind, code, message)

    def _on_endpoint_event(self, ep_id, kind, code, message):
        pass

    def _post(self, fn, *args):
        try:
            return fn(*args)
        except ValueError as exc:
            _reraise(exc)

    @staticmethod
    def _result(done):
        _id, _kind, ok, tag, nbytes, code, message = done
        if not ok:
            raise _error(code, message)
        return tag, nbytes

    async def _await(self, posted):
        op_id, done = posted
        if done is not None:
            return self._result(done)
        loop = self._attach()
        fut = loop.create_future()
        # A completion pushed before this line is still queued: drain() runs on this
        # loop's thread only, after the future is registered.
        self._futures[op_id] = fut
        if self._spin_us > 0:
            self._dispatch(self._core.progress_spin(self._spin_us))
        try:
            return await fut
        except asyncio.CancelledError:
            self._core.cancel(op_id)
            raise

    def _wait(self, posted):
        _op_id, done = posted  # posted with sync=True: already complete
        return self._result(done)

    # ---- public ----
    @property
    def transports(self) -> str:
        """UCX_TLS as applied (for logs)."""
        return self._core.transports

    @property
    def mode(self) -> str:
        return self._core.mode

    @property
    def closed(self) -> bool:
        return self._core.closed

    def stats(self) -> dict:
        """Completions, loop wake-ups (one per batch), completions at post time and (eventfd
        mode) arms of the worker's event fd."""
        return self._core.stats()

    async def arecv(self, buffer, tag: int = 0, tag_mask: int = ANY_TAG_MASK):
        """Receives one message whose tag matches into ``buffer``: (sender_tag, nbytes)."""
        return await self._await(
            self._post(self._core.recv, buffer, _mask(tag), _mask(tag_mask), False))

    def recv(self, buffer, tag: int = 0, tag_mask: int = ANY_TAG_MASK):
        return self._wait(self._post(self._core.recv, buffer, _mask(tag), _mask(tag_mask), True))

    def post_recv(self, buffer, tag: int = 0, tag_mask: int = ANY_TAG_MASK) -> "Operation":
        """Posts a receive and returns it as an ``Operation`` (cancel with a definite
        outcome; awaiting it gives ``(sender_tag, nbytes)``)."""
        return self._operation(
            self._post(self._core.recv, buffer, _mask(tag), _mask(tag_mask), False))

    def receiver(self, tag: int = 0, tag_mask: int = ANY_TAG_MASK, *, size: int = 0,
                 depth: int = 8, buffers=None) -> "Receiver":
        """A stream of messages matching (tag, tag_mask) with ``depth`` receives kept
        posted into ``depth`` new ``size``-byte buffers, or into the writable ``buffers``
        given (NumPy arrays, bytearrays): ``async for msg in node.receiver(...)``."""
        return Receiver(self, tag, tag_mask, size, depth, buffers)

    async def aflush(self):
        """Completes when every earlier send has been delivered to its peer's worker."""
        await self._await(self._post(self._core.flush, False))

    def flush(self):
        self._wait(self._post(self._core.flush, True))

    async def aclose(self, force: bool = False):
        """Closes every endpoint (graceful: flush first) and stops progress."""
        if self._closed:
            return
        self._closed = True
        await asyncio.get_running_loop().run_in_executor(None, self._close_core, force)
        self._detach()
        self._fail_futures()

    def close(self, force: bool = False):
        if self._closed:
            return
        self._closed = True
        self._close_core(force)
        self._detach()
        self._fail_futures()

    def _close_core(self, force):
        try:
            self._core.close(force)
        except ValueError as exc:
            _reraise(exc)

    def _fail_futures(self):
        if self._futures:
            self._dispatch(self._core.drain())
        waiters, self._futures = self._futures, {}
        for waiter in waiters.values():
            if not isinstance(waiter, asyncio.Future):
                waiter(False, 0, 0, "closed", "closed while waiting")
            elif not waiter.done():
                waiter.set_exception(ClosedError("closed", "closed while waiting"))

    def _operation(self, posted) -> "Operation":
        op_id, done = posted
        op = Operation(self, op_id)
        if done is None:
            self._attach()
            self._futures[op_id] = op._complete
            if self._spin_us > 0:
                self._dispatch(self._core.progress_spin(self._spin_us))
        else:
            op._complete(*done[2:])
        return op

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.aclose()


class Endpoint:
    """One connection (from ``Server.endpoints`` or ``Client.endpoint``)."""

    def __init__(self, node: _Node, ep_id: int, peer: str):
        self._node = node
        self.id = ep_id
        self.peer = peer

    def __repr__(self):
        return f"Endpoint(id={self.id}, peer={self.peer!r})"

    async def asend(self, buffer, tag: int):
        n = self._node
        return await n._await(n._post(n._core.send, self.id, buffer, _mask(tag), False))

    def post_send(self, buffer, tag: int) -> "Operation":
        """Posts a send and returns it as an ``Operation``; ``buffer`` must stay unchanged
        until it completes."""
        n = self._node
        return n._operation(n._post(n._core.send, self.id, buffer, _mask(tag), False))

    def send(self, buffer, tag: int):
        n = self._node
        return n._wait(n._post(n._core.send, self.id, buffer, _mask(tag), True))

    async def aflush(self):
        n = self._node
        await n._await(n._post(n._core.flush_ep, self.id, False))

    def flush(self):
        n = self._node
        n._wait(n._post(n._core.flush_ep, self.id, True))

    async def aclose(self, force: bool = False):
        n = self._node
        await n._await(n._post(n._core.close_ep, self.id, force, False))

    def info(self) -> str:
        """UCX's description of the endpoint's lanes (which transports carry it)."""
        return self._node._post(self._node._core.endpoint_info, self.id)


class Server(_Node):
    """Listens on host:port (port 0 picks one). ``on_accept(endpoint)`` and
    ``on_disconnect(endpoint, error)`` run on the event loop (coroutines are scheduled)."""

    def __init__(self, host: str = "0.0.0.0", port: int = 0, *, tls: str = "",
                 mode: str = "thread", on_accept: Optional[Callable] = None,
                 on_disconnect: Optional[Callable] = None, spin_us: Optional[float] = None):
        _check_mode(mode)
        try:
            core = _core.Core.server(host, port, tls, mode)
        except ValueError as exc:
            _reraise(exc)
        super().__init__(core, spin_us)
        self.on_accept = on_accept
        self.on_disconnect = on_disconnect
        self._endpoints: dict[int, Endpoint] = {}

    @property
    def port(self) -> int:
        return self._core.port

    @property
    def endpoints(self) -> list[Endpoint]:
        """Connected endpoints, oldest first."""
        out = []
        for ep_id, peer in self._core.endpoints():
            ep = self._endpoints.get(ep_id)
            if ep is None:
                ep = self._endpoints[ep_id] = Endpoint(self, ep_id, peer)
            out.append(ep)
        return out

    def start(self):
        """Binds accept/disconnect callbacks to the running loop (done on first await)."""
        self._attach()

    async def aaccept(self, timeout: Optional[float] = None) -> Endpoint:
        """Waits until at least one endpoint is connected; returns the newest."""
        self._attach()
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while not self.endpoints:
            if deadline is not None and loop.time() > deadline:
                raise WireTimeout("timed_out", f"no client within {timeout} s")
            await asyncio.sleep(0.002)
        return self.endpoints[-1]

    async def asend(self, endpoint: Endpoint, buffer, tag: int):
        return await endpoint.asend(buffer, tag)

    async def aflush_ep(self, endpoint: Endpoint):
        await endpoint.aflush()

    def _on_endpoint_event(self, ep_id, kind, code, message):
        if kind == 1:
            ep = self._endpoints.setdefault(ep_id, Endpoint(self, ep_id, message))
            self._call(self.on_accept, ep)
        elif kind == 2:
            ep = self._endpoints.pop(ep_id, None) or Endpoint(self, ep_id, "?")
            self._call(self.on_disconnect, ep, _error(code, message))

    def _call(self, fn, *args):
        if fn is None:
            return
        result = fn(*args)
        if asyncio.iscoroutine(result):
            asyncio.ensure_future(result)


class Client(_Node):
    """A client; ``await aconnect(host, port)`` before sending."""

    def __init__(self, *, tls: str = "", mode: str = "thread", connect_timeout: float = 5.0,
                 spin_us: Optional[float] = None):
        _check_mode(mode)
        try:
            core = _core.Core.client(tls, mode, connect_timeout)
        except ValueError as exc:
            _reraise(exc)
        super().__init__(core, spin_us)
        self.endpoint: Optional[Endpoint] = None

    @property
    def id(self) -> int:
        """The server-assigned id (also the server's Endpoint.id for this client)."""
        return self._core.id

    async def aconnect(self, host: str, port: int):
        await self._await(self._post(self._core.connect, host, port, False))
        self._connected()
        return self

    def connect(self, host: str, port: int):
        self._wait(self._post(self._core.connect, host, port, True))
        self._connected()
        return self

    def _connected(self):
        ep_id, peer = self._core.endpoints()[0]
        self.endpoint = Endpoint(self, ep_id, peer)

    async def asend(self, buffer, tag: int):
        return await self._require().asend(buffer, tag)

    def send(self, buffer, tag: int):
        return self._require().send(buffer, tag)

    def post_send(self, buffer, tag: int) -> "Operation":
        return self._require().post_send(buffer, tag)

    async def aflush_ep(self, endpoint: Optional[Endpoint] = None):
        await (endpoint or self._require()).aflush()

    def _require(self) -> Endpoint:
        if self.endpoint is None:
            raise WireError("invalid_argument", "not connected: await aconnect() first")
        return self.endpoint
