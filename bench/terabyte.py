#!/usr/bin/python3
"""Terabyte-scale streaming benchmark (issue 11): how long a user waits for a sharp view of a
huge dataset behind slow storage, and what the server spends meanwhile.

Starts `voxcast serve DATA --cache-mb N` (a fresh server per case, so every case starts
cold), opens one client at 1920x1080 and, per case, measures from the state update to:
the first frame that reflects it, the sharp (non-refining) frame, how many refining frames
came in between, and the server's peak RSS (VmHWM) at the end.

Cases: `2d` (the default overview), `zoom` (after the overview is sharp, a cold zoom-in 8x
onto another slice), `3d` (the whole volume, ndisplay 3).

    /usr/bin/python3 bench/terabyte.py [--bin build/release/apps/voxcast/voxcast]
        [--data 'synthetic:cells?latency_ms=10'] [--latency-ms 0] [--cache-mb 1024]
        [--cases 2d,zoom,3d] [--timeout 120]

`--latency-ms` is voxcast's global option for file-backed datasets (an OME-Zarr written by
`voxcast convert`). Prints one JSON line per case.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import struct
import subprocess
import sys
import time

import websockets

HEADER = struct.Struct("<4sHBBIIHHIIIIQI")
REFINING = 2


def start_server(args):
    cmd = [args.bin, "--log-level", "warn", "--cache-mb", str(args.cache_mb)]
    if args.latency_ms:
        cmd += ["--latency-ms", str(args.latency_ms)]
    cmd += ["serve", args.data, "--port", "0", "--data-dir", "/tmp/voxcast-bench-data"]
    # The log goes to a file: a pipe nobody reads would fill and stall the server.
    log = open(f"/tmp/voxcast-terabyte-{os.getpid()}.log", "w")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True)
    deadline = time.time() + 60
    while time.time() < deadline:
        line = proc.stdout.readline()
        m = re.search(r"(http://\S+?)/?(\?token=\S+)?$", line.strip())
        if m and "serving" in line:
            return proc, m.group(1).replace("http://", "ws://")
        if proc.poll() is not None:
            raise SystemExit(f"server exited; its log: {log.name}")
    raise SystemExit("server did not start")


def peak_rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


async def run_case(args, case):
    proc, url = start_server(args)
    try:
        st = await websockets.connect(f"{url}/ws/state", max_size=None)
        await st.send(json.dumps({"type": "hello", "codecs": ["h264"], "client": "terabyte"}))
        welcome = json.loads(await st.recv())
        px = await websockets.connect(f"{url}/ws/pixels?session={welcome['session']}",
                                      max_size=None)
        scene = welcome["scene"]
        seq = 0
        frames = asyncio.Queue()

        async def reader():
            async for m in px:
                frames.put_nowait((time.perf_counter(), HEADER.unpack_from(m, 0)))

        async def drain_state():
            async for _ in st:
                pass

        tasks = [asyncio.create_task(reader()), asyncio.create_task(drain_state())]

        async def update(patch):
            nonlocal seq
            seq += 1
            t0 = time.perf_counter()
            await st.send(json.dumps({"type": "state.update", "seq": seq, "patch": patch}))
            first = sharp = None
            refining = 0
            deadline = t0 + args.timeout
            while sharp is None:
                left = deadline - time.perf_counter()
                if left <= 0:
                    break
                try:
                    t, h = await asyncio.wait_for(frames.get(), left)
                except asyncio.TimeoutError:
                    break
                if h[5] < seq:
                    continue
                if first is None:
                    first = t - t0
                if h[3] & REFINING:
                    refining += 1
                else:
                    sharp = t - t0
            return first, sharp, refining

        size = {"canvas": {"width": 1920, "height": 1080}}
        if case == "2d":
            first, sharp, refining = await update(size)
        elif case == "zoom":
            await update(size)  # the overview, loaded first
            point = list(scene["dims"]["point"])
            point[-3] = point[-3] * 0.6  # another slice: nothing of it is cached
            center = list(scene["camera"]["center"])
            first, sharp, refining = await update(
                {"camera": {"zoom": scene["camera"]["zoom"] * 8,
                            "center": [center[0], center[1] * 0.8, center[2] * 1.2]},
                 "dims": {"point": point}})
        else:
            first, sharp, refining = await update({**size, "dims": {"ndisplay": 3}})
        rss = peak_rss_mb(proc.pid)
        for t in tasks:
            t.cancel()
        await st.close()
        await px.close()
        return {"case": case, "data": args.data, "latency_ms": args.latency_ms,
                "bin": args.bin, "first_frame_s": first, "sharp_frame_s": sharp,
                "refining_frames": refining, "peak_rss_mb": round(rss),
                "cache_mb": args.cache_mb, "timed_out": sharp is None}
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", default="build/release/apps/voxcast/voxcast")
    ap.add_argument("--data", default="synthetic:cells?latency_ms=10")
    ap.add_argument("--latency-ms", type=float, default=0)
    ap.add_argument("--cache-mb", type=int, default=1024)
    ap.add_argument("--cases", default="2d,zoom,3d")
    ap.add_argument("--timeout", type=float, default=120)
    args = ap.parse_args()
    for case in args.cases.split(","):
        r = asyncio.run(run_case(args, case))
        for k in ("first_frame_s", "sharp_frame_s"):
            if r[k] is not None:
                r[k] = round(r[k], 3)
        print(json.dumps(r), flush=True)


if __name__ == "__main__":
    main()
