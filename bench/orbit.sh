#!/usr/bin/env bash
# A 30x30 orbit at 256x256 of a 256^3 uint16 volume, mip and translucent, against one
# `voxcast render` of a single view of the same scene (same run, same cache state: cold).
#   bench/orbit.sh [BUILD_DIR]
set -euo pipefail
bin=${1:-build/release}/apps/voxcast/voxcast
data="synthetic:cells?shape=256x256x256&chunk=64&channels=1"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for mode in mip translucent; do
  echo "{\"layers\": [{\"rendering\": \"$mode\"}]}" > "$tmp/view.json"
  t0=$(date +%s.%N)
  "$bin" --log-level warn orbit "$data" --view "$tmp/view.json" --grid 30x30 --size 256 -o "$tmp/$mode" -q >/dev/null
  t1=$(date +%s.%N)
  echo "{\"dims\": {\"ndisplay\": 3}, \"canvas\": {\"width\": 256, \"height\": 256}, \"layers\": [{\"rendering\": \"$mode\"}]}" > "$tmp/one.json"
  "$bin" --log-level warn render "$data" --view "$tmp/one.json" -o "$tmp/one.png"
  t2=$(date +%s.%N)
  sheets=$(du -cb "$tmp/$mode"/sheet-* | tail -1 | cut -f1)
  awk -v m="$mode" -v a="$t0" -v b="$t1" -v c="$t2" -v s="$sheets" 'BEGIN {
    total = b - a; one = c - b; per = total / 900;
    printf "| %s | %.1f s | %.1f ms | %.0f ms | %.0f | %.1f MiB |\n", m, total, per * 1000, one * 1000, one / per, s / 1048576 }'
done
