#!/usr/bin/python3
"""A server out of file descriptors: `voxcast serve` under `prlimit --nofile=N`, more idle
connections opened than it has descriptors, then the server's CPU time is read over a few
seconds (/proc) and the connections are closed; prints the CPU share and whether
/api/v1/health answers afterwards.

    /usr/bin/python3 bench/accept_emfile.py --bin build/release/apps/voxcast/voxcast
"""
import argparse
import os
import socket
import time
import urllib.request

import serving


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", required=True)
    ap.add_argument("--nofile", type=int, default=160)
    ap.add_argument("--connections", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=5)
    a = ap.parse_args()
    if a.nofile < 32 or a.connections <= a.nofile or a.seconds <= 0:
        ap.error("need --nofile >= 32, --connections > --nofile and --seconds > 0")
    p, port = serving.start(["prlimit", f"--nofile={a.nofile}:{a.nofile}", a.bin, "serve",
                             "synthetic:cells?shape=32x64x64&chunk=32", "--port", "0"])
    socks = [socket.create_connection(("127.0.0.1", port), timeout=10)
             for _ in range(a.connections)]
    time.sleep(1)

    def cpu():
        f = open(f"/proc/{p.pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")

    c0, t0 = cpu(), time.monotonic()
    time.sleep(a.seconds)
    share = (cpu() - c0) / (time.monotonic() - t0)
    for s in socks:
        s.close()
    t1 = time.monotonic()
    answered = None
    while time.monotonic() - t1 < 30 and answered is None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/health", timeout=3) as r:
                answered = time.monotonic() - t1 if r.status == 200 else None
        except OSError:
            time.sleep(0.1)
    p.terminate()
    p.wait()
    print(f"{a.connections} connections, {a.nofile} descriptors: server CPU {share:.2f} "
          f"cores while out of descriptors; health after closing them: "
          + (f"{answered:.2f} s" if answered is not None else "no answer within 30 s"))


if __name__ == "__main__":
    main()
