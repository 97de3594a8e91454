#!/bin/bash
# bench/wire_bw_rounds.sh [TLS] [ROUNDS] [SIZES]: streaming bandwidth of voxcast_wire_bench
# (polling mode, peer error handling on: the library's defaults) against ucx_perftest tag_bw,
# interleaved round by round at each size, so both see the same machine; prints each round,
# the medians and their ratio. perftest runs with -e (peer error handling) over tcp, the
# like-for-like baseline; over shm -e cannot run (UCX drops shared memory from error-handling
# endpoints unless UCX_MM_ERROR_HANDLING=y, which the library sets), so plain perftest.
# MiB/s (perftest's "MB/s"); 1 GiB per point after an untimed tenth (BW_MIB), window 32.
set -u
cd "$(dirname "$0")/.."
tls=${1:-shm} rounds=${2:-5} sizes=${3:-1M,4M}
bench=${BENCH:-build/release/bench/voxcast_wire_bench} bw_mib=${BW_MIB:-1024}
pt_flags=$([ "$tls" = tcp ] && printf -- -e || true)
bytes() { numfmt --from=iec "$1"; }
med() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
perftest() {  # SIZE_BYTES: perftest's overall bandwidth (MiB/s)
  local size=$1 n=$(( (bw_mib << 20) / $1 )) port=$((20000 + RANDOM % 20000)) sp
  [ "$n" -lt 16 ] && n=16
  UCX_TLS=$tls timeout 120 ucx_perftest -p $port $pt_flags >/dev/null 2>&1 & sp=$!
  sleep 0.3
  UCX_TLS=$tls timeout 120 ucx_perftest 127.0.0.1 -p $port -t tag_bw -s "$size" -n "$n" \
    -w $(( n / 10 > 0 ? n / 10 : 1 )) -f $pt_flags 2>&1 | tail -1 | awk '{print $6}'
  wait $sp 2>/dev/null
}
library() {  # SIZE: the library's bandwidth (MiB/s)
  "$bench" --tls "$tls" --test bw --sizes "$1" --bw-mib "$bw_mib" 2>/dev/null |
    grep -o '"value":[0-9.]*' | cut -d: -f2
}
echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p' | head -1); tls $tls, $rounds rounds"
for size in ${sizes//,/ }; do
  b=$(bytes "$size")
  : >/tmp/bw_rounds.p; : >/tmp/bw_rounds.l
  for r in $(seq "$rounds"); do
    p=$(perftest "$b"); l=$(library "$size")
    echo "$p" >>/tmp/bw_rounds.p; echo "$l" >>/tmp/bw_rounds.l
    echo "round $r ($tls, $size): perftest$pt_flags $p, library $l"
  done
  P=$(med </tmp/bw_rounds.p) L=$(med </tmp/bw_rounds.l)
  echo "median ($tls, $size): perftest$pt_flags $P, library $L MiB/s: $(echo "$L / $P" | bc -l | cut -c1-4)x"
done
