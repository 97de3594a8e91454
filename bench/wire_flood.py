#!/usr/bin/python3
"""Messages a `voxcast serve --wire` server never asks for: times `info` requests, sends N
messages of a kind other than a request (kind 2 by default: a reply header, which only
servers send), then times `info` again and prints the server's RSS before and after.

    /usr/bin/python3 bench/wire_flood.py --bin build/release/apps/voxcast/voxcast \\
        --count 200000 --size 1024
"""
import argparse
import asyncio
import os
import sys
import time

import serving

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def rss_mb(pid: int) -> float:
    return serving.rss_kib(pid) / 1000


async def info_ms(voxcast, port: int, n: int = 50) -> float:
    c = await voxcast.wire_client("127.0.0.1", port).connect()
    await c.info()
    t0 = time.monotonic()
    for _ in range(n):
        await c.info()
    ms = (time.monotonic() - t0) * 1000 / n
    await c.close()
    return ms


async def flood(wire, port: int, count: int, size: int, kind: int) -> float:
    cli = wire.Client(mode="eventfd")
    await cli.aconnect("127.0.0.1", port)
    buf, ops, t0 = bytearray(size), [], time.monotonic()
    for i in range(count):
        ops.append(cli.post_send(buf, (kind << 24) | (i & 0xFFFFFF)))
        if len(ops) >= 64:
            await ops.pop(0)
    for op in ops:
        await op
    await cli.aflush_ep()
    await cli.aclose()
    return time.monotonic() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", required=True)
    ap.add_argument("--count", type=int, default=200_000)
    ap.add_argument("--size", type=int, default=1024, help="bytes per message (eager: small)")
    ap.add_argument("--kind", type=int, default=2, help="0..255, not 1 (a request)")
    a = ap.parse_args()
    if a.count < 1 or not 1 <= a.size <= 65536 or not 0 <= a.kind <= 255 or a.kind == 1:
        ap.error("need --count >= 1, --size in 1..65536 and --kind in 0..255 other than 1")
    build = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(a.bin))))
    sys.path[:0] = [os.path.join(build, "python"), os.path.join(ROOT, "python")]
    from voxcast import wire  # noqa: E402
    import voxcast  # noqa: E402
    p, port = serving.start([a.bin, "serve", "synthetic:cells?shape=256x256x256&chunk=64",
                             "--port", "0", "--wire", "0"],
                            pattern=r"wire fast path on [^:]+:(\d+)")
    try:
        before = rss_mb(p.pid), asyncio.run(info_ms(voxcast, port))
        took = asyncio.run(flood(wire, port, a.count, a.size, a.kind))
        time.sleep(1)
        after = rss_mb(p.pid), asyncio.run(info_ms(voxcast, port))
        print(f"{a.count} x {a.size} B of kind {a.kind} sent in {took:.1f} s; server RSS "
              f"{before[0]:.1f} -> {after[0]:.1f} MB; info {before[1]:.2f} -> {after[1]:.2f} ms")
    finally:
        p.terminate()
        p.wait()


if __name__ == "__main__":
    main()
