#!/usr/bin/env bash
# The sync simulation (core/src/proto/sim.rs) over many seeds: the soak run of what the
# test command checks with 500. Every failing seed is listed at the end (rerun one with
# LEANSPEC_SIM_SEED=S).
#
#   ./scripts/soak-sim.sh [SEEDS]        (default 5000)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/leanspec-peer/target}"
seeds=${1:-5000}
t0=$SECONDS
LEANSPEC_SIM_SEEDS=$seeds cargo test --locked -q -p leanspec-peer-core --lib \
  proto::sim::seeded_simulations_converge_after_healing -- --exact --nocapture
echo "sim: $seeds seeds converged in $((SECONDS - t0)) s"
