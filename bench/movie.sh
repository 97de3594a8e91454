#!/usr/bin/env bash
# A movie of a 512^3 uint16 volume, MIP, one full turn of yaw over FRAMES frames at WxH and
# 30 fps, against single `voxcast render` runs of frames of the same movie (each its own
# process, cold cache, as a script rendering one PNG per frame would): SAMPLES of them are
# timed and scaled to FRAMES.
#   bench/movie.sh [BUILD_DIR] [FRAMES] [WxH] [SAMPLES]
set -euo pipefail
bin=${1:-build/release}/apps/voxcast/voxcast
frames=${2:-300}
size=${3:-1920x1080}
samples=${4:-5}
data="synthetic:cells?shape=512x512x512&chunk=64&channels=1"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# A full turn in three slerp segments (each under 180 degrees), 30 fps: FRAMES frames.
dur=$(awk -v f="$frames" 'BEGIN { printf "%.6f", f / 30 }')
cat > "$tmp/t.json" <<JSON
{"keyframes": [
  {"time": 0, "scene": {"dims": {"ndisplay": 3}, "camera": {"angles": [0, 0, 90]},
                        "layers": [{"rendering": "mip"}]}},
  {"time": $(awk -v d="$dur" 'BEGIN { print d / 3 }'), "patch": {"camera": {"angles": [0, 120, 90]}}},
  {"time": $(awk -v d="$dur" 'BEGIN { print 2 * d / 3 }'), "patch": {"camera": {"angles": [0, 240, 90]}}},
  {"time": $dur, "patch": {"camera": {"angles": [0, 360, 90]}}}
]}
JSON
t0=$(date +%s.%N)
"$bin" --log-level warn movie "$data" --timeline "$tmp/t.json" --fps 30 --size "$size" -q -o "$tmp/m.mp4"
t1=$(date +%s.%N)
# Single renders: evenly spaced yaws of the same turn.
for i in $(seq 1 "$samples"); do
  yaw=$(awk -v i="$i" -v n="$samples" 'BEGIN { print 360 * (i - 0.5) / n }')
  echo "{\"dims\": {\"ndisplay\": 3}, \"camera\": {\"angles\": [0, $yaw, 90]}, \"layers\": [{\"rendering\": \"mip\"}]}" > "$tmp/v$i.json"
done
t2=$(date +%s.%N)
for i in $(seq 1 "$samples"); do
  "$bin" --log-level warn render "$data" --view "$tmp/v$i.json" --size "$size" -o "$tmp/v$i.png"
done
t3=$(date +%s.%N)
bytes=$(stat -c %s "$tmp/m.mp4")
awk -v n="$frames" -v s="$samples" -v a="$t0" -v b="$t1" -v c="$t2" -v d="$t3" -v sz="$size" -v by="$bytes" 'BEGIN {
  movie = b - a; one = (d - c) / s; singles = one * n;
  printf "| %d x %s | %.1f s | %.1f fps | %.2f s | %.0f s | %.1fx | %.1f MiB |\n",
    n, sz, movie, n / movie, one, singles, singles / movie, by / 1048576 }'
