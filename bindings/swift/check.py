"""Checks of the Swift bindings that need no Swift compiler (none installs here):

1. the committed sources are what uniffi generates from the library now;
2. every uniffi/ffi function the header declares is exported by the library;
3. the Swift sources and Package.swift parse with tree-sitter-swift with no error nodes.

Usage: check.py GENERATED_DIR LIBRARY_SO. The header's C syntax is checked by gcc in
scripts/test-bindings.sh. Exits 1 with what is wrong."""

import re
import subprocess
import sys
from pathlib import Path

import tree_sitter
import tree_sitter_swift

HERE = Path(__file__).resolve().parent
COMMITTED = {
    "LeanspecPeer.swift": HERE / "Sources/LeanspecPeer/LeanspecPeer.swift",
    "LeanspecPeerFFI.h": HERE / "Sources/LeanspecPeerFFI/LeanspecPeerFFI.h",
}
# Attributes only Swift >= 5.8 knows, fenced by #if; tree-sitter-swift cannot parse the
# fence around an attribute, so the blocks go before parsing (what the compiler does on
# older Swift too).
DOC_ATTR = re.compile(r"#if swift\(>=5\.8\)\s*@_documentation\(visibility: private\)\s*#endif")
# `{ () }` (a closure returning the empty tuple) is valid Swift that tree-sitter-swift
# 0.7 cannot parse (a MISSING node after it); `{ return }` means the same.
EMPTY_CLOSURE = re.compile(r"\{ \(\) \}")


def normalise(source: str) -> str:
    return EMPTY_CLOSURE.sub("{ return }", DOC_ATTR.sub("", source))


def errors(node, found):
    if node.type == "ERROR" or node.is_missing:
        found.append(node)
    for child in node.children:
        errors(child, found)
    return found


def main(generated: Path, library: Path) -> int:
    failures = []
    for name, committed in COMMITTED.items():
        fresh = (generated / name).read_text()
        if committed.read_text() != fresh:
            failures.append(
                f"{committed} is stale: regenerate it (scripts/test-bindings.sh prints how)"
            )

    header = (generated / "LeanspecPeerFFI.h").read_text()
    declared = set(re.findall(r"\b((?:uniffi|ffi)_[A-Za-z0-9_]+)\s*\(", header))
    nm = subprocess.run(
        ["nm", "-D", "--defined-only", str(library)], capture_output=True, text=True, check=True
    )
    exported = {line.split()[-1] for line in nm.stdout.splitlines() if line.strip()}
    missing = sorted(declared - exported)
    print(f"swift: header declares {len(declared)} functions; {len(declared) - len(missing)} exported")
    if not declared:
        failures.append("the header declares no functions")
    if missing:
        failures.append(f"declared but not exported: {missing[:10]}")

    parser = tree_sitter.Parser(tree_sitter.Language(tree_sitter_swift.language()))
    for path in (generated / "LeanspecPeer.swift", HERE / "Package.swift"):
        source = normalise(path.read_text())
        tree = parser.parse(source.encode())
        bad = errors(tree.root_node, [])
        print(f"swift: {path.name}: {len(source.splitlines())} lines, {len(bad)} error nodes")
        for node in bad[:5]:
            line = source.splitlines()[node.start_point[0]]
            failures.append(f"{path.name}:{node.start_point[0] + 1}: parse error near {line.strip()!r}")

    for f in failures:
        print(f"swift: FAIL {f}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
