"""The fast data path of ``voxcast serve --wire PORT``: raw sub-volumes and raw RGBA
frames as NumPy arrays, over UCX (voxcast.wire). docs/protocol.md, "Fast path over wire".

Example::

    import asyncio, voxcast

    async def main():
        async with voxcast.wire_client("127.0.0.1", 13337) as w:
            info = await w.info()                       # levels, shapes, dtype per dataset
            box = await w.read_region(level=0, start=(10, 0, 0), shape=(1, 512, 512))
            rgba = await w.frame({"canvas": {"width": 640, "height": 480}})

    asyncio.run(main())

The array of a read is allocated here with the dtype and shape the server announces, and
the payload is received straight into it.

A server with a token (``--token T``, or the one it generates when bound beyond loopback)
needs it in the first request of each connection: ``voxcast.wire_client(host, port,
token=T)``. Without it, or with a wrong one, every request fails with
:class:`WireRequestError` code ``"unauthorized"``.
"""

from __future__ import annotations

import asyncio
import json
from typing import Optional, Sequence

import numpy as np

from . import wire

REQUEST, REPLY, PAYLOAD = 1, 2, 3
MAX_REQUEST_BYTES = 64 * 1024
_REPLY_BYTES = 1 << 20


class WireRequestError(wire.WireError):
    """The server refused a request (bad box, unknown level...); the connection stays up."""


def _tag(client_id: int, kind: int, seq: int) -> int:
    return (client_id << 32) | (kind << 24) | (seq & 0xFFFFFF)


class WireClient:
    """A connection to ``voxcast serve --wire``. Connects on first use; requests may run
    concurrently (each has its own sequence number in the tags)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, tls: str = "",
                 mode: str = "thread", connect_timeout: float = 5.0,
                 token: Optional[str] = None):
        self.host, self.port = host, port
        # Sent with every request: requests may run concurrently, so whichever reaches the
        # server first carries it.
        self._token = token
        self._client = wire.Client(tls=tls, mode=mode, connect_timeout=connect_timeout)
        self._connected = False
        self._connecting: Optional[asyncio.Future] = None
        self._seq = 0

    async def connect(self) -> "WireClient":
        if self._connected:
            return self
        if self._connecting is None:
            self._connecting = asyncio.ensure_future(self._client.aconnect(self.host, self.port))
        await self._connecting
        self._connected = True
        return self

    async def close(self):
        await self._client.aclose()

    async def __aenter__(self):
        return await self.connect()

    async def __aexit__(self, *exc):
        await self.close()

    async def _request(self, message: dict, payload=False):
        await self.connect()
        self._seq = (self._seq + 1) & 0xFFFFFF
        seq, cid = self._seq, self._client.id
        if self._token is not None:
            message = {**message, "token": self._token}
        body = json.dumps(message).encode()
        if len(body) > MAX_REQUEST_BYTES:
            raise wire.WireError("invalid_argument",
                                 f"request of {len(body)} bytes exceeds {MAX_REQUEST_BYTES}")
        header_buf = bytearray(_REPLY_BYTES)
        # Post the reply's receive before sending, so that it lands here directly.
        header_task = asyncio.ensure_future(
            self._client.arecv(header_buf, _tag(cid, REPLY, seq), wire.FULL_MASK))
        await self._client.asend(body, _tag(cid, REQUEST, seq))
        _, n = await header_task
        header = json.loads(header_buf[:n])
        if not header.get("ok"):
            err = header.get("error", {})
            raise WireRequestError(err.get("code", "error"), err.get("message", "request failed"))
        if not payload:
            return header, None
        out = np.empty(header["shape"], dtype=np.dtype(header["dtype"]))
        _, got = await self._client.arecv(out, _tag(cid, PAYLOAD, seq), wire.FULL_MASK)
        if got != out.nbytes:
            raise wire.WireError("truncated", f"payload of {got} bytes, expected {out.nbytes}")
        return header, out

    async def info(self) -> list:
        """Every dataset's description (as ``voxcast info --json``)."""
        header, _ = await self._request({"op": "info"})
        return header["datasets"]

    async def read_region(self, level: int, start: Sequence[int], shape: Sequence[int],
                          dataset: int = 0) -> np.ndarray:
        """The box ``[start, start + shape)`` of ``level`` (axis order of the data), read
        through the server's chunk cache, as an array of the data's dtype."""
        _, arr = await self._request(
            {"op": "read", "dataset": dataset, "level": int(level),
             "start": [int(v) for v in start], "shape": [int(v) for v in shape]}, payload=True)
        return arr

    async def frame(self, scene: Optional[dict] = None) -> np.ndarray:
        """A raw RGBA frame (height, width, 4) of ``scene`` (scene JSON; every field
        optional, defaults from the data), rendered at full quality."""
        _, arr = await self._request({"op": "frame", "scene": scene or {}}, payload=True)
        return arr


def wire_client(host: str = "127.0.0.1", port: int = 0, **kwargs) -> WireClient:
    """A :class:`WireClient` for ``voxcast serve --wire PORT`` (connects on first use);
    ``token=T`` for a server with a token."""
    return WireClient(host, port, **kwargs)
