"""Exceptions of the voxcast client.

Example::

    >>> err = ServerError("bad_patch", "field 'camera.zoom': -1 is outside (0, 1e12]", seq=4)
    >>> str(err)
    "bad_patch: field 'camera.zoom': -1 is outside (0, 1e12] (seq 4)"
    >>> isinstance(VoxcastConnectionError("ws://h:1", "refused"), ConnectionError)
    True
"""

from __future__ import annotations

import os
from typing import Optional


class VoxcastError(Exception):
    """Base class of everything this package raises on purpose."""


class ServerError(VoxcastError):
    """An ``error`` reply on the state channel: ``code`` (``bad_patch``, ``bad_seq``, ...),
    ``message`` (names the field or limit) and the ``seq`` it answers (or None)."""

    #: For the reply to an attribute assignment (or ``set()``) raised by ``sync()``: the
    #: source line that made it, and where.
    assignment: Optional[str] = None
    filename: Optional[str] = None
    lineno: Optional[int] = None

    def __init__(self, code: str, message: str, seq: Optional[int] = None):
        self.code = code
        self.message = message
        self.seq = seq
        super().__init__(code, message, seq)

    def __str__(self) -> str:
        tail = f" (seq {self.seq})" if self.seq is not None else ""
        if self.lineno is not None:
            what = f"`{self.assignment}` " if self.assignment else ""
            tail += f", from {what}at {os.path.basename(self.filename or '?')}:{self.lineno}"
        return f"{self.code}: {self.message}{tail}"


class VoxcastConnectionError(VoxcastError, ConnectionError):
    """The server cannot be reached, refused the connection, or closed it."""

    def __init__(self, url: str, reason: str):
        self.url = url
        self.reason = reason
        super().__init__(f"{url}: {reason}")

    def __str__(self) -> str:
        return f"{self.url}: {self.reason}"


class AuthenticationError(VoxcastError, PermissionError):
    """HTTP 401: the server wants a token (``token=`` or ``?token=`` in the URL) and got
    none or a wrong one."""

    def __init__(self, url: str, reason: str):
        self.url = url
        self.reason = reason
        super().__init__(f"{url}: {reason}")

    def __str__(self) -> str:
        return f"{self.url}: {self.reason}"
