#!/usr/bin/env bash
# Chaos soak (issue 15): runs the chaos convergence test (shells/cli/tests/chaos.rs: five
# `up` processes in network namespaces, kills, partitions, packet loss, file saves and
# signed edits) for CHAOS_ROUNDS rounds (default 200) in each of CHAOS_RUNS runs (default
# 1), each with a new seed, and prints the test's summary lines for RELIABILITY.md.
# Needs root, iproute2 and nftables.
#
#   ./scripts/soak-chaos.sh
#   CHAOS_ROUNDS=50 CHAOS_RUNS=4 ./scripts/soak-chaos.sh
#   LEANSPEC_CHAOS_SEED=12345 CHAOS_ROUNDS=200 ./scripts/soak-chaos.sh   # replay one run
set -euo pipefail
cd "$(dirname "$0")/.."
: "${CARGO_TARGET_DIR:=${XDG_CACHE_HOME:-$HOME/.cache}/leanspec-peer/target}"
export CARGO_TARGET_DIR
rounds=${CHAOS_ROUNDS:-200}
runs=${CHAOS_RUNS:-1}
cargo build --locked -q -p leanspec-peer
for r in $(seq 1 "$runs"); do
  LEANSPEC_CHAOS_ROUNDS=$rounds cargo test --locked -q -p leanspec-peer --test chaos -- --nocapture 2>&1 \
    | grep '^chaos:' || { echo "chaos run $r failed" >&2; exit 1; }
done
