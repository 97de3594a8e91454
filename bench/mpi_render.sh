#!/usr/bin/env bash
# Sort-last rendering over MPI: peak memory (max RSS) per rank and chunks each rank holds,
# against one process, for the same 3D render of a 1024^3 uint16 synthetic volume at
# 1920x1080; then the compositing of 1920x1080 partial images for 2, 4 and 8 ranks
# (bench_composite). Ranks are oversubscribed on this machine (see docs/benchmarks.md).
#   bench/mpi_render.sh [BUILD_DIR] [MODE]
set -euo pipefail
build=${1:-build/release}
mode=${2:-mip}
bin="$build/apps/voxcast/voxcast"
data="synthetic:cells?shape=1024x1024x1024&channels=1&chunk=64"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none
mpi=(mpirun --oversubscribe --mca btl self,vader)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "{\"dims\": {\"ndisplay\": 3}, \"camera\": {\"angles\": [0, 30, 120]},
       \"layers\": [{\"rendering\": \"$mode\"}]}" >"$tmp/view.json"
args=(render "$data" --view "$tmp/view.json" --size 1920x1080 --cache-mb 8192)
echo "| ranks | wall s | max RSS per rank MiB (min..max) | chunks per rank (min..max) | total chunks |"
echo "|---|---|---|---|---|"
for n in 1 2 4 8; do
  t0=$(date +%s.%N)
  if [ "$n" = 1 ]; then
    /usr/bin/time -f "rss_kb=%M" "$bin" "${args[@]}" -o "$tmp/1.png" 2>"$tmp/log1"
  else
    "${mpi[@]}" -np "$n" /usr/bin/time -f "rss_kb=%M" "$bin" "${args[@]}" -o "$tmp/$n.png" \
      2>"$tmp/log$n"
  fi
  t1=$(date +%s.%N)
  rss=$(grep -o 'rss_kb=[0-9]*' "$tmp/log$n" | cut -d= -f2 | sort -n)
  if [ "$n" = 1 ]; then
    chunks=$(grep -o 'chunks_read=[0-9]*' "$tmp/log1" | cut -d= -f2)
  else
    chunks=$(grep 'render.part' "$tmp/log$n" | grep -o 'chunks_read=[0-9]*' | cut -d= -f2 | sort -n)
  fi
  echo "| $n | $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}') |" \
    "$(( $(head -1 <<<"$rss") / 1024 ))..$(( $(tail -1 <<<"$rss") / 1024 )) |" \
    "$(head -1 <<<"$chunks")..$(tail -1 <<<"$chunks") |" \
    "$(awk '{s+=$1} END{print s}' <<<"$chunks") |"
done
echo
for n in 2 4 8; do
  "${mpi[@]}" -np "$n" "$build/bench/voxcast_bench_composite" 1920 1080 10
done
