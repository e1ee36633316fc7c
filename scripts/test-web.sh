#!/usr/bin/env bash
# The web UI in a real browser: Debian's Chromium, driven by Playwright (PyPI, in a fresh
# venv; never `playwright install`, which downloads a browser) against real `up`
# processes on 127.0.0.1.
#
#   CARGO_TARGET_DIR=... ./scripts/test-web.sh
#   LEANSPEC_SCREENSHOTS=docs/screenshots ./scripts/test-web.sh   # also saves the README's PNGs
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
say() { printf '== %s\n' "$*"; }
: "${CARGO_TARGET_DIR:?set CARGO_TARGET_DIR}"
: "${LEANSPEC_CORPUS:?set LEANSPEC_CORPUS}"
out="$CARGO_TARGET_DIR/web"
mkdir -p "$out"
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
# The remote-access test (test_remote_access.py): namespaces, a test CA, and the NSS
# database through which the "phone's" Chromium trusts it.
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v certutil >/dev/null 2>&1 || need+=(libnss3-tools)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need+=(python3-venv)
if [ ${#need[@]} -gt 0 ]; then
  say "installing ${need[*]}"
  apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null
fi
cargo build --locked -p leanspec-peer
venv="$out/venv"
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check "playwright>=1.50,<2" pytest
if [ -n "${LEANSPEC_SCREENSHOTS:-}" ]; then
  mkdir -p "$LEANSPEC_SCREENSHOTS"
  LEANSPEC_SCREENSHOTS=$(cd "$LEANSPEC_SCREENSHOTS" && pwd)
  export LEANSPEC_SCREENSHOTS
fi
say "web UI: headless Chromium against paired up processes (and, in network namespaces, a phone against an always-on peer over HTTPS)"
(cd "$out" && LEANSPEC_PEER_BIN="$CARGO_TARGET_DIR/debug/leanspec-peer" CHROMIUM="$(command -v chromium)" \
  "$venv/bin/python" -m pytest -q -s -p no:cacheprovider "$root/shells/web/tests")
