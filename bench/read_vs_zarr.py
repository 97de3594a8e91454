#!/usr/bin/python3
"""Read/decode throughput: voxcast (cold and warm chunk cache) against Debian's python3-zarr
on the same >= 1 GiB OME-Zarr stores (blosc-lz4 and zstd), plus the codec limit and the
convert throughput, all in one run. Usage (release build first):

    cmake --preset release && cmake --build --preset release
    /usr/bin/python3 bench/read_vs_zarr.py [--workdir /tmp/vxbench] [--shape 256x1024x1024]

Prints a Markdown table for docs/benchmarks.md.
"""
import argparse, json, os, statistics, subprocess, sys, time

import numpy as np
import zarr

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, "build", "release")
VOXCAST = os.path.join(BUILD, "apps", "voxcast", "voxcast")
BENCH = os.path.join(BUILD, "bench", "voxcast_bench_read")


def sh(*args, **kw):
    return subprocess.run(args, check=True, capture_output=True, text=True, **kw)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--workdir", default="/tmp/vxbench")
    ap.add_argument("--shape", default="256x1024x1024", help="ZxYxX of the 2-channel uint16 input")
    ap.add_argument("--cache-mb", type=int, default=256, help="chunk cache budget for the cold read")
    ap.add_argument("--repeat", type=int, default=5, help="runs of each reader (medians are reported)")
    ap.add_argument("--io-threads", type=int, default=0, help="voxcast I/O threads (0: default)")
    ap.add_argument("--chunk", type=int, default=128, help="chunk edge of the stores")
    args = ap.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    rows = []
    for codec in ("lz4", "zstd"):
        store = os.path.join(args.workdir, f"bench_{codec}_{args.chunk}.ome.zarr")
        if not os.path.exists(os.path.join(store, ".zattrs")):
            sh(VOXCAST, "--log-level", "warn", "convert", f"synthetic:cells?shape={args.shape}&chunk=64",
               store, "--codec", codec, "--chunk", str(args.chunk), "--levels", "1", "--overwrite", "-q")
        # Alternate voxcast and python3-zarr runs and keep medians: these machines are noisy.
        vx_runs, zarr_runs = [], []
        arr = zarr.open(store, mode="r")["0"]
        for _ in range(args.repeat):
            vx_runs.append(json.loads(sh(BENCH, store, str(args.cache_mb), str(args.io_threads)).stdout))
            t = time.perf_counter()
            data = arr[...]  # python3-zarr: the same level-0 chunks into one NumPy array
            zarr_runs.append(data.nbytes / (time.perf_counter() - t) / 1e6)
            del data
        med = lambda xs: statistics.median(xs)
        vx = {k: med([r[k] for r in vx_runs]) for k in vx_runs[0] if isinstance(vx_runs[0][k], (int, float))}
        zarr_mb_s = med(zarr_runs)
        # convert throughput: this store to a new one (read, 2x pyramid, encode, write).
        out = os.path.join(args.workdir, f"convert_{codec}.ome.zarr")
        t = time.perf_counter()
        sh(VOXCAST, "--log-level", "warn", "convert", store, out, "--codec", codec, "--overwrite", "-q")
        conv_s = time.perf_counter() - t
        size_mb = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(store) for f in fs) / 1e6
        rows.append(dict(name="blosc-lz4" if codec == "lz4" else "zstd", gib=vx["decoded_bytes"] / 2**30,
                         disk=size_mb, cold=vx["cold_mb_s"], rcold=vx["region_cold_mb_s"],
                         rwarm=vx["region_warm_mb_s"], zarr=zarr_mb_s, one=vx["codec_one_core_mb_s"],
                         limit=vx["codec_limit_mb_s"], frac=vx["cold_fraction_of_limit"],
                         convert=vx["decoded_bytes"] / conv_s / 1e6))
    print(f"chunks: 1x{args.chunk}x{args.chunk}x{args.chunk}; "
          f"cache budget for the cold reads: {args.cache_mb} MiB; cores: {os.cpu_count()}; "
          f"io threads: {args.io_threads or 'default'}; medians of {args.repeat} alternating runs")
    print()
    print("| store | decoded GiB | on disk MB | chunks cold MB/s | array cold MB/s | array warm MB/s "
          "| python3-zarr MB/s | chunks cold / zarr | array cold / zarr | codec 1 core MB/s "
          "| limit MB/s | chunks cold / limit | convert MB/s |")
    print("|---" * 13 + "|")
    for r in rows:
        print(f"| {r['name']} | {r['gib']:.2f} | {r['disk']:.0f} | {r['cold']:.0f} | {r['rcold']:.0f} | "
              f"{r['rwarm']:.0f} | {r['zarr']:.0f} | {r['cold'] / r['zarr']:.2f}x | {r['rcold'] / r['zarr']:.2f}x | "
              f"{r['one']:.0f} | {r['limit']:.0f} | {r['frac'] * 100:.0f}% | {r['convert']:.0f} |")


if __name__ == "__main__":
    sys.exit(main())
