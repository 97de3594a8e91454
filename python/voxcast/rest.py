"""The HTTP routes of ``voxcast serve`` that the Python client uses (docs/protocol.md):
``GET /api/v1/datasets`` and ``POST /api/v1/screenshot``. Plain urllib, run on a thread so
the event loop keeps going; errors become :class:`ServerError` (the server's code and message,
which name the field) or :class:`AuthenticationError` (HTTP 401).

    >>> http_url(parse_url("ws://localhost:8080/vx?token=t"), "/api/v1/datasets")
    'http://localhost:8080/vx/api/v1/datasets'
"""

from __future__ import annotations

import asyncio
import io
import json
import time
import urllib.error
import urllib.request
from typing import Any, Optional, Tuple

import numpy as np

from .connection import Endpoint, parse_url  # noqa: F401  (parse_url: the doctest)
from .errors import AuthenticationError, ServerError, VoxcastConnectionError


def http_url(endpoint: Endpoint, path: str) -> str:
    base = endpoint.base
    if base.startswith("wss://"):
        base = "https://" + base[len("wss://"):]
    elif base.startswith("ws://"):
        base = "http://" + base[len("ws://"):]
    return base + path


def request(endpoint: Endpoint, method: str, path: str, body: Any = None,
            timeout: float = 30) -> Tuple[bytes, dict]:
    """(body, headers) of a 2xx answer; raises on anything else."""
    url = http_url(endpoint, path)
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json", **endpoint.headers}
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        raw = e.read()
        if e.code == 401:
            raise AuthenticationError(url, "HTTP 401 unauthorized: the server needs its token") \
                from None
        try:
            err = json.loads(raw)["error"]
            code, message = str(err.get("code")), str(err.get("message"))
        except (ValueError, KeyError, TypeError, AttributeError):
            code, message = f"http_{e.code}", raw[:200].decode(errors="replace")
        raise ServerError(code, f"{method} {path}: {message}") from None
    except OSError as e:
        raise VoxcastConnectionError(url, f"cannot connect: {getattr(e, 'reason', e)}") from None


def request_patiently(endpoint: Endpoint, method: str, path: str, body: Any = None,
                      timeout: float = 30) -> Tuple[bytes, dict]:
    """:func:`request` for routes the server bounds (screenshots and regions: a few at once,
    and a budget of answer bytes): a ``429 overloaded`` answer is waited out, asking again
    after 50 ms, doubling to 1 s, until ``timeout``; then it is raised."""
    deadline, pause = time.monotonic() + timeout, 0.05
    while True:
        try:
            return request(endpoint, method, path, body, max(1.0, deadline - time.monotonic()))
        except ServerError as e:
            if e.code != "overloaded" or time.monotonic() + pause > deadline:
                raise
            time.sleep(pause)
            pause = min(2 * pause, 1.0)


async def arequest(endpoint: Endpoint, method: str, path: str, body: Any = None,
                   timeout: float = 30, patient: bool = False) -> Tuple[bytes, dict]:
    """:func:`request` (or :func:`request_patiently`) on a thread."""
    loop = asyncio.get_running_loop()
    call = request_patiently if patient else request
    return await loop.run_in_executor(None, lambda: call(endpoint, method, path, body, timeout))


async def datasets(endpoint: Endpoint, timeout: float = 30) -> list:
    """The served datasets: ``[{"id", "name", "location", "info"}]``."""
    raw, _ = await arequest(endpoint, "GET", "/api/v1/datasets", timeout=timeout)
    return list(json.loads(raw).get("datasets") or [])


def resolve_dataset(choice: Any, served: list) -> int:
    """The index of a dataset given by index or by name (or location).

    >>> served = [{"id": 0, "name": "a.tif", "location": "/d/a.tif"}, {"id": 1, "name": "b.npy"}]
    >>> resolve_dataset("b.npy", served), resolve_dataset(1, served), resolve_dataset("/d/a.tif", served)
    (1, 1, 0)
    >>> resolve_dataset("c.tif", served)
    Traceback (most recent call last):
    ...
    ValueError: dataset 'c.tif': not served here (0 'a.tif', 1 'b.npy')
    """
    if isinstance(choice, (int, np.integer)) and not isinstance(choice, bool):
        return int(choice)
    for d in served:
        if choice in (d.get("name"), d.get("location")):
            return int(d["id"])
    names = ", ".join(f"{d.get('id')} {d.get('name')!r}" for d in served)
    raise ValueError(f"dataset {choice!r}: not served here ({names})")


def read_region(endpoint: Endpoint, dataset: int, level: int, start, shape,
                timeout: float = 120) -> np.ndarray:
    """The box ``[start, start + shape)`` of one level, every axis (``POST /api/v1/region``)."""
    body = {"dataset": int(dataset), "level": int(level), "start": [int(v) for v in start],
            "shape": [int(v) for v in shape]}
    # The server reads 2 regions at once and answers more with 429 "overloaded".
    raw, headers = request_patiently(endpoint, "POST", "/api/v1/region", body, timeout)
    dtype = np.dtype(headers.get("X-Voxcast-Dtype", ""))
    got = tuple(int(v) for v in headers.get("X-Voxcast-Shape", "").split(","))
    if got != tuple(body["shape"]) or len(raw) != dtype.itemsize * int(np.prod(got)):
        raise ServerError("bad_reply", f"POST /api/v1/region: {len(raw)} bytes of {dtype} "
                                       f"shaped {got}, asked for {tuple(body['shape'])}")
    return np.frombuffer(raw, dtype=dtype).reshape(got)


def decode_png(data: bytes) -> np.ndarray:
    """(H, W, 3) uint8 of a PNG (Pillow where present, else PyAV)."""
    try:
        from PIL import Image
    except ImportError:
        Image = None
    if Image is not None:
        return np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).copy()
    import av  # python3-av, the client's decoder anyway

    with av.open(io.BytesIO(data), format="png_pipe") as c:
        for frame in c.decode(video=0):
            return frame.to_ndarray(format="rgb24")
    raise ValueError("the server's PNG has no image")


def size_fields(size: Optional[Tuple[int, int]]) -> dict:
    """napari's ``size`` (height, width) as the route's fields.

    >>> size_fields((480, 640))
    {'height': 480, 'width': 640}
    """
    if size is None:
        return {}
    h, w = size
    return {"height": int(h), "width": int(w)}
