"""voxcast.pipeline: processing written in Python, run by ``voxcast serve`` in a worker process.

A scientist declares a pipeline as a function plus its parameter schema, and runs the file as
a worker; the server starts it on first use (``voxcast serve DATA --pipelines FILE``, see
docs/pipelines.md, "Pipelines in Python")::

    import scipy.ndimage as ndi
    from voxcast import pipeline as vp

    @vp.pipeline("scipy_gaussian", version="1.0",
                 params={"sigma": vp.number(2.0, min=0, max=20, step=0.1, unit="voxel")},
                 halo=lambda p: int(4 * p["sigma"] + 0.5))
    def blur(block, sigma):
        return ndi.gaussian_filter(block, sigma)   # the block with its halo, float32

    if __name__ == "__main__":
        vp.main()

The function receives the chunk *with its halo* as a float32 NumPy array (z, y, x), or
(y, x) for 2D data, received zero-copy over ``voxcast.wire`` into a preallocated buffer, and
its parameters as keyword arguments (plus ``ctx``, a :class:`Context`, when it has a
parameter of that name). It returns an array of the block's shape (the halo is cropped
here) or of the chunk's shape; it is converted to the pipeline's ``output_dtype``.

The message protocol (tags, headers) is documented in docs/pipelines.md; this module and
src/pipeline/worker_protocol.hpp are its two ends.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import os
import sys
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Union

import numpy as np

PROTOCOL = 1
# Tag layout (u64): [63:32] the worker's wire id, [31:28] the kind, [27:0] a sequence number.
KIND_HELLO, KIND_REQUEST, KIND_REQUEST_DATA, KIND_REPLY, KIND_REPLY_DATA = 1, 2, 3, 4, 5
KIND_SHIFT, KIND_MASK, SEQ_MASK = 28, 0xF << 28, (1 << 28) - 1
HEADER_MAX = 64 * 1024
DTYPES = ("uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "float64")


def tag(wire_id: int, kind: int, seq: int) -> int:
    return (wire_id << 32) | (kind << KIND_SHIFT) | (seq & SEQ_MASK)


# ---- parameter schema (the subset src/core/params.hpp accepts) ----

@dataclass
class Param:
    type: str  # number, integer, boolean, choice, string
    default: Any
    min: Optional[float] = None
    max: Optional[float] = None
    choices: Optional[list] = None
    unit: str = ""
    step: float = 0
    live: bool = True
    per_axis: bool = False
    description: str = ""

    def json_schema(self) -> dict:
        s: dict = {"type": {"choice": "string"}.get(self.type, self.type)}
        if self.type == "choice":
            s["enum"] = list(self.choices or [])
        if self.min is not None:
            s["minimum"] = self.min
        if self.max is not None:
            s["maximum"] = self.max
        if self.per_axis:
            s = {"oneOf": [s, {"type": "array", "items": s, "minItems": 1, "maxItems": 3}]}
        s["default"] = self.default
        if self.description:
            s["description"] = self.description
        if self.unit:
            s["x-unit"] = self.unit
        if self.step:
            s["x-step"] = self.step
        s["x-live"] = self.live
        return s


def number(default: float, *, min=None, max=None, unit="", step=0, live=True, per_axis=False,
           description="") -> Param:
    """A real parameter. ``unit="physical"``: in the data's units; ``live=False``: load-time."""
    return Param("number", float(default), min, max, None, unit, step, live, per_axis,
                 description)


def integer(default: int, *, min=None, max=None, unit="", step=0, live=True, per_axis=False,
            description="") -> Param:
    return Param("integer", int(default), min, max, None, unit, step, live, per_axis,
                 description)


def boolean(default: bool, *, live=True, description="") -> Param:
    return Param("boolean", bool(default), live=live, description=description)


def choice(default: str, choices, *, live=True, description="") -> Param:
    return Param("choice", default, choices=list(choices), live=live, description=description)


def string(default: str, *, live=True, description="") -> Param:
    return Param("string", default, live=live, description=description)


def schema_of(params: dict) -> dict:
    """The JSON Schema of a parameter dict, as voxcast's built-ins emit it."""
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
            "properties": {k: p.json_schema() for k, p in params.items()},
            "additionalProperties": False}


