"""``layer.data``: the layer's channel of the dataset as lazy NumPy-like arrays, one per level
(napari's multiscale ``layer.data``). Indexing reads only the box it covers, through the
server's ``POST /api/v1/region`` (docs/protocol.md, "Regions"); nothing is read before.

    >>> arr = LazyArray(None, 0, 0, (2, 16, 32, 32), "uint16", channel_axis=0, channel=1)
    >>> arr.shape, arr.ndim, arr.dtype
    ((16, 32, 32), 3, dtype('uint16'))
    >>> arr._box((5, slice(2, 10, 3), Ellipsis))
    ([1, 5, 2, 0], [1, 1, 7, 32], (0, slice(None, None, 3), slice(None, None, None)))
    >>> arr._box((-1, slice(None, None, -2)))[:2]
    ([1, 15, 1, 0], [1, 1, 31, 32])
"""

from __future__ import annotations

import asyncio
from typing import Any, List, Optional, Sequence, Tuple

import numpy as np

from . import rest


class LazyArray:
    """One level of one channel: ``shape``, ``dtype``, ``ndim``; ``arr[key]`` (blocking, any
    thread) or ``await arr.aget(key)`` (on the event loop) return a NumPy array. Keys: ints,
    slices (any step: the box between the ends is read, then stepped), ``...``."""

    def __init__(self, endpoint, dataset: int, level: int, full_shape: Sequence[int], dtype: str,
                 channel_axis: Optional[int] = None, channel: int = 0):
        self._endpoint = endpoint
        self._dataset, self._level = dataset, level
        self._full = tuple(int(n) for n in full_shape)
        self._caxis, self._channel = channel_axis, channel
        self.dtype = np.dtype(dtype)
        self.shape = tuple(n for i, n in enumerate(self._full) if i != channel_axis)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def level(self) -> int:
        return self._level

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return f"LazyArray(level={self._level}, shape={self.shape}, dtype={self.dtype})"

    def _box(self, key: Any) -> Tuple[List[int], List[int], tuple]:
        """The box to read (start, shape over every axis of the level) and the indexing that
        turns the box into the answer."""
        if not isinstance(key, tuple):
            key = (key,)
        if sum(k is Ellipsis for k in key) > 1:
            raise IndexError("an index can only have a single ellipsis ('...')")
        if Ellipsis in key:
            i = key.index(Ellipsis)
            key = key[:i] + (slice(None),) * (self.ndim - len(key) + 1) + key[i + 1:]
        if len(key) > self.ndim:
            raise IndexError(f"too many indices: {len(key)} for {self.ndim} axes {self.shape}")
        key = key + (slice(None),) * (self.ndim - len(key))
        start, shape, post = [], [], []
        for k, n in zip(key, self.shape):
            if isinstance(k, (int, np.integer)):
                i = int(k) + n if k < 0 else int(k)
                if not 0 <= i < n:
                    raise IndexError(f"index {k} is out of bounds for an axis of size {n}")
                start.append(i)
                shape.append(1)
                post.append(0)
            elif isinstance(k, slice):
                r = range(*k.indices(n))
                if not r:
                    raise IndexError(f"empty slice {k} of an axis of size {n}")
                first, last = min(r[0], r[-1]), max(r[0], r[-1])
                start.append(first)
                shape.append(last - first + 1)
                post.append(slice(None, None, r.step) if r.step != 1 else slice(None))
            else:
                raise TypeError(f"index {k!r}: ints, slices and ... only")
        if self._caxis is not None:
            start.insert(self._caxis, self._channel)
            shape.insert(self._caxis, 1)
        return start, shape, tuple(post)

    def _finish(self, raw: np.ndarray, post: tuple) -> np.ndarray:
        if self._caxis is not None:
            raw = raw.reshape([n for i, n in enumerate(raw.shape) if i != self._caxis])
        return raw[post]

    def __getitem__(self, key: Any) -> np.ndarray:
        start, shape, post = self._box(key)
        return self._finish(rest.read_region(self._endpoint, self._dataset, self._level,
                                             start, shape), post)

    async def aget(self, key: Any) -> np.ndarray:
        loop = asyncio.get_running_loop()
        start, shape, post = self._box(key)
        raw = await loop.run_in_executor(None, rest.read_region, self._endpoint, self._dataset,
                                         self._level, start, shape)
        return self._finish(raw, post)

    def __array__(self, dtype=None):
        a = self[...]
        return a.astype(dtype) if dtype is not None else a


def layer_levels(endpoint, dataset: int, info: dict, channel: int) -> List[LazyArray]:
    """One :class:`LazyArray` per level of a dataset described by ``info`` (``voxcast info
    --json``), for one channel."""
    axes = info.get("axes") or []
    caxis = next((i for i, a in enumerate(axes) if isinstance(a, dict)
                  and a.get("type") == "channel"), None)
    return [LazyArray(endpoint, dataset, k, lv["shape"], info["dtype"], caxis, channel)
            for k, lv in enumerate(info.get("levels") or [])]
