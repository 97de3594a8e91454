#!/usr/bin/env python3
"""Overhead of a Python pipeline worker per 64^3 chunk: the server's process() round trip
(request, the 68^3 float32 block with a 2-voxel halo over wire, the function, the result back)
against an in-process call of the same function on the same block, side by side in one run.

    /usr/bin/python3 bench/pipeline_worker.py [--calls 200] [--chunk 64]

Needs build/release/bench/voxcast_bench_pipeline_worker and the wire module
(build/release/python). Prints a Markdown table; the goal is an overhead of at most 1 ms.
"""
import argparse
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "build" / "release" / "bench" / "voxcast_bench_pipeline_worker"
WORKER = '''
import atexit, json, os, time
import scipy.ndimage as ndi
from voxcast import pipeline as vp

TIMES = {}   # the function's own time per call, measured inside the worker


def timed(name, fn):
    def run(block):
        t0 = time.perf_counter()
        out = fn(block)
        TIMES.setdefault(name, []).append((time.perf_counter() - t0) * 1e6)
        return out
    return run


vp.pipeline("copy", halo=2)(timed("copy", lambda block: block[2:-2, 2:-2, 2:-2].copy()))
vp.pipeline("gauss", halo=2)(timed("gauss", lambda block: ndi.gaussian_filter(block, 0.5)))
if os.environ.get("BENCH_TIMES"):
    atexit.register(lambda: open(os.environ["BENCH_TIMES"], "w").write(json.dumps(TIMES)))

if __name__ == "__main__":
    raise SystemExit(vp.main())
'''


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--chunk", type=int, default=64)
    a = ap.parse_args()
    wire = ROOT / os.environ.get("VOXCAST_WIRE_PATH", "build/release/python")
    sys.path[:0] = [str(ROOT / "python")]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "bench_worker.py").write_text(WORKER)
        man = tmp / "pipelines.json"
        man.write_text(json.dumps({"workers": [{
            "name": "bench", "command": [sys.executable, "bench_worker.py"],
            "env": {"PYTHONPATH": f"{ROOT / 'python'}:{wire}", "OMP_NUM_THREADS": "1",
                    "BENCH_TIMES": str(tmp / "times.json")}}]}))
        spec = importlib.util.spec_from_file_location("bench_worker", tmp / "bench_worker.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        n = a.chunk + 4
        block = np.random.default_rng(15).uniform(0, 4000, (n, n, n)).astype(np.float32)
        rows = []
        for name in ("copy", "gauss"):
            r = subprocess.run([str(BENCH), str(man), name, str(a.chunk), "2", str(a.calls)],
                               capture_output=True, text=True, check=False)
            if r.returncode != 0:
                raise SystemExit(f"{BENCH} failed: {r.stderr}")
            worker = json.loads([ln for ln in r.stdout.splitlines() if ln.startswith('{"calls"')][-1])
            times = []
            for _ in range(a.calls + 5):
                t0 = time.perf_counter()
                mod.vp.call_in_process(name, block, {}, halo=(2, 2, 2))
                times.append((time.perf_counter() - t0) * 1e6)
            mod.TIMES.clear()
            local = statistics.median(times[5:])
            inside = statistics.median(json.loads((tmp / "times.json").read_text())[name][5:])
            rows.append((name, worker["median_us"], worker["p90_us"], inside, local,
                         worker["median_us"] - inside, worker["median_us"] / local))
    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo")
                if ln.startswith("model name")), platform.processor())
    print(f"machine: {cpu}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}, "
          f"python {platform.python_version()}, {a.calls} calls of a {a.chunk}^3 chunk "
          f"(block {a.chunk + 4}^3 float32 with halo 2)")
    print("| function | worker round trip, median (p90) | the function in the worker | "
          "in process | overhead (round trip - function) | round trip / in process |")
    print("|---|---|---|---|---|---|")
    for name, wm, wp, inside, lm, over, ratio in rows:
        print(f"| {name} | {wm / 1000:.3f} ms ({wp / 1000:.3f}) | {inside / 1000:.3f} ms | "
              f"{lm / 1000:.3f} ms | {over / 1000:.3f} ms | {ratio:.2f}x |")


if __name__ == "__main__":
    main()
