#!/usr/bin/env bash
# vx::wire against ucx_perftest, ZeroMQ and the Python wire bench, in one session, interleaved:
# for each round and each transport (tcp, shm): ucx_perftest tag_lat + tag_bw, voxcast_wire_bench
# in polling and thread mode (and polling without peer error handling, perftest's own default),
# bench/wire_py.py if it exists, bench/wire_zmq.py (ZeroMQ tcp:// for tcp, ipc:// for shm).
# Then one side-by-side table (the median over rounds).
#   bench/wire.sh                  (release build first: cmake --build build/release
#                                   --target voxcast_wire_bench)
#   ROUNDS=3 BW_MIB=1024 OUT=dir bench/wire.sh
# Latency: 8-byte ping-pong, one-way = round trip / 2, median (perftest: its 50.0%ile column).
# Bandwidth: MiB/s = 2^20 B/s, which is what ucx_perftest labels "MB/s"; window 32 (tag_bw's).
# Every measurement is a JSON line in $OUT/results.jsonl; logs are in $OUT/*.log.
set -uo pipefail
cd "$(dirname "$0")/.."
BENCH=${BENCH:-build/release/bench/voxcast_wire_bench}
PY=/usr/bin/python3
ROUNDS=${ROUNDS:-2}
BW_MIB=${BW_MIB:-1024}   # bytes per bandwidth point: iters = max(16, BW_MIB MiB / size)
LAT_ITERS=${LAT_ITERS:-10000}
PYPATH=${PYPATH:-python:build/release/python}  # voxcast.wire for bench/wire_py.py
SIZES=(65536 262144 1048576 4194304 16777216 67108864)
TLS_LIST=(${TLS_LIST:-tcp shm})
OUT=${OUT:-$(mktemp -d /tmp/wire-bench.XXXXXX)}
mkdir -p "$OUT"
RESULTS=$OUT/results.jsonl
: >"$RESULTS"

[ -x "$BENCH" ] || { echo "wire.sh: $BENCH missing; build it first" >&2; exit 1; }
command -v ucx_perftest >/dev/null || { echo "wire.sh: ucx_perftest missing (apt install ucx-utils)" >&2; exit 1; }

