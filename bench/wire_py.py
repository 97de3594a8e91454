#!/usr/bin/python3
"""Python voxcast.wire benchmark: 8 B ping-pong latency and streaming bandwidth.

    PYTHONPATH=python:build/release/python /usr/bin/python3 bench/wire_py.py --tls shm

Runs a server process and a client process (multiprocessing 'spawn': no UCX object
crosses a fork). Prints JSON lines {"impl","tls","mode","test","size","value","unit"}:
latency as half the round trip in microseconds (like ucx_perftest tag_lat), also the full
round trip; bandwidth in MB/s (1e6 bytes per second) with a window of sends in flight.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import multiprocessing as mp
import statistics
import sys
import time

import numpy as np

SIZES = [64 << 10, 256 << 10, 1 << 20, 4 << 20, 16 << 20, 64 << 20]
PING, PONG, DATA, ACK = 1, 2, 3, 4


def counts(size: int, bw_mib: int, min_iters: int) -> tuple[int, int]:
    """Messages per bandwidth point, untimed warm-up first: as bench/wire_bench.cpp and
    bench/wire_zmq.py count them (max(min_iters, bw_mib MiB / size), a tenth of that first),
    so that the three measure the same bytes and none pays first-touch costs the others do not."""
    n = max(min_iters, (bw_mib << 20) // size)
    return max(1, n // 10), n


def window_for(size: int, total: int) -> int:
    """Messages in flight (both sides must agree): at most 16 and 32 MiB, at least 2."""
    return min(16, total, max(2, (32 << 20) // size))


async def receive(server, ep, ack, bufs, count, window, api):
    """Receives `count` DATA messages into `bufs`, then sends ACK."""
    if api == "stream":
        # A Receiver keeps `window` receives posted into bufs (like the C++ bench: a
        # message that finds no receive waiting is buffered by UCX and copied twice) and
        # wakes the loop once per batch of completions.
        rx = server.receiver(DATA, ~0, buffers=bufs)
        done_count = 0
        async for _msg in rx:
            done_count += 1
            if done_count == count:
                break
        await rx.aclose()
        await ep.asend(ack, ACK)
        return
    # One future per message (the plain arecv API), for comparison.
    window = min(window, count)
    pending = {asyncio.ensure_future(server.arecv(bufs[j], DATA, ~0)): j for j in range(window)}
    posted = window
    done_count = 0
    while done_count < count:
        done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        for d in done:
            d.result()
            j = pending.pop(d)
            done_count += 1
            if posted < count:
                pending[asyncio.ensure_future(server.arecv(bufs[j], DATA, ~0))] = j
                posted += 1
    await ep.asend(ack, ACK)


def server_main(tls, mode, spin, iters, api, bw_mib, min_iters, sizes, port_q):
    from voxcast import wire

    async def run():
        server = wire.Server("127.0.0.1", 0, tls=tls, mode=mode, spin_us=spin)
        server.start()
        port_q.put(server.port)
        ep = await server.aaccept(30)
        buf = np.zeros(8, np.uint8)
        for _ in range(iters):
            await server.arecv(buf, PING, ~0)
            await ep.asend(buf, PONG)
        for size in sizes:
            window = window_for(size, sum(counts(size, bw_mib, min_iters)))
            bufs = [np.zeros(size, np.uint8) for _ in range(window)]
            for b in bufs:
                b.fill(1)  # fault the pages in before timing
            for count in counts(size, bw_mib, min_iters):  # warm-up, then timed
                await receive(server, ep, buf, bufs, count, window, api)

        await asyncio.sleep(0.2)
        await server.aclose()

    asyncio.run(run())


async def send(client, data, count, window, api, ack):
    """Sends `count` DATA messages with `window` in flight, then waits for the ACK."""
    if api == "stream":
        ops = collections.deque()  # posted sends, no future unless one is awaited
        for _ in range(count):
            ops.append(client.post_send(data, DATA))
            if len(ops) >= window:
                await ops.popleft()
        for op in ops:
            await op
    else:
        pending = set()
        for _ in range(count):
            pending.add(asyncio.ensure_future(client.asend(data, DATA)))
            if len(pending) >= window:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for d in done:
                    d.result()
        await asyncio.gather(*pending)
    await client.arecv(ack, ACK, ~0)


async def client_run(tls, mode, spin, port, iters, api, bw_mib, min_iters, sizes, out):
    from voxcast import wire

    client = wire.Client(tls=tls, mode=mode, spin_us=spin)
    await client.aconnect("127.0.0.1", port)
    buf = np.zeros(8, np.uint8)
    warm = min(1000, iters // 10)
    rtts = []
    for i in range(iters):
        t0 = time.perf_counter()
        await client.asend(buf, PING)
        await client.arecv(buf, PONG, ~0)
        if i >= warm:
            rtts.append(time.perf_counter() - t0)
    med = statistics.median(rtts) * 1e6
    p99 = sorted(rtts)[int(len(rtts) * 0.99)] * 1e6
    out(dict(test="lat", size=8, value=round(med / 2, 2), unit="us", rtt_us=round(med, 2),
             rtt_p99_us=round(p99, 2)))
    ack = np.zeros(8, np.uint8)
    for size in sizes:
        warm, count = counts(size, bw_mib, min_iters)
        window = window_for(size, warm + count)
        data = np.full(size, 7, np.uint8)
        await send(client, data, warm, window, api, ack)  # untimed warm-up
        t0 = time.perf_counter()
        await send(client, data, count, window, api, ack)
        dt = time.perf_counter() - t0
        out(dict(test="bw", size=size, value=round(count * size / dt / 1e6, 1), unit="MB/s",
                 iters=count))
    await client.aclose()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tls", default="shm", help="UCX transports: tcp or shm (default shm)")
    ap.add_argument("--mode", default="eventfd", help="progress mode: thread or eventfd")
    ap.add_argument("--spin-us", type=float, default=0.0,
                    help="eventfd mode: busy-poll this long before yielding (default 0)")
    ap.add_argument("--iters", type=int, default=20000, help="ping-pong round trips")
    ap.add_argument("--bw-mib", type=int, default=1024,
                    help="MiB per bandwidth point: max(--bw-min-iters, this / size) messages, "
                         "a tenth of that first untimed (as bench/wire_bench.cpp; default 1024)")
    ap.add_argument("--bw-min-iters", type=int, default=16, help="least messages per point")
    ap.add_argument("--api", default="stream", choices=["stream", "futures"],
                    help="bandwidth: Receiver + post_send (stream, default) or one future "
                         "per message (arecv/asend)")
    ap.add_argument("--sizes", default=",".join(str(s) for s in SIZES),
                    help="bandwidth message sizes in bytes, comma-separated (default: 64 KiB "
                         "to 64 MiB, as bench/wire.sh)")
    args = ap.parse_args()
    try:
        sizes = [int(s) for s in args.sizes.split(",") if s]
    except ValueError:
        ap.error(f"--sizes {args.sizes!r}: expected byte counts separated by commas, e.g. 65536,1048576")
    if not sizes or min(sizes) < 1 or max(sizes) > 1 << 30:
        ap.error(f"--sizes {args.sizes!r}: each size must be 1 byte to 1 GiB")
    for name in ("iters", "bw_mib", "bw_min_iters"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be at least 1")
    ctx = mp.get_context("spawn")
    port_q = ctx.Queue()
    srv = ctx.Process(target=server_main, args=(args.tls, args.mode, args.spin_us, args.iters, args.api,
                                                     args.bw_mib, args.bw_min_iters, sizes, port_q))
    srv.start()
    port = port_q.get(timeout=30)

    def out(rec):
        name = (f"python-{args.mode}" + (f"-spin{args.spin_us:g}" if args.spin_us else "")
                + ("-futures" if args.api == "futures" else ""))
        rec = dict(impl=name, tls=args.tls, mode=args.mode, spin_us=args.spin_us, **rec)
        print(json.dumps(rec), flush=True)

    asyncio.run(client_run(args.tls, args.mode, args.spin_us, port, args.iters, args.api,
                           args.bw_mib, args.bw_min_iters, sizes, out))
    srv.join(60)
    if srv.exitcode != 0:
        print(f"server exited with {srv.exitcode}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
