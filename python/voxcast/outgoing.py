"""What the client has sent and not yet seen answered: one :class:`_Outgoing` per state
message, and for updates made by attribute assignment the caller's line (:class:`_Site`),
so that an ``error`` reply raised later by ``Viewer.sync()`` points at the assignment.
"""

from __future__ import annotations

import asyncio
import linecache
import os
import sys
import types
from dataclasses import dataclass
from typing import Optional

from .errors import ServerError

@dataclass
class _Outgoing:
    kind: str  # "update", "ping", "keyframe", "raw"
    seq: Optional[int]
    text: str
    future: "asyncio.Future"
    awaited: bool = True  # False: an attribute assignment or set(); its error waits for sync()
    site: Optional["_Site"] = None  # where the caller made it (unawaited updates)


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


@dataclass
class _Site:
    """The caller's line that queued an update: so that its error, raised later by
    :meth:`Viewer.sync`, points there."""

    frame: types.FrameType
    filename: str
    lineno: int
    line: str

    @staticmethod
    def here() -> Optional["_Site"]:
        f = sys._getframe(1)
        while f is not None and os.path.dirname(os.path.abspath(f.f_code.co_filename)) \
                == _PACKAGE_DIR:
            f = f.f_back
        if f is None:
            return None
        line = linecache.getline(f.f_code.co_filename, f.f_lineno).strip()
        return _Site(f, f.f_code.co_filename, f.f_lineno, line)

    def attach(self, err: ServerError) -> ServerError:
        err.assignment = self.line or None
        err.filename, err.lineno = self.filename, self.lineno
        # A traceback entry for the assignment's line: raised by sync(), the error's
        # traceback ends where the update was made.
        err.__traceback__ = types.TracebackType(None, self.frame, -1, self.lineno)
        self.frame = None  # type: ignore[assignment]  (no reference cycle kept)
        return err
