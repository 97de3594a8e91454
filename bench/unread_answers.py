#!/usr/bin/python3
"""Clients that ask for regions and never read them: `voxcast serve` on a 512^3 uint16
dataset, N connections each POST a 64 MiB region with a 4 KiB receive buffer (asking again
after a 429) and never read the answer; the server's resident memory (VmRSS, /proc) is
watched meanwhile. Prints its peak and how many answers were held at the end.

    /usr/bin/python3 bench/unread_answers.py --bin build/release/apps/voxcast/voxcast \
        --connections 32 [-- --http-max-inflight-mb 256]
"""
import argparse
import json
import socket
import time

import serving


def rss_mb(pid):
    return serving.rss_kib(pid) / 1024


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", required=True)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--settle", type=float, default=15, help="seconds to watch the memory")
    ap.add_argument("serve_args", nargs="*", help="more `voxcast serve` options (after --)")
    a = ap.parse_args()
    if a.connections < 1 or a.settle <= 0:
        ap.error("need --connections >= 1 and --settle > 0")
    p, port = serving.start([a.bin, "serve", "synthetic:cells?shape=512x512x512&chunk=64",
                             "--port", "0", *a.serve_args])
    base = rss_mb(p.pid)
    body = json.dumps({"start": [0, 0, 0, 0], "shape": [1, 128, 512, 512]}).encode()  # 64 MiB

    def ask():
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(("127.0.0.1", port))
        s.sendall(b"POST /api/v1/region HTTP/1.1\r\nHost: x\r\n"
                  + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        s.setblocking(False)
        return s

    # Each client asks again after a 429, as voxcast's Python client does, and never reads
    # an answer that starts with 200.
    socks = [ask() for _ in range(a.connections)]
    held = [False] * a.connections
    peak, t0 = base, time.monotonic()
    while time.monotonic() - t0 < a.settle:
        for i, s in enumerate(socks):
            if held[i]:
                continue
            try:
                head = s.recv(12, socket.MSG_PEEK)
            except BlockingIOError:
                continue
            if head.startswith(b"HTTP/1.1 200"):
                held[i] = True
            elif len(head) == 12:
                s.close()
                socks[i] = ask()
        peak = max(peak, rss_mb(p.pid))
        time.sleep(0.05)
    started = sum(held)
    for s in socks:
        s.close()
    p.terminate()
    p.wait()
    print(f"connections {a.connections} (serve {' '.join(a.serve_args) or 'defaults'}): "
          f"rss before {base:.1f} MB, peak {peak:.1f} MB (+{peak - base:.1f}); "
          f"answers held {started}")


if __name__ == "__main__":
    main()
