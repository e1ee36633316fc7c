#!/usr/bin/env bash
# Fuzz soak: runs every cargo-fuzz target for FUZZ_SECONDS each (default 3600) or
# FUZZ_RUNS executions (default 10 million), whichever comes first (issue 15), keeps
# what it finds in fuzz/corpus/TARGET, minimises that corpus (committed), and prints a
# Markdown table of executions, time and coverage for RELIABILITY.md.
#
#   ./scripts/soak.sh                       # 1 hour per target
#   FUZZ_SECONDS=60 ./scripts/soak.sh       # what CI runs
#   FUZZ_TARGETS="query frame" ./scripts/soak.sh
#   nice -n 19 ./scripts/soak.sh            # on a machine doing other work
#
# A crash stops the script with the target's artifact path (fuzz/artifacts/TARGET/).
# Runs on the stable toolchain (`-s none`: coverage-guided, no sanitizer); installs
# cargo-fuzz if missing.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
secs=${FUZZ_SECONDS:-3600}
runs=${FUZZ_RUNS:-10000000}
targets=${FUZZ_TARGETS:-"frontmatter editor operation frame sync_message query bucket_object"}
: "${CARGO_TARGET_DIR:=${XDG_CACHE_HOME:-$HOME/.cache}/leanspec-peer/target}"
export CARGO_TARGET_DIR="$CARGO_TARGET_DIR/fuzz-stable"
command -v cargo-fuzz >/dev/null 2>&1 || cargo install --locked cargo-fuzz
logs=$(mktemp -d)
rows=()
for t in $targets; do
  mkdir -p "fuzz/corpus/$t"
  echo "== fuzz $t for ${secs}s or $runs executions" >&2
  if ! cargo fuzz run -s none "$t" "fuzz/corpus/$t" -- \
      -max_total_time="$secs" -runs="$runs" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 \
      >"$logs/$t.log" 2>&1; then
    tail -40 "$logs/$t.log" >&2
    echo "fuzz target $t failed: see fuzz/artifacts/$t/" >&2
    exit 1
  fi
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$logs/$t.log" | grep -o '[0-9]*$' | tail -1)
  took=$(grep -o 'Done [0-9]* runs in [0-9]* second' "$logs/$t.log" | grep -o 'in [0-9]*' | grep -o '[0-9]*' | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$logs/$t.log" | tail -1 | grep -o '[0-9]*')
  cargo fuzz cmin -s none "$t" "fuzz/corpus/$t" >"$logs/$t.cmin.log" 2>&1 || {
    tail -20 "$logs/$t.cmin.log" >&2; exit 1; }
  files=$(find "fuzz/corpus/$t" -type f | wc -l)
  bytes=$(du -sb "fuzz/corpus/$t" | cut -f1)
  rows+=("| $t | ${execs:-?} | ${took:-$secs} s | ${cov:-?} | $files files, $bytes B |")
done
echo "| target | executions | time | coverage (edges) | minimised corpus |"
echo "|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
