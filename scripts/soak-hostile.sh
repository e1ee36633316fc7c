#!/usr/bin/env bash
# The hostile-member fuzzer (core/src/mesh/hostile.rs) over many cases: the soak run of
# what the test command checks with 2,000. Runs JOBS processes (default: the cores),
# each on its own range of seeds, in the release profile (~10x the test build's speed;
# the dependencies are those `cargo build --release` builds). A failure prints its seed
# (rerun one with LEANSPEC_HOSTILE_SEED=S).
#
#   ./scripts/soak-hostile.sh [CASES]        (default 1,000,000)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/leanspec-peer/target}"
cases=${1:-1000000}
jobs=${JOBS:-$(nproc)}
per=$(( (cases + jobs - 1) / jobs ))
t0=$SECONDS
cargo test --release --locked -q -p leanspec-peer-core --lib --no-run
pids=()
for j in $(seq 0 $((jobs - 1))); do
  LEANSPEC_HOSTILE_FIRST=$((j * per)) LEANSPEC_HOSTILE_CASES=$per \
    cargo test --release --locked -q -p leanspec-peer-core --lib \
    mesh::hostile::a_hostile_member_cannot_break_the_membership_facts -- --exact --nocapture &
  pids+=($!)
done
failed=0
for p in "${pids[@]}"; do wait "$p" || failed=1; done
[ "$failed" = 0 ] || { echo "hostile member: a case failed (its seed is printed above)" >&2; exit 1; }
echo "hostile member: $((per * jobs)) cases held in $((SECONDS - t0)) s"
