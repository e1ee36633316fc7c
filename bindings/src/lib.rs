//! uniffi bindings for leanspec-peer. The bindings issue fills this crate; it holds no
//! logic, only adapters over `leanspec_peer_core`.

/// The core crate's version, re-exported so the crate is not empty and links the core.
pub fn core_version() -> &'static str {
    leanspec_peer_core::VERSION
}
