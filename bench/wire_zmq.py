#!/usr/bin/python3
"""ZeroMQ baseline for bench/wire.sh, measured the way voxcast_wire_bench measures vx::wire.

  lat: 8-byte ping-pong over a PAIR socket; one-way = round trip / 2; median, p99, mean.
  bw:  one-way stream over a PAIR socket, zero-copy sends (copy=False) of one buffer, at most
       --window messages queued (SNDHWM = RCVHWM = window); the clock stops at the receiver's
       ack. MiB/s (2^20 bytes/s, what ucx_perftest prints as "MB/s").
The receiver takes each message with recv(copy=False) (a zmq.Frame: no copy into a Python
object); pyzmq 24 has no recv_into (added in 26), which would copy into a preallocated buffer.

  /usr/bin/python3 bench/wire_zmq.py --transport tcp      # tcp://127.0.0.1, or ipc (unix socket)
stdout: one JSON line per measurement (same fields as voxcast_wire_bench); stderr: a table.
The process forks before any zmq context exists; the child serves.
"""
import argparse
import json
import os
import shutil
import sys
import tempfile
import time

import zmq

SIZES = ["64K", "256K", "1M", "4M", "16M", "64M"]


def parse_size(text):
    units = {"": 1, "B": 1, "K": 1 << 10, "KIB": 1 << 10, "M": 1 << 20, "MIB": 1 << 20,
             "G": 1 << 30, "GIB": 1 << 30}
    digits = text.rstrip("KkMmGgIiBb")
    return int(digits) * units[text[len(digits):].upper()]


def make_socket(ctx, window):
    s = ctx.socket(zmq.PAIR)
    s.setsockopt(zmq.LINGER, 1000)
    s.setsockopt(zmq.SNDHWM, window)
    s.setsockopt(zmq.RCVHWM, window)
    return s


def serve(endpoint, window, port_w):
    ctx = zmq.Context()
    s = make_socket(ctx, window)
    if endpoint.startswith("tcp://"):
        port = s.bind_to_random_port("tcp://127.0.0.1")
        endpoint = f"tcp://127.0.0.1:{port}"
    else:
        s.bind(endpoint)
    os.write(port_w, endpoint.encode())
    os.close(port_w)
    out = bytes(8)
    while True:
        cmd = s.recv().split()
        if cmd[0] == b"quit":
            break
        n = int(cmd[2])
        s.send(b"ready")
        if cmd[0] == b"lat":
            for _ in range(n):
                s.recv(copy=False)
                s.send(out)
        else:
            size = int(cmd[1])
            for _ in range(n):
                frame = s.recv(copy=False)
                if len(frame) != size:
                    sys.exit("wire_zmq: short message")
            s.send(b"ack")
    s.close()
    ctx.term()


def ping_pong(s, n, keep):
    out = bytes(8)
    s.send(b"lat 8 %d" % n)
    s.recv()
    samples = []
    clock = time.perf_counter_ns
    for _ in range(n):
        t0 = clock()
        s.send(out)
        s.recv(copy=False)
        if keep:
            samples.append((clock() - t0) / 2000.0)
    return samples


def stream(s, buf, size, n):
    msg = memoryview(buf)[:size]
    s.send(b"bw %d %d" % (size, n))
    s.recv()
    t0 = time.perf_counter()
    for _ in range(n):
        s.send(msg, copy=False)
    s.recv()  # the ack
    return time.perf_counter() - t0


def percentile(values, p):  # nearest rank, as voxcast_wire_bench
    v = sorted(values)
    return v[min(len(v) - 1, int(p / 100.0 * len(v)))]


def measure(args, endpoint):
    ctx = zmq.Context()
    s = make_socket(ctx, args.window)
    s.connect(endpoint)
    rows = []
    base = {"impl": "zmq", "tls": args.transport}
    if "lat" in args.test:
        ping_pong(s, args.lat_warmup, False)
        samples = ping_pong(s, args.lat_iters, True)
        rows.append(dict(base, test="lat", size=8, value=round(percentile(samples, 50), 3),
                         unit="us", p99=round(percentile(samples, 99), 3),
                         mean=round(sum(samples) / len(samples), 3), iters=args.lat_iters))
        print(json.dumps(rows[-1], separators=(",", ":")), flush=True)
    if "bw" in args.test:
        sizes = [parse_size(x) for x in args.sizes.split(",")]
        buf = bytearray(max(sizes))
        for i in range(0, len(buf), 4096):
            buf[i] = 1
        for size in sizes:
            n = max(args.bw_min_iters, (args.bw_mib << 20) // size)
            stream(s, buf, size, max(1, n // 10))  # warm-up
            secs = stream(s, buf, size, n)
            rows.append(dict(base, test="bw", size=size,
                             value=round(size * n / secs / (1 << 20), 1), unit="MiB/s", iters=n,
                             window=args.window))
            print(json.dumps(rows[-1], separators=(",", ":")), flush=True)
    s.send(b"quit")
    s.close()
    ctx.term()
    print(f"\nZeroMQ {zmq.zmq_version()} (pyzmq {zmq.__version__}) over {endpoint}",
          file=sys.stderr)
    for r in rows:
        extra = f"  p99 {r['p99']} us  mean {r['mean']} us" if r["test"] == "lat" else ""
        print(f"{r['test']:4} {r['size']:>10} {r['iters']:>7} {r['value']:>10} {r['unit']}{extra}",
              file=sys.stderr)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--transport", choices=["tcp", "ipc"], default="tcp")
    p.add_argument("--test", default="lat,bw")
    p.add_argument("--sizes", default=",".join(SIZES))
    p.add_argument("--lat-iters", type=int, default=10000)
    p.add_argument("--lat-warmup", type=int, default=1000)
    p.add_argument("--bw-mib", type=int, default=1024, help="MiB per bw point")
    p.add_argument("--bw-min-iters", type=int, default=16)
    p.add_argument("--window", type=int, default=32, help="SNDHWM and RCVHWM, in messages")
    args = p.parse_args()
    args.test = args.test.split(",")

    tmp = tempfile.mkdtemp(prefix="wire_zmq.")
    endpoint = "tcp://" if args.transport == "tcp" else f"ipc://{tmp}/sock"
    r, w = os.pipe()
    sys.stdout.flush()
    pid = os.fork()  # before any zmq object: the child builds its own context
    if pid == 0:
        os.close(r)
        code = 0
        try:
            serve(endpoint, args.window, w)
        except BaseException as e:  # noqa: BLE001 - report, then leave without cleanup
            print(f"wire_zmq server: {e}", file=sys.stderr)
            code = 1
        os._exit(code)
    os.close(w)
    endpoint = os.read(r, 4096).decode()
    os.close(r)
    try:
        measure(args, endpoint)
    finally:
        _, status = os.waitpid(pid, 0)
        shutil.rmtree(tmp, ignore_errors=True)
    if status != 0:
        sys.exit("wire_zmq: the server process failed")


if __name__ == "__main__":
    main()
