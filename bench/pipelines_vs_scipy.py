#!/usr/bin/env python3
"""Pipelines through voxcast (chunk by chunk, 64^3 chunks, halos, through the chunk cache)
against scipy.ndimage on the whole array in memory, side by side in one run.

    /usr/bin/python3 bench/pipelines_vs_scipy.py [--size 256] [--repeat 3]

Writes a SIZE^3 uint16 volume (smoothed noise), runs build/release/bench/voxcast_bench_pipeline
for each pipeline and the scipy call that computes the same thing (checked equal), and prints a
Markdown table with medians and the ratio.
"""
import argparse
import json
import os
import platform
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy
import scipy.ndimage as ndi

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "build" / "release" / "bench" / "voxcast_bench_pipeline"

CASES = [
    ("gaussian:sigma=2", "gaussian_filter(a, 2, output=float32)",
     lambda a: ndi.gaussian_filter(a, 2.0, output=np.float32)),
    ("median:radius=1", "median_filter(a, size=3)", lambda a: ndi.median_filter(a, size=3)),
]


def median_time(fn, repeat):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--chunk", type=int, default=64)
    args = ap.parse_args()
    rng = np.random.default_rng(1)
    n = args.size
    a = ndi.gaussian_filter(rng.normal(1000, 300, (n, n, n)).astype(np.float32), 1.0)
    a = np.clip(a + rng.normal(0, 50, a.shape), 0, 65535).astype(np.uint16)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "vol.npy"
        np.save(path, a)
        print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
              f"numpy {np.__version__}, scipy {scipy.__version__}; {n}^3 uint16, "
              f"voxcast chunks {args.chunk}^3, medians of {args.repeat}")
        print()
        print("| pipeline | voxcast s | scipy.ndimage call | scipy s | speed-up |")
        print("|---|---|---|---|---|")
        for spec, call, fn in CASES:
            out = subprocess.run([str(BENCH), str(path), spec, str(args.repeat), str(args.chunk)],
                                 check=True, capture_output=True, text=True).stdout
            vx = json.loads(out.strip().splitlines()[-1])["median_s"]
            sp = median_time(lambda: fn(a), args.repeat)
            print(f"| {spec} | {vx:.3f} | `{call}` | {sp:.3f} | {sp / vx:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
