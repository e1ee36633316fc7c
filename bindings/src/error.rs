//! The one error type hosts see: a kind to branch on and a message that says what to do.

use leanspec_peer_core as core;

/// What kind of failure it is (see the message for what to do).
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum ErrorKind {
    /// No machine in this home yet.
    NotInitialized,
    /// No such machine, project or spec.
    NotFound,
    /// A selector matches several things.
    Ambiguous,
    /// An argument cannot be used.
    InvalidArgument,
    /// A ticket is malformed.
    Ticket,
    /// The other machine could not be reached.
    Unreachable,
    /// The other machine or the mesh refused.
    Refused,
    /// The store or the machine key is damaged, newer, or in use.
    Store,
    /// A file or folder could not be used.
    Io,
    /// The network endpoint could not start.
    Network,
    /// This needs the network: call `start` first.
    NotRunning,
    /// Already running, or starting or stopping right now.
    Busy,
}

/// A failure, raised as an exception in Python, Kotlin and Swift.
#[derive(Debug, thiserror::Error, uniffi::Error)]
pub enum PeerError {
    /// Everything fails this one way; `kind` says which part to look at.
    // `detail`, not `message`: Kotlin exceptions already have a `message` property.
    #[error("{detail}")]
    Failed {
        /// The kind.
        kind: ErrorKind,
        /// What went wrong and what to do.
        detail: String,
    },
}

impl PeerError {
    pub(crate) fn new(kind: ErrorKind, detail: impl Into<String>) -> PeerError {
        PeerError::Failed {
            kind,
            detail: detail.into(),
        }
    }
}

impl From<core::ErrorKind> for ErrorKind {
    fn from(k: core::ErrorKind) -> ErrorKind {
        match k {
            core::ErrorKind::NotInitialized => ErrorKind::NotInitialized,
            core::ErrorKind::NotFound => ErrorKind::NotFound,
            core::ErrorKind::Ambiguous => ErrorKind::Ambiguous,
            core::ErrorKind::InvalidArgument => ErrorKind::InvalidArgument,
            core::ErrorKind::Ticket => ErrorKind::Ticket,
            core::ErrorKind::Unreachable => ErrorKind::Unreachable,
            core::ErrorKind::Refused => ErrorKind::Refused,
            core::ErrorKind::Store => ErrorKind::Store,
            core::ErrorKind::Io => ErrorKind::Io,
            core::ErrorKind::Network => ErrorKind::Network,
            core::ErrorKind::NotRunning => ErrorKind::NotRunning,
            core::ErrorKind::Busy => ErrorKind::Busy,
        }
    }
}

impl From<core::Error> for PeerError {
    fn from(e: core::Error) -> PeerError {
        PeerError::new(e.kind().into(), e.to_string())
    }
}

impl From<core::peer::PeerError> for PeerError {
    fn from(e: core::peer::PeerError) -> PeerError {
        PeerError::new(e.kind().into(), e.to_string())
    }
}