# ---- declaration ----

@dataclass
class Context:
    """What a function may want to know of the chunk it computes."""
    voxel_size: tuple  # physical size of a voxel at this level (z, y, x)
    spatial_dims: int  # 2 or 3
    input_dtype: str   # the dataset's dtype (the block itself is float32)
    halo: tuple = (0, 0, 0)  # voxels of halo around the chunk (z, y, x)
    pipeline: str = ""


HaloSpec = Union[int, tuple, list, Callable]


@dataclass
class Pipeline:
    name: str
    fn: Callable
    params: dict
    version: str = "1.0"
    description: str = ""
    halo: HaloSpec = 0
    output_dtype: str = "float32"  # a dtype name, or "input" (the dataset's dtype)
    memory_mb: Optional[float] = None
    wants_ctx: bool = field(init=False, default=False)
    halo_wants_ctx: bool = field(init=False, default=False)

    def __post_init__(self):
        self.wants_ctx = "ctx" in inspect.signature(self.fn).parameters
        if callable(self.halo):
            self.halo_wants_ctx = len(inspect.signature(self.halo).parameters) >= 2

    def describe(self) -> dict:
        halo = "dynamic" if callable(self.halo) else _halo3(self.halo, 3)
        d = {"name": self.name, "version": self.version, "description": self.description,
             "schema": schema_of(self.params), "output_dtype": self.output_dtype,
             "halo": halo}
        if self.memory_mb is not None:
            d["memory_mb"] = self.memory_mb
        return d

    def halo_for(self, params: dict, ctx: Context) -> list:
        h = self.halo
        if callable(h):
            h = h(params, ctx) if self.halo_wants_ctx else h(params)
        return _halo3(h, ctx.spatial_dims)

    def call(self, block: np.ndarray, params: dict, ctx: Context) -> np.ndarray:
        """Runs the function on `block` (float32, with halo; (z, y, x)) the way the worker
        does, returning the chunk in the output dtype. Used by the worker and for in-process
        comparisons (tests, benchmarks)."""
        out, dtype = self.call_view(block, params, ctx)
        return np.ascontiguousarray(out, dtype=dtype)

    def call_view(self, block: np.ndarray, params: dict, ctx: Context):
        """As call(), without the final copy: (the chunk, perhaps a view of the function's
        result, and the dtype it is to be converted to)."""
        hz, hy, hx = ctx.halo
        arg = block[0] if ctx.spatial_dims == 2 and block.ndim == 3 else block
        kwargs = dict(params)
        if self.wants_ctx:
            kwargs["ctx"] = ctx
        out = np.asarray(self.fn(arg, **kwargs))
        if ctx.spatial_dims == 2 and out.ndim == 2:
            out = out[None]
        if out.shape == block.shape and any(ctx.halo):
            out = out[hz:out.shape[0] - hz, hy:out.shape[1] - hy, hx:out.shape[2] - hx]
        dtype = ctx.input_dtype if self.output_dtype == "input" else self.output_dtype
        return out, np.dtype(dtype)


def _halo3(h, spatial_dims: int) -> list:
    if isinstance(h, (int, np.integer)):
        v = [int(h)] * 3
    else:
        v = [int(x) for x in h]
        if len(v) == 2:
            v = [0] + v
        if len(v) != 3:
            raise ValueError(f"a halo is an integer or one per spatial axis (got {h!r})")
    if spatial_dims == 2:
        v[0] = 0
    if min(v) < 0:
        raise ValueError(f"a halo cannot be negative (got {h!r})")
    return v


_REGISTRY: dict = {}


