#!/usr/bin/env bash
# The MCP server under a real MCP client: the `mcp` SDK from PyPI, in a fresh venv,
# drives `leanspec-peer mcp` over stdio against two `up` processes on 127.0.0.1.
#
#   CARGO_TARGET_DIR=... ./scripts/test-mcp.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
say() { printf '== %s\n' "$*"; }
: "${CARGO_TARGET_DIR:?set CARGO_TARGET_DIR}"
out="$CARGO_TARGET_DIR/mcp"
mkdir -p "$out"
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || {
  apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
}
cargo build --locked -p leanspec-peer
venv="$out/venv"
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check "mcp>=1.20,<2" pytest
say "mcp: Python MCP client against leanspec-peer mcp"
(cd "$out" && LEANSPEC_PEER_BIN="$CARGO_TARGET_DIR/debug/leanspec-peer" \
  "$venv/bin/python" -m pytest -q -p no:cacheprovider "$root/shells/mcp/tests")
