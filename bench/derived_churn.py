#!/usr/bin/python3
"""What a knob turned for a long time costs the server: memory per live parameter change.

Starts `voxcast serve DATA`, opens one session, hides the dataset's layers and adds a hidden
gaussian layer (nothing is computed: the cost measured is the bookkeeping of a derived source
per parameter value, not chunks), then changes its sigma CHANGES times, each state.update
waiting for its ack and paced under the server's message rate limit. Reads the server's
resident memory (VmRSS, /proc/PID/status) and the chunk cache's registered sources
(GET /api/v1/health, `cache.sources`; absent before it existed) after WARMUP changes, after
all of them, and after the session closed.

    /usr/bin/python3 bench/derived_churn.py [--bin build/release/apps/voxcast/voxcast]
        [--changes 4000] [--warmup 200]

Prints one JSON line: the readings and the growth per change between the first two (bytes).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import subprocess
import time
import urllib.request

import websockets

DATA = "synthetic:cells?shape=64x512x512&chunk=32"


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def sources(http: str):
    with urllib.request.urlopen(f"{http}/api/v1/health", timeout=30) as r:
        return json.loads(r.read())["cache"].get("sources")


async def reply(st):
    while True:
        m = json.loads(await asyncio.wait_for(st.recv(), 60))
        if m["type"] not in ("stats", "warning"):
            return m


async def churn(ws: str, http: str, pid: int, changes: int, warmup: int) -> dict:
    out = {}
    st = await websockets.connect(f"{ws}/ws/state", max_size=None)
    await st.send(json.dumps({"type": "hello", "codecs": ["jpeg"], "client": "bench"}))
    welcome = await reply(st)
    n = len(welcome["scene"]["layers"])
    seq = 1
    await st.send(json.dumps({"type": "state.update", "seq": seq, "patch": {
        "canvas": {"width": 256, "height": 256}, "layers": [{"visible": False}] * n}}))
    assert (await reply(st))["type"] == "ack"
    t0 = time.monotonic()
    for i in range(changes):
        seq += 1
        layer = {"visible": False, "contrast_limits": [0, 4000],
                 "source": {"pipeline": "gaussian", "input": 0,
                            "params": {"sigma": 1 + 0.0001 * i}}}
        await st.send(json.dumps({"type": "state.update", "seq": seq,
                                  "patch": {"layers": [{}] * n + [layer]}}))
        ack = await reply(st)
        assert ack["type"] == "ack", ack
        await asyncio.sleep(max(0.0, t0 + (i + 1) / 200 - time.monotonic()))  # <= 200/s
        if i + 1 == warmup:
            out["rss_kb_warm"], out["sources_warm"] = rss_kb(pid), sources(http)
    out["rss_kb_end"], out["sources_end"] = rss_kb(pid), sources(http)
    await st.close()
    await asyncio.sleep(2)
    out["rss_kb_closed"], out["sources_closed"] = rss_kb(pid), sources(http)
    out["bytes_per_change"] = round(
        (out["rss_kb_end"] - out["rss_kb_warm"]) * 1024 / (changes - warmup), 1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", default="build/release/apps/voxcast/voxcast")
    ap.add_argument("--data", default=DATA)
    ap.add_argument("--changes", type=int, default=4000)
    ap.add_argument("--warmup", type=int, default=200)
    a = ap.parse_args()
    if not 0 < a.warmup < a.changes:
        ap.error("--warmup must be between 0 and --changes")
    proc = subprocess.Popen([a.bin, "serve", a.data, "--port", "0", "--cache-mb", "256"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        url = None
        for line in proc.stdout:
            m = re.search(r" at (http://[^\s/]+)", line)
            if m:
                url = m.group(1)
                break
        if not url:
            raise SystemExit(f"{a.bin} serve printed no URL (exit {proc.poll()})")
        r = asyncio.run(churn(url.replace("http://", "ws://"), url, proc.pid, a.changes,
                              a.warmup))
        print(json.dumps({"bin": a.bin, "changes": a.changes, "warmup": a.warmup, **r}))
    finally:
        proc.terminate()
        proc.wait(30)


if __name__ == "__main__":
    main()
