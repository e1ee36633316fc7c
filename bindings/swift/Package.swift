// swift-tools-version:5.9
// The Swift package of leanspec-peer: generated bindings over the Rust library.
// Build the library first (`cargo build --release -p leanspec-peer-ffi`) and let the
// linker find it, e.g. `swift build -Xlinker -L../../target/release`.
import PackageDescription

let package = Package(
    name: "LeanspecPeer",
    platforms: [.macOS(.v12), .iOS(.v15)],
    products: [
        .library(name: "LeanspecPeer", targets: ["LeanspecPeer"]),
    ],
    targets: [
        // The C declarations of the library's exported functions; links leanspec_peer_ffi.
        .systemLibrary(name: "LeanspecPeerFFI", path: "Sources/LeanspecPeerFFI"),
        .target(
            name: "LeanspecPeer",
            dependencies: ["LeanspecPeerFFI"],
            path: "Sources/LeanspecPeer"
        ),
    ]
)