def pipeline(name: str, *, params: Optional[dict] = None, version: str = "1.0",
             description: str = "", halo: HaloSpec = 0, output_dtype: str = "float32",
             memory_mb: Optional[float] = None):
    """Decorator: declares `fn` as pipeline `name` of this worker.

    halo: voxels needed around each chunk, an int, one per spatial axis (z, y, x), or a
    function of the parameters (and optionally a :class:`Context`) returning either.
    output_dtype: the dtype of the results ("float32", "uint8", ..., or "input").
    """
    if output_dtype != "input" and output_dtype not in DTYPES:
        raise ValueError(f"pipeline {name!r}: output_dtype must be one of {DTYPES} or 'input'")

    def wrap(fn):
        if name in _REGISTRY:
            raise ValueError(f"pipeline {name!r} is declared twice")
        _REGISTRY[name] = Pipeline(name, fn, dict(params or {}), version,
                                   description or (fn.__doc__ or "").strip().split("\n")[0],
                                   halo, output_dtype, memory_mb)
        return fn
    return wrap


def registered() -> dict:
    """The pipelines declared so far, by name."""
    return dict(_REGISTRY)


def hello(pipelines: dict) -> dict:
    return {"protocol": PROTOCOL, "pid": os.getpid(),
            "pipelines": [p.describe() for p in pipelines.values()]}


# ---- the worker ----

def _context(p: Pipeline, h: dict) -> Context:
    return Context(tuple(h.get("voxel_size", (1, 1, 1))), int(h.get("spatial_dims", 3)),
                   str(h.get("input_dtype", "float32")), tuple(h.get("halo", (0, 0, 0))),
                   p.name)


class Worker:
    """Serves the declared pipelines to a voxcast server over wire until it says stop."""

    def __init__(self, pipelines: dict, host: str, port: int, token: str, launch: int):
        self.pipelines = pipelines
        self.host, self.port, self.token, self.launch = host, port, token, launch
        self._buffers: dict = {}  # preallocated receive buffers by shape
        self._header = bytearray(HEADER_MAX)
        self.shm = _map_shm(os.environ.get("VOXCAST_WORKER_SHM", ""),
                            int(os.environ.get("VOXCAST_WORKER_SHM_BYTES", "0") or 0))

    def _buffer(self, shape) -> np.ndarray:
        shape = tuple(int(s) for s in shape)
        b = self._buffers.get(shape)
        if b is None:
            if len(self._buffers) > 16:
                self._buffers.clear()
            b = self._buffers[shape] = np.empty(shape, np.float32)
        return b

    async def run(self):
        from voxcast import wire
        # eventfd: no progress thread, the loop progresses UCX itself (one thread hop less per
        # message; docs/benchmarks.md, "Python worker overhead").
        spin = os.environ.get("VOXCAST_WORKER_SPIN_US")
        client = wire.Client(mode=os.environ.get("VOXCAST_WORKER_WIRE_MODE", "eventfd"),
                             spin_us=float(spin) if spin else None)
        await client.aconnect(self.host, self.port)
        self.client, self.id = client, client.id
        msg = hello(self.pipelines)
        msg["token"] = self.token
        msg["shm"] = self.shm is not None
        await client.asend(json.dumps(msg).encode(), tag(self.id, KIND_HELLO, self.launch))
        try:
            while True:
                _tag, n = await client.arecv(self._header, tag(0, KIND_REQUEST, 0), KIND_MASK)
                h = json.loads(bytes(self._header[:n]))
                if h.get("op") == "stop":
                    break
                await self._serve(h)
        finally:
            await client.aclose(force=True)  # the server waits for the exit, not a handshake

    async def _serve(self, h: dict):
        seq = int(h["seq"])
        block = None
        shm = h.get("shm")
        if h.get("op") == "process" and shm is not None and self.shm is not None:
            # The block is in shared memory already: a view of it, no copy at all.
            block = np.ndarray(tuple(h["shape"]), np.float32, buffer=self.shm, offset=shm["in"])
        elif h.get("op") == "process":
            block = self._buffer(h["shape"])
            await self.client.arecv(block, tag(self.id, KIND_REQUEST_DATA, seq), 0xFFFFFFFF)
        reply, data = self.handle(h, block)
        reply["seq"] = seq
        if shm is not None and data is not None:
            # The result goes back through shared memory, when its size is the one expected
            # (else the server reports the shape or dtype it got).
            out, dtype = data
            if out.size * dtype.itemsize == shm["out_bytes"]:
                # One pass: the crop of the halo and the dtype conversion, into shared memory.
                dst = np.ndarray(out.shape, dtype, buffer=self.shm, offset=shm["out"])
                np.copyto(dst, out, casting="unsafe")
                reply["shm"] = True
            else:
                reply["shm"] = False
            data = None
        await self.client.asend(json.dumps(reply).encode(), tag(self.id, KIND_REPLY, seq))
        if data is not None:
            await self.client.asend(data[0], tag(self.id, KIND_REPLY_DATA, seq))

    def handle(self, h: dict, block):
        """One request: (reply header, reply data or None). Exceptions become error replies
        carrying the Python exception's text."""
        try:
            p = self.pipelines.get(h.get("pipeline"))
            if p is None:
                raise KeyError(f"this worker has no pipeline {h.get('pipeline')!r}")
            ctx = _context(p, h)
            if h["op"] == "halo":
                return {"ok": True, "halo": p.halo_for(h.get("params", {}), ctx)}, None
            if h["op"] != "process":
                raise ValueError(f"unknown request {h['op']!r}")
            out, dtype = p.call_view(block, h.get("params", {}), ctx)
            if h.get("shm") is None or self.shm is None:
                out = np.ascontiguousarray(out, dtype=dtype)  # to be sent as it is
            return {"ok": True, "shape": list(out.shape), "dtype": dtype.name}, (out, dtype)
        except Exception as exc:  # reported to the server, which names the pipeline
            tb = traceback.format_exc(limit=8)
            return {"ok": False, "error": f"{type(exc).__name__}: {exc}", "traceback": tb}, None


