"""Operations and receiver streams of voxcast.wire (imported from there; see its docs):
``Operation`` (a posted send or receive with a definite cancel outcome), ``Message`` and
``Receiver`` (receives kept posted into a ring of buffers)."""

from __future__ import annotations

import asyncio
import collections
from typing import Optional

from .wire_errors import Cancelled, WireError, _error, _mask

class Operation:
    """A posted send or receive. ``await op`` gives ``(tag, nbytes)`` or raises the
    operation's error; a task cancelled while awaiting it leaves the operation pending
    (await it again). ``cancel()`` asks UCX to cancel: the operation then ends either with
    its message (it had matched first) or with ``Cancelled``, and a cancelled receive
    never writes its buffer afterwards."""

    __slots__ = ("_node", "_id", "_result", "_error", "_fut", "_callback")

    def __init__(self, node: "_Node", op_id: int):
        self._node = node
        self._id = op_id
        self._result = None
        self._error = None
        self._fut: Optional[asyncio.Future] = None
        self._callback = None

    def _complete(self, ok, tag, nbytes, code, message):
        if ok:
            self._result = (tag, nbytes)
        else:
            self._error = _error(code, message)
        if self._fut is not None and not self._fut.done():
            self._fut.set_result(None)
        if self._callback is not None:
            self._callback(self)

    def done(self) -> bool:
        return self._result is not None or self._error is not None

    def result(self):
        """The outcome of a finished operation: ``(tag, nbytes)``, or raises its error."""
        if self._error is not None:
            raise self._error
        if self._result is None:
            raise asyncio.InvalidStateError("the operation is still pending")
        return self._result

    def cancel(self):
        """Asks UCX to cancel; a no-op once done. Await the operation for the outcome."""
        if not self.done():
            self._node._core.cancel(self._id)

    def __await__(self):
        if not self.done():
            if self._fut is None:
                self._fut = asyncio.get_running_loop().create_future()
            # shield: cancelling the awaiting task must not lose the completion
            yield from asyncio.shield(self._fut).__await__()
        return self.result()


class Message:
    """One message of a ``Receiver``: its tag, its length and its bytes (a memoryview of
    the receiver's buffer, valid until the next message is asked for)."""

    __slots__ = ("tag", "nbytes", "data")

    def __init__(self, tag: int, nbytes: int, data: memoryview):
        self.tag = tag
        self.nbytes = nbytes
        self.data = data

    def __repr__(self):
        return f"Message(tag={self.tag:#x}, nbytes={self.nbytes})"


class Receiver:
    """Keeps ``depth`` receives posted into a ring of ``size``-byte buffers and yields
    messages in the order they completed. A buffer is posted again when the next message
    is asked for, so the one handed out stays valid until then. Completions arrive in
    batches; one future wakes the iterator per batch, not one per message.

    ``aclose()`` cancels the posted receives and waits for their outcome: messages that
    had already arrived are still yielded, nothing is lost, and no buffer is written after
    it returns."""

    def __init__(self, node: "_Node", tag: int, tag_mask: int, size: int, depth: int,
                 buffers=None):
        if buffers is None:
            if size <= 0 or depth <= 0:
                raise WireError("invalid_argument",
                                f"receiver: size ({size}) and depth ({depth}) must be positive")
            buffers = [bytearray(size) for _ in range(depth)]
        elif not buffers:
            raise WireError("invalid_argument", "receiver: buffers is empty")
        self._node = node
        self._tag = _mask(tag)
        self._mask = _mask(tag_mask)
        self._buffers = list(buffers)
        self._views = [memoryview(b).cast("B") for b in self._buffers]
        depth = len(self._buffers)
        self._ready: "collections.deque" = collections.deque()
        self._posted: dict[int, Operation] = {}
        self._wake: Optional[asyncio.Future] = None
        self._held: Optional[int] = None  # the buffer handed out last
        self._closing = False
        self._error: Optional[WireError] = None
        for i in range(depth):
            self._post(i)

    def _post(self, index: int):
        n = self._node
        try:
            op = n._operation(n._post(n._core.recv, self._buffers[index], self._tag,
                                      self._mask, False))
        except WireError as exc:
            self._error = exc
            return
        if op.done():
            self._landed(index, op)
        else:
            self._posted[index] = op
            op._callback = lambda o, i=index: self._landed(i, o)

    def _landed(self, index: int, op: Operation):
        self._posted.pop(index, None)
        self._ready.append((index, op))
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    def __aiter__(self):
        return self

    async def __anext__(self) -> Message:
        if self._held is not None:
            index, self._held = self._held, None
            if not self._closing:
                self._post(index)
        while True:
            while self._ready:
                index, op = self._ready.popleft()
                if op._error is not None:
                    if isinstance(op._error, Cancelled) and self._closing:
                        continue
                    if not self._closing:
                        self._post(index)  # keep the ring full, then report
                    raise op._error
                tag, nbytes = op._result
                self._held = index
                return Message(tag, nbytes, self._views[index][:nbytes])
            if self._error is not None:
                raise self._error
            if not self._posted:
                raise StopAsyncIteration
            self._wake = asyncio.get_running_loop().create_future()
            try:
                await self._wake
            finally:
                self._wake = None

    async def aclose(self):
        """Cancels the posted receives and waits until UCX has let go of every buffer."""
        self._closing = True
        for op in list(self._posted.values()):
            op.cancel()
        while self._posted:
            self._wake = asyncio.get_running_loop().create_future()
            try:
                await self._wake
            finally:
                self._wake = None

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.aclose()
