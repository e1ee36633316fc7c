#!/usr/bin/env bash
# Web UI benchmark (BENCHMARKS.md "Web UI"): the README's release build, three peers with
# 10,000 specs, beta's UI in Debian's headless Chromium driven by Playwright.
#
#   CARGO_TARGET_DIR=... ./scripts/bench-web.sh          # SAVES=100 SPECS=10000
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
: "${CARGO_TARGET_DIR:?set CARGO_TARGET_DIR}"
command -v chromium >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }
cargo build --release --locked -p leanspec-peer
venv="$CARGO_TARGET_DIR/web/venv"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "playwright>=1.50,<2" pytest
fi
LEANSPEC_PEER_BIN="$CARGO_TARGET_DIR/release/leanspec-peer" CHROMIUM="$(command -v chromium)" \
  "$venv/bin/python" "$root/shells/web/tests/bench_browser.py"
