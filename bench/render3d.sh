#!/usr/bin/env bash
# 3D rendering per mode, full quality and interactive, warm cache, 1920x1080, a 512^3
# uint16 volume framed to fill the canvas at an oblique angle. Prints a Markdown table.
#   bench/render3d.sh [BUILD_DIR] [FRAMES]
set -euo pipefail
build=${1:-build/release}
frames=${2:-5}
data="synthetic:cells?shape=512x512x512&channels=1&chunk=64"
bin="$build/bench/voxcast_bench_render"
echo "| mode | full ms | interactive ms | ratio | levels (full/int.) | chunks touched | chunks drawn | bytes decoded |"
echo "|---|---|---|---|---|---|---|---|"
for mode in mip minip attenuated_mip average translucent iso; do
  full=$("$bin" "$data" 1920x1080 "$frames" 0 --3d "$mode")
  int=$("$bin" "$data" 1920x1080 "$frames" 0 --3d "$mode" --interactive)
  get() { sed -E "s/.*\"$2\": \[?([^],}]*).*/\1/" <<<"$1"; }
  f=$(get "$full" median_ms) i=$(get "$int" median_ms)
  echo "| $mode | $f | $i | $(awk -v a="$f" -v b="$i" 'BEGIN{printf "%.1f", a/b}') |" \
    "$(get "$full" levels)/$(get "$int" levels) | $(get "$full" chunks_touched) |" \
    "$(get "$full" chunks_drawn) | $(get "$full" bytes_decoded) |"
done
