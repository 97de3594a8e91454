"""The URL and port a `voxcast serve --port 0` bound, read from what it prints: the one
reader of those lines for the integration and browser tests. A port chosen by the test and
bound by the server could be taken in between ("Address already in use"); port 0 cannot
race."""

from __future__ import annotations

import re
import subprocess
import time
from typing import Callable

import pytest

URL_LINE = re.compile(r" at (http://[^\s:/]+:(\d+)\S*)")
WIRE_LINE = re.compile(r"wire fast path on \S+:(\d+)")


def find_url(text: str) -> str | None:
    """The URL in `text`'s "serving ... at http://HOST:PORT/...?token=..." line, if any."""
    m = URL_LINE.search(text)
    return m.group(1) if m else None


def find_wire_port(text: str) -> int | None:
    """The port in `text`'s "wire fast path on HOST:PORT" line, if any."""
    m = WIRE_LINE.search(text)
    return int(m.group(1)) if m else None


def wait_for_port(output: Callable[[], str], proc: subprocess.Popen, what: str,
                  timeout_s: float) -> int:
    """Polls `output()` (the server's stdout so far) for its "serving ... at
    http://HOST:PORT/..." line; fails the test, with the output, if `proc` exits first or
    nothing comes within `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        m = URL_LINE.search(output())
        if m:
            return int(m.group(2))
        if proc.poll() is not None:
            pytest.fail(f"`{what}` exited with {proc.returncode} before printing its URL\n"
                        f"{output()[-4000:]}", pytrace=False)
        time.sleep(0.05)
    proc.kill()
    pytest.fail(f"`{what}` printed no URL within {timeout_s} s\n{output()[-4000:]}",
                pytrace=False)
