#!/bin/sh
# run_fuzz.sh FUZZER SEED_CORPUS RUNS: one deterministic fuzzing run for the test suite.
# The committed seed corpus is only read; new inputs go to a fresh scratch folder, so every
# run starts from the same inputs. A fixed seed and number of runs, and no time limit: the
# run ends when the inputs are done (ctest's TIMEOUT makes a slow run a failure, never a
# pass). On a failure the scratch folder (with the crashing input) is kept and named.
set -eu
fuzzer=$1 seeds=$2 runs=$3
scratch=$(mktemp -d "${TMPDIR:-/tmp}/vx-fuzz.XXXXXX")
if "$fuzzer" -seed=1 -runs="$runs" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
    -artifact_prefix="$scratch/" "$scratch" "$seeds"; then
  rm -rf "$scratch"
else
  rc=$?
  echo "run_fuzz.sh: $fuzzer failed (exit $rc); inputs and artifacts kept in $scratch" >&2
  exit "$rc"
fi
