#!/usr/bin/env bash
# Runs test binaries many times in a row from one build and counts failures: the check
# that a flaky test is fixed (issue 16), not a part of the test command.
#
#   ./scripts/repeat-tests.sh [INTEGRATION_RUNS] [PROCESS_RUNS]   (defaults: 50 and 20)
#
# The cross-crate integration binary runs INTEGRATION_RUNS times; the CLI and relay
# process tests (real `leanspec-peer` / `leanspec-relay` processes) PROCESS_RUNS times
# each. Logs of failed runs stay in $LOGS (printed at the end). Exit 1 if any run failed.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
runs_integration=${1:-50}
runs_process=${2:-20}
export LEANSPEC_CORPUS="${LEANSPEC_CORPUS:-$root/../shared/corpus/lean-spec-specs}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/leanspec-peer/target}"
LOGS=$(mktemp -d)

cargo test --locked --workspace --no-run -q 2>/dev/null

failed=0
repeat() {
  local name=$1 runs=$2
  shift 2
  local fails=0 t0=$SECONDS
  for i in $(seq 1 "$runs"); do
    if ! "$@" >"$LOGS/$name-$i.log" 2>&1; then
      fails=$((fails + 1))
      echo "  $name run $i FAILED: $(grep -m1 -E 'panicked|FAILED' "$LOGS/$name-$i.log" || true)"
    else
      rm -f "$LOGS/$name-$i.log"
    fi
  done
  printf '%-22s %3d runs, %d failed (%d s)\n' "$name" "$runs" "$fails" $((SECONDS - t0))
  failed=$((failed + fails))
}

repeat integration "$runs_integration" cargo test --locked -q -p leanspec-peer-tests --test integration
repeat cli-processes "$runs_process" cargo test --locked -q -p leanspec-peer --tests
repeat relay-processes "$runs_process" cargo test --locked -q -p leanspec-relay --tests

echo "logs of failed runs: $LOGS"
[ "$failed" -eq 0 ]
