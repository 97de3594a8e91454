"""Where a server is and how to open its WebSockets: URL parsing, the token, and the
errors a user can act on (401, 503, refused, timeouts).

Example::

    >>> e = parse_url("http://localhost:8080/?token=abc")
    >>> e.pixels_url("s1")
    'ws://localhost:8080/ws/pixels?session=s1'
"""

from __future__ import annotations

import asyncio
import urllib.parse
from dataclasses import dataclass
from typing import Dict, Optional

import websockets
import websockets.exceptions

from .errors import AuthenticationError, VoxcastConnectionError


@dataclass(frozen=True)
class Endpoint:
    """Where a server is: its WebSocket base URL (``ws://host:port[/prefix]``), the token,
    and a URL safe to print (without the token)."""

    base: str
    token: Optional[str]
    display: str

    @property
    def state_url(self) -> str:
        return self.base + "/ws/state"

    def pixels_url(self, session: str) -> str:
        return self.base + "/ws/pixels?session=" + urllib.parse.quote(session, safe="")

    @property
    def headers(self) -> Dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}


def parse_url(url: str, token: Optional[str] = None) -> Endpoint:
    """Normalizes ``ws://``, ``wss://``, ``http://``, ``https://`` or bare ``host:port`` URLs,
    with an optional path prefix and ``?token=``; an explicit ``token`` wins.

    >>> e = parse_url("http://localhost:8080/?token=abc")
    >>> e.base, e.token, e.display, e.state_url
    ('ws://localhost:8080', 'abc', 'ws://localhost:8080', 'ws://localhost:8080/ws/state')
    >>> parse_url("https://lab.org/vx/ws/state").base
    'wss://lab.org/vx'
    >>> parse_url("localhost:9000", token="t").headers
    {'Authorization': 'Bearer t'}
    """
    if "://" not in url:
        url = "ws://" + url
    parts = urllib.parse.urlsplit(url)
    scheme = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}.get(parts.scheme.lower())
    if scheme is None:
        raise ValueError(f"{url!r}: expected a ws://, wss://, http:// or https:// URL")
    if not parts.hostname:
        raise ValueError(f"{url!r}: no host")
    query = urllib.parse.parse_qs(parts.query)
    if token is None and query.get("token"):
        token = query["token"][0]
    path = parts.path.rstrip("/")
    for suffix in ("/ws/state", "/ws/pixels"):
        if path.endswith(suffix):
            path = path[: -len(suffix)]
    netloc = parts.netloc.rsplit("@", 1)[-1]
    base = f"{scheme}://{netloc}{path}"
    return Endpoint(base=base, token=token or None, display=base)


async def open_ws(endpoint: Endpoint, url: str, timeout: float, **kwargs):
    """websockets.connect with the errors a user can act on."""
    try:
        return await asyncio.wait_for(
            websockets.connect(url, extra_headers=endpoint.headers, open_timeout=None,
                               **kwargs), timeout)
    except websockets.exceptions.InvalidStatusCode as e:
        where = url.split("?")[0]
        if e.status_code == 401:
            why = ("HTTP 401 unauthorized: the server needs a token (connect(..., token=T) or "
                   "?token=T in the URL)" if not endpoint.token else
                   "HTTP 401 unauthorized: the server rejected the token")
            raise AuthenticationError(where, why) from None
        if e.status_code == 503:
            raise VoxcastConnectionError(where, "HTTP 503: the server is busy (max_clients "
                                                "sessions already open)") from None
        raise VoxcastConnectionError(where, f"WebSocket upgrade refused with HTTP "
                                            f"{e.status_code}") from None
    except asyncio.TimeoutError:
        raise VoxcastConnectionError(url.split("?")[0], f"no WebSocket handshake within "
                                                        f"{timeout:g} s") from None
    except websockets.exceptions.InvalidHandshake as e:
        raise VoxcastConnectionError(url.split("?")[0], f"WebSocket handshake failed: {e}") \
            from None
    except OSError as e:
        raise VoxcastConnectionError(url.split("?")[0], f"cannot connect: {e.strerror or e}") \
            from None


def close_text(e: websockets.exceptions.ConnectionClosed) -> str:
    rcvd = getattr(e, "rcvd", None)
    if rcvd is not None:
        return f"code {rcvd.code}{' ' + rcvd.reason if rcvd.reason else ''}"
    return "no close frame"