def _map_shm(name: str, size: int):
    """The server's shared memory region for this worker (docs/pipelines.md), or None."""
    if not name or size <= 0:
        return None
    import mmap
    try:
        fd = os.open("/dev/shm/" + name.lstrip("/"), os.O_RDWR)
    except OSError:
        return None
    try:
        return mmap.mmap(fd, size)
    finally:
        os.close(fd)


def main(argv=None, pipelines: Optional[dict] = None):
    """The worker's command line: ``--describe`` prints the pipelines as JSON; otherwise it
    connects to the server named by ``--connect HOST:PORT`` or $VOXCAST_WORKER_ADDRESS (the
    server sets it, with $VOXCAST_WORKER_TOKEN and $VOXCAST_WORKER_LAUNCH)."""
    ap = argparse.ArgumentParser(description="A voxcast pipeline worker (voxcast.pipeline)")
    ap.add_argument("--describe", action="store_true", help="print the pipelines as JSON")
    ap.add_argument("--connect", default=os.environ.get("VOXCAST_WORKER_ADDRESS", ""),
                    help="HOST:PORT of the server's worker port")
    ap.add_argument("--token", default=os.environ.get("VOXCAST_WORKER_TOKEN", ""))
    ap.add_argument("--launch", type=int,
                    default=int(os.environ.get("VOXCAST_WORKER_LAUNCH", "0") or 0))
    a = ap.parse_args(argv)
    pipelines = registered() if pipelines is None else pipelines
    if a.describe:
        json.dump(hello(pipelines), sys.stdout)
        sys.stdout.write("\n")
        return 0
    if not a.connect:
        ap.error("--connect HOST:PORT (or $VOXCAST_WORKER_ADDRESS) is required")
    host, _, port = a.connect.rpartition(":")
    asyncio.run(Worker(pipelines, host, int(port), a.token, a.launch).run())
    return 0


def call_in_process(name: str, block: np.ndarray, params: Optional[dict] = None,
                    halo=(0, 0, 0), voxel_size=(1, 1, 1), input_dtype="float32",
                    spatial_dims=3) -> np.ndarray:
    """Runs a declared pipeline here, as the worker would (for comparisons)."""
    p = _REGISTRY[name]
    ctx = Context(tuple(voxel_size), spatial_dims, input_dtype, tuple(halo), name)
    return p.call(np.ascontiguousarray(block, np.float32), dict(params or {}), ctx)


__all__ = ["pipeline", "number", "integer", "boolean", "choice", "string", "Context",
           "Pipeline", "main", "registered", "call_in_process", "schema_of"]
