//! One coarse kind per error, for hosts that branch on failures (the bindings raise
//! exceptions carrying it) rather than parse messages.

use crate::machine::Error;
use crate::peer::PeerError;

/// What kind of failure an error is. The message still says what to do; the kind says
/// which part to look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// No machine in this home yet.
    NotInitialized,
    /// No such machine, project or spec.
    NotFound,
    /// A selector matches several things.
    Ambiguous,
    /// An argument cannot be used (label, hash, empty change, payload size, folder).
    InvalidArgument,
    /// A ticket is malformed.
    Ticket,
    /// The other machine could not be reached.
    Unreachable,
    /// The other machine or the mesh refused (used or expired ticket, other mesh).
    Refused,
    /// The store or the machine key is damaged, newer, or in use.
    Store,
    /// A file or folder could not be used.
    Io,
    /// The network endpoint could not start.
    Network,
    /// The request needs the running peer (`leanspec-peer up`), and none runs.
    NotRunning,
    /// The peer is already running (or starting or stopping).
    Busy,
}

impl Error {
    /// The kind of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::NotInitialized { .. } => ErrorKind::NotInitialized,
            Error::Identity(_) | Error::Store(_) | Error::Doc(_) => ErrorKind::Store,
            Error::Io { .. } | Error::UnsafeHome { .. } | Error::BodyUnreadable { .. } => {
                ErrorKind::Io
            }
            Error::NoSpecsDir { .. }
            | Error::NameTaken { .. }
            | Error::InvalidLabel(_)
            | Error::InvalidInvite(_) => ErrorKind::InvalidArgument,
            Error::UnknownProject { .. }
            | Error::UnknownMachine { .. }
            | Error::UnknownSpec { .. }
            | Error::UnknownInvite { .. }
            | Error::UnknownUiAccount { .. } => ErrorKind::NotFound,
            Error::AmbiguousSpec { .. }
            | Error::AmbiguousMachine { .. }
            | Error::AmbiguousInvite { .. } => ErrorKind::Ambiguous,
            Error::AlreadyInMesh { .. } => ErrorKind::Refused,
            Error::Bucket(e) => match e {
                crate::bucket::BucketError::Invalid(_)
                | crate::bucket::BucketError::NoCredentials { .. } => ErrorKind::InvalidArgument,
                crate::bucket::BucketError::Denied { .. }
                | crate::bucket::BucketError::NotRecipient { .. } => ErrorKind::Refused,
                crate::bucket::BucketError::Unreachable { .. } => ErrorKind::Unreachable,
            },
        }
    }
}

impl PeerError {
    /// The kind of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            PeerError::Machine(e) => e.kind(),
            PeerError::Bind(_) => ErrorKind::Network,
            PeerError::Ticket(_) => ErrorKind::Ticket,
            PeerError::Unreachable { .. } => ErrorKind::Unreachable,
            PeerError::JoinRefused(_) => ErrorKind::Refused,
            PeerError::Invalid(_) => ErrorKind::InvalidArgument,
            PeerError::NotRunning(_) => ErrorKind::NotRunning,
            PeerError::AlreadyRunning => ErrorKind::Busy,
            PeerError::Unavailable { .. } => ErrorKind::Unreachable,
            PeerError::Remote { kind, .. } => *kind,
        }
    }
}
