//! Errors of machine operations.

use crate::doc::DocError;
use crate::identity::IdentityError;
use crate::store::StoreError;
use std::path::PathBuf;

/// Errors of machine operations. Each message says what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `init` has not been run for this home.
    #[error("no machine in {} yet: run `leanspec-peer init` (or pass --home)", home.display())]
    NotInitialized {
        /// The home folder.
        home: PathBuf,
    },
    /// Identity failure.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// Store failure.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Document failure.
    #[error("{0}; the store may be damaged: move it aside and run `leanspec-peer init`")]
    Doc(#[from] DocError),
    /// A folder could not be used.
    #[error("cannot use {}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A spec's README.md could not be read (missing, too large, not UTF-8).
    #[error("cannot read the body of {spec}: {reason}")]
    BodyUnreadable {
        /// The spec name.
        spec: String,
        /// Why.
        reason: String,
    },
    /// No specs folder in a project folder.
    #[error("no specs folder in {}: expected one of specs/, .lean-spec/specs/, docs/specs/, doc/specs/ or specsDir in .lean-spec/config.json", root.display())]
    NoSpecsDir {
        /// The project root.
        root: PathBuf,
    },
    /// Another project already has this name.
    #[error("a project named {name:?} already exists ({}); pass --name to choose another", root.display())]
    NameTaken {
        /// The name.
        name: String,
        /// The other project's root.
        root: PathBuf,
    },
    /// No project matches.
    #[error(
        "no project {selector:?} on this machine (projects: {known}); see `leanspec-peer project list`"
    )]
    UnknownProject {
        /// What was asked for.
        selector: String,
        /// Known project names.
        known: String,
    },
    /// No machine matches.
    #[error("no machine {selector:?} (known: {known}); see `leanspec-peer status`")]
    UnknownMachine {
        /// What was asked for.
        selector: String,
        /// Known machines.
        known: String,
    },
    /// Several machines match (labels are not unique: any member can pick any label).
    #[error("{selector:?} names several machines: {candidates}; use the id instead")]
    AmbiguousMachine {
        /// What was asked for.
        selector: String,
        /// The matches, `label (short id)`.
        candidates: String,
    },
    /// No spec matches.
    #[error(
        "no spec {selector:?} in project {project}; see `leanspec-peer specs --project {project}`"
    )]
    UnknownSpec {
        /// What was asked for.
        selector: String,
        /// The project name.
        project: String,
    },
    /// Several specs match.
    #[error("{selector:?} matches several specs: {candidates}; use the full name")]
    AmbiguousSpec {
        /// What was asked for.
        selector: String,
        /// The matches.
        candidates: String,
    },
    /// The home folder can be written by other users.
    #[error("the home folder {} can be written by other users (mode {mode:o}); run `chmod 700 {}`", path.display(), path.display())]
    UnsafeHome {
        /// The home folder.
        path: std::path::PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// No invitation matches.
    #[error("no invitation {selector:?}; see `leanspec-peer invite list`")]
    UnknownInvite {
        /// What was asked for.
        selector: String,
    },
    /// No web UI account has this name.
    #[error("no web UI account {name:?}; see `leanspec-peer ui-user list`")]
    UnknownUiAccount {
        /// What was asked for.
        name: String,
    },
    /// Several invitations match the prefix.
    #[error("{selector:?} matches several invitations: {candidates}; give more of the id")]
    AmbiguousInvite {
        /// What was asked for.
        selector: String,
        /// The matching ids.
        candidates: String,
    },
    /// An invitation that cannot be made.
    #[error("{0}")]
    InvalidInvite(String),
    /// A label that cannot be used.
    #[error("invalid label {0:?}: use 1 to 64 characters without control characters")]
    InvalidLabel(String),
    /// Joining another mesh while this machine already has peers.
    #[error(
        "this machine is already paired with {members} other machine(s); two meshes are not merged: revoke them first or use another --home"
    )]
    AlreadyInMesh {
        /// Other members.
        members: usize,
    },
    /// A bucket that cannot be used (setting, credentials, the endpoint, keys).
    #[error(transparent)]
    Bucket(#[from] crate::bucket::BucketError),
}

/// Result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;
