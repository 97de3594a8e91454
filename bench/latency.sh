#!/usr/bin/env bash
# Reads under storage latency: `voxcast export` of synthetic:cells with a simulated per-read
# latency (like a network file system), with 4 I/O threads and with the default, in one run.
#   bench/latency.sh [latency-ms]      (release build first)
set -euo pipefail
cd "$(dirname "$0")/.."
VOXCAST=build/release/apps/voxcast/voxcast
LAT=${1:-20}
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
DATA="synthetic:cells?shape=64x256x256&chunk=32&latency_ms=$LAT"   # 256 chunks of 32^3
echo "| latency per read | io threads | seconds | chunks/s |"
echo "|---|---|---|---|"
for io in 1 4 default; do
  args=()
  [ "$io" = default ] || args=(--io-threads "$io")
  s=$( { /usr/bin/time -f '%e' $VOXCAST --log-level warn "${args[@]}" export "$DATA" -o "$OUT/x.npy"; } 2>&1 )
  echo "| $LAT ms | $io | $s | $(python3 -c "print(round(256/$s))") |"
done
