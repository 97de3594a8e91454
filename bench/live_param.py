#!/usr/bin/python3
"""From a live parameter change to the final frame (issue 15's goal: at most 150 ms for a 2D
1920x1080 view, gaussian, cold region).

Starts `voxcast serve DATA --cache-mb N`, opens one JPEG session at 1920x1080 on a 2D slice,
shows the raw data (so its chunks are in the cache), adds a gaussian layer (sigma 1) over it
and waits for its final frame, then per round changes sigma (a new derived source: every
derived chunk of the view is cold) and times the state.update to the first final frame that
reflects it. A second case pans to a region never viewed (input and derived chunks cold).

    /usr/bin/python3 bench/live_param.py [--bin build/release/apps/voxcast/voxcast]
        [--data 'synthetic:cells?shape=64x4096x4096&chunk=32'] [--rounds 5] [--prior-changes 16]

Prints one JSON line per case with the times (ms), their median, the chunks read or computed
(cache misses) and how many of the timed final frames were degraded (drawn without chunks
that failed, e.g. refused by the memory budget: such a time is not a valid measurement).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import struct
import subprocess
import time
import urllib.request

import websockets

HEADER = struct.Struct("<4sHBBIIHHIIIIQI")


async def reply(st):
    while True:
        m = json.loads(await asyncio.wait_for(st.recv(), 120))
        if m["type"] != "stats":
            return m


DEGRADED = []  # final frames drawn without chunks that failed: not a valid measurement


async def final_frame(px, seq):
    while True:
        m = await asyncio.wait_for(px.recv(), 120)
        (_, _, _, flags, _, sseq, *_rest) = HEADER.unpack_from(m, 0)
        if sseq >= seq and not flags & (2 | 4):
            if flags & 8:
                DEGRADED.append(seq)
            return


def cache_counters(http_url):
    """The server's chunk cache counters (GET /api/v1/health): misses are chunks read or
    computed, so each case also says how much work it caused."""
    with urllib.request.urlopen(f"{http_url}/api/v1/health", timeout=30) as r:
        return json.loads(r.read())["cache"]


async def run(url, rounds, prior=0):
    st = await websockets.connect(f"{url}/ws/state", max_size=None)
    await st.send(json.dumps({"type": "hello", "codecs": ["jpeg"], "client": "bench"}))
    welcome = await reply(st)
    px = await websockets.connect(f"{url}/ws/pixels?session={welcome['session']}", max_size=None)
    n = len(welcome["scene"]["layers"])
    seq = 1
    await st.send(json.dumps({"type": "state.update", "seq": seq,
                              "patch": {"canvas": {"width": 1920, "height": 1080}}}))
    await reply(st)
    await final_frame(px, seq)
    limits = welcome["scene"]["layers"][0]["contrast_limits"]
    layer = {"source": {"pipeline": "gaussian", "input": 0, "params": {"sigma": 1.0}},
             "channel": 0, "contrast_limits": limits, "colormap": "gray"}
    seq += 1
    await st.send(json.dumps({"type": "state.update", "seq": seq,
                              "patch": {"layers": [{"visible": False}] * n + [layer]}}))
    await reply(st)
    await final_frame(px, seq)

    async def timed(patch):
        nonlocal seq
        seq += 1
        t0 = time.perf_counter()
        await st.send(json.dumps({"type": "state.update", "seq": seq, "patch": patch}))
        await final_frame(px, seq)
        return (time.perf_counter() - t0) * 1000

    for r in range(prior):  # untimed: fill the cache as a server that has run a while
        await timed({"layers": [{}] * n + [{"source": {"params": {"sigma": 20.0 + 0.25 * r}}}]})
    http_url = url.replace("ws://", "http://")
    before = cache_counters(http_url)
    changes = []
    for r in range(rounds):
        sigma = 1.5 + 0.25 * r  # never seen before: every derived chunk is cold
        changes.append(await timed({"layers": [{}] * n + [{"source": {"params": {"sigma": sigma}}}]}))
    mid = cache_counters(http_url)
    pans = []
    center = list(welcome["scene"]["camera"]["center"])
    for r in range(rounds):
        c = list(center)
        c[-2] += 60 * (r + 1)  # a region never viewed: input and derived chunks cold
        c[-1] += 400 * (r + 1) * (1 if r % 2 else -1)
        pans.append(await timed({"camera": {"center": c, "zoom": welcome["scene"]["camera"]["zoom"] * 4}}))
    await asyncio.sleep(2)  # what the last pan's prefetch adds
    after = cache_counters(http_url)
    await st.close()
    await px.close()
    n_changes = sum(1 for s in DEGRADED if s <= seq - rounds)
    return changes, pans, (mid["misses"] - before["misses"], after["misses"] - mid["misses"]), (
        n_changes, len(DEGRADED) - n_changes)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="build/release/apps/voxcast/voxcast")
    ap.add_argument("--data", default="synthetic:cells?shape=64x4096x4096&chunk=32")
    ap.add_argument("--cache-mb", type=int, default=1024)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--prior-changes", type=int, default=0,
                    help="untimed sigma changes first, so that the timed ones find the cache "
                         "full (evicting, its buffers reused) as on a server that has run a while")
    args = ap.parse_args()
    proc = subprocess.Popen([args.bin, "--log-level", "warn", "--cache-mb", str(args.cache_mb),
                             "serve", args.data, "--port", "0", "--data-dir",
                             "/tmp/voxcast-bench-data"], stdout=subprocess.PIPE, text=True)
    try:
        url = None
        while url is None:
            line = proc.stdout.readline()
            if not line:
                raise SystemExit("server exited")
            m = re.search(r"at (http://\S+)", line)
            if m:
                url = m.group(1).split("?")[0].rstrip("/").replace("http://", "ws://")
        changes, pans, misses, degraded = asyncio.run(run(url, args.rounds, args.prior_changes))
        med = lambda v: sorted(v)[len(v) // 2]  # noqa: E731
        print(json.dumps({"case": "sigma change, input warm", "ms": [round(x, 1) for x in changes],
                          "median_ms": round(med(changes), 1), "cache_misses": misses[0],
                          "degraded_frames": degraded[0]}))
        print(json.dumps({"case": "pan to a cold region", "ms": [round(x, 1) for x in pans],
                          "median_ms": round(med(pans), 1), "cache_misses": misses[1],
                          "degraded_frames": degraded[1]}))
    finally:
        proc.terminate()
        proc.wait(timeout=30)


if __name__ == "__main__":
    main()