SERVER_PID=
cleanup() { [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null; }
trap cleanup EXIT

free_port() {
  $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
bw_iters() { local n=$(( (BW_MIB << 20) / $1 )); echo $(( n < 16 ? 16 : n )); }

# perftest TLS TEST SIZE ITERS WARMUP [extra args]: prints perftest's final line's 8 numbers
# (iters, percentile lat, avg lat, overall lat, avg bw, overall bw, avg rate, overall rate).
perftest() {
  local tls=$1 test=$2 size=$3 n=$4 w=$5; shift 5
  local port; port=$(free_port)
  UCX_TLS=$tls timeout 120 ucx_perftest -p "$port" "$@" >>"$OUT/perftest-server.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 500); do
    ss -Hltn "sport = :$port" | grep -q . && break
    sleep 0.02
  done
  local line try
  for try in 1 2 3 4 5; do  # a refused connect leaves the server waiting: try again
    line=$(UCX_TLS=$tls timeout 120 ucx_perftest 127.0.0.1 -p "$port" -t "$test" -s "$size" \
             -n "$n" -w "$w" -f "$@" 2>&1 | tail -1)
    echo "$tls $test $size $* (try $try): $line" >>"$OUT/perftest-client.log"
    [[ $line == *"connect() failed"* ]] && kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.3
  done
  for _ in $(seq 250); do  # the server ends with its client; not if the client never got in
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.02
  done
  kill "$SERVER_PID" 2>/dev/null
  wait "$SERVER_PID" 2>/dev/null
  SERVER_PID=
  set -- $line
  [ $# -ge 8 ] && [[ $1 =~ ^[0-9]+$ && $6 =~ ^[0-9.]+$ ]] && echo "$*"
}

# run_perftest TLS IMPL [perftest flags]: tag_lat and tag_bw at every size, as IMPL
run_perftest() {
  local tls=$1 impl=$2 f; shift 2
  if f=($(perftest "$tls" tag_lat 8 "$LAT_ITERS" 1000 "$@")); then
    local p99; p99=($(perftest "$tls" tag_lat 8 "$LAT_ITERS" 1000 -R 99 "$@")) || p99=(0 null)
    printf '{"impl":"%s","tls":"%s","test":"lat","size":8,"value":%s,"unit":"us","p99":%s,"mean":%s,"iters":%s}\n' \
      "$impl" "$tls" "${f[1]}" "${p99[1]}" "${f[3]}" "${f[0]}" >>"$RESULTS"
  else
    echo "  $impl tag_lat UCX_TLS=$tls failed (see $OUT/perftest-client.log)"
  fi
  for size in "${SIZES[@]}"; do
    local n; n=$(bw_iters "$size")
    if f=($(perftest "$tls" tag_bw "$size" "$n" $(( n / 10 > 0 ? n / 10 : 1 )) "$@")); then
      printf '{"impl":"%s","tls":"%s","test":"bw","size":%s,"value":%s,"unit":"MiB/s","iters":%s,"window":32}\n' \
        "$impl" "$tls" "$size" "${f[5]}" "${f[0]}" >>"$RESULTS"
    else
      echo "  $impl tag_bw UCX_TLS=$tls size $size failed (see $OUT/perftest-client.log)"
    fi
  done
}

# run NAME COMMAND...: appends the command's JSON lines to $RESULTS (and shows them when
# SHOW=1), its stderr to $OUT/NAME.log
run() {
  local name=$1; shift
  local t0=$SECONDS
  if ! timeout 240 "$@" 2>>"$OUT/$name.log" | grep '^{' | tee -a "$RESULTS" |
       if [ "${SHOW:-0}" = 1 ]; then cat; else cat >/dev/null; fi; then
    echo "  $name failed (see $OUT/$name.log)"
  fi
  echo "  $name: $((SECONDS - t0)) s"
}

echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(uname -r)"
echo "UCX $(ucx_info -v | sed -n 's/^# Version //p'), pyzmq $($PY -c 'import zmq; print(zmq.__version__, "libzmq", zmq.zmq_version())')"
echo "rounds $ROUNDS, $BW_MIB MiB per bandwidth point, $LAT_ITERS ping-pongs; output in $OUT"
START=$SECONDS
for round in $(seq "$ROUNDS"); do
  for tls in "${TLS_LIST[@]}"; do
    echo "round $round, $tls"
    t0=$SECONDS
    run_perftest "$tls" perftest
    # -e: endpoints with peer error handling, as vx::wire's are (UCX then drops tcp's
    # put_zcopy rendezvous lanes): the like-for-like baseline for the library's defaults.
    run_perftest "$tls" perftest-e -e
    echo "  perftest: $((SECONDS - t0)) s"
    common=(--tls "$tls" --bw-mib "$BW_MIB" --lat-iters "$LAT_ITERS")
    run cpp-polling "$BENCH" "${common[@]}" --mode polling
    run cpp-thread "$BENCH" "${common[@]}" --mode thread
    run cpp-polling-noerr "$BENCH" "${common[@]}" --mode polling --no-peer-errors \
      --impl cpp-polling-noerr
    if [ -f bench/wire_py.py ]; then  # the Python wire bench, when its module is built
      if PYTHONPATH=$PYPATH $PY -c 'import voxcast.wire' 2>>"$OUT/python.log"; then
        PYTHONPATH=$PYPATH SHOW=1 run python-thread $PY bench/wire_py.py --tls "$tls" --mode thread \
          --bw-mib "$BW_MIB"
        PYTHONPATH=$PYPATH SHOW=1 run python-eventfd $PY bench/wire_py.py --tls "$tls" \
          --mode eventfd --spin-us 50 --bw-mib "$BW_MIB"
      else
        echo "  python: skipped, voxcast.wire does not import with PYTHONPATH=$PYPATH"
      fi
    fi
    zt=$([ "$tls" = tcp ] && echo tcp || echo ipc)
    run zmq $PY bench/wire_zmq.py --transport "$zt" --bw-mib "$BW_MIB" --lat-iters "$LAT_ITERS"
  done
done
echo "total $((SECONDS - START)) s"
echo

$PY - "$RESULTS" <<'EOF'
import json, statistics, sys
from collections import defaultdict

TO_MIB = {"MiB/s": 1.0, "MB/s": 1e6 / 2**20, "GiB/s": 1024.0, "GB/s": 1e9 / 2**20,
          "B/s": 1 / 2**20, "Gbit/s": 1e9 / 8 / 2**20}
TO_US = {"us": 1.0, "ns": 1e-3, "ms": 1e3, "s": 1e6}
vals = defaultdict(list)
impls = []
for line in open(sys.argv[1]):
    try:
        r = json.loads(line)
        tls = {"ipc": "shm"}.get(r["tls"], r["tls"])  # ZeroMQ ipc:// sits with shm
        scale = (TO_US if r["test"] == "lat" else TO_MIB)[r.get("unit", "us" if r["test"] == "lat" else "MiB/s")]
    except (ValueError, KeyError) as e:
        print(f"skipped a line ({e!r}): {line.strip()[:80]}", file=sys.stderr)
        continue
    impl = r["impl"]
    if r.get("mode") and r["mode"] not in impl:  # wire_py.py: impl "python" plus a mode
        impl = f"{impl}-{r['mode']}"
    vals[(impl, tls, r["test"], int(r["size"]))].append(float(r["value"]) * scale)
    if impl not in impls:
        impls.append(impl)

fixed = ["perftest", "perftest-e", "cpp-polling", "cpp-thread", "cpp-polling-noerr"]
python = [i for i in impls if i.lower().startswith("py")] or ["python"]
cols = fixed + python + ["zmq"]
head = {"perftest": "perftest", "perftest-e": "perftest -e", "cpp-polling": "C++ poll", "cpp-thread": "C++ thread",
        "cpp-polling-noerr": "C++ poll noerr", "zmq": "ZeroMQ", "python": "Python"}
others = [i for i in impls if i not in cols]
cols += others

def get(impl, tls, test, size):
    v = vals.get((impl, tls, test, size))
    return statistics.median(v) if v else None

def fmt(x, test):
    if x is None:
        return "-"
    return f"{x:.2f}" if test == "lat" else f"{x:.0f}"

def ratio(a, b):
    return f"{a / b:.2f}" if a is not None and b else "-"

hdr = ["tls", "test", "size"] + [head.get(c, c) for c in cols] + ["poll/pt", "thread/pt", "poll/pt-e"]
rows = []
for tls in ["tcp", "shm"]:
    keys = sorted({(k[2] != "lat", k[3]) for k in vals if k[1] == tls})
    for not_lat, size in keys:
        test = "bw" if not_lat else "lat"
        v = {c: get(c, tls, test, size) for c in cols}
        size_s = f"{size // 2**20}M" if size >= 2**20 else (f"{size // 1024}K" if size >= 1024 else f"{size}B")
        rows.append([tls, "lat us" if test == "lat" else "bw MiB/s", size_s] +
                    [fmt(v[c], test) for c in cols] +
                    [ratio(v["cpp-polling"], v["perftest"]), ratio(v["cpp-thread"], v["perftest"]),
                     ratio(v["cpp-polling"], v["perftest-e"])])
w = [max(len(str(x)) for x in col) for col in zip(hdr, *rows)]
line = lambda r: "| " + " | ".join(str(x).rjust(n) for x, n in zip(r, w)) + " |"
print(line(hdr))
print("|" + "|".join("-" * (n + 2) for n in w) + "|")
for r in rows:
    print(line(r))
print("\nlat: one-way us (median of the per-iteration RTT/2; perftest: its 50.0%ile); lower is "
      "better. bw: MiB/s (perftest's 'MB/s' is MiB/s); higher is better. Ratios: C++/perftest. "
      "Each cell: the median over rounds. ZeroMQ: tcp:// in the tcp rows, ipc:// in the shm rows."
      " C++ poll noerr: Options.peer_error_handling = false, like perftest without -e;"
      " perftest -e: with peer error handling, like the library's defaults.")
EOF
