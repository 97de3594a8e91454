#!/usr/bin/python3
"""Streaming benchmark: a scripted client (or N of them) changes the view at 60 Hz against a
real `voxcast serve`, decodes every frame with PyAV, and reports delivered fps, the
server's time per frame (state received -> frame handed to the socket, from the frame
header), motion-to-photon (update sent -> frame decoded, measured by the client), bitrate
and the server's CPU per client.

    /usr/bin/python3 bench/stream_bench.py [--bin build/release/apps/voxcast/voxcast]
        [--mode 2d|3d] [--clients N] [--seconds S] [--size 1920x1080] [--codec h264|jpeg]

2D changes the slice (dims.point on z) every frame; 3D turns the camera (angles) every
frame with `interactive: true`, as a dragging user does. The cache is warmed first (one
pass over the same views), so the figures are for data in memory. Prints one JSON line.
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

import av
import numpy as np
import websockets

HEADER = struct.Struct("<4sHBBIIHHIIIIQI")


def pct(values, q):
    return float(np.percentile(values, q)) if values else float("nan")


class Client:
    def __init__(self, url, mode, size, codec, index, decode=True):
        self.url, self.mode, self.size, self.codec, self.index = url, mode, size, codec, index
        self.decode = decode
        self.sent = {}  # seq -> send time
        self.records = []  # (state_seq, server_us, render_us, encode_us, bytes, m2p_ms, flags)
        self.seq = 0
        self.measuring = False
        self.last_state_seen = 0

    async def open(self):
        self.st = await websockets.connect(f"{self.url}/ws/state", max_size=None)
        await self.st.send(json.dumps({"type": "hello", "codecs": [self.codec], "client": "bench"}))
        self.welcome = json.loads(await self.st.recv())
        self.px = await websockets.connect(
            f"{self.url}/ws/pixels?session={self.welcome['session']}", max_size=None)
        self.dec = (av.CodecContext.create("h264", "r")
                    if self.codec == "h264" and self.decode else None)
        self.reader = asyncio.create_task(self.read_frames())
        self.acks = asyncio.create_task(self.read_state())
        w, h = self.size
        patch = {"canvas": {"width": w, "height": h}}
        if self.mode == "3d":
            patch["dims"] = {"ndisplay": 3}
        await self.send(patch)

    async def send(self, patch, interactive=False):
        self.seq += 1
        self.sent[self.seq] = time.perf_counter()
        await self.st.send(json.dumps({"type": "state.update", "seq": self.seq, "patch": patch,
                                       "interactive": interactive}))

    async def read_state(self):
        try:
            async for m in self.st:
                msg = json.loads(m)
                if msg["type"] == "error":
                    print("server error:", msg, file=sys.stderr)
        except websockets.ConnectionClosed:
            pass

    async def read_frames(self):
        try:
            async for m in self.px:
                (_, _, codec, flags, fseq, sseq, w, h, r_us, e_us, s_us, n, wall,
                 _) = HEADER.unpack_from(m, 0)
                payload = m[48:]
                if self.dec is not None:
                    self.dec.decode(av.Packet(payload))  # decoded (YUV), as a player shows it
                t = time.perf_counter()
                m2p = None
                if sseq > self.last_state_seen and sseq in self.sent:
                    m2p = (t - self.sent[sseq]) * 1000
                self.last_state_seen = max(self.last_state_seen, sseq)
                if self.measuring:
                    self.records.append((sseq, s_us, r_us, e_us, len(m), m2p, flags))
        except websockets.ConnectionClosed:
            pass

    def view(self, i, nz):
        if self.mode == "2d":
            return {"dims": {"point": [float((i * 1 + self.index * 7) % nz), None, None]}}, False
        return {"camera": {"angles": [0.0, 20.0, float((i * 2 + self.index * 30) % 360)]}}, True

    async def run(self, frames, nz, period):
        start = time.perf_counter()
        for i in range(frames):
            patch, interactive = self.view(i, nz)
            if self.mode == "2d":
                # dims.point needs every axis; keep the others from the scene
                point = list(self.welcome["scene"]["dims"]["point"])
                point[0] = patch["dims"]["point"][0]
                patch = {"dims": {"point": point}}
            await self.send(patch, interactive)
            next_t = start + (i + 1) * period
            await asyncio.sleep(max(0.0, next_t - time.perf_counter()))


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def bench(args, url, pid, nz):
    clients = [Client(url, args.mode, args.size, args.codec, i, not args.no_decode)
               for i in range(args.clients)]
    for c in clients:
        await c.open()
    period = 1 / 60
    warm = nz if args.mode == "2d" else 180
    await asyncio.gather(*(c.run(warm, nz, period) for c in clients))  # warm the cache
    await asyncio.sleep(1.0)
    for c in clients:
        c.measuring = True
    cpu0, t0 = cpu_seconds(pid), time.perf_counter()
    frames = int(args.seconds * 60)
    await asyncio.gather(*(c.run(frames, nz, period) for c in clients))
    await asyncio.sleep(0.5)
    cpu1, t1 = cpu_seconds(pid), time.perf_counter()
    for c in clients:
        c.measuring = False
    recs = [r for c in clients for r in c.records]
    server = [r[1] / 1000 for r in recs]
    m2p = [r[5] for r in recs if r[5] is not None]
    wall = t1 - t0
    out = {
        "mode": args.mode, "clients": args.clients, "size": f"{args.size[0]}x{args.size[1]}",
        "codec": args.codec, "encoder": clients[0].welcome.get("encoder"),
        "client_decodes": not args.no_decode,
        "updates_per_s_per_client": 60,
        "fps_per_client": round(len(recs) / wall / args.clients, 1),
        "fps_min_client": round(min(len(c.records) for c in clients) / wall, 1),
        "fps_max_client": round(max(len(c.records) for c in clients) / wall, 1),
        "server_ms_p50": round(pct(server, 50), 2), "server_ms_p99": round(pct(server, 99), 2),
        "render_ms_mean": round(float(np.mean([r[2] for r in recs])) / 1000, 2),
        "encode_ms_mean": round(float(np.mean([r[3] for r in recs])) / 1000, 2),
        "motion_to_photon_ms_p50": round(pct(m2p, 50), 2),
        "motion_to_photon_ms_p99": round(pct(m2p, 99), 2),
        "kbps_per_client": round(sum(r[4] for r in recs) * 8 / 1000 / wall / args.clients, 1),
        "server_cpu_percent_per_client": round((cpu1 - cpu0) / wall * 100 / args.clients, 1),
        "interactive_frames": sum(1 for r in recs if r[6] & 4),
        "frames": len(recs),
    }
    for c in clients:
        await c.st.close()
        await c.px.close()
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", default="build/release/apps/voxcast/voxcast")
    ap.add_argument("--mode", choices=["2d", "3d"], default="2d")
    ap.add_argument("--data", default=None)
    ap.add_argument("--clients", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--size", default="1920x1080")
    ap.add_argument("--codec", choices=["h264", "jpeg"], default="h264")
    ap.add_argument("--no-decode", action="store_true",
                    help="do not decode (this machine's 2 cores are shared by client and server)")
    args = ap.parse_args()
    args.size = tuple(int(v) for v in args.size.split("x"))
    data = args.data or ("synthetic:cells?shape=64x1024x1024&chunk=64" if args.mode == "2d"
                         else "synthetic:cells?shape=256x256x256&chunk=64&channels=1")
    nz = int(re.search(r"shape=(\d+)", data).group(1)) if "shape=" in data else 64
    proc = subprocess.Popen([args.bin, "serve", data, "--port", "0", "--log-level", "warn"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    url = None
    for line in proc.stdout:
        m = re.search(r"at http://([^/\s]+)/", line)
        if m:
            url = f"ws://{m.group(1)}"
            break
    try:
        print(json.dumps(asyncio.run(bench(args, url, proc.pid, nz))))
    finally:
        proc.terminate()
        proc.wait(timeout=30)


if __name__ == "__main__":
    main()
