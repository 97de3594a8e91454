#!/bin/bash
# bench/wire_lead.sh [TLS] [MODE] [LEADS] [ROUNDS]: the soak's two Python peers
# (tests/integration/wire_soak_peer.py, 100,000 messages each way, 1 B to 4 MiB, byte-checked)
# with each sender kept within LEAD messages of what it has received itself (0: no bound),
# leads interleaved round by round so that each sees the same machine. Prints the wall time
# of each pair and, per lead, the median. Shows what a receiver that falls behind costs: the
# unexpected queue it leaves is walked by every receive posted on a mask (docs/wire.md).
# Module: BUILD/python (BUILD=build/release by default); COUNT overrides the message count.
set -u
cd "$(dirname "$0")/.."
tls=${1:-shm} mode=${2:-eventfd} leads=${3:-0,256,1024,4096} rounds=${4:-1}
build=${BUILD:-build/release} count=${COUNT:-100000}
peer=tests/integration/wire_soak_peer.py
for l in ${leads//,/ }; do
  case $l in '' | *[!0-9]*) echo "wire_lead.sh: LEADS must be whole numbers: '$leads'" >&2; exit 2 ;; esac
done
[ -n "$(ls "$build"/python/_voxcast_wire*.so 2>/dev/null)" ] || {
  echo "wire_lead.sh: no wire module under $build/python (build the release tree first)" >&2
  exit 2
}
export PYTHONPATH="$build/python:python"
pair() {  # LEAD: seconds for both peers, or FAILED
  local out port start end
  out=$(mktemp -d)
  /usr/bin/python3 "$peer" server --tls "$tls" --mode "$mode" --count "$count" --lead "$1" \
    >"$out/s" 2>"$out/se" &
  local sp=$!
  for _ in $(seq 100); do [ -s "$out/s" ] && break; sleep 0.1; done
  port=$(head -1 "$out/s" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["port"])' 2>/dev/null)
  if [ -z "$port" ]; then
    kill $sp 2>/dev/null; echo FAILED; rm -rf "$out"; return
  fi
  start=$(date +%s.%N)
  /usr/bin/python3 "$peer" client --tls "$tls" --mode "$mode" --count "$count" --port "$port" \
    --lead "$1" >"$out/c" 2>"$out/ce"
  local crc=$?
  wait $sp
  local src=$?
  end=$(date +%s.%N)
  if [ $crc -ne 0 ] || [ $src -ne 0 ]; then
    echo FAILED; tail -c 600 "$out/c" "$out/s" "$out/ce" "$out/se" >&2
  else
    echo "$end - $start" | bc
  fi
  rm -rf "$out"
}
echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p' | head -1); $tls $mode, $count messages each way, $rounds rounds"
declare -A times
for r in $(seq "$rounds"); do
  for l in ${leads//,/ }; do
    t=$(pair "$l")
    printf 'round %d  lead %-5s %s s\n' "$r" "$l" "$t"
    times[$l]="${times[$l]:-} $t"
  done
done
for l in ${leads//,/ }; do
  printf 'lead %-5s median %s s\n' "$l" "$(echo ${times[$l]} | tr ' ' '\n' | grep -v FAILED |
    sort -g | awk '{a[NR]=$1} END {if (NR) print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2; else print "-"}')"
done
