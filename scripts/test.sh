#!/usr/bin/env bash
# Runs every test of leanspec-peer. Installs what the tests need first (on a fresh
# machine of the project's kind: Debian with rustup's stable toolchain).
#
#   ./scripts/test.sh
#
# Environment:
#   LEANSPEC_CORPUS   the LeanSpec specs corpus (default: ../shared/corpus/lean-spec-specs)
#   CARGO_TARGET_DIR  build folder (default: ~/.cache/leanspec-peer/target, outside the clone)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

say() { printf '== %s\n' "$*"; }

if ! command -v cargo >/dev/null 2>&1; then
  [ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
fi
command -v cargo >/dev/null 2>&1 || { echo "cargo not found: install Rust with rustup first" >&2; exit 1; }
# gcc builds the C parts of some crates (libfuzzer for the fuzz targets); iproute2,
# nftables and python3 build and probe the NAT test network (shells/relay/tests/nat.rs,
# which runs as root in network namespaces it creates and removes).
need=()
command -v c++ >/dev/null 2>&1 || need+=(g++)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v nft >/dev/null 2>&1 || need+=(nftables)
command -v python3 >/dev/null 2>&1 || need+=(python3)
# strace slows one daemon's fsyncs down (fault injection) in shells/cli/tests/durable.rs.
command -v strace >/dev/null 2>&1 || need+=(strace)
# curl is the TLS client of the UI flood test (shells/cli/tests/flood.rs); setpriv
# (util-linux) runs a peer without the capabilities that read through mode 000
# (shells/cli/tests/local_files.rs).
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v setpriv >/dev/null 2>&1 || need+=(util-linux)
# systemd-analyze checks the unit `service install` writes (shells/cli/tests/service.rs).
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
if [ ${#need[@]} -gt 0 ]; then
  say "installing ${need[*]}"
  apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null
fi

export LEANSPEC_CORPUS="${LEANSPEC_CORPUS:-$root/../shared/corpus/lean-spec-specs}"
if [ ! -d "$LEANSPEC_CORPUS" ]; then
  echo "the LeanSpec corpus is missing at $LEANSPEC_CORPUS: set LEANSPEC_CORPUS" >&2
  exit 1
fi
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/leanspec-peer/target}"
export CARGO_TERM_COLOR=never

# The bucket tests (shells/cli/tests/bucket.rs) run a real S3 API server on 127.0.0.1:
# s3s-fs, built once into cargo's bin folder (its 0.14 line builds with our toolchain).
s3s_version=0.14.1
if ! "${CARGO_HOME:-$HOME/.cargo}/bin/s3s-fs" --version 2>/dev/null | grep -q "$s3s_version"; then
  say "installing s3s-fs $s3s_version (S3 server for the bucket tests)"
  cargo install --quiet --locked --features binary "s3s-fs@$s3s_version"
fi

say "format check"
cargo fmt --all -- --check

say "clippy (warnings are errors)"
cargo clippy --version >/dev/null 2>&1 || rustup component add clippy
cargo clippy --workspace --all-targets --locked -- -D warnings

say "workspace tests (unit, integration, CLI processes)"
cargo test --workspace --locked

say "bindings (Python, Kotlin, Swift)"
./scripts/test-bindings.sh

say "MCP server under the Python MCP SDK"
./scripts/test-mcp.sh

say "web UI in headless Chromium"
./scripts/test-web.sh

say "fuzz targets compile"
cargo check --locked --manifest-path fuzz/Cargo.toml --target-dir "$CARGO_TARGET_DIR/fuzz"

say "fuzz: every target for 60 s from its committed corpus"
FUZZ_SECONDS="${FUZZ_SECONDS:-60}" FUZZ_RUNS="${FUZZ_RUNS:--1}" ./scripts/soak.sh

say "all tests passed"
