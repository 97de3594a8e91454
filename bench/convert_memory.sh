#!/usr/bin/env bash
# Peak memory of `voxcast convert` on an input 4x (and 16x) the cache budget, against the
# peak of the same command on a tiny input (the process's own constant), in one run.
#   bench/convert_memory.sh [budget-mb]       (release build first)
set -euo pipefail
cd "$(dirname "$0")/.."
VOXCAST=build/release/apps/voxcast/voxcast
BUDGET=${1:-64}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
peak() {  # prints peak RSS in MiB of the command
  /usr/bin/time -f '%M' -o "$WORK/rss" "$@" >/dev/null 2>&1
  echo $(( $(cat "$WORK/rss") / 1024 ))
}
# 2 channels x uint16: bytes = 4 * Z * Y * X
tiny=$(peak $VOXCAST --cache-mb "$BUDGET" convert "synthetic:cells?shape=16x64x64" "$WORK/t.zarr" -q)
x4_side=$(python3 -c "print(int(round((4*$BUDGET*2**20/4/4)**(1/3)/8)*8))")
x4=$(peak $VOXCAST --cache-mb "$BUDGET" convert "synthetic:cells?shape=$((x4_side*4))x${x4_side}x${x4_side}" "$WORK/a.zarr" -q)
x4_in=$(( 4 * x4_side * 4 * x4_side * x4_side / 1048576 ))
x16_in=$(( 4 * x4_side * 16 * x4_side * x4_side / 1048576 ))
x16=$(peak $VOXCAST --cache-mb "$BUDGET" convert "synthetic:cells?shape=$((x4_side*16))x${x4_side}x${x4_side}" "$WORK/b.zarr" -q)
echo "| cache budget | input | peak RSS | peak - tiny-input peak |"
echo "|---|---|---|---|"
echo "| $BUDGET MiB | tiny (0.25 MiB) | $tiny MiB | 0 |"
echo "| $BUDGET MiB | $x4_in MiB | $x4 MiB | $((x4 - tiny)) MiB |"
echo "| $BUDGET MiB | $x16_in MiB | $x16 MiB | $((x16 - tiny)) MiB |"
