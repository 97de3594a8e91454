#!/usr/bin/env python3
"""A pipeline worker that misbehaves on purpose, one pipeline per fault, for
tests/integration/test_pipeline_workers.py."""

import os
import signal
import time

import numpy as np

from voxcast import pipeline as vp


@vp.pipeline("fault_raise", params={"x": vp.number(1.0)})
def fault_raise(block, x):
    raise ValueError(f"boom: x={x} is too spicy")


@vp.pipeline("fault_shape", halo=1)
def fault_shape(block):
    return block[:-1]  # neither the block's shape nor the chunk's


@vp.pipeline("fault_dtype")
def fault_dtype(block):
    return block


@vp.pipeline("fault_hang")
def fault_hang(block):
    time.sleep(3600)


@vp.pipeline("fault_die_once")
def fault_die_once(block):
    marker = os.environ["VOXCAST_TEST_MARKER"]
    if not os.path.exists(marker):
        open(marker, "w").close()
        os.kill(os.getpid(), signal.SIGKILL)  # mid-chunk, as the OOM killer would
    return block * 2


@vp.pipeline("fault_die_always")
def fault_die_always(block):
    os.kill(os.getpid(), signal.SIGKILL)


@vp.pipeline("fault_schema", params={"x": vp.number(1.0)})
def fault_schema(block, x):
    return block


# The library converts results to the declared dtype, and writes valid schemas: these two
# faults need a worker that does not (as one written by hand might).
_p = vp.registered()
_p["fault_dtype"].call_view = lambda block, params, ctx: (block, np.dtype(np.float64))
_describe = _p["fault_schema"].describe


def _bad_schema():
    d = _describe()
    d["schema"]["properties"]["x"]["type"] = "complex"
    return d


_p["fault_schema"].describe = _bad_schema

if __name__ == "__main__":
    raise SystemExit(vp.main())
