#!/usr/bin/env bash
# Tests of the embedded library's bindings, run by scripts/test.sh (which installs
# nothing here: this script installs what only the bindings need).
#
# - Python: maturin builds the wheel; it is installed into a fresh venv and the pytest
#   suite (bindings/python/tests) runs against the installed package.
# - Kotlin: uniffi generates the sources; kotlinc (npm `kotlin-compiler`) compiles them
#   with the JUnit suite (bindings/kotlin/tests); the JUnit console launcher runs it
#   against the debug library (JNA and JUnit from Debian).
# - Swift (no compiler installs here): the header passes `gcc -fsyntax-only`, every
#   function it declares is exported by the library, the generated .swift and
#   Package.swift parse with tree-sitter-swift without error nodes, and the committed
#   sources in bindings/swift/Sources match what uniffi generates now.
#
# Needs CARGO_TARGET_DIR (set by scripts/test.sh). Work files go to $CARGO_TARGET_DIR/bindings.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
say() { printf '== %s\n' "$*"; }
: "${CARGO_TARGET_DIR:?set CARGO_TARGET_DIR}"
out="$CARGO_TARGET_DIR/bindings"
tools="${XDG_CACHE_HOME:-$HOME/.cache}/leanspec-peer/tools"
mkdir -p "$out" "$tools"

need=()
command -v java >/dev/null 2>&1 || need+=(default-jre-headless)
[ -f /usr/share/java/jna.jar ] || need+=(libjna-java)
[ -f /usr/share/java/junit-platform-console-standalone.jar ] || need+=(junit5)
command -v npm >/dev/null 2>&1 || need+=(npm)
command -v nm >/dev/null 2>&1 || need+=(binutils)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need+=(python3-venv)
if [ ${#need[@]} -gt 0 ]; then
  say "installing ${need[*]}"
  apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null
fi

say "bindings: build the library and uniffi-bindgen"
cargo build --locked -p leanspec-peer-ffi
lib="$CARGO_TARGET_DIR/debug/libleanspec_peer_ffi.so"
bindgen="$CARGO_TARGET_DIR/debug/uniffi-bindgen"

venv="$out/venv"
rm -rf "$venv" "$out/wheels"
python3 -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check "maturin>=1.16,<2" pytest tree-sitter "tree-sitter-swift>=0.7,<0.8"

say "bindings: Python (wheel by maturin, installed into a fresh venv)"
(cd bindings/python && "$venv/bin/maturin" build --locked --profile dev --out "$out/wheels" >"$out/maturin.log" 2>&1) \
  || { cat "$out/maturin.log"; exit 1; }
"$venv/bin/pip" install -q --disable-pip-version-check "$out"/wheels/leanspec_peer-*.whl
# Run from outside the source tree so `import leanspec_peer` can only be the wheel's.
(cd "$out" && "$venv/bin/python" -m pytest -q -p no:cacheprovider "$root/bindings/python/tests")

say "bindings: Kotlin (kotlinc + JUnit 5)"
kotlin="$tools/node_modules/kotlin-compiler"
if [ ! -x "$kotlin/bin/kotlinc" ]; then
  (cd "$tools" && npm install --silent --no-audit --no-fund kotlin-compiler@2.4.20 >/dev/null)
fi
rm -rf "$out/kotlin"
"$bindgen" generate --no-format --library "$lib" --language kotlin --out-dir "$out/kotlin/src" >/dev/null
cp="/usr/share/java/jna.jar:/usr/share/java/junit-platform-console-standalone.jar:$kotlin/lib/kotlinx-coroutines-core-jvm.jar"
"$kotlin/bin/kotlinc" -nowarn -cp "$cp" -d "$out/kotlin/classes" \
  $(find "$out/kotlin/src" -name '*.kt') bindings/kotlin/tests/*.kt
java -Djna.library.path="$(dirname "$lib")" \
  -jar /usr/share/java/junit-platform-console-standalone.jar \
  -cp "/usr/share/java/jna.jar:$kotlin/lib/kotlinx-coroutines-core-jvm.jar:$kotlin/lib/kotlin-stdlib.jar:$out/kotlin/classes" \
  --select-package dev.leanspec.peer.tests --fail-if-no-tests --disable-banner --disable-ansi-colors --details=summary

say "bindings: Swift (generated; header, symbols, parse)"
rm -rf "$out/swift"
"$bindgen" generate --no-format --library "$lib" --language swift --out-dir "$out/swift" >/dev/null
# Included from a one-line C file: `#pragma once` warns when the header is the main file.
printf '#include "LeanspecPeerFFI.h"\n' |
  gcc -fsyntax-only -Wall -Werror -D_Nullable= -D_Nonnull= -I "$out/swift" -x c -
if ! "$venv/bin/python" bindings/swift/check.py "$out/swift" "$lib"; then
  echo "to refresh the committed Swift sources: cp $out/swift/LeanspecPeer.swift bindings/swift/Sources/LeanspecPeer/ && cp $out/swift/LeanspecPeerFFI.h bindings/swift/Sources/LeanspecPeerFFI/" >&2
  exit 1
fi
say "bindings: all passed"
