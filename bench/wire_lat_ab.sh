#!/bin/bash
# bench/wire_lat_ab.sh OLD_BENCH NEW_BENCH [TLS] [ROUNDS]: one-way 8-byte latency of two
# builds of voxcast_wire_bench and of ucx_perftest tag_lat, interleaved round by round so
# that all three see the same machine; prints each round and the medians.
set -u
old=$1 new=$2 tls=${3:-shm} rounds=${4:-5} iters=${ITERS:-100000}
med() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
value() { "$1" --tls "$tls" --test lat --lat-iters "$iters" 2>/dev/null | grep -o '"value":[0-9.]*' | cut -d: -f2; }
perftest() {
  local port=$((20000 + RANDOM % 20000)) sp
  UCX_TLS=$tls timeout 60 ucx_perftest -p $port >/dev/null 2>&1 & sp=$!
  sleep 0.3
  UCX_TLS=$tls timeout 60 ucx_perftest 127.0.0.1 -p $port -t tag_lat -s 8 -n "$iters" -w 1000 -f 2>&1 |
    tail -1 | awk '{print $2}'
  wait $sp 2>/dev/null
}
: >/tmp/ab.o; : >/tmp/ab.n; : >/tmp/ab.p
for r in $(seq "$rounds"); do
  p=$(perftest); o=$(value "$old"); n=$(value "$new")
  echo "$p" >>/tmp/ab.p; echo "$o" >>/tmp/ab.o; echo "$n" >>/tmp/ab.n
  echo "round $r ($tls): perftest $p us, old $o us, new $n us"
done
P=$(med </tmp/ab.p) O=$(med </tmp/ab.o) N=$(med </tmp/ab.n)
echo "median ($tls): perftest $P, old $O ($(echo "$O / $P" | bc -l | cut -c1-4)x), new $N ($(echo "$N / $P" | bc -l | cut -c1-4)x), new/old $(echo "$N / $O" | bc -l | cut -c1-4)"
